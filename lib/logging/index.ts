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
  SESSION_LOG_START,
  type ScalarPoint,
  type ScalarValue,
  type TensorBoardWriterOptions,
  type TfEvent,
} from './tensorboard';
export {
  WANDB_PYTHON_ENV,
  WANDB_RUN_FILE,
  startWandb,
  tensorboardDir,
  wandbPlan,
  wandbRunId,
  type StartWandbOptions,
  type WandbLoggingConfig,
  type WandbPlan,
  type WandbSession,
} from './wandb';
export {
  WANDB_SIDECAR_SCRIPT,
  WandbSidecar,
  probeWandb,
  type WandbInitArgs,
  type WandbProbe,
  type WandbReady,
  type WandbSidecarOptions,
} from './wandb-sidecar';
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
