/**
 * Which configuration setting explains weights that do not fit the configured model: the key families and tensor
 * dimensions of the reference state_dict map to the `model.*` keys that size them (reference-keys.ts builds the
 * key list from the same settings). `logit_bias` exists exactly in SigLIP models (`model.loss.type`); a layer
 * index past the configured depth, or missing below it, gives the weights' depth; a dimension that differs gives
 * the setting and the weights' value. The evaluation commands append these to their "do not fit" errors, so the
 * message says what to set rather than "check model.*".
 */
import type { Config } from '../config/schema';
import type { ShapeMismatch } from '../weights';

/** What did not fit: keys the model expected but the weights lack, keys the weights add, shapes that differ. */
export interface WeightsMisfitKeys {
  missing: readonly string[];
  unexpected: readonly string[];
  shapeMismatches: readonly ShapeMismatch[];
}

/** Depth settings: the layer-index pattern of each and its config key. */
const DEPTHS: Array<[RegExp, string]> = [
  [/^text_transformer\.encoder\.layer\.(\d+)\./, 'model.text_encoder.num_hidden_layers'],
  [/^visual_transformer\.enc_spatial_transformer\.layers\.(\d+)\./, 'model.image_encoder.spatial_depth'],
  [/^visual_transformer\.enc_temporal_transformer\.layers\.(\d+)\./, 'model.image_encoder.temporal_depth'],
];

const HIDDEN = 'model.text_encoder.hidden_size';
const INTERMEDIATE = 'model.text_encoder.intermediate_size';
const IMAGE = 'model.image_encoder.* (dim, image_size, patch_size, …)';

/** The setting behind each dimension of a key's shape (null: not a setting, or not one we can name). */
function dimensionSettings(key: string, cfg: Config | null): Array<string | null> {
  if (key === 'text_transformer.embeddings.word_embeddings.weight') {
    const vocab =
      cfg && cfg.model.text_encoder.vocab_size === null
        ? 'model.text_encoder.vocab (its token count; or model.text_encoder.vocab_size)'
        : 'model.text_encoder.vocab_size';
    return [vocab, HIDDEN];
  }
  if (key === 'text_transformer.embeddings.position_embeddings.weight')
    return ['model.text_encoder.max_position_embeddings', HIDDEN];
  if (key === 'text_transformer.embeddings.token_type_embeddings.weight') return [null, HIDDEN];
  if (/^text_transformer\.encoder\.layer\.\d+\.intermediate\.dense\.weight$/.test(key)) return [INTERMEDIATE, HIDDEN];
  if (/^text_transformer\.encoder\.layer\.\d+\.intermediate\.dense\.bias$/.test(key)) return [INTERMEDIATE];
  if (/^text_transformer\.encoder\.layer\.\d+\.output\.dense\.weight$/.test(key)) return [HIDDEN, INTERMEDIATE];
  if (key.startsWith('text_transformer.')) return [HIDDEN, HIDDEN];
  if (/^to_text_latent(_extra)?\.weight$/.test(key)) return ['model.dim_latent', HIDDEN];
  if (/^to_visual_latent(_extra)?\.weight$/.test(key)) return ['model.dim_latent', IMAGE];
  if (key === 'visual_transformer.vq._codebook.embed') return [null, 'model.image_encoder.codebook_size', IMAGE];
  if (key.startsWith('visual_transformer.')) return [IMAGE, IMAGE, IMAGE, IMAGE, IMAGE];
  return [];
}

/**
 * The settings to change, one phrase each (e.g. "model.loss.type: siglip (the weights have logit_bias, which only
 * a SigLIP model has)", "model.text_encoder.hidden_size: 64 in the weights, 768 configured"); empty when no
 * setting explains the difference.
 */
export function weightsConfigHints(misfit: WeightsMisfitKeys, cfg: Config | null = null): string[] {
  const hints: string[] = [];
  if (misfit.unexpected.includes('logit_bias'))
    hints.push('model.loss.type: siglip (the weights have logit_bias, which only a SigLIP model has)');
  if (misfit.missing.includes('logit_bias'))
    hints.push('model.loss.type: softmax (the weights have no logit_bias: a softmax model)');
  for (const [re, setting] of DEPTHS) {
    const extra = misfit.unexpected
      .map((k) => re.exec(k)?.[1])
      .filter((x) => x !== undefined)
      .map(Number);
    const lacking = misfit.missing
      .map((k) => re.exec(k)?.[1])
      .filter((x) => x !== undefined)
      .map(Number);
    // Layers past the configured ones: the weights have max+1; layers missing from index i on: the weights have i.
    if (extra.length) hints.push(`${setting}: ${Math.max(...extra) + 1} (the weights' depth)`);
    else if (lacking.length) hints.push(`${setting}: ${Math.min(...lacking)} (the weights' depth)`);
  }
  for (const m of misfit.shapeMismatches) {
    const settings = dimensionSettings(m.key, cfg);
    if (m.got.length !== m.expected.length) continue;
    m.got.forEach((got, d) => {
      const setting = settings[d];
      if (got === m.expected[d] || !setting) return;
      hints.push(
        setting === IMAGE
          ? `${setting} (${m.key} is [${m.got.join(', ')}] in the weights, [${m.expected.join(', ')}] configured)`
          : `${setting}: ${got} in the weights, ${m.expected[d]} configured`,
      );
    });
  }
  return [...new Set(hints)];
}

/** The tail of a "do not fit" error: what to set, or, when no setting explains it, where to look. */
export function weightsConfigAdvice(misfit: WeightsMisfitKeys, cfg: Config | null = null): string {
  const hints = weightsConfigHints(misfit, cfg);
  return hints.length
    ? `set in the config: ${hints.join('; ')}`
    : 'no model.* setting explains it: are these weights of another model?';
}
