/**
 * ctclip's public API for other TypeScript tools. Import from the package root:
 *
 *   import { loadConfig, planRun, Tokenizer, CTClip, createModel, zeroShot, Trainer, metrics, data } from 'ctclip';
 *
 * Importing the package never loads the native addon: it is loaded on first use of a tensor, model or trainer
 * function (set `CTCLIP_ADDON=/path/to/ctclip.node` to use a particular build). Every error raised on purpose is
 * a `CtclipError` with a stable `code` (see `ERROR_CODES`). The raw native surface (lib/native.ts) is
 * deliberately not re-exported wholesale: only the typed wrappers are.
 *
 * Areas: configuration (`loadConfig`), run planning (`planRun` / `planSchedule`, `lrAt`), data (`data.*`: shard
 * index, reader, loaders, tar writer, synthetic data), text (`Tokenizer`), the model (`CTClip` and the
 * `createModel` / `loadModel` / `saveModel` / `encodeTexts` / `zeroShot` helpers), training (`Trainer` and its
 * events), multi-process launch (`launch`), checkpoints (`CheckpointManager`), weights import/export
 * (`weights.*`), metrics (`metrics.*`) and evaluation output (`evaluation.*`).
 */
import type { ErrorCode } from './errors';
import { planRun } from './plan';

// ── errors ────────────────────────────────────────────────────────────────────────────────────────────────────
/** The typed error class (`err.code` is an `ErrorCode`) and a guard that also recognises native errors. */
export { CtclipError, hasCode, type ErrorCode } from './errors';

/**
 * Every `ErrorCode`, for callers that branch on codes: CONFIG_ERROR / ARGUMENT_ERROR (bad input; the CLI exits
 * 2), IO_ERROR, DATA_ERROR, PLAN_ERROR, SHAPE_ERROR, TORCH_ERROR, NATIVE_ERROR (runtime; exit 1), DIST_ERROR,
 * DIST_TIMEOUT (distributed training), ADDON_MISSING / ADDON_MISMATCH (the native addon is not built, or was
 * built against another libtorch than the one loaded), DEVICE_UNAVAILABLE (a CUDA device libtorch does not see),
 * OUT_OF_MEMORY (an allocation failed, e.g. CUDA out of memory: try a smaller batch), NON_FINITE (training stopped
 * after training.max_consecutive_skipped_steps non-finite steps in a row; exit 1).
 */
export const ERROR_CODES = [
  'CONFIG_ERROR',
  'ARGUMENT_ERROR',
  'ADDON_MISSING',
  'ADDON_MISMATCH',
  'IO_ERROR',
  'DATA_ERROR',
  'PLAN_ERROR',
  'TORCH_ERROR',
  'SHAPE_ERROR',
  'DIST_ERROR',
  'DIST_TIMEOUT',
  'NATIVE_ERROR',
  'DEVICE_UNAVAILABLE',
  'OUT_OF_MEMORY',
  'NON_FINITE',
] as const satisfies readonly ErrorCode[];
// Compile-time check that ERROR_CODES lists every ErrorCode.
type MissingErrorCode = Exclude<ErrorCode, (typeof ERROR_CODES)[number]>;
const _allErrorCodesListed: MissingErrorCode extends never ? true : MissingErrorCode = true;
void _allErrorCodesListed;

/** Seeded random numbers (`new Rng(seed)`, `Rng.derive(seed, ...labels)`); every random stream of ctclip uses it. */
export { Rng, type RngState } from './rng';

// ── configuration ─────────────────────────────────────────────────────────────────────────────────────────────
/**
 * `loadConfig(file, {overrides})` reads a YAML config (`_base_` inheritance, `${VAR}` expansion, `k=v`
 * overrides) and validates it; `parseConfig` validates an in-memory tree; `applyOverride` applies one `k=v`.
 * Errors are CONFIG_ERROR naming the file, key and value. Keys: docs/configuration.md.
 */
export { loadConfig, parseConfig, applyOverride, type LoadConfigOptions, type LoadedConfig } from './config/load';
/**
 * `migrateConfig(file, opts)`: a config (the original Python pipeline's format or ctclip's) as commented
 * ctclip-native YAML that loads back to the same resolved config (`ctclip config migrate`; docs/migrating.md).
 * `KeyNote`: one ignored, translated or defaulted key of an original-format config (`LoadedConfig.notes`).
 */
export { migrateConfig, type MigratedConfig } from './config/migrate';
export { type KeyNote } from './config/original';
/** The zod schema of a config, the validated `Config` type (defaults filled) and the YAML input type. */
export { ConfigSchema, DEFAULT_PROMPTS, type Config, type ConfigInput } from './config/schema';
/** The configuration reference (every key's path, type, default, description), as data or as Markdown. */
export {
  configKeyReference,
  renderConfigReference,
  missingDescriptions,
  type ConfigKeyReference,
} from './config/reference';

// ── planning and the learning-rate schedule ──────────────────────────────────────────────────────────────────
/**
 * Step math: `epochGeometry` / `stepsPerEpoch` (S = ⌊N / (B·W·A)⌋ and the dropped remainder), `lrFactor` /
 * `lrAt` (linear warmup then cosine to `min_lr_ratio`; optimizer step k is 1-based).
 */
export {
  epochGeometry,
  stepsPerEpoch,
  lrFactor,
  lrAt,
  type EpochGeometry,
  type StepsPerEpochInput,
  type LrScheduleParams,
} from './schedule';
/**
 * `planRun(config, {samples, worldSize})`: the run plan (steps per epoch, total steps, warmup, eval and save
 * cadence; PLAN_ERROR naming the key when a cadence is < 1), and `formatPlan(plan)`: the lines `ctclip plan` and
 * the trainer print.
 */
export { planRun, formatPlan, type RunPlan, type PlanInput } from './plan';
/**
 * Alias of `planRun`, kept for callers that use this name: the run plan is the training
 * schedule (steps/epoch, total steps, warmup, eval and save cadence) of a config on N samples and W ranks.
 */
export const planSchedule: typeof planRun = planRun;

// ── native runtime and tensors ────────────────────────────────────────────────────────────────────────────────
/** `addonAvailable()`: whether the native addon can be loaded (never throws). Tensor and build-info types. */
export {
  addonAvailable,
  type BuildInfo,
  type Dtype,
  type TensorHandle,
  type TensorInfo,
  type TensorData,
} from './native';
/** The tensor bridge: zero-copy `tensorFromBuffer(view, dtype, shape)`, `readTensor` (copy out), `tensorInfo`, `transformTensor`. */
export { tensorFromBuffer, readTensor, tensorInfo, transformTensor, bytesPerElement, numel } from './tensor';
/** libtorch intra-op threads: `configureThreads(n?)` sets them (config, `CTCLIP_THREADS`, else the CPU count). */
export { configureThreads, resolveThreads } from './runtime';

/** Native build and runtime facts (libtorch compiled/loaded, CUDA, collectives, threads, BLAS). Loads the addon. */
export function buildInfo(): import('./native').BuildInfo {
  return (require('./native') as typeof import('./native')).loadAddon().buildInfo();
}

// ── text ──────────────────────────────────────────────────────────────────────────────────────────────────────
/**
 * The WordPiece tokenizer (Hugging Face `BertTokenizer` equivalent): `Tokenizer.fromVocabFile(vocab.txt)` (or a
 * transformers 5 `tokenizer.json`: `Tokenizer.fromTokenizerJson`, `readTokenizerJsonVocab`; `folderVocabFile(dir)`
 * picks a folder's), `encode(text, maxLength)`, `encodeBatch(texts, maxLength)` (int64 rows for the model).
 * `buildWordPieceVocab` builds a vocabulary from a corpus.
 */
export { Tokenizer, type TokenizerOptions, type Encoding, type BatchEncoding } from './text/tokenizer';
export { readTokenizerJsonVocab, type TokenizerJsonVocab } from './text/tokenizer-json';
export { folderVocabFile } from './text/folder-vocab';
export { buildWordPieceVocab, vocabToText } from './text/vocab-builder';

// ── the model ─────────────────────────────────────────────────────────────────────────────────────────────────
/**
 * The native CT-CLIP model: `CTClip.create(nativeConfig)`, `encodeText(ids, mask)`, `encodeImage(volumes)`,
 * `zeroShot(imageLatents, promptLatents)`, `forward`, `trainStep`, `stateDict` / `loadStateDict`, `dispose()`.
 * `modelConfigFromConfig(config, vocabSize)` maps a run config to the native config; `textTensors` turns a
 * `BatchEncoding` into int64 tensors; `zeroShotPromptTexts` expands the prompt templates over class names.
 */
export {
  CTClip,
  resolveCTClipConfig,
  textTensors,
  zeroShotPromptTexts,
  type CTClipBatch,
  type CTClipConfig,
  type CTClipForwardResult,
  type CTClipInfo,
  type CTClipStateDict,
  type CTClipStepResult,
} from './model/ctclip';
export { modelConfigFromConfig } from './model/config';
/**
 * Convenience wrappers: `createModel(config)` (model + tokenizer from a run config), `loadModel(config,
 * checkpoint)` (as `ctclip infer --checkpoint`: our safetensors, checkpoint folder, run directory or a PyTorch
 * file), `saveModel(model, file)` (reference-named safetensors), `encodeTexts(model, tokenizer, texts, maxLength)`
 * and `zeroShot(model, tokenizer, volumes, classNames)` (P(present) per class, scored as validation scores).
 * Devices: `await model.to('cuda:0')`, `createModelOn(config, {device})`, `loadModel(config, checkpoint, {device})`;
 * `resolveDevice(request, {cudaDeviceCount, localRank})` is how a request ('auto' | 'cpu' | 'cuda' | 'cuda:N') becomes a
 * concrete device; without a request, the config's `device` section (`device.use_cuda`, `device.cuda_device`) decides.
 */
export {
  createModel,
  createModelOn,
  loadModel,
  saveModel,
  encodeTexts,
  zeroShot,
  type CreateModelOptions,
  type LoadedModel,
  type ModelWithTokenizer,
  type ZeroShotOptions,
  type ZeroShotResult,
} from './api';
export { resolveDevice, type Device, type DeviceRequest } from './model/device';
/**
 * Zero-shot scoring building blocks shared by validation, `ctclip infer` and `ctclip predict`: `encodePrompts`
 * (the (2C, latent) prompt latents), `scoreVolumes` (P(present) of one batch), `zeroShotScores` (a whole loader).
 */
export {
  encodePrompts,
  scoreVolumes,
  zeroShotScores,
  type ZeroShotPrompts,
  type ZeroShotSettings,
  type ZeroShotScores,
} from './zeroshot/zero-shot';

// ── training ──────────────────────────────────────────────────────────────────────────────────────────────────
/**
 * The trainer (what `node lib/train.js` runs): `await Trainer.create({config, resume?, initFrom?})`, then
 * `await trainer.fit()` → `TrainResult`. It is an EventEmitter; see `TrainerEvents` for the events and their
 * payloads. `trainer.requestStop(reason)` (e.g. from a listener, for early stopping) finishes the current step,
 * saves a checkpoint and returns with status 'stopped'.
 */
export {
  Trainer,
  type TrainerOptions,
  type TrainResult,
  type TrainStatus,
  type StepEvent,
  type EvalEvent,
  type CheckpointEvent,
} from './train/trainer';
/**
 * The trainer's events and payloads, for typed listeners:
 *
 *   trainer.on('step', (e: TrainerEvents['step']) => …)
 *
 * - `step`: after every optimizer step (also a skipped, non-finite one: `skipped: true`): loss, LR, grad norm,
 *   temperature, step and data time;
 * - `eval`: after each validation, with the full `ValidationOutcome` (metrics, per class);
 * - `checkpoint`: after each checkpoint is committed: its path, whether it is the new best, and why it was saved.
 */
export interface TrainerEvents {
  step: import('./train/trainer').StepEvent;
  eval: import('./train/trainer').EvalEvent;
  checkpoint: import('./train/trainer').CheckpointEvent;
}

/**
 * The torchrun-style launcher (what `node lib/launch.js` / `ctclip launch` run): `await launch({nprocPerNode,
 * script, args, nnodes?, nodeRank?, masterAddr?, masterPort?, maxRestarts?})` starts the workers on this node with
 * the torchrun environment, prefixes their output with `[rank N] `, restarts them all with `--resume latest` after
 * a failure (up to `maxRestarts`) and forwards SIGINT/SIGTERM; resolves with the outcome and the exit code.
 */
export { launch, type LaunchOptions, type LaunchResult, type WorkerFailure } from './commands/launch';

/**
 * Data parallel from your own code (docs/distributed.md): `distEnvFrom(process.env)` reads the job's place from the
 * torchrun (or SLURM) environment; `await ProcessGroup.init(env, {backend, timeoutMs})` joins the c10d group; pass
 * it as `Trainer.create({..., group})`, or use its collectives (`allReduceSum`, `allGather`, `broadcast`,
 * `barrier`, `gatherRows`) directly. Collectives fail with DIST_ERROR / DIST_TIMEOUT naming the ranks that stopped
 * answering.
 */
export { distEnvFrom, firstSlurmHost, type DistEnv } from './dist/env';
export { ProcessGroup, distBackends, type ProcessGroupOptions, type DistBackend } from './dist/group';

// ── checkpoints and weights ───────────────────────────────────────────────────────────────────────────────────
/**
 * Crash-safe step-named checkpoint folders with checksum manifests, `latest`/`best` pointers and retention
 * (docs/checkpoints.md): `new CheckpointManager({dir, keepLastN})`, `save`, `resolve('latest' | 'best' | path)`.
 */
export { CheckpointManager } from './checkpoint';
/** Checkpoint folder internals: reading parts and meta, manifest verification, names (`import { checkpoint }`). */
export * as checkpoint from './checkpoint';
/**
 * Weights import/export (docs/weights.md): `loadWeightsFile` (safetensors or torch.save, no pickle code run),
 * `saveWeights`, `importTorchFile`, Hugging Face BERT folders (`importHfBertFolder`, `writeHfBertFolder`). Loads are
 * bounded and checked (docs/limits.md): `importTorchFile(file, {expected, maxBytes})` reads only the expected keys
 * within a byte budget (`importBudget`), every route refuses NaN / Inf weights (`assertFiniteWeights`), and
 * `readModelSafetensors` is the checkpoint-resume read with the same checks.
 */
export * as weights from './weights';

// ── data, metrics, evaluation ─────────────────────────────────────────────────────────────────────────────────
/**
 * WebDataset shards (docs/data.md): the shard index (`indexShards`, `buildIndex`, `writeIndex`, `openIndex`),
 * the sample reader (`SampleReader`), the loaders (`TrainLoader`, `EvalLoader`, `EpochSampler`), the tar writer
 * (`TarWriter`), brace patterns, float16 helpers (`float16HasNonFinite`), the synthetic dataset writer
 * (`writeSynthDataset`) and the stable bad-sample reason names (`BAD_SAMPLE_REASONS`, as in
 * `loader.stats().badSamples.byReason`).
 */
export * as data from './data';
/** Shard index and I/O at the top level too (the same functions as under `data`). */
export {
  indexShards,
  buildIndex,
  writeIndex,
  openIndex,
  openIndexFile,
  SampleReader,
  TarWriter,
  TrainLoader,
  EvalLoader,
  writeSynthDataset,
} from './data';
/**
 * The metrics library (pure TypeScript, float64, scikit-learn semantics): `metrics.auroc`, `metrics.auprc`,
 * `metrics.bootstrap`, `binaryMetrics`, `evaluateMultiLabel` (macro/weighted), `retrievalMetrics`, percentiles.
 */
export * as metrics from './metrics/public';
/** Evaluation output: `writeEvaluation` (results.json, predictions.csv, per_class.csv, report.html) and its parts. */
export * as evaluation from './results';
