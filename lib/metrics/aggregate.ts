/**
 * Multi-label evaluation: per-class metrics for every class plus the macro and weighted aggregates, with the
 * reference's key names (checked against fixture G, docs/reference.md):
 *
 * - `macro_<m>`: mean of the non-NaN per-class values; NaN if every class is NaN. Single-valued classes are
 *   thereby excluded, so the denominator can shrink: `n_valid_classes` says by how much (the reference did
 *   not report it).
 * - `weighted_<m>`: Σ v_c·support_c / Σ support_c with support_c = number of positives of class c, over the
 *   classes whose v_c is not NaN and whose support is > 0; NaN if there are none. (An all-1 class has
 *   support but NaN metrics, so it is excluded too.)
 *
 * The reference aggregates auroc, auprc, f1, precision, recall (and optionally specificity, accuracy); we
 * always aggregate all seven plus `f1_at_threshold`, in that order.
 */
import { BinaryMetrics, BinaryOptions, DEFAULT_THRESHOLD, SortedClass, evaluateSorted, sortClass } from './binary';
import { MatrixInput, checkThreshold, toClassColumns } from './matrix';

/** The per-class metrics that get macro and weighted aggregates, in the reference's order. */
export const AGGREGATED_METRICS = [
  'auroc',
  'auprc',
  'f1',
  'precision',
  'recall',
  'specificity',
  'accuracy',
  'f1_at_threshold',
] as const;

/** A per-class metric that is aggregated. */
export type AggregatedMetric = (typeof AGGREGATED_METRICS)[number];

/** `macro_auroc`, …, `macro_f1_at_threshold`. */
export type MacroKey = `macro_${AggregatedMetric}`;

/** `weighted_auroc`, …, `weighted_f1_at_threshold`. */
export type WeightedKey = `weighted_${AggregatedMetric}`;

/** Every aggregate key, macro first then weighted, each in `AGGREGATED_METRICS` order. */
export const AGGREGATE_KEYS: ReadonlyArray<MacroKey | WeightedKey> = [
  ...AGGREGATED_METRICS.map((m) => `macro_${m}` as MacroKey),
  ...AGGREGATED_METRICS.map((m) => `weighted_${m}` as WeightedKey),
];

/** The aggregates alone (NaN = undefined). */
export type AggregateMetrics = Record<MacroKey, number> & Record<WeightedKey, number>;

/** The result of `evaluateMultiLabel`. NaN marks undefined values; write it with `toStrictJson`. */
export type MultiLabelMetrics = AggregateMetrics & {
  /** Classes with both labels present (the ones every aggregate is over, at most). */
  n_valid_classes: number;
  n_classes: number;
  n_samples: number;
  /** The fixed decision threshold used for precision/recall/specificity/accuracy/f1_at_threshold. */
  threshold: number;
  /** Per-class metrics keyed by class name, in the given class order. */
  per_class: Record<string, BinaryMetrics>;
};

/** Options of `evaluateMultiLabel`. */
export type MultiLabelOptions = BinaryOptions;

/** Mean of the non-NaN values; NaN if there are none. */
export function macroAverage(values: ArrayLike<number>): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) {
      sum += v;
      count++;
    }
  }
  return count === 0 ? NaN : sum / count;
}

/** Σ v·s / Σ s over entries with non-NaN v and s > 0; NaN if there are none. */
export function weightedAverage(values: ArrayLike<number>, supports: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const s = supports[i];
    if (!Number.isNaN(v) && s > 0) {
      num += v * s;
      den += s;
    }
  }
  return den === 0 ? NaN : num / den;
}

/** Macro and weighted aggregates of a list of per-class results (in class order). */
export function aggregateClasses(perClass: readonly BinaryMetrics[]): AggregateMetrics & { n_valid_classes: number } {
  const c = perClass.length;
  const values = new Float64Array(c);
  const supports = new Float64Array(c);
  for (let k = 0; k < c; k++) supports[k] = perClass[k].support;
  const out = {} as AggregateMetrics;
  for (const m of AGGREGATED_METRICS) {
    for (let k = 0; k < c; k++) values[k] = perClass[k][m];
    out[`macro_${m}`] = macroAverage(values);
  }
  for (const m of AGGREGATED_METRICS) {
    for (let k = 0; k < c; k++) values[k] = perClass[k][m];
    out[`weighted_${m}`] = weightedAverage(values, supports);
  }
  let nValid = 0;
  for (const r of perClass) if (!Number.isNaN(r.auroc)) nValid++;
  return Object.assign(out, { n_valid_classes: nValid });
}

/**
 * Evaluates pre-sorted classes (see `sortClass`) under optional per-sample multiplicities. The bootstrap's
 * inner step; `evaluateMultiLabel` is the public entry point.
 */
export function evaluateSortedClasses(
  sorted: readonly SortedClass[],
  weights: ArrayLike<number> | null,
  threshold: number,
  youden = false,
): BinaryMetrics[] {
  return sorted.map((sc) => evaluateSorted(sc, weights, threshold, youden));
}

/**
 * Evaluates an n × C multi-label prediction: `scores[i][c]` (finite) and `labels[i][c]` (0/1) for sample i
 * and class `classNames[c]`. Returns the reference-named macro/weighted aggregates, `n_valid_classes` and
 * `per_class`. Throws `ARGUMENT_ERROR` on shape mismatches, non-binary labels, non-finite scores, n = 0.
 */
export function evaluateMultiLabel(
  scores: MatrixInput,
  labels: MatrixInput,
  classNames: readonly string[],
  opts: MultiLabelOptions = {},
): MultiLabelMetrics {
  const threshold = checkThreshold(opts.threshold ?? DEFAULT_THRESHOLD);
  const cols = toClassColumns(scores, labels, classNames);
  const sorted = cols.scores.map((s, c) => sortClass(s, cols.labels[c]));
  return assembleResult(
    evaluateSortedClasses(sorted, null, threshold, opts.youden ?? false),
    classNames,
    cols.n,
    threshold,
  );
}

/** Builds the result object in the reference's key order: macro, weighted, counts, per_class. */
export function assembleResult(
  perClass: readonly BinaryMetrics[],
  classNames: readonly string[],
  nSamples: number,
  threshold: number,
): MultiLabelMetrics {
  const agg = aggregateClasses(perClass);
  const result = {} as MultiLabelMetrics;
  for (const key of AGGREGATE_KEYS) result[key] = agg[key];
  result.n_valid_classes = agg.n_valid_classes;
  result.n_classes = classNames.length;
  result.n_samples = nSamples;
  result.threshold = threshold;
  result.per_class = {};
  classNames.forEach((name, c) => {
    result.per_class[name] = perClass[c];
  });
  return result;
}
