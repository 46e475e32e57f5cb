/**
 * A synthetic run's logs (metrics.jsonl + TensorBoard events written by the real writers, as the trainer will),
 * then `ctclip report RUN_DIR` in a real process: the HTML has one curve per series, axis labels, per-class
 * AUROC of the last and best validation, and no NaN. Also: the same report from TensorBoard events alone, and a
 * non-TTY ProgressReporter in a child process printing exactly the documented plain lines.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MetricsJsonlWriter, readMetricsJsonl } from '../../lib/logging/jsonl';
import { TensorBoardWriter, readScalars } from '../../lib/logging/tensorboard';
import { parseValidationHeader, parseValidationLine } from '../../lib/logging/validation-lines';
import { Rng } from '../../lib/rng';
import { lrAt } from '../../lib/schedule';
import { runCtclip } from '../helpers/cli';
import { TRAIN_SCALAR_TAGS } from '../helpers/expected-names';
import { repoRoot } from '../helpers/fixtures';

const CLASSES = [
  'Medical material',
  'Arterial wall calcification',
  'Cardiomegaly',
  'Pericardial effusion',
  'Lung nodule',
  'Emphysema',
];
const FAMILIES = ['auroc', 'auprc', 'f1', 'precision', 'recall'];
const TOTAL = 200;
const LOG_EVERY = 10;
const EVAL_EVERY = 50;
const STEPS_PER_EPOCH = 100;

/** Writes a synthetic run into runDir; returns the steps of the validations. */
function writeSyntheticRun(runDir: string): number[] {
  const rng = new Rng(11);
  const jsonl = MetricsJsonlWriter.open(runDir, { clock: () => 1700000000 });
  const tb = new TensorBoardWriter(path.join(runDir, 'tensorboard'), { flushSecs: 0, clock: () => 1700000000 });
  const valSteps: number[] = [];
  let best = -Infinity;
  for (let step = 1; step <= TOTAL; step++) {
    const epoch = step / STEPS_PER_EPOCH;
    if (step === 1 || step % LOG_EVERY === 0) {
      const values = {
        loss: 2.5 * Math.exp(-step / 80) + 0.1 * rng.nextFloat(),
        lr: lrAt(step, 1.25e-6, { warmupSteps: 20, maxSteps: TOTAL, minLrRatio: 0.01 }),
        grad_norm: 0.5 + rng.nextFloat(),
        temperature: 0.07 + step * 1e-4,
        step_time: 0.5,
        data_time: 0.01,
        samples_per_s: 8,
        skipped_steps: 0,
      };
      jsonl.write({ type: 'train', step, epoch, ...values });
      tb.addScalars(Object.fromEntries(Object.entries(values).map(([k, v]) => [`train/${k}`, v])), step);
    }
    if (step % EVAL_EVERY === 0) {
      valSteps.push(step);
      const base = 0.55 + step / 1000;
      const metrics: Record<string, number> = {};
      for (const f of FAMILIES) {
        metrics[`macro_${f}`] = base + 0.01 * rng.nextFloat();
        metrics[`weighted_${f}`] = base + 0.02 + 0.01 * rng.nextFloat();
      }
      const perClass: Record<string, Record<string, number>> = {};
      CLASSES.forEach((c, i) => {
        perClass[c] = { auroc: i === CLASSES.length - 1 ? NaN : base + 0.03 * i, auprc: 0.3 };
      });
      jsonl.write({ type: 'val', step, epoch, ...metrics, per_class: perClass });
      tb.addScalars(
        {
          ...Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`val/${k}`, v])),
          ...Object.fromEntries(CLASSES.map((c) => [`val/per_class_auroc/${c}`, perClass[c].auroc])),
        },
        step,
      );
      jsonl.write({ type: 'checkpoint', step, epoch, path: `checkpoints/step-${step}` });
      // best by weighted_auroc, except the last validation is made worse so last !== best
      if (step === TOTAL) metrics.weighted_auroc = 0;
      if (metrics.weighted_auroc > best) {
        best = metrics.weighted_auroc;
        jsonl.write({ type: 'best', step, epoch, metric: 'weighted_auroc', value: best });
      }
    }
  }
  jsonl.write({ type: 'end', step: TOTAL, epoch: TOTAL / STEPS_PER_EPOCH });
  jsonl.close();
  tb.close();
  return valSteps;
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

function checkReport(html: string, opts: { perClassLastAndBest: boolean }): void {
  for (const key of ['loss', 'lr', 'grad_norm', 'temperature'])
    expect(count(html, `<path class="curve" data-series="train/${key}"`), key).to.equal(1);
  for (const f of FAMILIES) {
    for (const kind of ['macro', 'weighted'])
      expect(count(html, `<path class="curve" data-series="val/${kind}_${f}"`), `${kind}_${f}`).to.equal(1);
    expect(count(html, `<circle class="point" data-series="val/macro_${f}"`)).to.equal(TOTAL / EVAL_EVERY);
  }
  const charts = count(html, '<svg class="line-chart"');
  expect(charts).to.equal(4 + FAMILIES.length);
  expect(count(html, '<path class="curve"')).to.equal(4 + 2 * FAMILIES.length);
  expect(count(html, '<text class="axis-label axis-label-x"')).to.be.at.least(charts);
  expect(count(html, '>Step</text>')).to.equal(charts);
  for (const label of [
    '>Loss</text>',
    '>LR</text>',
    '>Grad norm</text>',
    '>Temperature</text>',
    '>AUROC</text>',
    '>AUPRC</text>',
  ])
    expect(html).to.contain(label);
  // the loss path has one point per logged step, with increasing x
  const d = /<path class="curve" data-series="train\/loss" d="([^"]+)"/.exec(html)![1];
  const xs = d
    .split(/[ML]/)
    .filter((s) => s.trim())
    .map((s) => Number(s.trim().split(' ')[0]));
  expect(xs).to.have.length(1 + TOTAL / LOG_EVERY);
  for (let i = 1; i < xs.length; i++) expect(xs[i]).to.be.greaterThan(xs[i - 1]);
  expect(html).to.not.match(/NaN|Infinity|undefined/);
  expect(html).to.not.match(/<script|https?:\/\/|src=|href=/);
  if (opts.perClassLastAndBest) {
    expect(count(html, 'data-which="last"')).to.equal(1);
    expect(count(html, 'data-which="best"')).to.equal(1);
    expect(count(html, '<rect class="auroc-bar"')).to.equal(2 * (CLASSES.length - 1));
    expect(count(html, 'excluded (single-valued)')).to.equal(2);
  }
}

describe('logging: synthetic run → ctclip report', function () {
  this.timeout(20000);
  let dir: string;
  let runDir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-logging-'));
    runDir = path.join(dir, 'run');
    writeSyntheticRun(runDir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('both logs hold the run: jsonl events and TensorBoard tags', () => {
    const events = readMetricsJsonl(path.join(runDir, 'metrics.jsonl'));
    expect(events.filter((e) => e.type === 'train')).to.have.length(1 + TOTAL / LOG_EVERY);
    expect(events.filter((e) => e.type === 'val').map((e) => e.step)).to.deep.equal([50, 100, 150, 200]);
    const scalars = readScalars(path.join(runDir, 'tensorboard'));
    for (const tag of TRAIN_SCALAR_TAGS) expect(scalars.get(tag), tag).to.have.length(1 + TOTAL / LOG_EVERY);
    expect(scalars.get('val/weighted_auroc')!.map((p) => p.step)).to.deep.equal([50, 100, 150, 200]);
    expect(scalars.get('val/per_class_auroc/Lung nodule')).to.have.length(4);
  });

  it('ctclip report RUN_DIR writes report.html with one curve per series, axis labels and no NaN', () => {
    const r = runCtclip(['report', runDir]);
    expect(r.status, r.stderr).to.equal(0);
    const out = path.join(runDir, 'report.html');
    expect(r.stdout.trim()).to.equal(`Report written: ${out}`);
    const html = fs.readFileSync(out, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).to.equal(true);
    checkReport(html, { perClassLastAndBest: true });
    expect(html).to.contain('source: metrics.jsonl');
    expect(html).to.contain('Best validation (step 150, weighted_auroc');
  });

  it('builds the same curves from TensorBoard events alone (no metrics.jsonl), honouring --out', () => {
    const tbOnly = path.join(dir, 'tb-only');
    fs.mkdirSync(tbOnly);
    fs.cpSync(path.join(runDir, 'tensorboard'), path.join(tbOnly, 'tensorboard'), { recursive: true });
    const out = path.join(dir, 'elsewhere.html');
    const r = runCtclip(['report', tbOnly, '--out', out]);
    expect(r.status, r.stderr).to.equal(0);
    const html = fs.readFileSync(out, 'utf8');
    checkReport(html, { perClassLastAndBest: false });
    expect(html).to.contain('source: tensorboard');
    expect(count(html, 'data-which="last"')).to.equal(1);
  });

  it('exit codes: 2 without RUN_DIR, 1 for a directory without logs', () => {
    const noArg = runCtclip(['report']);
    expect(noArg.status).to.equal(2);
    expect(noArg.stderr).to.contain('RUN_DIR is required');
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const r = runCtclip(['report', empty]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/no metrics\.jsonl and no TensorBoard event files/);
    expect(runCtclip(['--help']).stdout).to.match(/report\s+write a training run's HTML report/);
  });
});

describe('logging: ProgressReporter in a process whose stdout is not a TTY', () => {
  it('prints exactly the documented plain lines (no spinner, no escape codes)', () => {
    const script = `
      const { ProgressReporter, EtaEstimator, validationHeaderLines, formatValidationLine } = require(${JSON.stringify(path.join(repoRoot, 'lib', 'logging'))});
      let t = 0;
      const eta = new EtaEstimator({ totalSteps: 30, now: () => t });
      const r = new ProgressReporter();
      eta.start();
      for (let step = 1; step <= 30; step++) {
        r.status('step ' + step);
        t += 0.5;
        eta.stepDone(step);
        if (step === 1 || step % 10 === 0) {
          r.progress({ step, totalSteps: 30, epoch: step / 20, loss: 1 / step, lr: 1e-5 * step / 30, stepTime: eta.meanStepTime(), eta: eta.eta(), elapsed: eta.elapsed() },
                     { rssBytes: 2 ** 30, peakRssBytes: 2 ** 31, dataTime: 0.05, stepTime: eta.meanStepTime() });
        }
        if (step === 20) {
          eta.pause(); t += 300; eta.resume();
          r.log(...validationHeaderLines(20, 1), formatValidationLine(20, { macro_auroc: 0.75, weighted_auroc: NaN }, new Date(2025, 0, 2, 3, 4, 5)));
        }
      }
      r.stop();`;
    const p = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(p.status, p.stderr).to.equal(0);
    expect(p.stdout).to.not.include('\u001b');
    expect(p.stdout.split('\n')).to.deep.equal([
      'Step 1/30 (Epoch 0.05) | Loss: 1.0000 | LR: 3.3e-07 | Time/Step: 0.50s | ETA: 14s | Elapsed: 0s',
      '  Memory: RSS 1.00 GB (peak 2.00 GB) | Data: 0.05s/step (10%)',
      'Step 10/30 (Epoch 0.50) | Loss: 0.1000 | LR: 3.3e-06 | Time/Step: 0.50s | ETA: 10s | Elapsed: 5s',
      '  Memory: RSS 1.00 GB (peak 2.00 GB) | Data: 0.05s/step (10%)',
      'Step 20/30 (Epoch 1.00) | Loss: 0.0500 | LR: 6.7e-06 | Time/Step: 0.50s | ETA: 5s | Elapsed: 10s',
      '  Memory: RSS 1.00 GB (peak 2.00 GB) | Data: 0.05s/step (10%)',
      '='.repeat(80),
      'Running Validation (Step 20, Epoch 1.00)',
      '='.repeat(80),
      '[2025-01-02 03:04:05] Step 20 - val | macro_auroc: 0.7500, weighted_auroc: nan',
      // the 300 s validation is in Elapsed but not in Time/Step or the ETA
      'Step 30/30 (Epoch 1.50) | Loss: 0.0333 | LR: 1.0e-05 | Time/Step: 0.50s | ETA: 0s | Elapsed: 5m 15s',
      '  Memory: RSS 1.00 GB (peak 2.00 GB) | Data: 0.05s/step (10%)',
      '',
    ]);
    const lines = p.stdout.split('\n');
    expect(parseValidationHeader(lines[7])).to.deep.equal({ step: 20, epoch: 1 });
    expect(parseValidationLine(lines[9])!.metrics).to.deep.equal({ macro_auroc: 0.75, weighted_auroc: NaN });
  });
});
