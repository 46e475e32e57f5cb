/** The tiny model configs the native tests share (seconds per test on a CPU). */
import type { CTViTConfig } from '../../lib/model/ctvit';
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
