/**
 * The setting named when weights do not fit the configured model: SigLIP's logit_bias → model.loss.type, layer
 * indices → the depths, differing dimensions → the setting with the weights' value; nothing when no setting
 * explains the difference.
 */
import { expect } from 'chai';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { weightsConfigAdvice, weightsConfigHints } from '../../lib/model/weights-config-hint';

const none = { missing: [], unexpected: [], shapeMismatches: [] };

describe('weights that do not fit: the config setting to change', () => {
  it('logit_bias: unexpected → model.loss.type siglip, missing → softmax', () => {
    expect(weightsConfigHints({ ...none, unexpected: ['logit_bias'] })).to.deep.equal([
      'model.loss.type: siglip (the weights have logit_bias, which only a SigLIP model has)',
    ]);
    expect(weightsConfigHints({ ...none, missing: ['logit_bias'] })).to.deep.equal([
      'model.loss.type: softmax (the weights have no logit_bias: a softmax model)',
    ]);
  });

  it('layers past the configured depth, or missing from an index on, give the weights’ depth', () => {
    expect(
      weightsConfigHints({
        ...none,
        unexpected: [
          'text_transformer.encoder.layer.2.attention.self.query.weight',
          'text_transformer.encoder.layer.3.output.dense.bias',
        ],
        missing: ['visual_transformer.enc_temporal_transformer.layers.1.0.norm.gamma'],
      }),
    ).to.deep.equal([
      "model.text_encoder.num_hidden_layers: 4 (the weights' depth)",
      "model.image_encoder.temporal_depth: 1 (the weights' depth)",
    ]);
  });

  it('a differing dimension names its setting with both values (the vocabulary file when vocab_size is null)', () => {
    // The debug config sizes the vocabulary by its file (vocab_size null).
    const cfg = loadConfig(path.join(__dirname, '..', '..', 'configs', 'debug_config.yaml'), {
      warn: () => undefined,
    }).config;
    expect(cfg.model.text_encoder.vocab_size).to.equal(null);
    expect(
      weightsConfigHints(
        {
          ...none,
          shapeMismatches: [
            { key: 'text_transformer.embeddings.word_embeddings.weight', expected: [4096, 768], got: [120, 32] },
            { key: 'text_transformer.embeddings.position_embeddings.weight', expected: [512, 768], got: [64, 32] },
            { key: 'text_transformer.encoder.layer.0.intermediate.dense.weight', expected: [3072, 768], got: [64, 32] },
            { key: 'to_text_latent.weight', expected: [512, 768], got: [16, 32] },
          ],
        },
        cfg,
      ),
    ).to.deep.equal([
      'model.text_encoder.vocab (its token count; or model.text_encoder.vocab_size): 120 in the weights, 4096 configured',
      'model.text_encoder.hidden_size: 32 in the weights, 768 configured',
      'model.text_encoder.max_position_embeddings: 64 in the weights, 512 configured',
      'model.text_encoder.intermediate_size: 64 in the weights, 3072 configured',
      'model.dim_latent: 16 in the weights, 512 configured',
    ]);
  });

  it('the advice: the settings, or a plain statement that none explains it', () => {
    expect(weightsConfigAdvice({ ...none, unexpected: ['logit_bias'] })).to.equal(
      'set in the config: model.loss.type: siglip (the weights have logit_bias, which only a SigLIP model has)',
    );
    expect(weightsConfigAdvice({ ...none, unexpected: ['something.else'] })).to.equal(
      'no model.* setting explains it: are these weights of another model?',
    );
  });
});
