/**
 * The reference's parseable validation console lines, kept byte-compatible because
 * tools such as `scripts/find_best_auprc_epoch.py` parse them out of stdout / output.log:
 *
 *     ================================================================================   (80 '=')
 *     Running Validation (Step 3687, Epoch 0.50)
 *     ================================================================================
 *
 *     [2025-01-31 14:05:09] Step 3687 - val | macro_auroc: 0.7312, macro_auprc: 0.3120, weighted_auroc: nan
 *
 * The metrics line: local time `YYYY-MM-DD HH:MM:SS`; numbers `.4f` (Python rounding, NaN → `nan`,
 * ±Infinity → `inf`/`-inf`); strings as is; booleans `True`/`False`; null `None`; nested objects and arrays (e.g.
 * `per_class`) skipped; key order kept; pairs joined by `, `.
 *
 * Also the human summary printed between them (`formatValidationResults`): `Validation Results (Step N, M samples)`,
 * the macro and weighted AUROC/AUPRC/F1 lines with ` ⭐` on the model-selection metric.
 */
import { formatFixed } from './format';

/** The 80-character rule around the validation header. */
export const VALIDATION_RULE = '='.repeat(80);

/** `Running Validation (Step N, Epoch E)` with E `.2f`. */
export function formatValidationHeader(step: number, epoch: number): string {
  return `Running Validation (Step ${step}, Epoch ${formatFixed(epoch, 2)})`;
}

/** The three header lines: rule, header, rule. */
export function validationHeaderLines(step: number, epoch: number): string[] {
  return [VALIDATION_RULE, formatValidationHeader(step, epoch), VALIDATION_RULE];
}

const HEADER_RE = /^Running Validation \(Step (\d+), Epoch (-?\d+\.\d+|nan|-?inf)\)$/;

/** Parses a header line; null when the line is not one. */
export function parseValidationHeader(line: string): { step: number; epoch: number } | null {
  const m = HEADER_RE.exec(line.trimEnd());
  if (!m) return null;
  return { step: Number(m[1]), epoch: parseNumber(m[2]) as number };
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DD HH:MM:SS` in local time (as Python's `datetime.now().strftime`). */
export function formatTimestamp(date: Date): string {
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

function formatMetricValue(v: unknown): string | null {
  if (typeof v === 'number') return formatFixed(v, 4);
  if (typeof v === 'bigint') return formatFixed(Number(v), 4);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null) return 'None';
  return null; // objects, arrays, undefined, functions: skipped
}

/** `[YYYY-MM-DD HH:MM:SS] Step N - {prefix} | k: v, …` (see the module comment). */
export function formatMetricsLine(
  step: number,
  metrics: Record<string, unknown>,
  options: { prefix?: string; time?: Date } = {},
): string {
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(metrics)) {
    const text = formatMetricValue(v);
    if (text !== null) pairs.push(`${k}: ${text}`);
  }
  return `[${formatTimestamp(options.time ?? new Date())}] Step ${step} - ${options.prefix ?? 'val'} | ${pairs.join(', ')}`;
}

/** The validation metrics line (`prefix` 'val'). */
export function formatValidationLine(step: number, metrics: Record<string, unknown>, time?: Date): string {
  return formatMetricsLine(step, metrics, { prefix: 'val', time });
}

export interface ParsedMetricsLine {
  /** The timestamp text as printed. */
  timestamp: string;
  step: number;
  prefix: string;
  /** Values in line order: numbers (nan/inf parsed) or, for non-numeric values, the text. */
  metrics: Record<string, number | string>;
}

const LINE_RE = /^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] Step (\d+) - (\S+) \| (.*)$/;
const NUMBER_RE = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function parseNumber(text: string): number | string {
  if (text === 'nan') return NaN;
  if (text === 'inf') return Infinity;
  if (text === '-inf') return -Infinity;
  return NUMBER_RE.test(text) ? Number(text) : text;
}

/**
 * Parses a `[timestamp] Step N - prefix | k: v, …` line (any prefix; filter on `.prefix === 'val'`). Pairs are
 * split at `, ` followed by `key: `, so a string value containing `, ` survives unless it also contains `: `.
 * Returns null when the line is not a metrics line.
 */
export function parseMetricsLine(line: string): ParsedMetricsLine | null {
  const m = LINE_RE.exec(line.replace(/\r?\n$/, ''));
  if (!m) return null;
  const metrics: Record<string, number | string> = {};
  const body = m[4];
  if (body.length > 0) {
    for (const pair of body.split(/, (?=[^\s,:][^,:]*: )/)) {
      const at = pair.indexOf(': ');
      if (at <= 0) return null;
      metrics[pair.slice(0, at)] = parseNumber(pair.slice(at + 2));
    }
  }
  return { timestamp: m[1], step: Number(m[2]), prefix: m[3], metrics };
}

/** `parseMetricsLine` restricted to validation lines (prefix `val`). */
export function parseValidationLine(line: string): ParsedMetricsLine | null {
  const parsed = parseMetricsLine(line);
  return parsed && parsed.prefix === 'val' ? parsed : null;
}

const SUMMARY_METRICS: Array<[string, string]> = [
  ['auroc', 'AUROC'],
  ['auprc', 'AUPRC'],
  ['f1', 'F1'],
];

/**
 * The human summary (reference order): `Validation Results (Step N, M samples)`, `Macro AUROC: x[ ⭐]`,
 * `Macro AUPRC`, `Macro F1`, `---`, `Weighted AUROC`, `Weighted AUPRC`, `Weighted F1`; values `.4f`. The star marks
 * `selectionMetric` (e.g. `weighted_auroc`). `numSamples` is the number actually evaluated.
 */
export function formatValidationResults(
  step: number,
  numSamples: number,
  metrics: Record<string, unknown>,
  selectionMetric?: string,
): string[] {
  const lines = [`Validation Results (Step ${step}, ${numSamples} samples)`];
  for (const [kind, label] of [
    ['macro', 'Macro'],
    ['weighted', 'Weighted'],
  ] as const) {
    if (kind === 'weighted') lines.push('---');
    for (const [key, name] of SUMMARY_METRICS) {
      const full = `${kind}_${key}`;
      const v = metrics[full];
      if (typeof v !== 'number') continue;
      lines.push(`${label} ${name}: ${formatFixed(v, 4)}${full === selectionMetric ? ' ⭐' : ''}`);
    }
  }
  return lines;
}
