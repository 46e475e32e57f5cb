/**
 * CT-CLIP (native libtorch model + training step), typed.
 *
 * `CTClip.create(config)` validates the configuration (errors name the key), then builds the native model: a BERT
 * text tower (Hugging Face `BertModel` layout), the CTViT image encoder, bias-free latent projections, a learnable
 * temperature (and logit bias for SigLIP), plus the trainer state (AdamW keyed by parameter name, a dynamic loss
 * scaler for fp16, step counters). Build a config from a run config with `modelConfigFromConfig` (./config.ts).
 *
 * Training: `trainStep(batch, lr)` = forward, backward, clip, AdamW in one native call; for gradient accumulation
 * call `accumulate(batch, {accumulationSteps: A})` A times, then `optimizerStep(lr)` (gradients are those of the
 * mean of the A micro-batch losses). A step whose loss or gradients are non-finite is skipped (`skipped: true`):
 * parameters, buffers (the codebook EMA), AdamW state, step count and the dropout stream stay exactly as they were
 * before the step; only the fp16 loss scaler backs off. The model starts in eval mode: call `train()` first.
 *
 * Zero-shot: `encodeText` the prompt pairs once per evaluation (`zeroShotPromptTexts`), `encodeImage` the volumes,
 * then `zeroShot(imageLatents, promptLatents)` = softmax over each (present, absent) pair of exp(t)·T·Iᵀ.
 *
 * Volumes: the loader's float16 (B, H, W, D) batch as a zero-copy tensor (`tensorFromBuffer(buf, 'float16',
 * [B, H, W, D])`); the permute to (B, 1, D, H, W) and the cast to float32 happen natively. (B, 1, F, H, W) float32
 * is accepted too. Token ids and masks: int64 (B, L) tensors (`textTensors(tokenizer.encodeBatch(...))`).
 */
import { CtclipError } from '../errors';
import { NativeModel, type NativeModelOps } from './native-model';
import {
  loadAddon,
  type CTClipForwardResult,
  type CTClipHandle,
  type CTClipInfo,
  type CTClipOptimizerState,
  type CTClipScalerState,
  type CTClipStepResult,
  type CTViTTensorKind,
  type DistGroupHandle,
  type RawAddon,
  type TensorHandle,
} from '../native';
import { tensorFromBuffer } from '../tensor';
import type { BatchEncoding } from '../text/tokenizer';
import { CTClipConfigSchema, parseNativeConfig, type CTClipNativeConfig, type ResolvedCTClipConfig } from './config';

export type {
  CTClipForwardResult,
  CTClipInfo,
  CTClipNativeConfig as CTClipConfig,
  CTClipOptimizerState,
  ResolvedCTClipConfig,
  CTClipScalerState,
  CTClipStepResult,
};

export interface CTClipBatch {
  /** (B, L) int64 token ids. */
  inputIds: TensorHandle;
  /** (B, L) int64 attention mask (1 = real token). */
  attentionMask: TensorHandle;
  /** (B, H, W, D) float16/float32 as the loader gives it, or (B, 1, F, H, W) float32. */
  volumes: TensorHandle;
}

export interface CTClipStateDict {
  names: string[];
  tensors: TensorHandle[];
  kinds: CTViTTensorKind[];
  shapes: number[][];
}

function argError(message: string): CtclipError {
  return new CtclipError('ARGUMENT_ERROR', message);
}

/** Validates a CT-CLIP config (each error names the key and the value) and fills the defaults. */
export function resolveCTClipConfig(config: unknown): ResolvedCTClipConfig {
  return parseNativeConfig(CTClipConfigSchema, config, 'ctclip config');
}

/** int64 (B, L) tensors from the tokenizer's `encodeBatch` output (no copy). */
export function textTensors(enc: BatchEncoding): { inputIds: TensorHandle; attentionMask: TensorHandle } {
  const shape = [enc.batchSize, enc.maxLength];
  return {
    inputIds: tensorFromBuffer(enc.inputIds, 'int64', shape),
    attentionMask: tensorFromBuffer(enc.attentionMask, 'int64', shape),
  };
}

/**
 * The zero-shot prompt texts, class after class: [positive(c0), negative(c0), positive(c1), …], from the
 * `validation.prompts` templates (`{p}` = class name). Encode them once per evaluation.
 */
export function zeroShotPromptTexts(
  classes: readonly string[],
  prompts: { positive: string; negative: string },
): string[] {
  for (const [key, template] of Object.entries(prompts)) {
    if (typeof template !== 'string' || !template.includes('{p}')) {
      throw argError(`validation.prompts.${key}: the template must contain '{p}', got ${JSON.stringify(template)}`);
    }
  }
  const out: string[] = [];
  for (const c of classes) {
    out.push(prompts.positive.split('{p}').join(c), prompts.negative.split('{p}').join(c));
  }
  return out;
}

function checkLr(lr: number, fn: string): void {
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
    throw argError(
      `${fn}: the learning rate (training.learning_rate schedule) must be a finite number >= 0, got ${lr}`,
    );
  }
}

/** The addon functions behind `CTClip`. */
function ctclipOps(addon: RawAddon): NativeModelOps<CTClipHandle, ResolvedCTClipConfig, CTClipInfo, CTClipStateDict> {
  return {
    create: addon.createCTClip,
    info: addon.ctclipInfo,
    setTraining: addon.ctclipSetTraining,
    stateDict: addon.ctclipStateDict,
    loadStateDict: addon.ctclipLoadStateDict,
  };
}

/**
 * A native CT-CLIP model with its trainer state. Its state dict uses the reference's full CTCLIP key names;
 * `loadStateDict` drops the stale `text_transformer.embeddings.position_ids` of older files.
 */
export class CTClip extends NativeModel<CTClipHandle, ResolvedCTClipConfig, CTClipInfo, CTClipStateDict> {
  /** Builds a model with seeded initialisation (same seed ⇒ same weights). Starts in eval mode. */
  static create(config: CTClipNativeConfig): CTClip {
    return new CTClip(resolveCTClipConfig(config), ctclipOps(loadAddon()));
  }

  /** The device the model lives on, as libtorch names it ('cpu', 'cuda:0', …). */
  get device(): string {
    return this.info().device;
  }

  /**
   * Moves the model (every parameter and buffer, codebook EMA buffers included), its AdamW moments and its dropout
   * generator to `device` ('cpu' | 'cuda' | 'cuda:N'); gradients and pending micro-batches are dropped. Inputs stay
   * CPU tensors (moved natively, volumes as float16), and every tensor this class returns is a CPU tensor, so
   * checkpoints are device-independent. Rejects with DEVICE_UNAVAILABLE when libtorch has no such device. Use
   * `resolveDevice` (./device.ts) to turn a request ('auto', 'cuda') into a concrete device first.
   */
  async to(device: string): Promise<this> {
    if (typeof device !== 'string')
      throw argError(`to(device): device must be a string ('cpu', 'cuda' or 'cuda:N'), got ${JSON.stringify(device)}`);
    await loadAddon().ctclipToDevice(this.handle, device);
    return this;
  }

  /** Forward without autograd: latents, logits, loss (world size 1), optionally the fixture-named intermediates. */
  forward(batch: CTClipBatch, opts: { returnIntermediates?: boolean } = {}): Promise<CTClipForwardResult> {
    return loadAddon().ctclipForward(this.handle, batch.inputIds, batch.attentionMask, batch.volumes, opts);
  }

  /**
   * One micro-batch: forward + backward of loss/accumulationSteps, added into the gradients. `returnGrads` copies
   * the accumulated (un-clipped) gradients out, keyed by parameter name in state-dict order.
   */
  accumulate(
    batch: CTClipBatch,
    opts: { accumulationSteps?: number; returnIntermediates?: boolean; returnGrads?: boolean } = {},
  ): Promise<CTClipForwardResult & { grads?: { names: string[]; tensors: TensorHandle[] } }> {
    const a = opts.accumulationSteps ?? 1;
    if (!Number.isSafeInteger(a) || a < 1) {
      throw argError(
        `accumulate: accumulationSteps (training.gradient_accumulation_steps) must be an integer >= 1, got ${a}`,
      );
    }
    return loadAddon().ctclipAccumulate(this.handle, batch.inputIds, batch.attentionMask, batch.volumes, {
      ...opts,
      accumulationSteps: a,
    });
  }

  /** Unscale, pre-clip norm, skip if non-finite, clip, AdamW at `lr`, loss-scale update, gradients reset. */
  optimizerStep(lr: number, opts: { injectNonFiniteGrad?: boolean } = {}): Promise<CTClipStepResult> {
    checkLr(lr, 'optimizerStep');
    return loadAddon().ctclipOptimizerStep(this.handle, lr, opts);
  }

  /** accumulate(batch) + optimizerStep(lr) in one native call. */
  trainStep(batch: CTClipBatch, lr: number): Promise<CTClipStepResult> {
    checkLr(lr, 'trainStep');
    return loadAddon().ctclipTrainStep(this.handle, batch.inputIds, batch.attentionMask, batch.volumes, lr);
  }

  /**
   * The trainer's step over the A micro-batches of one optimizer step (native/train/step.h TrainStep): with
   * `loss.gather` the contrastive loss of the whole global batch (A·B·W samples, open_clip's feature cache), else
   * the reference's per-micro-batch loss; then the optimizer step. `stopRequested` is all-reduced over ranks and
   * comes back in the result, so every rank stops at the same step.
   */
  trainStepBatches(
    batches: CTClipBatch[],
    lr: number,
    flags: { injectNonFiniteGrad?: boolean; stopRequested?: boolean; captureGrads?: boolean } = {},
  ): Promise<CTClipStepResult> {
    checkLr(lr, 'trainStepBatches');
    if (batches.length === 0) throw argError('trainStepBatches: at least one micro-batch is needed');
    return loadAddon().ctclipTrainStepBatches(
      this.handle,
      batches.map((b) => ({ ids: b.inputIds, mask: b.attentionMask, volumes: b.volumes })),
      lr,
      flags,
    );
  }

  /** Data parallel: reduce gradients, codebook statistics and step decisions over `group` (null: single process). */
  setDistributed(group: DistGroupHandle | null): void {
    loadAddon().ctclipSetDistributed(this.handle, group);
  }

  /** Every parameter and buffer becomes rank `root`'s (identical starting weights everywhere). */
  broadcastState(root = 0): Promise<void> {
    return loadAddon().ctclipBroadcastState(this.handle, root);
  }

  /**
   * Drops accumulated gradients (set to undefined) and any pending micro-batches. A step in progress is abandoned
   * like a skipped one: the codebook EMA updates of its micro-batches and its dropout draws are rolled back.
   */
  zeroGrad(): void {
    loadAddon().ctclipZeroGrad(this.handle);
  }

  /** (B, latent) unit text latents (no autograd). */
  encodeText(inputIds: TensorHandle, attentionMask: TensorHandle): Promise<TensorHandle> {
    return loadAddon().ctclipEncodeText(this.handle, inputIds, attentionMask);
  }

  /** (B, latent) unit image latents (no autograd; eval mode leaves the codebook untouched). */
  encodeImage(volumes: TensorHandle): Promise<TensorHandle> {
    return loadAddon().ctclipEncodeImage(this.handle, volumes);
  }

  /**
   * Zero-shot scores: logits (N, C, 2) = scale·⟨prompt, image⟩ and pPresent (N, C) = softmax over each pair,
   * element 0. `promptLatents` is (C, 2, latent) or (2·C, latent) ordered as `zeroShotPromptTexts`. The scale
   * defaults to the model's exp(temperature).
   */
  zeroShot(
    imageLatents: TensorHandle,
    promptLatents: TensorHandle,
    opts: { scale?: number } = {},
  ): Promise<{ logits: TensorHandle; pPresent: TensorHandle }> {
    if (opts.scale !== undefined && (typeof opts.scale !== 'number' || !Number.isFinite(opts.scale))) {
      throw argError(`zeroShot: scale must be a finite number, got ${opts.scale}`);
    }
    return loadAddon().ctclipZeroShot(this.handle, imageLatents, promptLatents, opts.scale);
  }

  /** AdamW state by parameter name (copies), for checkpoints. */
  optimizerState(): CTClipOptimizerState {
    return loadAddon().ctclipOptimizerState(this.handle);
  }

  loadOptimizerState(state: CTClipOptimizerState): void {
    const n = state.names.length;
    if (state.exp_avg.length !== n || state.exp_avg_sq.length !== n || state.step.length !== n) {
      throw argError('loadOptimizerState: names, exp_avg, exp_avg_sq and step must have the same length');
    }
    loadAddon().ctclipLoadOptimizerState(this.handle, state);
  }

  scalerState(): CTClipScalerState {
    return loadAddon().ctclipScalerState(this.handle);
  }

  setScalerState(state: { scale: number; growthTracker: number }): void {
    loadAddon().ctclipSetScalerState(this.handle, state);
  }

  /** States of the init and dropout generators (uint8 tensors), for checkpoints. */
  rngState(): { init: TensorHandle; dropout: TensorHandle } {
    return loadAddon().ctclipRngState(this.handle);
  }

  /**
   * Restores generator states. A dropout state saved on another device type (CPU mt19937 vs CUDA Philox) cannot be
   * restored: the dropout generator is then re-seeded deterministically from it and 'dropout' is listed in
   * `reseeded` (the caller warns).
   */
  setRngState(state: { init?: TensorHandle; dropout?: TensorHandle }): { reseeded: string[] } {
    return loadAddon().ctclipSetRngState(this.handle, state);
  }

  /** Restores the optimizer-step / skipped-step counters (resume). */
  setStepCounters(counters: { optimizerSteps: number; skippedSteps: number }): void {
    loadAddon().ctclipSetStepCounters(this.handle, counters);
  }
}
