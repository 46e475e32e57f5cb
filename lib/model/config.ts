/**
 * The native CT-CLIP configuration from a validated run config (lib/config/schema.ts): `model.*` gives the
 * architecture (CTViT image encoder, BERT text encoder, latent width, loss), `training.*` the step hyper-parameters
 * (precision, clipping, AdamW), `experiment.seed` the seed from which every model-side random stream (weights,
 * dropout) derives.
 */
import type { Config } from '../config/schema';
import { CtclipError } from '../errors';
import type { CTClipNativeConfig } from '../native';
import { Rng } from '../rng';

/**
 * Maps a run config to the native CT-CLIP config. `vocabSize` is the tokenizer's vocabulary size, used when
 * `model.text_encoder.vocab_size` is null (a non-null value must match it).
 */
export function modelConfigFromConfig(cfg: Config, vocabSize: number): CTClipNativeConfig {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) {
    throw new CtclipError('ARGUMENT_ERROR', `modelConfigFromConfig: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  const m = cfg.model;
  const te = m.text_encoder;
  const ie = m.image_encoder;
  if (te.vocab_size !== null && te.vocab_size !== vocabSize) {
    throw new CtclipError(
      'CONFIG_ERROR',
      `model.text_encoder.vocab_size: ${te.vocab_size} does not match the tokenizer's vocabulary of ${vocabSize} entries`,
    );
  }
  const t = cfg.training;
  const extra = m as unknown as { clamp_temperature?: unknown };
  return {
    image: {
      dim: ie.dim,
      codebook_size: ie.codebook_size,
      image_size: ie.image_size,
      patch_size: ie.patch_size,
      temporal_patch_size: ie.temporal_patch_size,
      spatial_depth: ie.spatial_depth,
      temporal_depth: ie.temporal_depth,
      dim_head: ie.dim_head,
      heads: ie.heads,
      channels: ie.channels,
      use_cpb: ie.use_cpb,
      vq: ie.vq,
      vq_decay: ie.vq_decay,
      activation_checkpointing: ie.activation_checkpointing,
      use_flash_attention: ie.use_flash_attention,
      use_rms_norm: ie.use_rms_norm,
      use_swiglu: ie.use_swiglu,
    },
    text: {
      vocab_size: te.vocab_size ?? vocabSize,
      hidden_size: te.hidden_size,
      num_hidden_layers: te.num_hidden_layers,
      num_attention_heads: te.num_attention_heads,
      intermediate_size: te.intermediate_size,
      max_position_embeddings: te.max_position_embeddings,
      layer_norm_eps: te.layer_norm_eps,
      hidden_dropout_prob: te.hidden_dropout_prob,
      attention_probs_dropout_prob: te.attention_probs_dropout_prob,
    },
    dim_latent: m.dim_latent,
    loss: m.loss.type,
    // Not in the schema yet (proposed key model.clamp_temperature, default false): honoured when present.
    clamp_temperature: typeof extra.clamp_temperature === 'boolean' ? extra.clamp_temperature : false,
    seed: Rng.derive(cfg.experiment.seed, 'model').nextUint32(),
    training: {
      precision: t.mixed_precision === 'no' ? 'fp32' : t.mixed_precision,
      max_grad_norm: t.max_grad_norm,
      weight_decay: t.weight_decay,
      betas: [t.betas[0], t.betas[1]],
      eps: t.eps,
      gather: m.loss.gather,
      local_loss: m.loss.local_loss,
      bucket_bytes: Math.max(1, Math.round(cfg.distributed.bucket_mb * 1024 * 1024)),
    },
  };
}
