/** Checkpoints: atomic step-named folders, pointers, rotation, resume resolution (docs/checkpoints.md). */
export { CheckpointManager } from './manager';
export type {
  CheckpointManagerOptions,
  CheckpointInfo,
  ResolvedCheckpoint,
  SaveMeta,
  SaveResult,
  LogFn,
  LogLevel,
} from './manager';
export { readPart, readJsonPart, readMeta } from './read';
export type { CheckpointMeta } from './read';
export { verifyCheckpoint, readManifest, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION } from './manifest';
export type { CheckpointManifest, ManifestEntry, VerifyResult } from './manifest';
export {
  checkpointName,
  parseCheckpointName,
  LATEST_POINTER,
  BEST_POINTER,
  MANIFEST_FILE,
  META_FILE,
  MODEL_PART,
} from './names';
export type { PartSource, PartWriter, PartValue } from './parts';
export type { BestMode } from './best';
export { RunLock, inspectRunLock, RUN_LOCK_FILE } from './run-lock';
export type { RunLockInfo, RunLockState, AcquireRunLockOptions } from './run-lock';
