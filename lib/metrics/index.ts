/**
 * The metrics library (pure TypeScript, float64): per-class binary metrics, multi-label macro/weighted
 * evaluation with the reference's key names, bootstrap confidence intervals, retrieval metrics, numpy-exact
 * percentiles and strict JSON output. See each module for the exact definitions.
 */
export {
  BinaryMetrics,
  BinaryOptions,
  ConfusionCounts,
  DEFAULT_THRESHOLD,
  F1_EPSILON,
  PrecisionRecallCurve,
  RocCurve,
  SortedClass,
  averagePrecisionScore,
  binaryMetrics,
  evaluateSorted,
  precisionRecallCurve,
  rocAucScore,
  rocCurve,
  sortClass,
} from './binary';
export {
  AGGREGATED_METRICS,
  AGGREGATE_KEYS,
  AggregateMetrics,
  AggregatedMetric,
  MacroKey,
  MultiLabelMetrics,
  MultiLabelOptions,
  WeightedKey,
  aggregateClasses,
  evaluateMultiLabel,
  macroAverage,
  weightedAverage,
} from './aggregate';
export {
  BootstrapInterval,
  BootstrapOptions,
  BootstrapResult,
  DEFAULT_BOOTSTRAP_SEED,
  StratifyMode,
  bootstrapMetrics,
  ciLabel,
  flattenBootstrap,
  formatBootstrapSummary,
} from './bootstrap';
export {
  RetrievalDirection,
  RetrievalMetrics,
  RetrievalOptions,
  RetrievalRanks,
  SimilarityInput,
  TieMode,
  retrievalMetrics,
  retrievalRanks,
  summarizeRanks,
} from './retrieval';
export { intervalPercentiles, median, percentile, percentileSorted } from './percentile';
export { nullToNaN, strictJsonReplacer, toStrictJson, toStrictJsonValue } from '../io/strict-json';
export { MatrixInput } from './matrix';
