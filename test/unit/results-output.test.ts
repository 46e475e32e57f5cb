/**
 * `--output` → the four file paths: a folder (existing, or any name not ending in .json), `X.json` as a file with the
 * other files beside it, an existing folder named X.json kept as a folder; a folder in the way of a file is refused.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkEvaluationTargets, evaluationFiles } from '../../lib/results/output';

describe('results: where --output puts the files', function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-results-output-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const inFolder = (d: string) => ({
    results: path.join(d, 'results.json'),
    predictions: path.join(d, 'predictions.csv'),
    perClass: path.join(d, 'per_class.csv'),
    report: path.join(d, 'report.html'),
  });

  it('a folder path (new or existing) holds the four files under their names', function () {
    expect(evaluationFiles(path.join(dir, 'new'))).to.deep.equal(inFolder(path.join(dir, 'new')));
    expect(evaluationFiles(dir)).to.deep.equal(inFolder(dir));
    expect(evaluationFiles(path.join(dir, 'out.csv'))).to.deep.equal(inFolder(path.join(dir, 'out.csv')));
  });

  it('X.json is the results file itself (new, existing, any case), the other three beside it', function () {
    const x = path.join(dir, 'sub', 'inference_results.json');
    expect(evaluationFiles(x)).to.deep.equal({ ...inFolder(path.join(dir, 'sub')), results: x });
    const y = path.join(dir, 'old.JSON');
    fs.writeFileSync(y, '{}');
    expect(evaluationFiles(y)).to.deep.equal({ ...inFolder(dir), results: y });
  });

  it('a relative X.json resolves against the working directory', function () {
    const files = evaluationFiles(path.join('results', 'results.json'));
    expect(files.results).to.equal(path.resolve('results', 'results.json'));
    expect(files.predictions).to.equal(path.resolve('results', 'predictions.csv'));
  });

  it('an existing folder named X.json stays a folder', function () {
    const x = path.join(dir, 'results.json');
    fs.mkdirSync(x);
    expect(evaluationFiles(x)).to.deep.equal(inFolder(x));
  });

  it('a folder where a file goes is an IO_ERROR naming it; free targets pass', function () {
    expect(() => checkEvaluationTargets(inFolder(dir))).to.not.throw();
    fs.mkdirSync(path.join(dir, 'results.json'));
    let err: unknown;
    try {
      checkEvaluationTargets(inFolder(dir));
    } catch (e) {
      err = e;
    }
    expect(err).to.have.property('code', 'IO_ERROR');
    expect((err as Error).message).to.include(`${path.join(dir, 'results.json')} is a folder`);
  });
});
