/**
 * A seeded run of the debug config on synthetic data (≥ 100 validation samples) learns
 * zero-shot classification (macro AUROC ≥ 0.65 at the end), its stdout has the documented progress and
 * validation lines, and its TensorBoard event files decode (framing and CRCs checked by the reader) to the
 * values of metrics.jsonl.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readScalars } from '../../lib/logging/tensorboard';
import { TRAIN_SCALAR_TAGS } from '../helpers/expected-names';
import {
  DEMO_CLASSES,
  describeRun,
  runTrain,
  trainData,
  writeTrainConfig,
  requireTrainer,
} from '../helpers/train-fixtures';

const TRAIN = 1024;
const VAL = 200;
const BATCH = 16;
const STEPS = 640;
const LOG_EVERY = 64;
const EVAL_EVERY = 320;

// Independent of lib/logging: the documented forms (README "Training", docs/logging.md).
const DURATION = '(?:\\d+s|\\d+m \\d+s|\\d+h \\d+m|\\d+d \\d+h)';
const PROGRESS_RE = new RegExp(
  `^Step (\\d+)/(\\d+) \\(Epoch (\\d+\\.\\d\\d)\\) \\| Loss: (\\d+\\.\\d{4}) \\| LR: (\\d\\.\\de[+-]\\d\\d) \\| Time/Step: (\\d+\\.\\d\\d)s \\| ETA: (calculating\\.\\.\\.|${DURATION}) \\| Elapsed: (${DURATION})$`,
);
const RESOURCE_RE = /^ {2}Memory: RSS (\d+\.\d\d) GB \(peak (\d+\.\d\d) GB\) \| Data: (\d+\.\d\d)s\/step \((\d+)%\)$/;
const HEADER_RE = /^Running Validation \(Step (\d+), Epoch (\d+\.\d\d)\)$/;
const VAL_LINE_RE = /^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] Step (\d+) - val \| (.*)$/;

function parsePairs(body: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of body.split(', ')) {
    const m = /^([a-z0-9_]+): (-?\d+\.\d{4}|nan)$/.exec(pair);
    if (!m) throw new Error(`bad metrics pair '${pair}' in '${body}'`);
    out[m[1]] = m[2] === 'nan' ? NaN : Number(m[2]);
  }
  return out;
}

describe('train: the debug config learns zero-shot classification', function () {
  this.timeout(600_000);
  let dir: string;
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`reaches macro zero-shot AUROC >= 0.65 on ${VAL} validation samples, with the documented lines and TensorBoard events`, async function () {
    requireTrainer(this);
    const data = await trainData({ train: TRAIN, val: VAL, classes: DEMO_CLASSES });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-train-learn-'));
    const runDir = path.join(dir, 'run');
    const cfg = writeTrainConfig(dir, data, runDir, {
      training: { max_steps: STEPS, max_epochs: null, save_every_n_steps: null, save_every_n_epochs: null, threads: 1 },
      validation: { eval_every_n_steps: EVAL_EVERY, eval_every_n_epochs: null, eval_samples: null },
      logging: { log_every_n_steps: LOG_EVERY, use_tensorboard: true },
    });
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    const lines = r.stdout.split('\n');
    const S = TRAIN / BATCH; // debug config: batch 16, one rank, no accumulation

    // the plan first, as `ctclip plan` prints it
    expect(lines[0]).to.equal(`Using step-based training: ${STEPS} steps = ${(STEPS / S).toFixed(2)} epochs`);
    expect(lines).to.include(`Dataset: ${TRAIN} samples / batch_size ${BATCH} = ${S} steps/epoch`);

    // progress lines: at step 1 and every LOG_EVERY steps, each followed by the resource line
    const progressSteps: number[] = [];
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i].startsWith('Step ')) continue;
      const m = PROGRESS_RE.exec(lines[i]);
      expect(m, `progress line: ${lines[i]}`).to.not.equal(null);
      const [step, total, epoch, , lr] = [Number(m![1]), Number(m![2]), Number(m![3]), Number(m![4]), Number(m![5])];
      expect(total).to.equal(STEPS);
      expect(epoch).to.be.closeTo(step / S, 0.005 + 1e-9);
      // linear warmup (debug config: 20 steps) then cosine to 0.1 × 1e-3; printed with one decimal
      const base = 1e-3;
      const f = step <= 20 ? step / 20 : 0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * (step - 20)) / (STEPS - 20)));
      expect(Math.abs(lr - base * f) / (base * f)).to.be.below(0.05, `LR at step ${step}`);
      expect(RESOURCE_RE.test(lines[i + 1]), `resource line: ${lines[i + 1]}`).to.equal(true);
      progressSteps.push(step);
    }
    const expectedSteps = [1];
    for (let s = LOG_EVERY; s <= STEPS; s += LOG_EVERY) expectedSteps.push(s);
    expect(progressSteps).to.deep.equal(expectedSteps);

    // validation: rule, header, rule; results; the parseable metrics line. At the cadence and the last step, once each.
    const evals: Array<{ step: number; metrics: Record<string, number> }> = [];
    for (let i = 0; i < lines.length; i++) {
      const h = HEADER_RE.exec(lines[i]);
      if (!h) continue;
      expect(lines[i - 1]).to.equal('='.repeat(80));
      expect(lines[i + 1]).to.equal('='.repeat(80));
      const step = Number(h[1]);
      expect(Number(h[2])).to.be.closeTo(step / S, 0.005 + 1e-9);
      expect(lines[i + 2]).to.equal(`Validation Results (Step ${step}, ${VAL} samples)`);
      const j = lines.findIndex((l, k) => k > i && VAL_LINE_RE.test(l));
      const v = VAL_LINE_RE.exec(lines[j])!;
      expect(Number(v[2])).to.equal(step);
      const metrics = parsePairs(v[3]);
      expect(Object.keys(metrics)).to.deep.equal([
        'macro_auroc',
        'macro_auprc',
        'macro_f1',
        'macro_precision',
        'macro_recall',
        'weighted_auroc',
        'weighted_auprc',
        'weighted_f1',
        'weighted_precision',
        'weighted_recall',
      ]);
      evals.push({ step, metrics });
    }
    expect(evals.map((e) => e.step)).to.deep.equal([EVAL_EVERY, STEPS]);
    const final = evals[evals.length - 1].metrics;
    expect(
      final.macro_auroc,
      `final macro AUROC (all: ${evals.map((e) => e.metrics.macro_auroc).join(', ')})`,
    ).to.be.at.least(0.65);

    // metrics.jsonl agrees with the console; TensorBoard decodes to the same values
    const events = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown> & { type: string; step: number });
    const val = events.filter((e) => e.type === 'val');
    expect(val.map((e) => e.step)).to.deep.equal([EVAL_EVERY, STEPS]);
    expect(val[val.length - 1].macro_auroc as number).to.be.closeTo(final.macro_auroc, 5e-5);
    const train = events.filter((e) => e.type === 'train');
    expect(train.map((e) => e.step)).to.deep.equal(expectedSteps);
    const scalars = readScalars(path.join(runDir, 'tensorboard'));
    const loss = scalars.get('train/loss')!;
    expect(loss.map((p) => p.step)).to.deep.equal(expectedSteps);
    loss.forEach((p, k) => expect(p.value).to.equal(Math.fround(train[k].loss as number)));
    for (const tag of TRAIN_SCALAR_TAGS) expect(scalars.get(tag)?.length, tag).to.equal(expectedSteps.length);
    const auroc = scalars.get('val/macro_auroc')!;
    expect(auroc.map((p) => p.step)).to.deep.equal([EVAL_EVERY, STEPS]);
    expect(auroc[1].value).to.equal(Math.fround(val[1].macro_auroc as number));
    for (const c of DEMO_CLASSES) expect(scalars.get(`val/per_class_auroc/${c}`)?.length, c).to.equal(2);

    // the run report, and the best checkpoint pointer
    const html = fs.readFileSync(path.join(runDir, 'report.html'), 'utf8');
    expect(html).to.contain('data-chart');
    expect(r.stdout).to.contain(`Report: ${path.join(runDir, 'report.html')}`);
    expect(fs.existsSync(path.join(runDir, 'best.json'))).to.equal(true);
    process.stdout.write(
      `      final macro AUROC ${final.macro_auroc.toFixed(4)} (evals: ${evals.map((e) => e.metrics.macro_auroc.toFixed(3)).join(', ')}); ${r.seconds.toFixed(1)} s\n`,
    );
  });
});
