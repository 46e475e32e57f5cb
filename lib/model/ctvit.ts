/**
 * The CTViT image encoder of CT-CLIP (native libtorch module), typed.
 *
 * `CTViT.create(config)` validates the configuration here (each error names the key and the expected value), then
 * builds the native module with deterministic, seeded initialisation. `forward` runs off the JS thread and returns
 * the image embedding (mean over T' of the quantized tokens, flattened (h, w, d)), the quantized tokens and the code
 * indices. The model starts in eval mode; `train()` switches the VQ to its training behaviour (EMA codebook update on
 * every forward, gradient estimator). See native/model/ctvit.h for the exact semantics.
 */
import { CtclipError } from '../errors';
import { NativeModel, type NativeModelOps } from './native-model';
import {
  loadAddon,
  type CTViTForwardBackwardResult,
  type CTViTForwardResult,
  type CTViTHandle,
  type CTViTInfo,
  type CTViTTensorKind,
  type RawAddon,
  type TensorHandle,
} from '../native';
import { CTViTConfigSchema, parseNativeConfig, type CTViTConfig, type ResolvedCTViTConfig } from './config';

export type {
  CTViTConfig,
  CTViTForwardBackwardResult,
  CTViTForwardResult,
  CTViTInfo,
  CTViTTensorKind,
  ResolvedCTViTConfig,
};

/** Validates a CTViT config and fills the defaults (channels 1, use_cpb true, vq straight_through, decay 0.8). */
export function resolveCTViTConfig(config: unknown): ResolvedCTViTConfig {
  return parseNativeConfig(CTViTConfigSchema, config, 'ctvit config');
}

/** Token grid of a video with `frames` slices: (T', H', W'). Throws SHAPE_ERROR when F is not divisible. */
export function ctvitGrid(config: ResolvedCTViTConfig, frames: number): [number, number, number] {
  if (!Number.isInteger(frames) || frames <= 0 || frames % config.temporal_patch_size !== 0) {
    throw new CtclipError(
      'SHAPE_ERROR',
      `ctvit: the number of frames F = ${frames} must be a positive multiple of temporal_patch_size = ${config.temporal_patch_size}`,
    );
  }
  const hp = config.image_size / config.patch_size;
  return [frames / config.temporal_patch_size, hp, hp];
}

/** int(4 · (2/3) · dim) exactly as Python evaluates it. */
export function feedForwardInnerDim(dim: number): number {
  return Math.trunc(4 * (2 / 3) * dim);
}

export interface CTViTFlops {
  /** Forward FLOPs (1 multiply or add = 1 FLOP), matmuls and convolutions only, (docs/reference.md#counting-flops). */
  forward: number;
  /** Backward FLOPs: 2× the differentiable parts, 1× for the patch embedding (weight gradient only), VQ none. */
  backward: number;
  breakdown: Record<string, number>;
}

/**
 * Analytic FLOPs of one CTViT call on a batch (docs/reference.md#counting-flops): patch embedding 2·N·P·D; per layer the q/kv/out
 * projections 2·N·D·3·inner + 2·N·inner·D, the feed-forward 2·N·D·2I + 2·N·I·D, the PEG 2·N·D·27, attention
 * 2 matmuls · 2·rows·heads·n²·dh; the CPB MLP once per call 2·S²·(2D + D² + D·heads); the VQ cosine distances
 * 2·N·K·D (+ the same again for the EMA sums in training).
 */
export function ctvitFlops(
  config: ResolvedCTViTConfig,
  batch: number,
  frames: number,
  opts: { train?: boolean } = {},
): CTViTFlops {
  const [T, H, W] = ctvitGrid(config, frames);
  const D = config.dim;
  const S = H * W;
  const N = batch * T * S;
  const P = config.channels * config.temporal_patch_size * config.patch_size * config.patch_size;
  const inner = config.heads * config.dim_head;
  const I = feedForwardInnerDim(D);
  const dense =
    2 * N * D * (inner + 2 * inner) + 2 * N * inner * D + (2 * N * D * 2 * I + 2 * N * I * D) + 2 * N * D * 27;
  const spatialAttn = 2 * 2 * (batch * T * config.heads) * S * S * config.dim_head;
  const temporalAttn = 2 * 2 * (batch * S * config.heads) * T * T * config.dim_head;
  const breakdown: Record<string, number> = {
    patchEmbed: 2 * N * P * D,
    cpb: config.use_cpb ? 2 * S * S * (2 * D + D * D + D * config.heads) : 0,
    spatialStack: config.spatial_depth * (dense + spatialAttn),
    temporalStack: config.temporal_depth * (dense + temporalAttn),
    vqDistances: 2 * N * config.codebook_size * D,
    vqEma: opts.train ? 2 * N * config.codebook_size * D : 0,
  };
  const forward = Object.values(breakdown).reduce((a, b) => a + b, 0);
  const backward = breakdown.patchEmbed + 2 * (breakdown.cpb + breakdown.spatialStack + breakdown.temporalStack);
  return { forward, backward, breakdown };
}

export interface StateDict {
  names: string[];
  tensors: TensorHandle[];
  kinds: CTViTTensorKind[];
  shapes: number[][];
}

/** The addon functions behind `CTViT`. */
function ctvitOps(addon: RawAddon): NativeModelOps<CTViTHandle, ResolvedCTViTConfig, CTViTInfo, StateDict> {
  return {
    create: addon.createCTViT,
    info: addon.ctvitInfo,
    setTraining: addon.ctvitSetTraining,
    stateDict: addon.ctvitStateDict,
    loadStateDict: addon.ctvitLoadStateDict,
  };
}

/** A native CTViT encoder. Its state dict keys are the reference's without the `visual_transformer.` prefix. */
export class CTViT extends NativeModel<CTViTHandle, ResolvedCTViTConfig, CTViTInfo, StateDict> {
  /** Builds a model with seeded initialisation (same seed ⇒ same weights). Starts in eval mode. */
  static create(config: CTViTConfig): CTViT {
    return new CTViT(resolveCTViTConfig(config), ctvitOps(loadAddon()));
  }

  /** Length of the image embedding: H'·W'·dim. */
  get embeddingDim(): number {
    const hp = this.config.image_size / this.config.patch_size;
    return hp * hp * this.config.dim;
  }

  /** video: (B, channels, F, image_size, image_size) float32. In training mode the codebook EMA runs once. */
  forward(video: TensorHandle, opts: { returnIntermediates?: boolean } = {}): Promise<CTViTForwardResult> {
    return loadAddon().ctvitForward(this.handle, video, opts);
  }

  /** Forward, then backward of Σ embedding ⊙ gradOutput; returns this call's parameter gradients. */
  forwardBackward(
    video: TensorHandle,
    gradOutput: TensorHandle,
    opts: { returnIntermediates?: boolean } = {},
  ): Promise<CTViTForwardBackwardResult> {
    return loadAddon().ctvitForwardBackward(this.handle, video, gradOutput, opts);
  }

  /** The vector quantizer alone on x (B, N, dim), optionally backpropagating gradOutput to x. */
  vqForward(x: TensorHandle, gradOutput?: TensorHandle) {
    return loadAddon().ctvitVqForward(this.handle, x, gradOutput);
  }
}
