/**
 * Bootstrap confidence intervals for the multi-label metrics (the reference's, with its bug fixed).
 *
 * Procedure: draw `nResamples` resamples of the n samples with replacement, recompute every per-class metric on
 * each (including a fresh oracle-threshold F1), aggregate (macro and weighted), and take percentile intervals
 * with numpy's default linear interpolation (`np.percentile(values, [100(1−L)/2, 100(1+L)/2])`, L = `level`).
 * Intervals are produced for every macro and weighted aggregate and, per class, for the metrics in
 * `perClassMetrics` (default: AUROC). A resample in which a metric is undefined (NaN: e.g. a class without
 * positives in that resample) is skipped for that metric only, and counted (`n_skipped`).
 *
 * Differences from the reference, on purpose:
 * - Randomness comes from our own seeded generator (`lib/rng.ts`, xoshiro128**, stream
 *   `Rng.derive(seed, 'bootstrap')`). It is NOT bit-compatible with numpy's `np.random.seed(42);
 *   np.random.choice`, so our intervals are statistically equivalent to, not identical with, the reference's.
 *   Same seed ⇒ same intervals, on any machine.
 * - The reference gives macro CIs only and always prints "95% CI"; here the level is a parameter and
 *   `formatBootstrapSummary` prints the level actually used.
 *
 * Stratification (`stratify`), our definition:
 * - `'none'` (default): plain row bootstrap, every row drawn uniformly (what the reference does).
 * - `'any_positive'`: rows split into "has at least one positive label" and "has none"; each stratum is
 *   resampled to its own size. Rows stay intact, so the cross-class correlation that macro/weighted intervals
 *   must reflect is kept, and the share of normal studies is fixed.
 * - `'per_class'`: each class is resampled on its own, its positives to their count and its negatives to
 *   theirs (the classic stratified bootstrap for one AUROC). Every resample then has each valid class's exact
 *   support, so nothing is skipped; but the classes are resampled independently, so macro/weighted intervals
 *   ignore the correlation between classes (they come out narrower). Prefer it for per-class intervals of
 *   rare classes.
 *
 * Cost: each class is sorted once; a resample is a count per original sample and is evaluated in O(n) per
 * class by `evaluateSorted`, so n × C × nResamples = 3000 × 18 × 1000 runs in well under a few seconds.
 */
import { CtclipError } from '../errors';
import { Rng } from '../rng';
import { BinaryMetrics, DEFAULT_THRESHOLD, SortedClass, evaluateSorted, sortClass } from './binary';
import {
  AGGREGATE_KEYS,
  AggregatedMetric,
  AGGREGATED_METRICS,
  MacroKey,
  WeightedKey,
  aggregateClasses,
} from './aggregate';
import { MatrixInput, checkThreshold, toClassColumns } from './matrix';
import { intervalPercentiles, percentileSorted } from './percentile';

/** How resamples are drawn; see the module comment for the exact definitions. */
export type StratifyMode = 'none' | 'any_positive' | 'per_class';

/** The default seed, the reference's `random_state=42` (the draws differ anyway: different generator). */
export const DEFAULT_BOOTSTRAP_SEED = 42;

/** Options of `bootstrapMetrics`. */
export interface BootstrapOptions {
  /** Number of resamples. Default 1000 (reference `n_bootstrap`). */
  nResamples?: number;
  /** Seed of the `Rng.derive(seed, 'bootstrap')` stream. Default 42. Ignored when `rng` is given. */
  seed?: number;
  /** A generator to draw from instead (it is advanced). */
  rng?: Rng;
  /** Confidence level, strictly between 0 and 1. Default 0.95. */
  level?: number;
  /** Resampling scheme. Default 'none'. */
  stratify?: StratifyMode;
  /** Fixed decision threshold for the threshold metrics. Default 0.5. */
  threshold?: number;
  /** Per-class metrics that get intervals. Default ['auroc']. */
  perClassMetrics?: readonly AggregatedMetric[];
  /** Called after each resample (e.g. to drive a progress bar). */
  onProgress?: (done: number, total: number) => void;
}

/** A percentile interval of one metric. NaN (null in strict JSON) where no resample gave a value. */
export interface BootstrapInterval {
  /** The metric on the full (not resampled) data. */
  estimate: number;
  lower: number;
  upper: number;
  /** upper − lower. */
  width: number;
  /** Mean over the resamples where the metric was defined. */
  mean: number;
  /** Resamples where the metric was defined (used for the interval). */
  n_valid: number;
  /** Resamples where it was undefined (NaN), skipped. */
  n_skipped: number;
}

/** The result of `bootstrapMetrics`. */
export interface BootstrapResult {
  method: 'percentile';
  /** The confidence level used, e.g. 0.95. */
  level: number;
  /** The two percentiles taken (e.g. [2.5, 97.5]). */
  percentiles: [number, number];
  n_resamples: number;
  /** The seed of the stream, or null when a caller-provided `rng` was used. */
  seed: number | null;
  /** Which generator; a reminder that the draws are not numpy's. */
  rng: string;
  stratify: StratifyMode;
  threshold: number;
  /** An interval for every macro_* and weighted_* key. */
  intervals: Record<MacroKey | WeightedKey, BootstrapInterval>;
  /** Per class, an interval for each of `perClassMetrics`. */
  per_class: Record<string, Partial<Record<AggregatedMetric, BootstrapInterval>>>;
}

/** Grows with the resamples; holds the defined values of one metric. */
class ValueBuffer {
  readonly values: Float64Array;
  count = 0;
  skipped = 0;
  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }
  push(v: number): void {
    if (Number.isNaN(v)) this.skipped++;
    else this.values[this.count++] = v;
  }
  interval(estimate: number, pLo: number, pHi: number): BootstrapInterval {
    const sorted = this.values.subarray(0, this.count).sort();
    let sum = 0;
    for (let i = 0; i < sorted.length; i++) sum += sorted[i];
    const lower = percentileSorted(sorted, pLo);
    const upper = percentileSorted(sorted, pHi);
    return {
      estimate,
      lower,
      upper,
      width: upper - lower,
      mean: this.count === 0 ? NaN : sum / this.count,
      n_valid: this.count,
      n_skipped: this.skipped,
    };
  }
}

/**
 * Draws `size` indices uniformly from `pool` with replacement and adds them to `counts`.
 *
 * Unbiased rejection sampling straight on `Rng.nextUint32` (x < q·m with q = ⌊2³²/m⌋, index ⌊x/q⌋) rather than
 * `Rng.int`, which re-validates its argument and recomputes the rejection limit on every call: the stratified
 * mode makes C·n draws per resample, and this halves their cost.
 */
function drawInto(counts: Float64Array, pool: Uint32Array, size: number, rng: Rng): void {
  const m = pool.length;
  const q = Math.floor(0x100000000 / m);
  const limit = q * m;
  for (let k = 0; k < size;) {
    const x = rng.nextUint32();
    if (x < limit) {
      counts[pool[Math.floor(x / q)]]++;
      k++;
    }
  }
}

/**
 * Percentile bootstrap intervals for every macro/weighted aggregate and the chosen per-class metrics of an
 * n × C multi-label evaluation (inputs as `evaluateMultiLabel`). Deterministic given `seed` (or `rng` state).
 * Throws `ARGUMENT_ERROR` on bad inputs or options.
 */
export function bootstrapMetrics(
  scores: MatrixInput,
  labels: MatrixInput,
  classNames: readonly string[],
  opts: BootstrapOptions = {},
): BootstrapResult {
  const nResamples = opts.nResamples ?? 1000;
  if (!Number.isSafeInteger(nResamples) || nResamples < 1) {
    throw new CtclipError('ARGUMENT_ERROR', `nResamples is ${String(nResamples)}; expected a positive integer`);
  }
  const level = opts.level ?? 0.95;
  const [pLo, pHi] = intervalPercentiles(level);
  const threshold = checkThreshold(opts.threshold ?? DEFAULT_THRESHOLD);
  const stratify = opts.stratify ?? 'none';
  if (stratify !== 'none' && stratify !== 'any_positive' && stratify !== 'per_class') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `stratify is ${JSON.stringify(stratify)}; expected 'none', 'any_positive' or 'per_class'`,
    );
  }
  const perClassMetrics = opts.perClassMetrics ?? ['auroc'];
  for (const m of perClassMetrics) {
    if (!(AGGREGATED_METRICS as readonly string[]).includes(m)) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `perClassMetrics contains "${String(m)}"; expected one of ${AGGREGATED_METRICS.join(', ')}`,
      );
    }
  }
  let seed: number | null = null;
  let rng: Rng;
  if (opts.rng) {
    rng = opts.rng;
  } else {
    seed = opts.seed ?? DEFAULT_BOOTSTRAP_SEED;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new CtclipError('ARGUMENT_ERROR', `seed is ${String(seed)}; expected a non-negative integer`);
    }
    rng = Rng.derive(seed, 'bootstrap');
  }

  const cols = toClassColumns(scores, labels, classNames);
  const n = cols.n;
  const nClasses = cols.nClasses;
  const sorted: SortedClass[] = cols.scores.map((s, c) => sortClass(s, cols.labels[c]));
  const full = sorted.map((sc) => evaluateSorted(sc, null, threshold));
  const fullAgg = aggregateClasses(full);

  // Resampling pools.
  const all = new Uint32Array(n);
  for (let i = 0; i < n; i++) all[i] = i;
  let strata: Uint32Array[] = [];
  let classStrata: Array<[Uint32Array, Uint32Array]> = [];
  if (stratify === 'any_positive') {
    const withPos: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < n; i++) {
      let any = false;
      for (let c = 0; c < nClasses && !any; c++) any = cols.labels[c][i] === 1;
      (any ? withPos : without).push(i);
    }
    strata = [Uint32Array.from(withPos), Uint32Array.from(without)].filter((s) => s.length > 0);
  } else if (stratify === 'per_class') {
    classStrata = cols.labels.map((y) => {
      const pos: number[] = [];
      const neg: number[] = [];
      for (let i = 0; i < n; i++) (y[i] === 1 ? pos : neg).push(i);
      return [Uint32Array.from(pos), Uint32Array.from(neg)];
    });
  }

  const aggBuffers = new Map<MacroKey | WeightedKey, ValueBuffer>();
  for (const key of AGGREGATE_KEYS) aggBuffers.set(key, new ValueBuffer(nResamples));
  const classBuffers: Array<Map<AggregatedMetric, ValueBuffer>> = classNames.map(() => {
    const m = new Map<AggregatedMetric, ValueBuffer>();
    for (const metric of perClassMetrics) m.set(metric, new ValueBuffer(nResamples));
    return m;
  });

  const counts = new Float64Array(n);
  const perClass: BinaryMetrics[] = new Array(nClasses);
  for (let r = 0; r < nResamples; r++) {
    if (stratify === 'per_class') {
      for (let c = 0; c < nClasses; c++) {
        counts.fill(0);
        const [pos, neg] = classStrata[c];
        if (pos.length > 0) drawInto(counts, pos, pos.length, rng);
        if (neg.length > 0) drawInto(counts, neg, neg.length, rng);
        perClass[c] = evaluateSorted(sorted[c], counts, threshold);
      }
    } else {
      counts.fill(0);
      if (stratify === 'any_positive') for (const s of strata) drawInto(counts, s, s.length, rng);
      else drawInto(counts, all, n, rng);
      for (let c = 0; c < nClasses; c++) perClass[c] = evaluateSorted(sorted[c], counts, threshold);
    }
    const agg = aggregateClasses(perClass);
    for (const key of AGGREGATE_KEYS) aggBuffers.get(key)!.push(agg[key]);
    for (let c = 0; c < nClasses; c++) {
      for (const metric of perClassMetrics) classBuffers[c].get(metric)!.push(perClass[c][metric]);
    }
    opts.onProgress?.(r + 1, nResamples);
  }

  const intervals = {} as Record<MacroKey | WeightedKey, BootstrapInterval>;
  for (const key of AGGREGATE_KEYS) intervals[key] = aggBuffers.get(key)!.interval(fullAgg[key], pLo, pHi);
  const perClassOut: BootstrapResult['per_class'] = {};
  classNames.forEach((name, c) => {
    const entry: Partial<Record<AggregatedMetric, BootstrapInterval>> = {};
    for (const metric of perClassMetrics)
      entry[metric] = classBuffers[c].get(metric)!.interval(full[c][metric], pLo, pHi);
    perClassOut[name] = entry;
  });

  return {
    method: 'percentile',
    level,
    percentiles: [pLo, pHi],
    n_resamples: nResamples,
    seed,
    rng: 'xoshiro128** (lib/rng.ts), not bit-compatible with numpy',
    stratify,
    threshold,
    intervals,
    per_class: perClassOut,
  };
}

/** "95% CI", "90% CI", "99.9% CI": the label any printout of an interval must carry. */
export function ciLabel(level: number): string {
  return `${Number((level * 100).toPrecision(10))}% CI`;
}

/**
 * The reference's flat key style, extended to weighted metrics: `macro_auroc_ci_lower`,
 * `macro_auroc_ci_upper`, `macro_auroc_ci_width`, … (NaN where undefined), plus `bootstrap_level` so that the
 * level travels with the numbers.
 */
export function flattenBootstrap(result: BootstrapResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of AGGREGATE_KEYS) {
    const iv = result.intervals[key];
    out[`${key}_ci_lower`] = iv.lower;
    out[`${key}_ci_upper`] = iv.upper;
    out[`${key}_ci_width`] = iv.width;
  }
  out.bootstrap_level = result.level;
  out.bootstrap_n_resamples = result.n_resamples;
  return out;
}

/**
 * A human-readable summary, one line per macro/weighted metric then per class, stating the level used, e.g.
 * `macro_auroc      0.7312  95% CI [0.7011, 0.7598]  (1000/1000 resamples)`. Undefined values print as "n/a".
 */
export function formatBootstrapSummary(result: BootstrapResult, digits = 4): string {
  const label = ciLabel(result.level);
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
  const line = (name: string, iv: BootstrapInterval) =>
    `${name.padEnd(28)} ${fmt(iv.estimate)}  ${label} [${fmt(iv.lower)}, ${fmt(iv.upper)}]  (${iv.n_valid}/${iv.n_valid + iv.n_skipped} resamples)`;
  const lines = [
    `Bootstrap: ${result.n_resamples} resamples, ${label} (percentile, numpy-linear), stratify=${result.stratify}, ` +
      `seed=${result.seed === null ? 'caller rng' : result.seed}, threshold=${result.threshold}`,
  ];
  for (const key of AGGREGATE_KEYS) lines.push(line(key, result.intervals[key]));
  for (const [name, metrics] of Object.entries(result.per_class)) {
    for (const [metric, iv] of Object.entries(metrics)) if (iv) lines.push(line(`${name} ${metric}`, iv));
  }
  return lines.join('\n');
}
