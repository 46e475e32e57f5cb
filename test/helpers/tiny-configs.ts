/** The tiny model configs the native tests share (seconds per test on a CPU). */
import type { CTViTConfig } from '../../lib/model/ctvit';
import type { CTClipConfig } from '../../lib/model/ctclip';
import type { BertNativeConfig } from '../../lib/native';

/** A 32×32 CTViT with one spatial and one temporal layer (add a `seed`). */
export const TINY_CTVIT: Omit<CTViTConfig, 'seed'> = {
  dim: 16,
  codebook_size: 32,
  image_size: 32,
  patch_size: 8,
  temporal_patch_size: 4,
  spatial_depth: 1,
  temporal_depth: 1,
  heads: 2,
  dim_head: 8,
};

/** A one-layer BERT over a 50-token vocabulary. */
export const TINY_BERT: BertNativeConfig = {
  vocab_size: 50,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 16,
};

/** The CT-CLIP tests' image encoder: a 16×16 CTViT (patch 8, temporal patch 2, one layer each way, codebook 16). */
export const TINY_CTCLIP_IMAGE: CTClipConfig['image'] = {
  dim: 16,
  codebook_size: 16,
  image_size: 16,
  patch_size: 8,
  temporal_patch_size: 2,
  spatial_depth: 1,
  temporal_depth: 1,
  heads: 2,
  dim_head: 8,
};

/** `TINY_CTCLIP_IMAGE` as a run config's `model.image_encoder` (4 frames). */
export const TINY_IMAGE_ENCODER = { ...TINY_CTCLIP_IMAGE, frames: 4 };

/** `TINY_BERT` as a run config's `model.text_encoder` (add `vocab` and, where it matters, `max_length`). */
export const TINY_TEXT_ENCODER = {
  hidden_size: TINY_BERT.hidden_size,
  num_hidden_layers: TINY_BERT.num_hidden_layers,
  num_attention_heads: TINY_BERT.num_attention_heads,
  intermediate_size: TINY_BERT.intermediate_size,
  max_position_embeddings: TINY_BERT.max_position_embeddings,
};

/** A run config's `model` section of the tiny encoders (latent 8): `TINY_TEXT_ENCODER` with `textEncoder` added. */
export function tinyRunModel(textEncoder: Record<string, unknown>) {
  return { dim_latent: 8, image_encoder: TINY_IMAGE_ENCODER, text_encoder: { ...TINY_TEXT_ENCODER, ...textEncoder } };
}

/** The published CT-CLIP image encoder (480×480, patch 20, temporal patch 10, 4 + 4 layers, codebook 8192). */
export const PUBLISHED_CTVIT: Omit<CTViTConfig, 'seed'> = {
  dim: 512,
  codebook_size: 8192,
  image_size: 480,
  patch_size: 20,
  temporal_patch_size: 10,
  spatial_depth: 4,
  temporal_depth: 4,
  heads: 8,
  dim_head: 32,
};
