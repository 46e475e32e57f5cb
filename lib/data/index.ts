/**
 * Public API of the data layer: WebDataset shards → exact-epoch, resumable, corruption-tolerant batches.
 * See docs/data.md.
 */
export { expandBraces, expandShardPattern, isCompressedShardName } from './brace';
export { CT_RATE_CLASSES, LABEL_ID_COLUMNS } from './classes';
export {
  float32ToFloat16Bits,
  float16BitsToFloat32,
  float32ArrayToFloat16,
  float16ArrayToFloat32,
  float16View,
  float16HasNonFinite,
  float16NonFiniteSummary,
} from './float16';
export { BAD_SAMPLE_REASONS, isBadSampleReason, type BadSampleReason } from './reasons';
export { cleanReport } from './report';
export { scanTar, parsePax, parseTarNumber, type TarMember, type TarScan, type TarProblem } from './tar-index';
export { TarWriter, tarHeader } from './tar-writer';
export { splitMemberName, groupMembers, type GroupedSample, type GroupProblem, type MemberRef } from './webdataset';
export {
  INDEX_FILE_NAME,
  buildIndex,
  writeIndex,
  indexShards,
  openIndex,
  openIndexFile,
  defaultIndexPath,
  shardPathsOf,
  classNamesFromLabelsCsv,
  parseSampleJson,
  checkLabelValues,
  checkMissingShards,
  isUnusableShard,
  excludedCount,
  DEFAULT_MAX_REPORT_BYTES,
  MAX_JSON_BYTES,
  MAX_LABEL_BYTES,
  MAX_INDEX_FILE_BYTES,
  MAX_VOLUME_DIM,
  MAX_SAMPLE_BYTES,
  type MissingShardsPolicy,
  type BuildIndexOptions,
  type OpenIndexOptions,
  type ShardIndex,
  type ShardIndexFile,
  type IndexedSample,
  type IndexedShard,
  type ExcludedSample,
  type Extent,
} from './shard-index';
export {
  EpochSampler,
  evalSubset,
  validatePosition,
  type DataPosition,
  type SamplerOptions,
  type MicroBatchPlan,
} from './sampler';
export { SampleReader, SampleReadError, Semaphore, type ReaderOptions, type SampleMeta } from './reader';
export {
  TrainLoader,
  EvalLoader,
  formatReasonCounts,
  badSamplesEvent,
  formatBadSamples,
  type BadSamplesPart,
  type Batch,
  type LoaderStats,
  type TrainLoaderOptions,
  type EvalLoaderOptions,
  type LoaderCommonOptions,
} from './loader';
export {
  writeSynthDataset,
  phantomVolume,
  synthLabels,
  defaultSynthReport,
  promptSentence,
  synthPattern,
  type SynthOptions,
  type SynthResult,
  type SynthReport,
  type ReportFn,
} from './synth';
