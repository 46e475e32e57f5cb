/**
 * The ONE module that loads the native addon (`build/Release/ctclip.node`) and types its raw surface.
 * Everything else imports from here (or from the public API), never the `.node` file itself.
 *
 * Loading checks, in order, and each failure is an actionable `CtclipError`:
 *  - the addon exists (ADDON_MISSING: how to provide libtorch and build it);
 *  - the dynamic loader can resolve it (ADDON_MISMATCH when libtorch symbols are missing: built against another
 *    libtorch than the one found at run time);
 *  - the libtorch version it runs with equals the one it was compiled against (ADDON_MISMATCH).
 *
 * Handles are branded so that a tensor handle cannot be passed where a model handle is expected.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from './errors';
// The native model configs are defined once, as zod schemas (types only here: nothing is loaded).
import type {
  BertNativeConfig,
  CTClipNativeConfig,
  CTClipTrainingNativeConfig,
  CTViTConfig,
  ResolvedCTViTConfig,
} from './model/config';

export type { BertNativeConfig, CTClipNativeConfig, CTClipTrainingNativeConfig, CTViTConfig };

declare const brand: unique symbol;
/** An opaque native object, distinguished at compile time by its brand. */
export type Handle<B extends string> = { readonly [brand]: B; dispose(): void; readonly disposed: boolean };
/** A libtorch tensor owned by native code. */
export type TensorHandle = Handle<'Tensor'>;

export type Dtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';

/** One kernel choice (native/model/kernel_choice.h): ATen or ours for a kernel and shape, and why. */
export interface KernelChoice {
  kernel: 'bmm_nn' | 'bmm_nt' | 'peg' | 'geglu' | 'adamw';
  shape: string;
  source: 'table' | 'calibrated' | 'forced';
  custom: boolean;
  customMs?: number;
  atenMs?: number;
}

export interface BuildInfo {
  compiledTorchVersion: string;
  runtimeTorchVersion: string;
  torchLibraryPath: string;
  compiledTorchLibDir: string;
  torchSource: string;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  nccl: boolean;
  gloo: boolean;
  sdpa: boolean;
  threads: number;
  interopThreads: number;
  hardwareConcurrency: number;
  blas: string;
  cpuCapability: string;
  parallelBackend: string;
  napiVersion: number;
  /** The kernel mode per custom CPU kernel, 'bmm_nn=table,bmm_nt=table,…' (see setKernelMode). */
  kernelMode: string;
  /** The glibc malloc settings applied when the addon loaded, or 'off (why)' (native/core/allocator_tuning.h). */
  allocatorTuning: string;
}

export interface TensorInfo {
  shape: number[];
  dtype: Dtype;
  device: string;
  contiguous: boolean;
  nbytes: number;
  /** True when the tensor's storage is a JS buffer (fromBuffer without a copy). */
  borrowsJsMemory: boolean;
}

export type TypedData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

export interface TensorData {
  data: TypedData;
  dtype: Dtype;
  shape: number[];
}

/** The raw native surface. Argument validation happens in the TS wrappers; native code re-checks cheaply. */
export interface RawAddon {
  buildInfo(): BuildInfo;
  setNumThreads(intraOp: number, interOp?: number): number;
  /** Bytes of natively owned memory currently reported to V8 (AdjustExternalMemory's running total). */
  externalMemory(): number;
  fromBuffer(view: ArrayBufferView, dtype: Dtype, shape: number[]): TensorHandle;
  toTypedArray(tensor: TensorHandle): TensorData;
  tensorInfo(tensor: TensorHandle): TensorInfo;
  transform(tensor: TensorHandle, opts: { permute?: number[]; dtype?: Dtype }): Promise<TensorHandle>;
  // --- CTViT model ---
  createCTViT(config: CTViTConfig): CTViTHandle;
  ctvitForward(
    model: CTViTHandle,
    video: TensorHandle,
    opts?: { returnIntermediates?: boolean },
  ): Promise<CTViTForwardResult>;
  ctvitForwardBackward(
    model: CTViTHandle,
    video: TensorHandle,
    gradOutput: TensorHandle,
    opts?: { returnIntermediates?: boolean },
  ): Promise<CTViTForwardBackwardResult>;
  ctvitVqForward(
    model: CTViTHandle,
    x: TensorHandle,
    gradOutput?: TensorHandle,
  ): Promise<{ quantized: TensorHandle; indices: TensorHandle; commitLoss?: TensorHandle; grad?: TensorHandle }>;
  ctvitSetTraining(model: CTViTHandle, training: boolean): void;
  ctvitInfo(model: CTViTHandle): CTViTInfo;
  ctvitStateDict(model: CTViTHandle): {
    names: string[];
    tensors: TensorHandle[];
    kinds: CTViTTensorKind[];
    shapes: number[][];
  };
  ctvitLoadStateDict(
    model: CTViTHandle,
    names: string[],
    tensors: TensorHandle[],
    opts?: { strict?: boolean },
  ): { missing: string[]; unexpected: string[] };
  loadSafetensors(path: string): Promise<SafetensorsContent>;
  saveSafetensors(
    path: string,
    names: string[],
    tensors: TensorHandle[],
    metadata?: Record<string, string>,
  ): Promise<void>;
  // --- weights checks (native/io/finite.h; wrapped by lib/weights/limits.ts) ---
  /** The first NaN / ±Inf over the floating-point tensors (list order, then row-major), or null when all are finite. */
  findNonFinite(
    tensors: TensorHandle[],
  ): Promise<{ index: number; element: number; value: 'NaN' | '+Inf' | '-Inf' } | null>;
  /** GFLOP/s of an n×n float32 matmul on this process's intra-op threads (benchmark ceiling). */
  matmulGflops(n: number, iters: number): Promise<number>;
  /**
   * The attention's batched products (native/model/batched_matmul.cc) against at::matmul on the same random inputs:
   * max |difference| of the output and both input gradients, whether the small-matrix kernel took the product, and
   * the median ms of one forward + backward of each (tests and bench).
   */
  batchedMatmulCompare(opts: {
    batch: number;
    m: number;
    k: number;
    n: number;
    transB: boolean;
    dtype?: 'float32' | 'float64';
    iters: number;
  }): Promise<{
    small: boolean;
    maxDiff: { out: number; gradA: number; gradB: number };
    smallMs: number;
    atenMs: number;
  }>;
  /**
   * Which implementation the custom CPU kernels use (native/model/kernel_choice.h): 'table' (default, per build),
   * 'calibrate', 'custom', 'aten', or per kernel 'bmm=aten,peg=calibrate,…' (kernels: bmm_nn, bmm_nt, peg, geglu,
   * adamw). Clears the recorded choices; returns the mode per kernel. The initial mode is $CTCLIP_KERNELS.
   */
  setKernelMode(spec: string): string;
  /** Every kernel choice made so far in this process (calibrated ones with both timings, ms per call). */
  kernelChoices(): KernelChoice[];
  // --- CT volume preprocessing (native/napi/volume_binding.cc over native/preprocess/volume.cc, wrapped by lib/preprocess/resample.ts) ---
  /**
   * HU (rescale never/always/auto) → clip → trilinear resample (align_corners false, fp32) → divide → centre
   * crop/pad → cast, in one AsyncWorker. `size`/`shape` are in output axis order; output axis a = input axis
   * `axes[a]`; `flip` lists input axes flipped first.
   */
  preprocessVolume(
    volume: TensorHandle,
    opts: PreprocessVolumeOptions,
  ): Promise<{ volume: TensorHandle; stats: PreprocessVolumeStats }>;
  // --- CT-CLIP model (native/napi/ctclip_binding.cc, wrapped by lib/model/ctclip.ts) ---
  createCTClip(config: CTClipNativeConfig): CTClipHandle;
  ctclipSetTraining(model: CTClipHandle, training: boolean): void;
  ctclipInfo(model: CTClipHandle): CTClipInfo;
  ctclipStateDict(model: CTClipHandle): {
    names: string[];
    tensors: TensorHandle[];
    kinds: CTViTTensorKind[];
    shapes: number[][];
  };
  ctclipLoadStateDict(
    model: CTClipHandle,
    names: string[],
    tensors: TensorHandle[],
    opts?: { strict?: boolean },
  ): { missing: string[]; unexpected: string[] };
  /** Forward without autograd (train mode still runs the VQ EMA); loss with world size 1. */
  ctclipForward(
    model: CTClipHandle,
    ids: TensorHandle,
    mask: TensorHandle,
    volumes: TensorHandle,
    opts?: { returnIntermediates?: boolean },
  ): Promise<CTClipForwardResult>;
  /** Forward + backward of loss·lossScale/accumulationSteps, adding into the gradients. */
  ctclipAccumulate(
    model: CTClipHandle,
    ids: TensorHandle,
    mask: TensorHandle,
    volumes: TensorHandle,
    opts?: { accumulationSteps?: number; returnIntermediates?: boolean; returnGrads?: boolean },
  ): Promise<CTClipForwardResult & { grads?: { names: string[]; tensors: TensorHandle[] } }>;
  ctclipOptimizerStep(
    model: CTClipHandle,
    lr: number,
    opts?: { injectNonFiniteGrad?: boolean },
  ): Promise<CTClipStepResult>;
  ctclipTrainStep(
    model: CTClipHandle,
    ids: TensorHandle,
    mask: TensorHandle,
    volumes: TensorHandle,
    lr: number,
  ): Promise<CTClipStepResult>;
  ctclipZeroGrad(model: CTClipHandle): void;
  ctclipEncodeText(model: CTClipHandle, ids: TensorHandle, mask: TensorHandle): Promise<TensorHandle>;
  ctclipEncodeImage(model: CTClipHandle, volumes: TensorHandle): Promise<TensorHandle>;
  ctclipZeroShot(
    model: CTClipHandle,
    imageLatents: TensorHandle,
    promptLatents: TensorHandle,
    scale?: number,
  ): Promise<{ logits: TensorHandle; pPresent: TensorHandle }>;
  ctclipOptimizerState(model: CTClipHandle): CTClipOptimizerState;
  ctclipLoadOptimizerState(model: CTClipHandle, state: CTClipOptimizerState): void;
  ctclipScalerState(model: CTClipHandle): CTClipScalerState;
  ctclipSetScalerState(model: CTClipHandle, state: { scale: number; growthTracker: number }): void;
  ctclipRngState(model: CTClipHandle): { init: TensorHandle; dropout: TensorHandle };
  /** `reseeded` lists streams whose state came from a generator of another device type (re-seeded from it). */
  ctclipSetRngState(
    model: CTClipHandle,
    state: { init?: TensorHandle; dropout?: TensorHandle },
  ): { reseeded: string[] };
  ctclipSetStepCounters(model: CTClipHandle, counters: { optimizerSteps: number; skippedSteps: number }): void;
  ctclipTrainStepBatches(
    model: CTClipHandle,
    batches: { ids: TensorHandle; mask: TensorHandle; volumes: TensorHandle }[],
    lr: number,
    flags?: { injectNonFiniteGrad?: boolean; stopRequested?: boolean; captureGrads?: boolean },
  ): Promise<CTClipStepResult>;
  ctclipSetDistributed(model: CTClipHandle, group: DistGroupHandle | null): void;
  ctclipBroadcastState(model: CTClipHandle, root: number): Promise<void>;
  // --- CT-CLIP device placement (native/napi/ctclip_binding.cc ToDevice, wrapped by lib/model/ctclip.ts) ---
  /**
   * Moves the model, its AdamW moments and its dropout generator to 'cpu' | 'cuda' | 'cuda:N'; resolves to the
   * device libtorch reports ('cpu', 'cuda:0', …). Rejects with DEVICE_UNAVAILABLE when libtorch has no such device.
   */
  ctclipToDevice(model: CTClipHandle, device: string): Promise<string>;

  // --- c10d collectives (native/napi/dist_binding.cc, wrapped by lib/dist/group.ts) ---
  distBackends(): { gloo: boolean; nccl: boolean };
  distInit(opts: DistInitOptions): Promise<DistGroupHandle>;
  distAllReduce(group: DistGroupHandle, tensors: TensorHandle[]): Promise<void>;
  distAllGather(group: DistGroupHandle, tensor: TensorHandle): Promise<TensorHandle>;
  distBroadcast(group: DistGroupHandle, tensors: TensorHandle[], root: number): Promise<void>;
  distBarrier(group: DistGroupHandle, what?: string): Promise<void>;
  distShutdown(group: DistGroupHandle): void;
  distStoreServer(port: number): { port: number; close(): void };
  /** Rank 0's rendezvous store alone (native/dist/store.h), listening on `host` ('' = every interface); port 0 = any. */
  distRendezvousServer(host: string, port: number): { address: string; close(): void };
  /** Ends the process with `code` at once (_exit), without joining libuv's worker threads (lib/dist/group.ts exitNow). */
  distExitNow(code: number): never;
}

export interface DistInitOptions {
  rank: number;
  worldSize: number;
  localRank?: number;
  /** Ranks on this node (LOCAL_WORLD_SIZE; default 1). Equal to worldSize: a single-node job, whose store listens on masterAddr only. */
  localWorldSize?: number;
  masterAddr?: string;
  masterPort?: number;
  /** torchrun's agent store: every rank is a client, keys under /worker/attempt_<restartCount>. */
  useAgentStore?: boolean;
  restartCount?: number;
  timeoutMs?: number;
  backend?: 'gloo' | 'nccl';
}

/** A c10d process group (opaque). */
export interface DistGroupHandle {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: 'gloo' | 'nccl';
  /** Where the rendezvous store this rank hosts listens ('127.0.0.1:29500', '*:29500'); null when it hosts none. */
  readonly storeAddress: string | null;
}

/** A native CTViT encoder. */
export type CTViTHandle = Handle<'CTViT'>;

export type CTViTTensorKind = 'parameter' | 'buffer' | 'inert';

export interface CTViTForwardResult {
  /** (B, H'·W'·dim): mean over T' of the quantized tokens, flattened (h, w, d). */
  embedding: TensorHandle;
  /** (B, T', H', W', dim): the tokens the reference returns with return_encoded_tokens=True. */
  quantized: TensorHandle;
  /** (B, T'·H'·W') int64 VQ code indices. */
  indices: TensorHandle;
  /** Scalar commitment loss (training mode only; not part of the CLIP loss). */
  commitLoss?: TensorHandle;
  /** Named activations (fixture names) when requested. */
  intermediates?: Record<string, TensorHandle>;
}

export interface CTViTForwardBackwardResult extends CTViTForwardResult {
  /** Scalar Σ embedding ⊙ gradOutput. */
  loss: TensorHandle;
  /** Gradients of the trainable parameters that received one, in state-dict order. */
  grads: { names: string[]; tensors: TensorHandle[] };
}

export interface CTViTInfo {
  config: ResolvedCTViTConfig;
  training: boolean;
  parameterCount: number;
  trainableParameterCount: number;
  device: string;
  dtype: string;
  embeddingDim: number;
  gridSize: number;
}

export interface SafetensorsContent {
  names: string[];
  tensors: TensorHandle[];
  metadata: Record<string, string>;
}

// --- CT volume preprocessing ---
export interface PreprocessVolumeOptions {
  rescale?: 'never' | 'always' | 'auto';
  slope?: number;
  intercept?: number;
  /** Air band for rescale 'auto' (default [-1100, -900] HU). */
  airLo?: number;
  airHi?: number;
  window?: [number, number];
  flip?: number[];
  axes?: [number, number, number];
  size?: [number, number, number];
  shape?: [number, number, number];
  divide?: number;
  padValue?: number;
  dtype?: 'float16' | 'float32';
  /** The caller gives up the input's memory: the op writes HU/clipped values into it (saves a volume-sized buffer). */
  inPlace?: boolean;
}

export interface PreprocessVolumeStats {
  inputMin: number;
  inputMax: number;
  voxels: number;
  /** Voxels in the air band as the data are, and after slope/intercept ('auto' only; else 0). */
  airAsIs: number;
  airRescaled: number;
  rescaled: boolean;
  /** Mode of the HU histogram in [-1500, -500) (20 HU bins, bin centre); null when no voxel is below -500. */
  airMode: number | null;
  belowMinus500: number;
  /** Fraction of output voxels above 0.99·padValue (not air/padding). */
  nonAirFraction: number;
  /** Size after resampling, output axis order. */
  resampledSize: [number, number, number];
  /** Seconds per native step (stats, huClip, resample, divide, cropPadCast). */
  seconds: Record<string, number>;
}

// --- CT-CLIP model ---
/** A native CT-CLIP model together with its trainer state (AdamW, loss scaler, step counters). */
export type CTClipHandle = Handle<'CTClip'>;

export interface CTClipInfo {
  training: boolean;
  parameterCount: number;
  trainableParameterCount: number;
  dimImage: number;
  dimLatent: number;
  loss: 'softmax' | 'siglip';
  precision: 'fp32' | 'bf16' | 'fp16';
  optimizerSteps: number;
  skippedSteps: number;
  pendingMicroBatches: number;
  temperature: number;
  device: string;
}

export interface CTClipTimings {
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
  /** Parts of forwardMs (host clocks around each phase; 0 where not measured). */
  spatialMs: number;
  temporalMs: number;
  textMs: number;
  headsMs: number;
  /** Data parallel: the step's decision + gradient all-reduces (excluded from optimizerMs). */
  allReduceMs: number;
}

export interface CTClipForwardResult {
  /** (B, latent) unit rows. */
  textLatents: TensorHandle;
  imageLatents: TensorHandle;
  /** (B, B): exp(t)·T·Iᵀ (+ logit_bias for SigLIP), rows texts. */
  logits: TensorHandle;
  loss: number;
  lossTensor: TensorHandle;
  /** 0-dim exp(temperature). */
  scale: TensorHandle;
  /** (B, N) int64 VQ code indices. */
  indices: TensorHandle;
  timings: CTClipTimings;
  /** Fixture-named activations (text_last_hidden_state, text_cls, image_embedding, vq_input, …) when requested. */
  intermediates?: Record<string, TensorHandle>;
}

export interface CTClipStepResult {
  /** Mean of the accumulated micro-batch losses. */
  loss: number;
  /** Pre-clip global L2 gradient norm (after unscaling). */
  gradNorm: number;
  clipCoef: number;
  temperature: number;
  logitScale: number;
  skipped: boolean;
  lossScale: number;
  microBatches: number;
  optimizerSteps: number;
  skippedSteps: number;
  timings: CTClipTimings;
  /** Some rank asked to stop after this step (the same on every rank). */
  stopRequested: boolean;
  worldSize: number;
  /** Data parallel: the gradient buckets all-reduced, and how many of them were sent during backward (overlap). */
  allReduceBuckets: number;
  overlappedBuckets: number;
  /** With `captureGrads`: the all-reduced, un-clipped gradients by parameter name. */
  grads?: { names: string[]; tensors: TensorHandle[] };
}

export interface CTClipOptimizerState {
  names: string[];
  exp_avg: TensorHandle[];
  exp_avg_sq: TensorHandle[];
  step: number[];
}

export interface CTClipScalerState {
  enabled: boolean;
  scale: number;
  growthTracker: number;
}

const ROOT = path.resolve(__dirname, '..');

/** Where the addon is looked for: `$CTCLIP_ADDON` (a file), else the cmake-js / node-gyp build outputs. */
export function addonCandidates(): string[] {
  if (process.env.CTCLIP_ADDON) return [path.resolve(process.env.CTCLIP_ADDON)];
  return [path.join(ROOT, 'build', 'Release', 'ctclip.node'), path.join(ROOT, 'build', 'Debug', 'ctclip.node')];
}

const HOW_TO_BUILD =
  'Build it with `npm run build:native` after providing libtorch in one of three ways: ' +
  'export LIBTORCH=/path/to/libtorch (or Torch_DIR); pip install torch; or apt-get install libtorch-dev libgloo-dev ' +
  'libopenblas0-pthread (Debian/Ubuntu; `bash scripts/setup.sh` does this as root).';

/** Compares "1.13.0" with "1.13.1": the patch level is ABI-compatible and Debian's headers say .0 for 1.13.1. */
function sameMinor(a: string, b: string): boolean {
  const [am, an] = a.split('.');
  const [bm, bn] = b.split('.');
  return am === bm && an === bn;
}

let cached: RawAddon | undefined;

/** Loads (once) and returns the raw addon, or throws ADDON_MISSING / ADDON_MISMATCH with what to do. */
export function loadAddon(): RawAddon {
  if (cached) return cached;
  const candidates = addonCandidates();
  const file = candidates.find((p) => fs.existsSync(p));
  if (!file) {
    throw new CtclipError(
      'ADDON_MISSING',
      `the ctclip native addon is not built (looked for ${candidates.join(', ')}). ${HOW_TO_BUILD}`,
    );
  }
  let addon: RawAddon;
  try {
    addon = require(file) as RawAddon;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const symbolProblem = /undefined symbol|cannot open shared object|version .* not found|wrong ELF/i.test(msg);
    throw new CtclipError(
      symbolProblem ? 'ADDON_MISMATCH' : 'ADDON_MISSING',
      `cannot load the ctclip native addon ${file}: ${msg}. ` +
        (symbolProblem
          ? 'It was most likely built against a different libtorch than the one found now; rebuild it with `npm run build:native -- --clean` (and keep LIBTORCH/Torch_DIR pointing at one install).'
          : HOW_TO_BUILD),
      { cause: e },
    );
  }
  checkBuildInfo(addon.buildInfo(), file);
  cached = addon;
  return addon;
}

/**
 * Refuses an addon whose runtime libtorch differs from the one it was compiled against (ADDON_MISMATCH).
 * Patch levels are ABI-compatible (and Debian's 1.13.1 headers say 1.13.0), so major.minor is compared.
 */
export function checkBuildInfo(
  info: Pick<BuildInfo, 'runtimeTorchVersion' | 'compiledTorchVersion' | 'torchLibraryPath' | 'compiledTorchLibDir'>,
  file: string,
): void {
  if (info.runtimeTorchVersion && !sameMinor(info.runtimeTorchVersion, info.compiledTorchVersion)) {
    throw new CtclipError(
      'ADDON_MISMATCH',
      `the ctclip addon ${file} was compiled against libtorch ${info.compiledTorchVersion} but runs with libtorch ` +
        `${info.runtimeTorchVersion} (${info.torchLibraryPath}). Rebuild with \`npm run build:native -- --clean\`, or make ` +
        `the original install (${info.compiledTorchLibDir || 'unknown'}) the one that is loaded.`,
    );
  }
}

/** Whether the addon is loaded in this process already (without loading it). */
export function addonLoaded(): boolean {
  return cached !== undefined;
}

/** Whether the addon can be loaded (for tests and `ctclip info`), without throwing. */
export function addonAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}
