/**
 * `node lib/inference.js` typed as the reference pipeline's users type it, as real processes on a tiny trained run
 * (3 steps, a checkpoint and a validation every step, so the run has a best pointer):
 *
 * - `--checkpoint RUN:best --config C --output results/results.json --bootstrap --n_bootstrap N` writes exactly
 *   that file (the other three beside it), and a second run with the default output still works;
 * - `RUN:best` / `RUN:latest` follow the run's pointers; a run without a best pointer, an empty folder and a
 *   missing folder are errors naming the run and what it holds;
 * - results.json's flat keys equal the nested values;
 * - the reference's flags mean what they meant: `--n_bootstrap` alone does not bootstrap, `--config` defaults to
 *   configs/base_config.yaml in the working directory.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  checkpointDirs,
  DEMO_CLASSES,
  describeRun,
  requireTrainer,
  runTrain,
  trainData,
  writeTrainConfig,
} from '../helpers/train-fixtures';
import { writeAirVolume } from '../helpers/nifti-bombs';

const INFERENCE_JS = path.resolve(__dirname, '..', '..', 'lib', 'inference.js');
const CLI_JS = path.resolve(__dirname, '..', '..', 'lib', 'cli.js');
const METRICS = ['auroc', 'auprc', 'f1', 'precision', 'recall'];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `node lib/inference.js args` with `cwd` as the working directory (relative --output / --config resolve there). */
function infer(cwd: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, [INFERENCE_JS, ...args, '--quiet'], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const show = (r: Run): string =>
  `exit ${r.status}\n--- stdout ---\n${r.stdout.slice(-3000)}\n--- stderr ---\n${r.stderr.slice(-3000)}`;
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

describe('infer: the reference command line (--output X.json, RUN:best|latest, flat keys, its flags)', function () {
  this.timeout(180_000);
  let dir: string;
  let run: string;
  let cfgFile: string;
  let valShards: string;
  /** A fresh working directory per test, like a user's project folder. */
  let cwd: string;

  before(async function () {
    requireTrainer(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-infer-ref-'));
    const data = await trainData({ train: 8, val: 24, classes: DEMO_CLASSES });
    valShards = data.valPattern;
    run = path.join(dir, 'run');
    cfgFile = writeTrainConfig(dir, data, run, {
      training: { max_steps: 3, warmup_steps: 1, threads: 2, save_every_n_steps: 1 },
      data: { batch_size: 4, val_batch_size: 8 },
      validation: { eval_every_n_steps: 1, eval_samples: null },
      checkpoint: { keep_last_n: 0 },
    });
    const tr = await runTrain(['--config', cfgFile]);
    expect(tr.code, describeRun(tr)).to.equal(0);
    expect(fs.existsSync(path.join(run, 'best.json')), 'the training wrote a best pointer').to.equal(true);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  let n = 0;
  beforeEach(() => {
    cwd = path.join(dir, `cwd-${n++}`);
    fs.mkdirSync(cwd);
  });
  /** `infer` in this test's folder on `checkpoint` with the run's config, then `args`. */
  const inferWith = (checkpoint: string, ...args: string[]): Run =>
    infer(cwd, '--checkpoint', checkpoint, '--config', cfgFile, ...args);

  it('--output results/results.json writes that file with the artifacts beside it; the default output then still works', () => {
    const r = inferWith(`${run}:best`, '--output', 'results/results.json', '--bootstrap', '--n_bootstrap', '30');
    expect(r.status, show(r)).to.equal(0);
    const results = path.join(cwd, 'results', 'results.json');
    expect(fs.statSync(results).isFile(), 'results.json is a file').to.equal(true);
    expect(fs.readdirSync(path.join(cwd, 'results')).sort()).to.deep.equal(
      ['per_class.csv', 'predictions.csv', 'report.html', 'results.json'].sort(),
    );
    const first = readJson(results);
    expect(first.bootstrap.n_resamples).to.equal(30);

    // The default output (results/) is the same folder: the second run replaces the four files.
    const again = inferWith(`${run}:latest`);
    expect(again.status, show(again)).to.equal(0);
    expect(fs.statSync(results).isFile()).to.equal(true);
    const second = readJson(results);
    expect(second.bootstrap).to.equal(null);
    expect(second.created >= first.created).to.equal(true);
    expect(fs.readdirSync(path.join(cwd, 'results'))).to.have.length(4);
  });

  it('X.json with another name: exactly X.json, nothing named after the folder; an existing folder named X.json stays a folder', () => {
    const r = inferWith(run, '--output', 'out/inference_results.json');
    expect(r.status, show(r)).to.equal(0);
    expect(fs.readdirSync(path.join(cwd, 'out')).sort()).to.deep.equal(
      ['inference_results.json', 'per_class.csv', 'predictions.csv', 'report.html'].sort(),
    );
    expect(r.stdout).to.include(`Wrote ${path.join(cwd, 'out', 'inference_results.json')}`);

    fs.mkdirSync(path.join(cwd, 'kept.json'));
    const k = inferWith(run, '--output', 'kept.json');
    expect(k.status, show(k)).to.equal(0);
    expect(fs.statSync(path.join(cwd, 'kept.json', 'results.json')).isFile()).to.equal(true);
  });

  it('a folder left where results.json goes (an older ctclip made one) is an error naming it, before any file is replaced', () => {
    fs.mkdirSync(path.join(cwd, 'results', 'results.json'), { recursive: true });
    const r = inferWith(run);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stderr).to.include(`${path.join(cwd, 'results', 'results.json')} is a folder`);
    expect(r.stderr).to.not.match(/EISDIR/);
    expect(fs.readdirSync(path.join(cwd, 'results'))).to.deep.equal(['results.json']);
  });

  it('RUN:best follows best.json, RUN:latest is the newest checkpoint; a hand-written best pointer is followed', () => {
    const steps = checkpointDirs(run).map((d) => Number(path.basename(d).slice('ckpt-step'.length)));
    expect(steps).to.deep.equal([1, 2, 3]);
    const pointer = readJson(path.join(run, 'best.json'));
    const best = inferWith(`${run}:best`, '--output', 'best.json');
    expect(best.status, show(best)).to.equal(0);
    expect(best.stdout).to.include(`Checkpoint ${run}:best → ${path.join(run, pointer.checkpoint)}`);
    const bestCheckpoint = readJson(path.join(cwd, 'best.json')).checkpoint;
    expect(bestCheckpoint.step).to.equal(pointer.step);
    expect(bestCheckpoint.path).to.include(path.join(run, pointer.checkpoint));
    const latest = inferWith(`${run}:latest`, '--output', 'latest.json');
    expect(latest.status, show(latest)).to.equal(0);
    expect(readJson(path.join(cwd, 'latest.json')).checkpoint.step).to.equal(3);

    // A copy of the run whose best pointer names step 1 (a bare folder name, as a person would write it).
    const copy = path.join(dir, 'run-pointed');
    fs.cpSync(run, copy, { recursive: true });
    fs.writeFileSync(path.join(copy, 'best.json'), 'ckpt-step00000001\n');
    const pointed = inferWith(`${copy}:best`, '--output', 'pointed.json');
    expect(pointed.status, show(pointed)).to.equal(0);
    expect(readJson(path.join(cwd, 'pointed.json')).checkpoint.step).to.equal(1);

    // A dangling pointer of a 'min' run: the best is re-derived from the checkpoints' metas with the pointer's own
    // metric and mode (the first strict minimum in step order), not judged as 'max'.
    const values = steps.map((step) => {
      const meta = readJson(path.join(run, `ckpt-step0000000${step}`, 'meta.json'));
      return { step, value: meta.metrics.weighted_auroc as number };
    });
    const lowest = values.reduce((a, b) => (b.value < a.value ? b : a));
    const highest = values.reduce((a, b) => (b.value > a.value ? b : a));
    const minRun = path.join(dir, 'run-min');
    fs.cpSync(run, minRun, { recursive: true });
    fs.writeFileSync(
      path.join(minRun, 'best.json'),
      JSON.stringify({ checkpoint: 'ckpt-step00000009', step: 9, metric: 'weighted_auroc', mode: 'min', value: 0 }),
    );
    const min = inferWith(`${minRun}:best`, '--output', 'min.json');
    expect(min.status, show(min)).to.equal(0);
    expect(min.stderr).to.include('best re-derived from the checkpoints');
    expect(readJson(path.join(cwd, 'min.json')).checkpoint.step, JSON.stringify(values)).to.equal(lowest.step);
    // The training is seeded: its three validations differ, so judging as 'max' would pick another step.
    expect(highest.value, JSON.stringify(values)).to.be.greaterThan(lowest.value);
  });

  it('embed and predict take RUN:latest / RUN:best too', () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [CLI_JS, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CI: '1' } });
    const out = path.join(cwd, 'emb.safetensors');
    const e = cli('embed', '--checkpoint', `${run}:latest`, '--config', cfgFile, '--shards', valShards, '--out', out);
    expect(e.status, `${e.stdout}\n${e.stderr}`).to.equal(0);
    expect(e.stdout).to.include(`Checkpoint ${run}:latest → ${path.join(run, 'ckpt-step00000003')}`);
    expect(fs.existsSync(out)).to.equal(true);
    const volume = path.join(cwd, 'air.nii.gz');
    writeAirVolume(volume, [40, 40, 16], [2, 2, 4]);
    const p = cli('predict', volume, '--checkpoint', `${run}:best`, '--config', cfgFile, '--json');
    expect(p.status, p.stderr).to.equal(0);
    const pointer = readJson(path.join(run, 'best.json'));
    expect(JSON.parse(p.stdout).checkpoint.path).to.include(path.join(run, pointer.checkpoint));
  });

  it('a run without a best pointer, an empty folder and a missing folder: exit 2 naming the run and what it holds', () => {
    const noBest = path.join(dir, 'run-no-best');
    fs.cpSync(run, noBest, { recursive: true });
    fs.rmSync(path.join(noBest, 'best.json'));
    const r = inferWith(`${noBest}:best`);
    expect(r.status, show(r)).to.equal(2);
    expect(r.stderr).to.include(`the run ${noBest} has no best checkpoint`);
    expect(r.stderr).to.include('no best.json');
    expect(r.stderr).to.include('latest.json → ckpt-step00000003');
    expect(r.stderr).to.include('checkpoints ckpt-step00000001, ckpt-step00000002, ckpt-step00000003');
    expect(r.stderr).to.include(`use ${noBest}:latest`);
    expect(fs.existsSync(path.join(cwd, 'results')), 'nothing written').to.equal(false);

    const empty = path.join(dir, 'empty-run');
    fs.mkdirSync(empty);
    const e = inferWith(`${empty}:latest`);
    expect(e.status, show(e)).to.equal(2);
    expect(e.stderr).to.include(
      `the run ${empty} has no latest checkpoint; it has no best.json, no latest.json, no checkpoint folders`,
    );

    const missing = path.join(dir, 'no-such-run');
    const m = inferWith(`${missing}:best`);
    expect(m.status, show(m)).to.equal(2);
    expect(m.stderr).to.include(`${missing} is not a folder`);
  });

  it("results.json carries the reference's flat keys, equal to the nested values (CIs with --bootstrap)", () => {
    const r = inferWith(run, '--output', 'r.json', '--bootstrap', '--n_bootstrap', '25');
    expect(r.status, show(r)).to.equal(0);
    const j = readJson(path.join(cwd, 'r.json'));
    for (const m of METRICS) {
      expect(j, `macro_${m}`).to.have.property(`macro_${m}`, j.metrics[`macro_${m}`]);
      expect(j, `weighted_${m}`).to.have.property(`weighted_${m}`, j.metrics[`weighted_${m}`]);
      for (const s of ['lower', 'upper', 'width'])
        expect(j, `macro_${m}_ci_${s}`).to.have.property(`macro_${m}_ci_${s}`, j.bootstrap.intervals[`macro_${m}`][s]);
    }
    expect(j.macro_auroc).to.be.a('number');
    expect(Object.keys(j.per_class)).to.deep.equal(DEMO_CLASSES);
    for (const c of DEMO_CLASSES) {
      expect(Object.keys(j.per_class[c])).to.deep.equal(METRICS);
      for (const m of METRICS) expect(j.per_class[c][m], `${c} ${m}`).to.equal(j.metrics.per_class[c][m]);
    }
  });

  it('--bootstrap / --n_bootstrap are validation.use_bootstrap / n_bootstrap: --n_bootstrap alone does not bootstrap', () => {
    const both = inferWith(run, '--output', 'both.json', '--bootstrap', '--n_bootstrap', '20');
    expect(both.status, show(both)).to.equal(0);
    const b = readJson(path.join(cwd, 'both.json'));
    expect(b.bootstrap.n_resamples).to.equal(20);
    expect(b.config.validation).to.include({ use_bootstrap: true, n_bootstrap: 20 });

    const alone = inferWith(run, '--output', 'alone.json', '--n_bootstrap', '20');
    expect(alone.status, show(alone)).to.equal(0);
    expect(alone.stderr).to.include('--n_bootstrap 20 has no effect without --bootstrap');
    const a = readJson(path.join(cwd, 'alone.json'));
    expect(a.bootstrap).to.equal(null);
    expect(a).to.not.have.property('macro_auroc_ci_lower');

    const bad = inferWith(run, '--n_bootstrap', 'many');
    expect(bad.status, show(bad)).to.equal(2);
    expect(bad.stderr).to.match(/n_bootstrap/);
  });

  it('--config defaults to configs/base_config.yaml in the working directory, as in the reference', () => {
    const none = infer(cwd, '--checkpoint', run);
    expect(none.status, show(none)).to.equal(2);
    expect(none.stderr).to.include(`the default ${path.join('configs', 'base_config.yaml')} does not exist in ${cwd}`);

    fs.mkdirSync(path.join(cwd, 'configs'));
    fs.copyFileSync(cfgFile, path.join(cwd, 'configs', 'base_config.yaml'));
    const r = infer(cwd, '--checkpoint', run, '--output', 'default-config.json');
    expect(r.status, show(r)).to.equal(0);
    expect(readJson(path.join(cwd, 'default-config.json')).n_samples).to.equal(24);
  });
});
