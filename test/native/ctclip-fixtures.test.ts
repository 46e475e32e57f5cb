/**
 * Golden fixtures C (`ctclip_tiny`: InfoNCE forward, every gradient, pre-clip norm, one clipped AdamW step),
 * D (`ctclip_tiny_siglip`: SigLIP forward and gradients, EMA buffers) and E (`zero_shot`: both prompt styles),
 * checked with the fixture tolerances (docs/reference.md). Configs, key tables, gradient keys, sizes and optimiser settings are read
 * from each case's meta.json and files, so the same test runs on a fixture set with other shapes, vocabularies,
 * batch and latent sizes.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import { CTClip, type CTClipConfig } from '../../lib/model/ctclip';
import { BertConfigSchema } from '../../lib/model/config';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import { loadAddon, type SafetensorsContent, type TensorHandle } from '../../lib/native';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import {
  diff,
  expectClose,
  expectExact,
  get,
  maxAbs,
  reshape,
  scalar,
  shapeOf,
  sliceRows,
  values,
} from '../helpers/tensors';

interface KeyEntry {
  key: string;
  shape: number[];
  kind: 'param' | 'buffer';
  numel: number;
}
interface ClipMeta {
  ctvit_config: CTClipConfig['image'];
  bert_config: Record<string, number>;
  dim_latent: number;
  state_dict_keys: KeyEntry[];
  loss: number;
  temperature?: number;
  logit_bias?: number;
  grad_norm_preclip?: number;
  clip_max_norm?: number;
  clip_coef?: number;
  optimizer?: { lr: number; betas: [number, number]; eps: number; weight_decay: Record<string, number> };
  grad_keys?: string[];
  params_without_grad?: string[];
  vq_buffer_keys?: string[];
  param_count?: number;
}

/** The fixture's BertConfig keys the text encoder takes (a BertConfig may carry others, e.g. hidden_act). */
const TEXT_KEYS = Object.keys(BertConfigSchema.shape);

function readMeta(dir: string): ClipMeta {
  const meta = JSON.parse(fs.readFileSync(fixturePath(dir, 'meta.json'), 'utf8')) as ClipMeta & {
    inputs_same_as?: string;
  };
  if (!meta.bert_config || !meta.ctvit_config || meta.dim_latent === undefined) {
    // D shares C's model configuration and inputs (`inputs_same_as: "<case>/inputs.safetensors"`).
    const base = readMeta(inputsDir(dir, meta));
    meta.ctvit_config ??= base.ctvit_config;
    meta.bert_config ??= base.bert_config;
    meta.dim_latent ??= base.dim_latent;
  }
  return meta;
}

/** The case folder holding a case's inputs.safetensors (its own, or the one `inputs_same_as` names). */
function inputsDir(dir: string, meta?: { inputs_same_as?: string }): string {
  if (fs.existsSync(fixturePath(dir, 'inputs.safetensors'))) return dir;
  const same = (
    meta ?? (JSON.parse(fs.readFileSync(fixturePath(dir, 'meta.json'), 'utf8')) as { inputs_same_as?: string })
  ).inputs_same_as;
  return same ? same.split('/')[0] : 'ctclip_tiny';
}

function configFrom(meta: ClipMeta, loss: 'softmax' | 'siglip', training: CTClipConfig['training'] = {}): CTClipConfig {
  const text: Record<string, number> = {};
  for (const k of TEXT_KEYS) if (meta.bert_config[k] !== undefined) text[k] = meta.bert_config[k];
  return {
    image: meta.ctvit_config,
    text: { ...(text as unknown as CTClipConfig['text']), hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 },
    dim_latent: meta.dim_latent,
    loss,
    seed: 0,
    training,
  };
}

/** Mathematically-zero gradients (a constant added to every logit of a softmax row): magnitude check only. */
function isNoiseGrad(name: string): boolean {
  return name.endsWith('.attention.self.key.bias') || name.endsWith('spatial_rel_pos_bias.net.2.bias');
}

function gradTolerance(ref: TensorHandle): number {
  return 1e-5 + 1e-4 * maxAbs(values(ref));
}

/** The device the fixture models run on (CTCLIP_TEST_DEVICE, e.g. cuda:0); unset = the CPU, as always. */
const TEST_DEVICE = process.env.CTCLIP_TEST_DEVICE || null;

async function buildModel(
  dir: string,
  meta: ClipMeta,
  loss: 'softmax' | 'siglip',
  training?: CTClipConfig['training'],
) {
  const weights = await loadSafetensors(fixturePath(dir, 'weights.safetensors'));
  const model = CTClip.create(configFrom(meta, loss, training));
  const report = model.loadStateDict(weights.names, weights.tensors, { strict: true });
  expect(report.missing).to.deep.equal([]);
  expect(report.unexpected).to.deep.equal([]);
  // scripts/gpu-check.sh runs these cases with the model on a GPU (CTCLIP_TEST_DEVICE=cuda:0), same tolerances.
  if (TEST_DEVICE) await model.to(TEST_DEVICE);
  return { model, weights };
}

function stateTensor(model: CTClip, name: string): TensorHandle {
  const sd = model.stateDict();
  const i = sd.names.indexOf(name);
  if (i < 0) throw new Error(`model has no state tensor '${name}'`);
  return sd.tensors[i];
}

function checkKeyTable(model: CTClip, meta: ClipMeta): void {
  const sd = model.stateDict();
  expect(sd.names).to.deep.equal(meta.state_dict_keys.map((k) => k.key));
  sd.names.forEach((name, i) => {
    const ref = meta.state_dict_keys[i];
    expect(sd.shapes[i], name).to.deep.equal(ref.shape);
    if (sd.kinds[i] !== 'inert') expect(sd.kinds[i] === 'buffer' ? 'buffer' : 'param', name).to.equal(ref.kind);
  });
  const paramCount = meta.state_dict_keys.filter((k) => k.kind === 'param').reduce((a, k) => a + k.numel, 0);
  expect(model.parameterCount()).to.equal(paramCount);
  if (meta.param_count !== undefined) expect(model.parameterCount()).to.equal(meta.param_count);
  // every parameter without a reference gradient is inert here (never optimised)
  for (const name of meta.params_without_grad ?? []) expect(sd.kinds[sd.names.indexOf(name)], name).to.equal('inert');
}

function checkGrads(
  got: { names: string[]; tensors: TensorHandle[] },
  grads: SafetensorsContent,
  meta: ClipMeta,
): number {
  expect(got.names).to.deep.equal(meta.grad_keys ?? grads.names);
  for (const name of meta.params_without_grad ?? []) expect(got.names).to.not.include(name);
  let worst = 0;
  for (const name of grads.names) {
    const g = got.tensors[got.names.indexOf(name)];
    const ref = get(grads, name);
    expect(shapeOf(g), `${name} grad shape`).to.deep.equal(shapeOf(ref));
    if (isNoiseGrad(name)) {
      expect(maxAbs(values(g)), `${name} (mathematically zero)`).to.be.at.most(1e-6);
      continue;
    }
    const { maxAbs: d } = diff(g, ref);
    const tol = gradTolerance(ref);
    worst = Math.max(worst, d / tol);
    expect(d, `grad ${name}: max |Δ| = ${d} > ${tol}`).to.be.at.most(tol);
  }
  return worst;
}

function batchFrom(inputs: SafetensorsContent) {
  return {
    inputIds: get(inputs, 'input_ids'),
    attentionMask: get(inputs, 'attention_mask'),
    volumes: get(inputs, 'images'),
  };
}

const verbose = (...args: unknown[]) => {
  if (process.env.CTCLIP_VERBOSE) console.log('     ', ...args);
};

describe('native: CT-CLIP golden fixtures', function () {
  before(function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    // An addon without the CT-CLIP functions fails here (it must be rebuilt), it does not skip.
    expect(
      typeof (loadAddon() as unknown as Record<string, unknown>).createCTClip,
      'addon lacks createCTClip (rebuild it)',
    ).to.equal('function');
  });

  describe('C: ctclip_tiny (InfoNCE, one clipped AdamW step)', function () {
    const dir = 'ctclip_tiny';

    it('has the reference state_dict keys, order, shapes and kinds', function () {
      const meta = readMeta(dir);
      const model = CTClip.create(configFrom(meta, 'softmax'));
      checkKeyTable(model, meta);
      model.dispose();
    });

    it('matches latents, logits, loss, every gradient, the pre-clip norm, post-step weights and AdamW state', async function () {
      const meta = readMeta(dir);
      const opt = meta.optimizer!;
      const { model, weights } = await buildModel(dir, meta, 'softmax', {
        max_grad_norm: meta.clip_max_norm ?? 0.5,
        betas: opt.betas,
        eps: opt.eps,
        weight_decay: opt.weight_decay['ndim>=2'],
      });
      const inputs = await loadSafetensors(fixturePath(dir, 'inputs.safetensors'));
      const outputs = await loadSafetensors(fixturePath(dir, 'outputs.safetensors'));
      const grads = await loadSafetensors(fixturePath(dir, 'grads.safetensors'));
      const after = await loadSafetensors(fixturePath(dir, 'weights_after_step.safetensors'));
      const adam = await loadSafetensors(fixturePath(dir, 'adamw_state_after_step.safetensors'));
      model.train();

      const r = await model.accumulate(batchFrom(inputs), { returnIntermediates: true, returnGrads: true });
      const im = r.intermediates!;
      const worst: Record<string, number> = {};
      for (const name of outputs.names) {
        if (name === 'loss' || name === 'grad_norm_preclip') continue;
        expect(im, `intermediate '${name}'`).to.have.property(name);
        if (name === 'vq_indices') expectExact(name, im[name], get(outputs, name));
        else worst[name] = expectClose(name, im[name], get(outputs, name), 1e-5);
      }
      expect(r.loss).to.be.closeTo(scalar(get(outputs, 'loss')), 1e-5);
      expect(r.loss).to.be.closeTo(meta.loss, 1e-5);
      verbose('fixture C max |Δ| outputs:', worst);
      verbose('fixture C worst grad |Δ|/tol:', checkGrads(r.grads!, grads, meta));

      const step = await model.optimizerStep(opt.lr);
      expect(step.skipped).to.equal(false);
      const normRef = meta.grad_norm_preclip ?? scalar(get(outputs, 'grad_norm_preclip'));
      expect(Math.abs(step.gradNorm - normRef) / normRef, `pre-clip norm ${step.gradNorm} vs ${normRef}`).to.be.at.most(
        1e-5,
      );
      const coef = meta.clip_coef ?? Math.min(1, (meta.clip_max_norm ?? 0.5) / (normRef + 1e-6));
      expect(step.clipCoef).to.be.closeTo(coef, 1e-5 * coef);
      expect(step.optimizerSteps).to.equal(1);

      // post-step weights: README's noise-aware rule; no-grad params bit-identical; buffers (VQ EMA) atol 1e-6
      const sd = model.stateDict();
      const withGrad = new Set(grads.names);
      let worstW = 0;
      for (const [i, name] of sd.names.entries()) {
        const got = values(sd.tensors[i]);
        const ref = values(get(after, name));
        expect(got.length, name).to.equal(ref.length);
        if (sd.kinds[i] === 'buffer') {
          expectClose(name, sd.tensors[i], get(after, name), 1e-6);
        } else if (!withGrad.has(name)) {
          expect(got, `${name} (no grad) must be bit-identical`).to.deep.equal(values(get(weights, name)));
        } else {
          const g = values(get(grads, name));
          for (let k = 0; k < got.length; k++) {
            const tol = Math.abs(coef * g[k]) >= 1e-7 ? 2e-6 : 2e-3;
            const d = Math.abs(got[k] - ref[k]);
            if (d > tol) expect.fail(`${name}[${k}]: |Δ| = ${d} > ${tol} after the AdamW step`);
            if (tol === 2e-6) worstW = Math.max(worstW, d);
          }
        }
      }
      verbose('fixture C worst post-step |Δ| (signal elements):', worstW);

      // AdamW state: rtol 1e-5, plus the slack the gradient tolerance implies for (near-)noise elements
      const state = model.optimizerState();
      expect(state.names).to.deep.equal(meta.grad_keys ?? grads.names);
      expect(state.step.every((s) => s === 1)).to.equal(true);
      for (const [i, name] of state.names.entries()) {
        const gRef = values(get(grads, name));
        const gMax = maxAbs(gRef);
        const tolG = 1e-5 + 1e-4 * gMax;
        const checks: Array<[string, TensorHandle, number]> = [
          ['exp_avg', state.exp_avg[i], 0.1 * coef * tolG],
          ['exp_avg_sq', state.exp_avg_sq[i], 0.02 * coef * coef * (gMax + tolG) * tolG],
        ];
        for (const [kind, t, slack] of checks) {
          const got = values(t);
          const ref = values(get(adam, `${kind}.${name}`));
          for (let k = 0; k < got.length; k++) {
            const d = Math.abs(got[k] - ref[k]);
            if (d > 1e-5 * Math.abs(ref[k]) + slack) expect.fail(`${kind}.${name}[${k}]: ${got[k]} vs ${ref[k]}`);
          }
        }
      }
      model.dispose();
    });
  });

  describe('D: ctclip_tiny_siglip (SigLIP)', function () {
    const dir = 'ctclip_tiny_siglip';

    it('has the reference keys (logit_bias right after temperature) and init values', function () {
      const meta = readMeta(dir);
      const model = CTClip.create(configFrom(meta, 'siglip'));
      checkKeyTable(model, meta);
      expect(scalar(stateTensor(model, 'temperature'))).to.be.closeTo(Math.log(10), 1e-6);
      expect(scalar(stateTensor(model, 'logit_bias'))).to.equal(-10);
      model.dispose();
    });

    it('matches latents, logits, loss, every gradient and the EMA-updated buffers', async function () {
      const meta = readMeta(dir);
      const { model } = await buildModel(dir, meta, 'siglip');
      const inputs = await loadSafetensors(fixturePath(inputsDir(dir), 'inputs.safetensors'));
      const outputs = await loadSafetensors(fixturePath(dir, 'outputs.safetensors'));
      const grads = await loadSafetensors(fixturePath(dir, 'grads.safetensors'));
      const buffers = await loadSafetensors(fixturePath(dir, 'buffers_after.safetensors'));
      model.train();
      const r = await model.accumulate(batchFrom(inputs), { returnIntermediates: true, returnGrads: true });
      const im = r.intermediates!;
      const worst: Record<string, number> = {};
      for (const name of outputs.names) {
        if (name === 'loss') continue;
        expect(im, `intermediate '${name}'`).to.have.property(name);
        if (name === 'vq_indices') expectExact(name, im[name], get(outputs, name));
        else worst[name] = expectClose(name, im[name], get(outputs, name), 1e-5);
      }
      expect(r.loss).to.be.closeTo(scalar(get(outputs, 'loss')), 1e-5);
      expect(r.loss).to.be.closeTo(meta.loss, 1e-5);
      verbose('fixture D max |Δ| outputs:', worst);
      verbose('fixture D worst grad |Δ|/tol:', checkGrads(r.grads!, grads, meta));
      for (const name of buffers.names) expectClose(name, stateTensor(model, name), get(buffers, name), 1e-6);
      model.zeroGrad();
      model.dispose();
    });
  });

  describe('E: zero_shot (eval mode, both prompt styles)', function () {
    const dir = 'zero_shot';

    it('matches image and prompt latents, logits and P(present)', async function () {
      // E reuses C's model: meta.weights = "<case>/weights.safetensors (…)"
      const zmeta = JSON.parse(fs.readFileSync(fixturePath(dir, 'meta.json'), 'utf8')) as { weights?: string };
      const modelDir = zmeta.weights?.split('/')[0] ?? 'ctclip_tiny';
      const meta = readMeta(modelDir);
      const { model, weights } = await buildModel(modelDir, meta, 'softmax');
      const inputs = await loadSafetensors(fixturePath(dir, 'inputs.safetensors'));
      const outputs = await loadSafetensors(fixturePath(dir, 'outputs.safetensors'));
      model.eval();
      const codebook = values(get(weights, 'visual_transformer.vq._codebook.embed'));

      const imageLatents = await model.encodeImage(get(inputs, 'volumes'));
      const worst: Record<string, number> = {};
      worst.image_latents = expectClose('image_latents', imageLatents, get(outputs, 'image_latents'), 1e-5);
      // input_ids: (styles, pathologies, 2, L)
      const [S, C, two, L] = shapeOf(get(inputs, 'input_ids'));
      expect(two).to.equal(2);
      const ids = reshape(get(inputs, 'input_ids'), [S * C * 2, L]);
      const mask = reshape(get(inputs, 'attention_mask'), [S * C * 2, L]);
      const textLatents = await model.encodeText(ids, mask);
      const [, latent] = shapeOf(textLatents);
      worst.text_latents = expectClose(
        'text_latents',
        reshape(textLatents, [S, C, 2, latent]),
        get(outputs, 'text_latents'),
        1e-5,
      );

      const [N] = shapeOf(imageLatents);
      const refLogits = values(get(outputs, 'logits')); // [volume, style, pathology, 2]
      const refP = values(get(outputs, 'p_present')); // [volume, style, pathology]
      let worstLogit = 0;
      let worstP = 0;
      for (let s = 0; s < S; s++) {
        // prompt latents are computed once per evaluation and reused for every volume
        const prompts = sliceRows(textLatents, s * C * 2, (s + 1) * C * 2, [C * 2, latent]);
        const z = await model.zeroShot(imageLatents, prompts);
        expect(shapeOf(z.logits)).to.deep.equal([N, C, 2]);
        expect(shapeOf(z.pPresent)).to.deep.equal([N, C]);
        const lg = values(z.logits);
        const p = values(z.pPresent);
        for (let v = 0; v < N; v++) {
          for (let c = 0; c < C; c++) {
            for (let k = 0; k < 2; k++) {
              worstLogit = Math.max(
                worstLogit,
                Math.abs(lg[(v * C + c) * 2 + k] - refLogits[((v * S + s) * C + c) * 2 + k]),
              );
            }
            worstP = Math.max(worstP, Math.abs(p[v * C + c] - refP[(v * S + s) * C + c]));
          }
        }
      }
      expect(worstLogit, 'zero-shot logits').to.be.at.most(1e-5);
      expect(worstP, 'P(present)').to.be.at.most(1e-6);
      // eval mode: the codebook is untouched
      expect(values(stateTensor(model, 'visual_transformer.vq._codebook.embed'))).to.deep.equal(codebook);
      verbose('fixture E max |Δ|:', { ...worst, logits: worstLogit, p_present: worstP });
      model.dispose();
    });
  });
});
