/**
 * The reference CT-CLIP state_dict key list ([orig] layout = the published `CT-CLIP_v2.pt`),
 * computed from a configuration: every key in true `state_dict()` order with its shape and kind. Used to check
 * imported files (missing / unexpected / shape mismatches) and saved files without building a model.
 */
import { feedForwardInnerDim } from '../model/ctvit';

export interface ReferenceKey {
  key: string;
  shape: number[];
  kind: 'param' | 'buffer';
}

/** The image-encoder fields the key list depends on (the config's `model.image_encoder`). */
export interface ReferenceImageConfig {
  dim: number;
  codebook_size: number;
  image_size: number;
  patch_size: number;
  temporal_patch_size: number;
  spatial_depth: number;
  temporal_depth: number;
  heads: number;
  dim_head: number;
  channels?: number;
}

/** The text-encoder fields (`model.text_encoder`, HF BertConfig names). */
export interface ReferenceTextConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  intermediate_size: number;
  max_position_embeddings: number;
  type_vocab_size?: number;
}

/** BERT keys under `prefix` (default `text_transformer.`), BertModel order, pooler included. */
export function bertReferenceKeys(t: ReferenceTextConfig, prefix = 'text_transformer.'): ReferenceKey[] {
  const H = t.hidden_size;
  const I = t.intermediate_size;
  const out: ReferenceKey[] = [];
  const p = (key: string, shape: number[]): void => {
    out.push({ key: prefix + key, shape, kind: 'param' });
  };
  p('embeddings.word_embeddings.weight', [t.vocab_size, H]);
  p('embeddings.position_embeddings.weight', [t.max_position_embeddings, H]);
  p('embeddings.token_type_embeddings.weight', [t.type_vocab_size ?? 2, H]);
  p('embeddings.LayerNorm.weight', [H]);
  p('embeddings.LayerNorm.bias', [H]);
  for (let l = 0; l < t.num_hidden_layers; l++) {
    const L = `encoder.layer.${l}.`;
    for (const n of ['query', 'key', 'value']) {
      p(`${L}attention.self.${n}.weight`, [H, H]);
      p(`${L}attention.self.${n}.bias`, [H]);
    }
    p(`${L}attention.output.dense.weight`, [H, H]);
    p(`${L}attention.output.dense.bias`, [H]);
    p(`${L}attention.output.LayerNorm.weight`, [H]);
    p(`${L}attention.output.LayerNorm.bias`, [H]);
    p(`${L}intermediate.dense.weight`, [I, H]);
    p(`${L}intermediate.dense.bias`, [I]);
    p(`${L}output.dense.weight`, [H, I]);
    p(`${L}output.dense.bias`, [H]);
    p(`${L}output.LayerNorm.weight`, [H]);
    p(`${L}output.LayerNorm.bias`, [H]);
  }
  p('pooler.dense.weight', [H, H]);
  p('pooler.dense.bias', [H]);
  return out;
}

/** CTViT keys under `prefix` (default `visual_transformer.`), [orig] order (encoder, VQ, unused decoder heads). */
export function ctvitReferenceKeys(v: ReferenceImageConfig, prefix = 'visual_transformer.'): ReferenceKey[] {
  const D = v.dim;
  const C = v.channels ?? 1;
  const p2 = C * v.patch_size * v.patch_size;
  const p3 = p2 * v.temporal_patch_size;
  const inner = v.heads * v.dim_head;
  const ff = feedForwardInnerDim(D);
  const out: ReferenceKey[] = [];
  const p = (key: string, shape: number[], kind: 'param' | 'buffer' = 'param'): void => {
    out.push({ key: prefix + key, shape, kind });
  };
  p('spatial_rel_pos_bias.net.0.0.weight', [D, 2]);
  p('spatial_rel_pos_bias.net.0.0.bias', [D]);
  p('spatial_rel_pos_bias.net.1.0.weight', [D, D]);
  p('spatial_rel_pos_bias.net.1.0.bias', [D]);
  p('spatial_rel_pos_bias.net.2.weight', [v.heads, D]);
  p('spatial_rel_pos_bias.net.2.bias', [v.heads]);
  for (const [name, n] of [
    ['to_patch_emb_first_frame', p2],
    ['to_patch_emb', p3],
  ] as const) {
    p(`${name}.1.weight`, [n]);
    p(`${name}.1.bias`, [n]);
    p(`${name}.2.weight`, [D, n]);
    p(`${name}.2.bias`, [D]);
    p(`${name}.3.weight`, [D]);
    p(`${name}.3.bias`, [D]);
  }
  for (const [stack, depth] of [
    ['enc_spatial_transformer', v.spatial_depth],
    ['enc_temporal_transformer', v.temporal_depth],
  ] as const) {
    for (let i = 0; i < depth; i++) {
      const L = `${stack}.layers.${i}.`;
      p(`${L}0.dsconv.weight`, [D, 1, 3, 3, 3]);
      p(`${L}0.dsconv.bias`, [D]);
      p(`${L}1.null_kv`, [v.heads, 0, v.dim_head]);
      p(`${L}1.q_scale`, [v.dim_head]);
      p(`${L}1.k_scale`, [v.dim_head]);
      p(`${L}1.norm.gamma`, [D]);
      p(`${L}1.norm.beta`, [D], 'buffer');
      p(`${L}1.context_norm.gamma`, [D]);
      p(`${L}1.context_norm.beta`, [D], 'buffer');
      p(`${L}1.to_q.weight`, [inner, D]);
      p(`${L}1.to_kv.weight`, [2 * inner, D]);
      p(`${L}1.to_out.weight`, [D, inner]);
      p(`${L}3.0.weight`, [D]);
      p(`${L}3.0.bias`, [D]);
      p(`${L}3.1.weight`, [2 * ff, D]);
      p(`${L}3.4.weight`, [D, ff]);
    }
    p(`${stack}.norm_out.gamma`, [D]);
    p(`${stack}.norm_out.beta`, [D], 'buffer');
  }
  p('vq._codebook.initted', [1], 'buffer');
  p('vq._codebook.cluster_size', [1, v.codebook_size], 'buffer');
  p('vq._codebook.embed', [1, v.codebook_size, D], 'buffer');
  p('to_pixels_first_frame.0.weight', [p2, D]);
  p('to_pixels_first_frame.0.bias', [p2]);
  p('to_pixels.0.weight', [p3, D]);
  p('to_pixels.0.bias', [p3]);
  return out;
}

/**
 * The full CT-CLIP state_dict ([orig] / published layout): `temperature` (and `logit_bias` for SigLIP, right
 * after it, where MODERN puts it), the BERT keys, the CTViT keys, then the four latent projections.
 */
export function ctclipReferenceKeys(
  image: ReferenceImageConfig,
  text: ReferenceTextConfig,
  opts: { dimLatent: number; siglip?: boolean },
): ReferenceKey[] {
  const hp = image.image_size / image.patch_size;
  const dimImage = hp * hp * image.dim;
  const out: ReferenceKey[] = [{ key: 'temperature', shape: [], kind: 'param' }];
  if (opts.siglip) out.push({ key: 'logit_bias', shape: [], kind: 'param' });
  out.push(...bertReferenceKeys(text), ...ctvitReferenceKeys(image));
  out.push({ key: 'to_text_latent.weight', shape: [opts.dimLatent, text.hidden_size], kind: 'param' });
  out.push({ key: 'to_visual_latent.weight', shape: [opts.dimLatent, dimImage], kind: 'param' });
  out.push({ key: 'to_text_latent_extra.weight', shape: [opts.dimLatent, text.hidden_size], kind: 'param' });
  out.push({ key: 'to_visual_latent_extra.weight', shape: [opts.dimLatent, dimImage], kind: 'param' });
  return out;
}
