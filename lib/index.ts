/**
 * ctclip's public API for other TypeScript tools. Import from the package root:
 *
 *   import { loadConfig, planRun, Tokenizer, metrics, data } from 'ctclip';
 *
 * The raw native surface (lib/native.ts) is deliberately not re-exported wholesale: only the typed wrappers are.
 */
export { CtclipError, hasCode, type ErrorCode } from './errors';
export { Rng, type RngState } from './rng';

export { loadConfig, parseConfig, applyOverride, type LoadConfigOptions, type LoadedConfig } from './config/load';
export { ConfigSchema, type Config, type ConfigInput } from './config/schema';

export { epochGeometry, stepsPerEpoch, lrFactor, lrAt, type EpochGeometry, type StepsPerEpochInput, type LrScheduleParams } from './schedule';
export { planRun, formatPlan, type RunPlan, type PlanInput } from './plan';

export { addonAvailable, type BuildInfo, type Dtype, type TensorHandle, type TensorInfo, type TensorData } from './native';
export { tensorFromBuffer, readTensor, tensorInfo, transformTensor, bytesPerElement, numel } from './tensor';
export { configureThreads, resolveThreads } from './runtime';

/** Native build and runtime facts (libtorch compiled/loaded, CUDA, collectives, threads, BLAS). */
export function buildInfo(): import('./native').BuildInfo {
  return (require('./native') as typeof import('./native')).loadAddon().buildInfo();
}

export { Tokenizer, type TokenizerOptions, type Encoding, type BatchEncoding } from './text/tokenizer';
export { buildWordPieceVocab, vocabToText } from './text/vocab-builder';

export * as data from './data';
export * as metrics from './metrics';
export * as evaluation from './evaluation';
export { CheckpointManager } from './checkpoint';
