/**
 * The `metrics` namespace of the package root (`import { metrics } from 'ctclip'`): everything in ./index.ts plus
 * short aliases under the names the README and most users reach for first:
 *
 * - `metrics.auroc(scores, labels)`: `rocAucScore`, scikit-learn's `roc_auc_score` (trapezoidal, ties averaged);
 * - `metrics.auprc(scores, labels)`: `averagePrecisionScore`, scikit-learn's step-wise `average_precision_score`;
 * - `metrics.bootstrap(scores, labels, classNames, opts)`: `bootstrapMetrics`, percentile bootstrap intervals of
 *   every multi-label metric (seeded; `nResamples`, `seed`, `level`, `stratify` in `opts`).
 */
export * from './index';
export { rocAucScore as auroc, averagePrecisionScore as auprc } from './binary';
export { bootstrapMetrics as bootstrap } from './bootstrap';
