/**
 * The MODERN model variants (docs/model-variants.md) behind config flags (default off): `use_flash_attention` (attention
 * without QK-norm, q/k/v from nn.LayerNorm(x), softmax(q·kᵀ/√dh)·v through SDPA where libtorch has it),
 * `use_rms_norm` (RMSNorm, key `weight`) and `use_swiglu` (SiLU(first half)·second half). Checked here: state-dict
 * key names and shapes, hand-computed attention / RMSNorm / SwiGLU outputs from the model's own weights and
 * recorded inputs, gradient flow, a CT-CLIP training step, and that the defaults are unchanged.
 */
import { expect } from 'chai';
import { CTClip } from '../../lib/model/ctclip';
import { CTViT, resolveCTViTConfig, type CTViTConfig } from '../../lib/model/ctvit';
import { type TensorHandle } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { requireAddon } from '../helpers/native';
import { TINY_BERT, TINY_CTVIT } from '../helpers/tiny-configs';
import { randomData, randomTensor, values } from '../helpers/tensors';

const TINY: CTViTConfig = { ...TINY_CTVIT, seed: 5 };

function shapeOf(t: TensorHandle): number[] {
  return readTensor(t).shape.map(Number);
}

function stateOf(model: CTViT): Map<string, { shape: number[]; values: number[] }> {
  const sd = model.stateDict();
  const m = new Map<string, { shape: number[]; values: number[] }>();
  sd.names.forEach((n, i) => m.set(n, { shape: sd.shapes[i], values: values(sd.tensors[i]) }));
  return m;
}

/** Perturbs every tensor named in `names` by a deterministic pattern (so norms are not the identity). */
function perturb(model: CTViT, names: (n: string) => boolean, seed: number): void {
  const sd = model.stateDict();
  const pick: string[] = [];
  const tensors: TensorHandle[] = [];
  sd.names.forEach((n, i) => {
    if (!names(n)) return;
    const v = values(sd.tensors[i]);
    const r = randomData(v.length, seed + i);
    pick.push(n);
    tensors.push(
      tensorFromBuffer(
        Float32Array.from(v, (x, j) => x + 0.3 * r[j]),
        'float32',
        sd.shapes[i],
      ),
    );
  });
  model.loadStateDict(pick, tensors, { strict: false });
}

/** rows × out = x (rows × in) · Wᵀ (W: out × in, row-major). */
function linear(x: number[], rows: number, inDim: number, w: number[], outDim: number): number[] {
  const y = new Array<number>(rows * outDim).fill(0);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
      y[r * outDim + o] = s;
    }
  return y;
}

function layerNorm(x: number[], rows: number, d: number, w: number[], b: number[], eps = 1e-5): number[] {
  const y = new Array<number>(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    v /= d;
    for (let i = 0; i < d; i++) y[r * d + i] = ((x[r * d + i] - mean) / Math.sqrt(v + eps)) * w[i] + b[i];
  }
  return y;
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const L0 = 'enc_spatial_transformer.layers.0';

describe('native: CTViT modern variants', function () {
  before(function () {
    requireAddon(this);
  });

  it('config: the three flags default to false and are validated', function () {
    const r = resolveCTViTConfig(TINY);
    expect([r.use_flash_attention, r.use_rms_norm, r.use_swiglu]).to.deep.equal([false, false, false]);
    expect(() => resolveCTViTConfig({ ...TINY, use_swiglu: 'yes' })).to.throw(/use_swiglu/);
    const info = CTViT.create({ ...TINY, use_rms_norm: true }).info();
    expect(info.config.use_rms_norm).to.equal(true);
    expect(info.config.use_flash_attention).to.equal(false);
  });

  it('state-dict keys: flash → norm.weight/bias, no q/k scales, null_kv (h, 0, 2, dh); rms → norm.weight, norm_out.weight', function () {
    const ref = stateOf(CTViT.create(TINY));
    expect(ref.has(`${L0}.1.q_scale`)).to.equal(true);
    expect(ref.get(`${L0}.1.norm.gamma`)!.shape).to.deep.equal([16]);

    const flash = stateOf(CTViT.create({ ...TINY, use_flash_attention: true }));
    expect(flash.has(`${L0}.1.q_scale`)).to.equal(false);
    expect(flash.has(`${L0}.1.k_scale`)).to.equal(false);
    expect(flash.get(`${L0}.1.norm.weight`)!.shape).to.deep.equal([16]);
    expect(flash.get(`${L0}.1.norm.bias`)!.shape).to.deep.equal([16]);
    expect(flash.has(`${L0}.1.norm.gamma`)).to.equal(false);
    expect(flash.get(`${L0}.1.null_kv`)!.shape).to.deep.equal([2, 0, 2, 8]);
    expect(flash.has('enc_spatial_transformer.norm_out.gamma')).to.equal(true);

    const rms = stateOf(CTViT.create({ ...TINY, use_rms_norm: true }));
    expect(rms.get(`${L0}.1.norm.weight`)!.shape).to.deep.equal([16]);
    expect(rms.get(`${L0}.1.context_norm.weight`)!.shape).to.deep.equal([16]);
    expect(rms.has(`${L0}.1.norm.bias`)).to.equal(false);
    expect(rms.get('enc_temporal_transformer.norm_out.weight')!.shape).to.deep.equal([16]);
    expect(rms.has('enc_temporal_transformer.norm_out.gamma')).to.equal(false);
    // the feed-forward pre-norm stays nn.LayerNorm
    expect(rms.has(`${L0}.3.0.bias`)).to.equal(true);
    // the context norm is inert (never used, never optimised)
    const sd = CTViT.create({ ...TINY, use_rms_norm: true }).stateDict();
    expect(sd.kinds[sd.names.indexOf(`${L0}.1.context_norm.weight`)]).to.equal('inert');

    const swiglu = stateOf(CTViT.create({ ...TINY, use_swiglu: true }));
    expect([...swiglu.keys()]).to.deep.equal([...ref.keys()]);
  });

  it('flash attention = softmax(q·kᵀ/√dh + CPB)·v with q, k, v from LayerNorm(x), computed here from the weights', async function () {
    const cfg: CTViTConfig = { ...TINY, use_flash_attention: true, seed: 11 };
    const model = CTViT.create(cfg).eval();
    perturb(model, (n) => n.startsWith(`${L0}.1.norm.`), 3);
    const st = stateOf(model);
    const out = await model.forward(randomTensor([1, 1, 8, 32, 32], 4), { returnIntermediates: true });
    const im = out.intermediates!;
    const peg = values(im.spatial_l0_peg);
    const tokens = values(im.patch_emb);
    const [rows, n, D] = shapeOf(im.spatial_l0_peg);
    const x = peg.map((p, i) => p + tokens[i]);
    const xn = layerNorm(x, rows * n, D, st.get(`${L0}.1.norm.weight`)!.values, st.get(`${L0}.1.norm.bias`)!.values);
    const heads = 2,
      dh = 8,
      inner = heads * dh;
    const q = linear(xn, rows * n, D, st.get(`${L0}.1.to_q.weight`)!.values, inner);
    const kv = linear(xn, rows * n, D, st.get(`${L0}.1.to_kv.weight`)!.values, 2 * inner);
    const bias = values(im.cpb_bias); // (heads, n, n)
    const merged = new Array<number>(rows * n * inner).fill(0);
    for (let r = 0; r < rows; r++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < n; i++) {
          const logits: number[] = [];
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let d = 0; d < dh; d++)
              s += q[(r * n + i) * inner + h * dh + d] * kv[(r * n + j) * 2 * inner + h * dh + d];
            logits.push(s / Math.sqrt(dh) + bias[(h * n + i) * n + j]);
          }
          const m = Math.max(...logits);
          const e = logits.map((l) => Math.exp(l - m));
          const z = e.reduce((a, b) => a + b, 0);
          for (let d = 0; d < dh; d++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += (e[j] / z) * kv[(r * n + j) * 2 * inner + inner + h * dh + d];
            merged[(r * n + i) * inner + h * dh + d] = s;
          }
        }
    const expected = linear(merged, rows * n, inner, st.get(`${L0}.1.to_out.weight`)!.values, D);
    expect(maxAbsDiff(values(im.spatial_l0_attn), expected)).to.be.below(1e-4);
  });

  it('RMSNorm norm_out = x·w / (√mean(x²) + 1e-8) and SwiGLU ff = W_out(SiLU(a)·b), from the recorded inputs', async function () {
    const cfg: CTViTConfig = { ...TINY, use_rms_norm: true, use_swiglu: true, seed: 12 };
    const model = CTViT.create(cfg).eval();
    perturb(model, (n) => n.endsWith('norm_out.weight') || n.startsWith(`${L0}.3.0.`), 5);
    const st = stateOf(model);
    const out = await model.forward(randomTensor([1, 1, 8, 32, 32], 6), { returnIntermediates: true });
    const im = out.intermediates!;
    const [rows, n, D] = shapeOf(im.spatial_l0_peg);
    const tokens = values(im.patch_emb);
    const x1 = values(im.spatial_l0_peg).map((p, i) => p + tokens[i]);
    const x2 = values(im.spatial_l0_attn).map((a, i) => a + x1[i]);
    // SwiGLU
    const I = Math.trunc(4 * (2 / 3) * D);
    const h = layerNorm(x2, rows * n, D, st.get(`${L0}.3.0.weight`)!.values, st.get(`${L0}.3.0.bias`)!.values);
    const proj = linear(h, rows * n, D, st.get(`${L0}.3.1.weight`)!.values, 2 * I);
    const gated = new Array<number>(rows * n * I);
    for (let r = 0; r < rows * n; r++)
      for (let i = 0; i < I; i++) {
        const a = proj[r * 2 * I + i],
          b = proj[r * 2 * I + I + i];
        gated[r * I + i] = (a / (1 + Math.exp(-a))) * b;
      }
    const ff = linear(gated, rows * n, I, st.get(`${L0}.3.4.weight`)!.values, D);
    expect(maxAbsDiff(values(im.spatial_l0_ff), ff)).to.be.below(1e-4);
    // RMSNorm
    const x3 = values(im.spatial_l0_ff).map((f, i) => f + x2[i]);
    const w = st.get('enc_spatial_transformer.norm_out.weight')!.values;
    const expected = new Array<number>(x3.length);
    for (let r = 0; r < rows * n; r++) {
      let ms = 0;
      for (let d = 0; d < D; d++) ms += x3[r * D + d] ** 2;
      const rms = Math.sqrt(ms / D);
      for (let d = 0; d < D; d++) expected[r * D + d] = (x3[r * D + d] / (rms + 1e-8)) * w[d];
    }
    expect(maxAbsDiff(values(im.spatial_out), expected)).to.be.below(1e-4);
  });

  it('gradients reach every variant parameter (finite, not all zero)', async function () {
    const cfg: CTViTConfig = {
      ...TINY,
      use_flash_attention: true,
      use_rms_norm: true,
      use_swiglu: true,
      spatial_depth: 2,
      seed: 13,
    };
    const model = CTViT.create(cfg).train();
    const r = await model.forwardBackward(randomTensor([2, 1, 8, 32, 32], 7), randomTensor([2, model.embeddingDim], 8));
    const grads = new Map(r.grads.names.map((n, i) => [n, values(r.grads.tensors[i])]));
    for (const name of [
      `${L0}.1.norm.weight`,
      `${L0}.1.norm.bias`,
      `${L0}.1.to_q.weight`,
      `${L0}.1.to_kv.weight`,
      `${L0}.3.1.weight`,
      'enc_spatial_transformer.norm_out.weight',
      'spatial_rel_pos_bias.net.2.weight',
    ]) {
      const g = grads.get(name);
      expect(g, name).to.not.equal(undefined);
      expect(g!.every(Number.isFinite), name).to.equal(true);
      expect(
        g!.some((v) => v !== 0),
        name,
      ).to.equal(true);
    }
  });

  it('eval-mode CPB cache: reused between forwards, invalidated by a weight load, identical to an uncached model', async function () {
    const model = CTViT.create({ ...TINY, seed: 14 }).eval();
    const x = randomTensor([1, 1, 8, 32, 32], 10);
    // spatial_out (before the VQ, whose codes may absorb a small change)
    const so = async (m: CTViT) =>
      values((await m.forward(x, { returnIntermediates: true })).intermediates!.spatial_out);
    const a1 = await so(model);
    const a2 = await so(model);
    expect(a2).to.deep.equal(a1);
    perturb(model, (n) => n.startsWith('spatial_rel_pos_bias.'), 21);
    const b = values((await model.forward(x, { returnIntermediates: true })).intermediates!.cpb_bias);
    // a fresh model with the same weights (nothing cached) gives the same bias
    const fresh = CTViT.create({ ...TINY, seed: 99 }).eval();
    const sd = model.stateDict();
    fresh.loadStateDict(sd.names, sd.tensors);
    const c = values((await fresh.forward(x, { returnIntermediates: true })).intermediates!.cpb_bias);
    expect(b).to.deep.equal(c);
    const a3 = await so(model);
    expect(a3).to.not.deep.equal(a1);
    expect(a3).to.deep.equal(await so(fresh));
  });

  it('a CT-CLIP training step runs with all three variants on and gives a finite loss', async function () {
    const model = CTClip.create({
      image: { ...TINY, use_flash_attention: true, use_rms_norm: true, use_swiglu: true },
      text: { ...TINY_BERT, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 },
      dim_latent: 8,
      seed: 1,
    });
    model.train();
    const B = 2,
      L = 8;
    const ids = new BigInt64Array(B * L).map((_, i) => BigInt(i % L === 0 ? 2 : 5 + (i % 40)));
    const mask = new BigInt64Array(B * L).fill(1n);
    const r = await model.trainStep(
      {
        inputIds: tensorFromBuffer(ids, 'int64', [B, L]),
        attentionMask: tensorFromBuffer(mask, 'int64', [B, L]),
        volumes: randomTensor([B, 32, 32, 8], 9),
      },
      1e-3,
    );
    expect(Number.isFinite(r.loss)).to.equal(true);
    model.dispose();
  });
});
