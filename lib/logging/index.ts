/** The training loop's logging layer (docs/logging.md). */
export { formatDuration, formatExp, formatFixed, formatGiB, formatLoss, formatLr } from './format';
export { EtaEstimator, type EtaEstimatorOptions } from './eta';
export {
  ProgressReporter,
  formatProgressLine,
  formatResourceLine,
  processMemory,
  type CudaMemoryStats,
  type OutputStream,
  type ProgressReporterOptions,
  type ProgressStats,
  type ResourceStats,
} from './progress';
export {
  VALIDATION_RULE,
  formatMetricsLine,
  formatTimestamp,
  formatValidationHeader,
  formatValidationLine,
  formatValidationResults,
  parseMetricsLine,
  parseValidationHeader,
  parseValidationLine,
  validationHeaderLines,
  type ParsedMetricsLine,
} from './validation-lines';
export {
  METRICS_FILE,
  MetricsJsonlWriter,
  readMetricsJsonl,
  type MetricsEvent,
  type MetricsEventType,
  type MetricsWriterOptions,
} from './jsonl';
export {
  TensorBoardWriter,
  crc32c,
  decodeEvent,
  encodeEvent,
  frameRecord,
  listEventFiles,
  maskedCrc32c,
  readEvents,
  readRecords,
  readScalars,
  type ScalarPoint,
  type ScalarValue,
  type TensorBoardWriterOptions,
  type TfEvent,
} from './tensorboard';
export { tensorboardDir, wandbPlan, type WandbLoggingConfig, type WandbPlan } from './wandb';
export {
  REPORT_FILE,
  bestValidation,
  lineChart,
  loadRunData,
  runReportHtml,
  writeRunReport,
  type RunData,
  type ValidationPoint,
} from './run-report';
export { PROFILE_PHASES, ProfileTimer } from './profile';
export { RunLog } from './run-log';
