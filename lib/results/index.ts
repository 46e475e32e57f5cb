/**
 * The evaluation output layer: everything the inference and embed commands call to write their results.
 * File formats: docs/evaluation.md.
 */
export { writeEvaluation, resultsJson } from './write';
export { EVALUATION_FILES, evaluationFiles, checkEvaluationTargets, type EvaluationFiles } from './output';
export {
  referenceFlatKeys,
  REFERENCE_FLAT_METRICS,
  type ReferenceFlatKeys,
  type ReferenceFlatMetric,
} from './flat-keys';
export {
  buildEvaluationResults,
  classRocCurves,
  ctclipVersion,
  RESULTS_FORMAT,
  RESULTS_FORMAT_VERSION,
  type CheckpointInfo,
  type ClassRocCurve,
  type EvaluationBootstrapOptions,
  type EvaluationInput,
  type EvaluationResults,
  type ExcludedClass,
} from './results';
export { formatEvaluationSummary, formatInterval, formatValue, METRIC_LABELS, type SummaryOptions } from './summary';
export { predictionsCsv, predictionsHeader } from './predictions';
export { perClassCsv, perClassTable, PER_CLASS_METRIC_COLUMNS } from './per-class';
export { renderReport } from './report';
export { aurocBars, rocPanel, rocPanels, truncate, type AurocBarRow } from '../report/charts';
// Evaluation files are read back as plain rows, strictly (they are ours).
export { CSV_EOL, csvField, csvRecord, formatCsv, type CsvCell } from '../io/csv';
export { parseOwnCsv as parseCsv } from './read-csv';
export {
  Markup,
  el,
  escapeXml,
  fragment,
  linearScale,
  pathData,
  raw,
  svgNumber,
  type Attrs,
  type AttrValue,
  type Child,
} from '../report/svg';
export {
  writeEmbeddings,
  readEmbeddings,
  embeddingsSidecarPath,
  EMBEDDINGS_FORMAT,
  EMBEDDINGS_FORMAT_VERSION,
  type EmbeddingsInput,
  type EmbeddingsSidecar,
} from './embeddings';
