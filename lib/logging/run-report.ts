/**
 * `<run_dir>/report.html`: a self-contained HTML report of a training run (inline CSS and SVG; no scripts, no
 * fonts, nothing fetched), built from `<run_dir>/metrics.jsonl`, or, when that file is absent, from the
 * TensorBoard event files in `<run_dir>/tensorboard/`.
 *
 * Sections:
 * 1. header: run directory, data source, last step/epoch, number of validations, best validation;
 * 2. training curves over steps, one chart each: loss, learning rate, grad norm, temperature (a chart is
 *    omitted when the run never logged that value);
 * 3. validation curves: one chart per metric family (AUROC, AUPRC, F1, precision, recall) with a macro and a
 *    weighted curve;
 * 4. per-class AUROC bars of the last validation and of the best one (`best` events in metrics.jsonl, else the
 *    highest `weighted_auroc`);
 * 5. a table of all validations;
 * 6. data: the samples the run lost, by reason name (excluded at index time or skipped while reading), for the
 *    training and the validation data (the `bad_samples` field of the last `end` event; omitted without one).
 *
 * Markup structure (stable, tested): every chart is `<svg class="line-chart" data-chart="…">` with exactly one
 * `<path class="curve" data-series="train/loss">` per series (validation points also get `<circle class="point">`
 * markers), `<text class="axis-label axis-label-x">Step</text>` and a y axis label. Non-finite values are skipped
 * (never written as NaN).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { aurocBars, type AurocBarRow } from '../report/charts';
import { plotBox, plotFrame, xAxis, xAxisTitle, yAxis, yAxisTitle } from '../report/axes';
import { Child, Markup, el, fragment, linearScale, pathData, raw } from '../report/svg';
import { CHAR_PX, FONT, MUTED, SERIES_COLORS } from '../report/style';
import { writeFileAtomic } from '../io/atomic';
import { formatExp, formatFixed } from './format';
import { METRICS_FILE, type MetricsEvent, readMetricsJsonl } from './jsonl';
import { listEventFiles, readScalars } from './tensorboard';
import { tensorboardDir } from './wandb';

export const REPORT_FILE = 'report.html';

/** A series over steps (parallel arrays). */
export interface Series {
  steps: number[];
  values: number[];
}

/** One validation: its step, epoch (when known), scalar metrics and per-class AUROC. */
export interface ValidationPoint {
  step: number;
  epoch?: number;
  metrics: Record<string, number>;
  perClassAuroc: Record<string, number>;
}

export interface RunData {
  runDir: string;
  source: 'metrics.jsonl' | 'tensorboard';
  /** Training scalars by key (loss, lr, grad_norm, temperature, step_time, …). */
  train: Map<string, Series>;
  validations: ValidationPoint[];
  /** The best validation's step and metric, when known. */
  best: { step: number; metric: string } | null;
  lastStep: number;
  lastEpoch: number | null;
  /**
   * Samples lost per loader ('train', 'val'): index-time exclusions, bad samples met while reading, the budget,
   * and counts by reason name (lib/data/reasons.ts). From the last `end` event; null when there is none.
   */
  badSamples?: Record<
    string,
    { excluded_at_index: number; bad_at_read: number; budget: number; by_reason: Record<string, number> }
  > | null;
}

function push(map: Map<string, Series>, key: string, step: number, value: number): void {
  let s = map.get(key);
  if (!s) map.set(key, (s = { steps: [], values: [] }));
  s.steps.push(step);
  s.values.push(value);
}

const EVENT_META = new Set(['type', 'step', 'epoch', 'time']);

function toNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (v === null) return NaN; // strict JSON wrote NaN as null
  return null;
}

function fromJsonl(runDir: string, events: MetricsEvent[]): RunData {
  const train = new Map<string, Series>();
  const validations: ValidationPoint[] = [];
  let best: RunData['best'] = null;
  let lastStep = 0;
  let lastEpoch: number | null = null;
  let badSamples: RunData['badSamples'] = null;
  for (const ev of events) {
    lastStep = Math.max(lastStep, ev.step);
    if (typeof ev.epoch === 'number' && ev.step >= lastStep) lastEpoch = ev.epoch;
    if (ev.type === 'train') {
      for (const [k, v] of Object.entries(ev)) {
        if (EVENT_META.has(k)) continue;
        const n = toNumber(v);
        if (n !== null) push(train, k, ev.step, n);
      }
    } else if (ev.type === 'val') {
      const metrics: Record<string, number> = {};
      const perClassAuroc: Record<string, number> = {};
      for (const [k, v] of Object.entries(ev)) {
        if (EVENT_META.has(k)) continue;
        const n = toNumber(v);
        if (n !== null) metrics[k] = n;
        else if (k === 'per_class' && v && typeof v === 'object') {
          for (const [cls, m] of Object.entries(v as Record<string, unknown>)) {
            const a = m && typeof m === 'object' ? toNumber((m as Record<string, unknown>).auroc) : null;
            if (a !== null) perClassAuroc[cls] = a;
          }
        } else if (k === 'per_class_auroc' && v && typeof v === 'object') {
          for (const [cls, a] of Object.entries(v as Record<string, unknown>)) {
            const n2 = toNumber(a);
            if (n2 !== null) perClassAuroc[cls] = n2;
          }
        }
      }
      validations.push({
        step: ev.step,
        epoch: typeof ev.epoch === 'number' ? ev.epoch : undefined,
        metrics,
        perClassAuroc,
      });
    } else if (ev.type === 'best' && typeof ev.metric === 'string') {
      best = { step: ev.step, metric: ev.metric };
    } else if (ev.type === 'end' && ev.bad_samples && typeof ev.bad_samples === 'object') {
      badSamples = ev.bad_samples as NonNullable<RunData['badSamples']>;
    }
  }
  return { runDir, source: 'metrics.jsonl', train, validations, best, lastStep, lastEpoch, badSamples };
}

function fromTensorboard(runDir: string): RunData {
  const scalars = readScalars(tensorboardDir(runDir));
  const train = new Map<string, Series>();
  const byStep = new Map<number, ValidationPoint>();
  let lastStep = 0;
  let lastEpoch: number | null = null;
  for (const [tag, points] of scalars) {
    for (const p of points) {
      lastStep = Math.max(lastStep, p.step);
      if (tag.startsWith('train/')) {
        const key = tag.slice('train/'.length);
        if (key === 'epoch' && p.step >= lastStep) lastEpoch = p.value;
        push(train, key, p.step, p.value);
      } else if (tag.startsWith('val/')) {
        let v = byStep.get(p.step);
        if (!v) byStep.set(p.step, (v = { step: p.step, metrics: {}, perClassAuroc: {} }));
        const key = tag.slice('val/'.length);
        if (key.startsWith('per_class_auroc/')) v.perClassAuroc[key.slice('per_class_auroc/'.length)] = p.value;
        else v.metrics[key] = p.value;
      }
    }
  }
  const validations = [...byStep.values()].sort((a, b) => a.step - b.step);
  return { runDir, source: 'tensorboard', train, validations, best: null, lastStep, lastEpoch };
}

/** Loads a run's metrics (metrics.jsonl, else TensorBoard). IO_ERROR when the run dir has neither. */
export function loadRunData(runDir: string): RunData {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory())
    throw new CtclipError('IO_ERROR', `${runDir}: not a directory`);
  const jsonl = path.join(runDir, METRICS_FILE);
  if (fs.existsSync(jsonl)) return fromJsonl(runDir, readMetricsJsonl(jsonl));
  if (listEventFiles(tensorboardDir(runDir)).length > 0) return fromTensorboard(runDir);
  throw new CtclipError(
    'IO_ERROR',
    `${runDir}: no ${METRICS_FILE} and no TensorBoard event files in ${tensorboardDir(runDir)}; is this a ctclip run directory?`,
  );
}

/** The best validation: the last `best` event's step, else the highest finite weighted_auroc (then macro_auroc). */
export function bestValidation(data: RunData): { point: ValidationPoint; metric: string } | null {
  if (data.best) {
    const b = data.best;
    const point = data.validations.find((v) => v.step === b.step);
    if (point) return { point, metric: b.metric };
  }
  for (const metric of ['weighted_auroc', 'macro_auroc']) {
    let bestPoint: ValidationPoint | null = null;
    for (const v of data.validations) {
      const x = v.metrics[metric];
      if (Number.isFinite(x) && (bestPoint === null || x > bestPoint.metrics[metric])) bestPoint = v;
    }
    if (bestPoint) return { point: bestPoint, metric };
  }
  return null;
}

// ---------------------------------------------------------------- charts

/** About five "nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const raw0 = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw0));
  const norm = raw0 / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

function tickLabel(v: number, span: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return formatExp(v, 1);
  const digits = Math.max(0, Math.min(6, Math.ceil(-Math.log10(span / 5)) + 1));
  return String(Number(formatFixed(v, digits)));
}

export interface ChartSeries {
  /** e.g. `train/loss`, `val/macro_auroc`. */
  name: string;
  label: string;
  steps: readonly number[];
  values: readonly number[];
  /** Draw point markers (validation curves: few points). */
  markers?: boolean;
}

/** One line chart: one `<path class="curve">` per series (see the module comment). */
export function lineChart(id: string, title: string, yLabel: string, series: readonly ChartSeries[]): Markup {
  const legendH = series.length > 1 ? 18 : 0;
  const box = plotBox({ left: 72, top: 30, right: 16, bottom: 40 + legendH }, 440, 190);
  const { width, height } = box;
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of series) {
    s.steps.forEach((x, i) => {
      if (Number.isFinite(x) && Number.isFinite(s.values[i])) {
        xs.push(x);
        ys.push(s.values[i]);
      }
    });
  }
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - pad, y1 + pad];
  } else {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const sx = linearScale([x0, x1], [box.x0, box.x1]);
  const sy = linearScale([y0, y1], [box.y1, box.y0]);
  const xTicks = niceTicks(x0, x1).filter((t) => t >= x0 && t <= x1);
  const yTicks = niceTicks(y0, y1).filter((t) => t >= y0 && t <= y1);
  const body: Child[] = [];
  series.forEach((s, k) => {
    const color = SERIES_COLORS[k % SERIES_COLORS.length];
    const px = s.steps.map((x) => sx(x));
    const py = s.values.map((y) => (Number.isFinite(y) ? sy(y) : NaN));
    body.push(
      el('path', {
        class: 'curve',
        'data-series': s.name,
        d: pathData(px, py),
        fill: 'none',
        stroke: color,
        'stroke-width': 1.5,
        'stroke-linejoin': 'round',
      }),
    );
    if (s.markers) {
      px.forEach((x, i) => {
        if (Number.isFinite(x) && Number.isFinite(py[i]))
          body.push(el('circle', { class: 'point', 'data-series': s.name, cx: x, cy: py[i], r: 2.5, fill: color }));
      });
    }
  });
  const legend: Child[] = [];
  if (series.length > 1) {
    let lx = box.x0;
    const ly = height - 10;
    series.forEach((s, k) => {
      legend.push(
        el('line', {
          x1: lx,
          y1: ly - 4,
          x2: lx + 16,
          y2: ly - 4,
          stroke: SERIES_COLORS[k % SERIES_COLORS.length],
          'stroke-width': 2,
        }),
        el('text', { class: 'legend', x: lx + 20, y: ly, fill: '#222' }, s.label),
      );
      lx += 28 + s.label.length * CHAR_PX;
    });
  }
  return el(
    'svg',
    {
      class: 'line-chart',
      'data-chart': id,
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': title,
      'font-family': FONT,
      'font-size': 11,
    },
    el('title', null, title),
    el(
      'text',
      {
        class: 'chart-title',
        x: box.x0 + box.plotWidth / 2,
        y: 16,
        'text-anchor': 'middle',
        'font-size': 12,
        'font-weight': 'bold',
      },
      title,
    ),
    plotFrame(box),
    yTicks.map((t) => el('line', { class: 'grid', x1: box.x0, y1: sy(t), x2: box.x1, y2: sy(t), stroke: '#f0f0f0' })),
    xAxis(box, xTicks, sx, (t) => tickLabel(t, x1 - x0)),
    yAxis(box, yTicks, sy, (t) => tickLabel(t, y1 - y0)),
    xAxisTitle(box, box.y1 + 32, 'Step'),
    yAxisTitle(box, 12, yLabel),
    xs.length === 0
      ? el(
          'text',
          {
            class: 'no-data',
            x: box.x0 + box.plotWidth / 2,
            y: box.y0 + box.plotHeight / 2,
            'text-anchor': 'middle',
            fill: MUTED,
          },
          'no finite values',
        )
      : null,
    body,
    legend,
  );
}

/** Training charts, in this order; keys absent from the run are skipped. */
export const TRAIN_CHARTS: Array<{ key: string; title: string; yLabel: string }> = [
  { key: 'loss', title: 'Training loss', yLabel: 'Loss' },
  { key: 'lr', title: 'Learning rate', yLabel: 'LR' },
  { key: 'grad_norm', title: 'Gradient norm (before clipping)', yLabel: 'Grad norm' },
  { key: 'temperature', title: 'Temperature', yLabel: 'Temperature' },
];

/** Validation metric families: macro and weighted curves each. */
export const VAL_FAMILIES: Array<{ key: string; label: string }> = [
  { key: 'auroc', label: 'AUROC' },
  { key: 'auprc', label: 'AUPRC' },
  { key: 'f1', label: 'F1' },
  { key: 'precision', label: 'Precision' },
  { key: 'recall', label: 'Recall' },
];

function fmt4(v: number | undefined): string {
  return v !== undefined && Number.isFinite(v) ? formatFixed(v, 4) : 'n/a';
}

function perClassRows(point: ValidationPoint): AurocBarRow[] {
  return Object.entries(point.perClassAuroc).map(([name, auroc]) => ({
    name,
    auroc,
    note: Number.isFinite(auroc) ? undefined : 'excluded (single-valued)',
  }));
}

const STYLE = `
body { font-family: ${FONT}; color: #1a1a1a; margin: 24px auto; max-width: 1100px; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 1.5em; margin: 0 0 4px; }
h2 { font-size: 1.15em; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta { color: #555; margin: 0 0 8px; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f6f8; }
svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; max-width: none; } svg { break-inside: avoid; page-break-inside: avoid; } }
`;

/** The report's HTML (see the module comment). */
export function runReportHtml(data: RunData, options: { created?: Date } = {}): string {
  const created = (options.created ?? new Date()).toISOString();
  const best = bestValidation(data);
  const last = data.validations.length ? data.validations[data.validations.length - 1] : null;

  const trainCharts = TRAIN_CHARTS.filter((c) => data.train.has(c.key)).map((c) => {
    const s = data.train.get(c.key) as Series;
    return lineChart(`train-${c.key}`, c.title, c.yLabel, [
      { name: `train/${c.key}`, label: c.key, steps: s.steps, values: s.values },
    ]);
  });

  const valCharts: Markup[] = [];
  for (const fam of VAL_FAMILIES) {
    const series: ChartSeries[] = [];
    for (const kind of ['macro', 'weighted']) {
      const key = `${kind}_${fam.key}`;
      const pts = data.validations.filter((v) => key in v.metrics);
      if (pts.length === 0) continue;
      series.push({
        name: `val/${key}`,
        label: `${kind}`,
        steps: pts.map((p) => p.step),
        values: pts.map((p) => p.metrics[key]),
        markers: true,
      });
    }
    if (series.length) valCharts.push(lineChart(`val-${fam.key}`, `Validation ${fam.label}`, fam.label, series));
  }

  const perClass: Child[] = [];
  if (last && Object.keys(last.perClassAuroc).length) {
    perClass.push(
      el('h3', null, `Last validation (step ${last.step})`),
      el('figure', { class: 'per-class', 'data-which': 'last' }, aurocBars(perClassRows(last))),
    );
  }
  if (best && best.point !== last && Object.keys(best.point.perClassAuroc).length) {
    perClass.push(
      el(
        'h3',
        null,
        `Best validation (step ${best.point.step}, ${best.metric} ${fmt4(best.point.metrics[best.metric])})`,
      ),
      el('figure', { class: 'per-class', 'data-which': 'best' }, aurocBars(perClassRows(best.point))),
    );
  } else if (best && best.point === last && perClass.length) {
    perClass.push(el('p', { class: 'meta' }, `The last validation is also the best (${best.metric}).`));
  }

  const tableKeys = [
    'macro_auroc',
    'weighted_auroc',
    'macro_auprc',
    'weighted_auprc',
    'macro_f1',
    'weighted_f1',
  ].filter((k) => data.validations.some((v) => k in v.metrics));
  const valTable = data.validations.length
    ? el(
        'table',
        { class: 'validations' },
        el(
          'tr',
          null,
          el('th', null, 'step'),
          el('th', null, 'epoch'),
          tableKeys.map((k) => el('th', null, k)),
        ),
        data.validations.map((v) =>
          el(
            'tr',
            { class: best && best.point === v ? 'best' : null },
            el('td', null, String(v.step)),
            el('td', null, v.epoch !== undefined ? formatFixed(v.epoch, 2) : ''),
            tableKeys.map((k) => el('td', null, fmt4(v.metrics[k]))),
          ),
        ),
      )
    : el('p', { class: 'meta' }, 'No validation was logged.');

  const dataSection = badSamplesSection(data.badSamples ?? null);

  const runName = path.basename(path.resolve(data.runDir));
  const summary = [
    `source: ${data.source}`,
    `last step ${data.lastStep}${data.lastEpoch !== null ? ` (epoch ${formatFixed(data.lastEpoch, 2)})` : ''}`,
    `${data.validations.length} validation(s)`,
    best ? `best ${best.metric} ${fmt4(best.point.metrics[best.metric])} at step ${best.point.step}` : null,
  ].filter((x): x is string => x !== null);

  const page = fragment(
    raw('<!DOCTYPE html>\n'),
    el(
      'html',
      { lang: 'en' },
      el(
        'head',
        null,
        el('meta', { charset: 'utf-8' }),
        el('meta', { name: 'viewport', content: 'width=device-width, initial-scale=1' }),
        el('title', null, `ctclip run report: ${runName}`),
        el('style', null, raw(STYLE)),
      ),
      el(
        'body',
        null,
        el('h1', null, `Run report: ${runName}`),
        el('p', { class: 'meta' }, `${path.resolve(data.runDir)} · created ${created}`),
        el('p', { class: 'meta summary' }, summary.join(' · ')),
        el('h2', null, 'Training'),
        trainCharts.length
          ? el('div', { class: 'charts train-charts' }, trainCharts)
          : el('p', { class: 'meta' }, 'No training scalars were logged.'),
        el('h2', null, 'Validation'),
        valCharts.length ? el('div', { class: 'charts val-charts' }, valCharts) : null,
        valTable,
        el('h2', null, 'Per-class AUROC'),
        perClass.length ? perClass : el('p', { class: 'meta' }, 'No per-class AUROC was logged.'),
        dataSection,
      ),
    ),
  );
  return `${page.html}\n`;
}

/** The "Data" section: samples lost per reason name and loader (null without counts). */
function badSamplesSection(bad: RunData['badSamples']): Markup | null {
  if (!bad || typeof bad !== 'object') return null;
  const loaders = Object.keys(bad).filter((k) => bad[k] && typeof bad[k] === 'object');
  if (!loaders.length) return null;
  const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const reasons = [...new Set(loaders.flatMap((k) => Object.keys(bad[k].by_reason ?? {})))]
    .filter((r) => loaders.some((k) => count(bad[k].by_reason?.[r]) > 0))
    .sort();
  const total = (k: string): number => count(bad[k].excluded_at_index) + count(bad[k].bad_at_read);
  const label = (k: string): string => (k === 'train' ? 'training' : k === 'val' ? 'validation' : k);
  const body: Child[] = [
    el(
      'p',
      { class: 'meta' },
      loaders
        .map(
          (k) =>
            `${label(k)}: ${total(k)} sample(s) lost (${count(bad[k].excluded_at_index)} excluded at index time, ${count(bad[k].bad_at_read)} skipped while reading; budget ${count(bad[k].budget)})`,
        )
        .join(' · '),
    ),
  ];
  if (reasons.length) {
    body.push(
      el(
        'table',
        { class: 'bad-samples' },
        el(
          'tr',
          null,
          el('th', null, 'reason'),
          loaders.map((k) => el('th', null, label(k))),
        ),
        reasons.map((r) =>
          el(
            'tr',
            { 'data-reason': r },
            el('td', { style: 'text-align:left' }, r),
            loaders.map((k) => el('td', null, String(count(bad[k].by_reason?.[r])))),
          ),
        ),
      ),
    );
  } else {
    body.push(el('p', { class: 'meta' }, 'No sample was excluded or skipped.'));
  }
  return fragment(el('h2', null, 'Data: excluded and bad samples'), body);
}

/** Writes `<runDir>/report.html` (or `out`) atomically and returns its path. */
export async function writeRunReport(runDir: string, options: { out?: string; created?: Date } = {}): Promise<string> {
  const data = loadRunData(runDir);
  const out = options.out ?? path.join(runDir, REPORT_FILE);
  await writeFileAtomic(out, runReportHtml(data, { created: options.created }));
  return out;
}
