/**
 * writeEvaluation end to end: all four files from a synthetic evaluation with a single-valued class and
 * bootstrap on, re-read from disk and checked against the metrics library called directly.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseCsv } from '../../lib/results';
import { EVALUATION_FILES, writeEvaluation } from '../../lib/results/write';
import { formatEvaluationSummary } from '../../lib/results/summary';
import { PER_CLASS_METRIC_COLUMNS } from '../../lib/results/per-class';
import { readSafetensors } from '../../lib/io/safetensors';
import { bootstrapMetrics, evaluateMultiLabel, toStrictJsonValue } from '../../lib/metrics';
import { Rng } from '../../lib/rng';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';

const CLASSES = ['Cardiomegaly', 'A<b>&"c"', 'Lung nodule, solitary', 'never present', 'Pleural effusion'];

function synthetic(n: number, seed: number): { studyIds: string[]; scores: Float64Array[]; labels: number[][] } {
  const rng = new Rng(seed);
  const studyIds: string[] = [];
  const scores: Float64Array[] = [];
  const labels: number[][] = [];
  for (let i = 0; i < n; i++) {
    const y = CLASSES.map((c, k) => (c === 'never present' ? 0 : rng.nextFloat() < 0.15 + 0.1 * k ? 1 : 0));
    // Scores quantised to 0.05 so there are ties; positives shifted up.
    const s = Float64Array.from(y, (v) => Math.round(20 * Math.min(1, 0.6 * rng.nextFloat() + 0.3 * v)) / 20);
    labels.push(y);
    scores.push(s);
    studyIds.push(i === 3 ? 'valid_4_a_1, "quoted"' : `valid_${i + 1}_a_1`);
  }
  return { studyIds, scores, labels };
}

describe('integration: writeEvaluation', function () {
  let dir: string;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-eval-'));
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const data = synthetic(150, 11);
  const bootstrap = { nResamples: 200, seed: 5, level: 0.9, stratify: 'any_positive' as const };
  const config = { experiment: { name: 'eval test' }, validation: { threshold: 0.45 } };
  let out: Awaited<ReturnType<typeof writeEvaluation>>;
  let outDir: string;

  before(async function () {
    outDir = path.join(dir, 'nested', 'results');
    out = await writeEvaluation(outDir, {
      ...data,
      classNames: CLASSES,
      threshold: 0.45,
      bootstrap,
      config,
      checkpoint: { path: '/runs/x/best.pt', step: 3687, sha256: 'a'.repeat(64) },
      extra: { prompts: ['There is {p}.', 'There is no {p}.'] },
    });
  });

  it('writes exactly the four files (no temporaries left) and returns their absolute paths', function () {
    expect(fs.readdirSync(outDir).sort()).to.deep.equal(Object.values(EVALUATION_FILES).sort());
    for (const [key, name] of Object.entries(EVALUATION_FILES))
      expect(out.files[key as keyof typeof out.files]).to.equal(path.join(outDir, name));
  });

  it('results.json equals evaluateMultiLabel and bootstrapMetrics computed directly (strict JSON)', function () {
    const text = fs.readFileSync(out.files.results, 'utf8');
    expect(text).to.not.match(/NaN|Infinity/);
    const json = JSON.parse(text);
    const direct = evaluateMultiLabel(data.scores, data.labels, CLASSES, { threshold: 0.45 });
    expect(json.metrics).to.deep.equal(toStrictJsonValue(direct));
    expect(json.bootstrap).to.deep.equal(
      toStrictJsonValue(bootstrapMetrics(data.scores, data.labels, CLASSES, { ...bootstrap, threshold: 0.45 })),
    );
    expect(json.bootstrap.level).to.equal(0.9);
    expect(json.metrics.per_class['never present'].auroc).to.equal(null);
    expect(json.n_valid_classes).to.equal(4);
    expect(json.metrics.n_valid_classes).to.equal(4);
    expect(json.n_samples).to.equal(150);
    expect(json.class_names).to.deep.equal(CLASSES);
    expect(json.excluded_classes).to.deep.equal([
      { name: 'never present', reason: 'no positives', support: 0, n_negative: 150 },
    ]);
    expect(json.config).to.deep.equal(config);
    expect(json.checkpoint).to.deep.equal({ path: '/runs/x/best.pt', step: 3687, sha256: 'a'.repeat(64) });
    expect(json.ctclip_version).to.equal(require('../../package.json').version);
    expect(Date.parse(json.created)).to.be.closeTo(Date.now(), 600_000);
    expect(json.extra.prompts).to.have.length(2);
  });

  it('predictions.csv gives back the exact inputs: recomputing the metrics from it reproduces results.json', function () {
    const rows = parseCsv(fs.readFileSync(out.files.predictions, 'utf8'));
    const header = rows[0];
    expect(header).to.deep.equal(['study_id', ...CLASSES, ...CLASSES.map((c) => `label:${c}`)]);
    const body = rows.slice(1);
    expect(body.map((r) => r[0])).to.deep.equal(data.studyIds);
    const scores = body.map((r) => r.slice(1, 1 + CLASSES.length).map(Number));
    const labels = body.map((r) => r.slice(1 + CLASSES.length).map(Number));
    scores.forEach((s, i) => expect(s).to.deep.equal(Array.from(data.scores[i])));
    expect(labels).to.deep.equal(data.labels);
    const json = JSON.parse(fs.readFileSync(out.files.results, 'utf8'));
    expect(toStrictJsonValue(evaluateMultiLabel(scores, labels, CLASSES, { threshold: 0.45 }))).to.deep.equal(
      json.metrics,
    );
  });

  it('per_class.csv matches results.json, empty cells for the excluded class, CI bounds present', function () {
    const rows = parseCsv(fs.readFileSync(out.files.perClass, 'utf8'));
    const header = rows[0];
    expect(header.slice(-2)).to.deep.equal(['auroc_ci_lower', 'auroc_ci_upper']);
    const json = JSON.parse(fs.readFileSync(out.files.results, 'utf8'));
    expect(rows.slice(1).map((r) => r[0])).to.deep.equal(CLASSES);
    for (const r of rows.slice(1)) {
      const pc = json.metrics.per_class[r[0]];
      for (const m of [...PER_CLASS_METRIC_COLUMNS, 'support', 'n_negative']) {
        const cell = r[header.indexOf(m)];
        if (pc[m] === null) expect(cell, `${r[0]} ${m}`).to.equal('');
        else expect(Number(cell), `${r[0]} ${m}`).to.equal(pc[m]);
      }
      const iv = json.bootstrap.per_class[r[0]].auroc;
      for (const [col, key] of [
        ['auroc_ci_lower', 'lower'],
        ['auroc_ci_upper', 'upper'],
      ] as const) {
        const cell = r[header.indexOf(col)];
        if (iv[key] === null) expect(cell).to.equal('');
        else expect(Number(cell)).to.equal(iv[key]);
      }
    }
  });

  it('report.html: one ROC path per valid class, whiskers, level, escaping, no NaN', function () {
    const html = fs.readFileSync(out.files.report, 'utf8');
    expect((html.match(/<path class="roc-curve"/g) ?? []).length).to.equal(4);
    expect((html.match(/<line class="ci-whisker"/g) ?? []).length).to.equal(4);
    expect((html.match(/<svg class="roc-panel"/g) ?? []).length).to.equal(4);
    expect(html).to.include('>False positive rate</text>');
    expect(html).to.include('>True positive rate</text>');
    expect(html).to.include('90% CI');
    expect(html).to.not.include('95% CI');
    expect(html).to.not.match(/NaN|Infinity|<script|https?:/);
    expect(html).to.not.include('A<b>&"c"');
    expect(html).to.include('data-class="A&lt;b&gt;&amp;&quot;c&quot;"');
    expect(html).to.include('never present');
  });

  it('the console summary of the returned results states the level and n_valid_classes', function () {
    const lines = formatEvaluationSummary(out.results);
    expect(lines[1]).to.match(/^Macro AUROC: \d\.\d{4} {2}90% CI \[\d\.\d{4}, \d\.\d{4}\]$/);
    expect(lines).to.include('n_valid_classes: 4/5 (excluded, single-valued: never present (no positives))');
  });

  it('invalid input is refused before anything is written', async function () {
    const target = path.join(dir, 'never-created');
    let err: unknown;
    await writeEvaluation(target, { ...data, studyIds: data.studyIds.slice(1), classNames: CLASSES }).catch(
      (e) => (err = e),
    );
    expect(err).to.have.property('code', 'ARGUMENT_ERROR');
    expect(fs.existsSync(target)).to.equal(false);
  });

  it('an unwritable output folder is an IO_ERROR naming it', async function () {
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, 'x');
    let err: unknown;
    await writeEvaluation(path.join(blocker, 'sub'), { ...data, classNames: CLASSES }).catch((e) => (err = e));
    expect(err).to.have.property('code', 'IO_ERROR');
    expect((err as Error).message).to.include(path.join(blocker, 'sub'));
  });

  it("evaluates the zero-shot fixture's Python P(present) scores (case E) end to end", async function () {
    if (!fixturesAvailable()) this.skip();
    const st = await readSafetensors(fixturePath('zero_shot', 'outputs.safetensors'));
    const p = st.tensors.get('p_present')!;
    expect(p.shape).to.deep.equal([2, 2, 3]);
    const meta = JSON.parse(fs.readFileSync(fixturePath('zero_shot', 'meta.json'), 'utf8')) as {
      pathologies: string[];
    };
    const style = 1;
    const scores = [0, 1].map((v) =>
      Array.from({ length: 3 }, (_, k) => (p.data as Float32Array)[v * 6 + style * 3 + k]),
    );
    const labels = [
      [1, 0, 1],
      [0, 1, 1],
    ];
    const res = await writeEvaluation(path.join(dir, 'zero-shot'), {
      studyIds: ['v0', 'v1'],
      classNames: meta.pathologies,
      scores,
      labels,
    });
    const json = JSON.parse(fs.readFileSync(res.files.results, 'utf8'));
    // Two classes have one positive and one negative: AUROC is 1 or 0 depending on the order of the two scores.
    for (const k of [0, 1]) {
      const pos = labels[0][k] === 1 ? 0 : 1;
      expect(json.metrics.per_class[meta.pathologies[k]].auroc).to.equal(scores[pos][k] > scores[1 - pos][k] ? 1 : 0);
    }
    expect(json.metrics.per_class[meta.pathologies[2]].auroc).to.equal(null);
    expect(json.n_valid_classes).to.equal(2);
  });
});
