/**
 * CTViT behaviour beyond the golden fixtures: CPB on/off, the literal temporal-PEG reinterpretation, activation
 * checkpointing, the rotation quantizer against its closed form (native/model/vector_quantizer.h), shape/config errors, safetensors
 * round trips and seeded determinism. Tiny configs only (the whole file runs in seconds).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CTViT, ctvitFlops, resolveCTViTConfig, type CTViTConfig } from '../../lib/model/ctvit';
import { loadSafetensors, saveSafetensors } from '../../lib/weights/safetensors-native';
import { loadAddon, type TensorHandle } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { requireAddon } from '../helpers/native';
import { TINY_CTVIT, PUBLISHED_CTVIT } from '../helpers/tiny-configs';
import { randomTensor, values } from '../helpers/tensors';
import { expectRejects } from '../helpers/errors';

const TINY: CTViTConfig = { ...TINY_CTVIT, seed: 3 };

function video(config: CTViTConfig, batch: number, frames: number, seed: number): TensorHandle {
  return randomTensor([batch, config.channels ?? 1, frames, config.image_size, config.image_size], seed);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function stateValues(model: CTViT, name: string): number[] {
  const sd = model.stateDict();
  const i = sd.names.indexOf(name);
  if (i < 0) throw new Error(`no state tensor ${name}`);
  return values(sd.tensors[i]);
}

/**
 * Causal depthwise 3×3×3 conv of the PEG on a (B, T, H, W, D) channels-last grid given as a flat buffer; zero
 * padding 2/0 on T, 1/1 on H and W. Returns the flat (B, T, H, W, D) output.
 */
function pegConv(
  grid: ArrayLike<number>,
  B: number,
  T: number,
  H: number,
  W: number,
  D: number,
  w: number[],
  bias: number[],
): Float64Array {
  const out = new Float64Array(B * T * H * W * D);
  const at = (b: number, t: number, h: number, x: number, d: number) => (((b * T + t) * H + h) * W + x) * D + d;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        for (let x = 0; x < W; x++)
          for (let d = 0; d < D; d++) {
            let s = bias[d];
            for (let kt = 0; kt < 3; kt++)
              for (let ky = 0; ky < 3; ky++)
                for (let kx = 0; kx < 3; kx++) {
                  const tt = t + kt - 2,
                    yy = h + ky - 1,
                    xx = x + kx - 1;
                  if (tt < 0 || tt >= T || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                  s += w[d * 27 + kt * 9 + ky * 3 + kx] * grid[at(b, tt, yy, xx, d)];
                }
            out[at(b, t, h, x, d)] = s;
          }
  return out;
}

describe('native: CTViT', function () {
  before(function () {
    requireAddon(this);
    // a stale addon built before this module existed cannot run these tests (rebuild with npm run build:native)
  });

  describe('continuous position bias', function () {
    it('is on by default; perturbing its weights changes the output with CPB on and not with CPB off', async function () {
      const x = video(TINY, 2, 12, 11);
      const on = CTViT.create(TINY);
      const off = CTViT.create({ ...TINY, use_cpb: false });
      expect(on.config.use_cpb).to.equal(true);
      const key = 'spatial_rel_pos_bias.net.2.weight';
      expect(stateValues(on, key)).to.deep.equal(stateValues(off, key));

      const before = await Promise.all([on, off].map((m) => m.forward(x, { returnIntermediates: true })));
      expect(before[0].intermediates).to.have.property('cpb_bias');
      expect(before[1].intermediates).to.not.have.property('cpb_bias');
      // the bias is non-zero, so on and off differ already
      expect(
        maxAbsDiff(values(before[0].intermediates!.spatial_out), values(before[1].intermediates!.spatial_out)),
      ).to.be.above(1e-4);

      const perturbed = stateValues(on, key).map((v) => v * 10 + 0.5);
      for (const m of [on, off]) {
        const report = m.loadStateDict(
          [key],
          [tensorFromBuffer(new Float32Array(perturbed), 'float32', [TINY.heads, TINY.dim])],
          { strict: false },
        );
        expect(report.unexpected).to.deep.equal([]);
      }
      const after = await Promise.all([on, off].map((m) => m.forward(x, { returnIntermediates: true })));
      expect(
        maxAbsDiff(values(before[0].intermediates!.vq_input), values(after[0].intermediates!.vq_input)),
      ).to.be.above(1e-3);
      expect(values(after[1].intermediates!.vq_input)).to.deep.equal(values(before[1].intermediates!.vq_input));
      expect(values(after[1].embedding)).to.deep.equal(values(before[1].embedding));
    });
  });

  describe('PEG', function () {
    it('temporal PEG = literal raw reinterpretation of the (b h w) t d buffer, not a "corrected" conv', async function () {
      const model = CTViT.create(TINY); // T' = 3 ≠ H' = W' = 4, so the scramble is visible
      const B = 2,
        T = 3,
        H = 4,
        W = 4,
        D = TINY.dim;
      const r = await model.forward(video(TINY, B, 12, 5), { returnIntermediates: true });
      const im = r.intermediates!;
      const spatialOut = values(im.spatial_out); // (B·T, H·W, D)
      const peg = values(im.temporal_l0_peg); // (B·H·W, T, D)
      const w = stateValues(model, 'enc_temporal_transformer.layers.0.0.dsconv.weight');
      const bias = stateValues(model, 'enc_temporal_transformer.layers.0.0.dsconv.bias');

      // the temporal stack's input buffer: (b h w) t d
      const xt = new Float64Array(B * H * W * T * D);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let s = 0; s < H * W; s++)
            for (let d = 0; d < D; d++)
              xt[((b * H * W + s) * T + t) * D + d] = spatialOut[((b * T + t) * H * W + s) * D + d];

      // literal: the same buffer read as (B, T, H, W, D)
      const literal = pegConv(xt, B, T, H, W, D, w, bias);
      expect(maxAbsDiff(peg, literal)).to.be.below(1e-5);

      // "corrected": gather the true (b, t, h, w) grid, convolve, scatter back to (b h w) t d
      const grid = new Float64Array(xt.length);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let s = 0; s < H * W; s++)
            for (let d = 0; d < D; d++) grid[((b * T + t) * H * W + s) * D + d] = xt[((b * H * W + s) * T + t) * D + d];
      const conv = pegConv(grid, B, T, H, W, D, w, bias);
      const corrected = new Float64Array(xt.length);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++)
          for (let s = 0; s < H * W; s++)
            for (let d = 0; d < D; d++)
              corrected[((b * H * W + s) * T + t) * D + d] = conv[((b * T + t) * H * W + s) * D + d];
      expect(maxAbsDiff(peg, corrected)).to.be.above(1e-2);

      // spatial PEG: there the reinterpretation is the true layout
      const patchEmb = values(im.patch_emb);
      const ws = stateValues(model, 'enc_spatial_transformer.layers.0.0.dsconv.weight');
      const bs = stateValues(model, 'enc_spatial_transformer.layers.0.0.dsconv.bias');
      expect(maxAbsDiff(values(im.spatial_l0_peg), pegConv(patchEmb, B, T, H, W, D, ws, bs))).to.be.below(1e-5);
    });
  });

  describe('activation checkpointing', function () {
    it('gives bit-identical gradients, outputs and codebook updates', async function () {
      const cfg: CTViTConfig = { ...TINY, spatial_depth: 2, temporal_depth: 2, seed: 21 };
      const plain = CTViT.create(cfg).train();
      const ckpt = CTViT.create({ ...cfg, activation_checkpointing: true }).train();
      const x = video(cfg, 2, 12, 8);
      const g = randomTensor([2, plain.embeddingDim], 9);
      const a = await plain.forwardBackward(x, g);
      const b = await ckpt.forwardBackward(x, g);
      expect(values(b.embedding)).to.deep.equal(values(a.embedding));
      expect(b.grads.names).to.deep.equal(a.grads.names);
      expect(a.grads.names.length).to.equal(plain.stateDict().kinds.filter((k) => k === 'parameter').length);
      a.grads.names.forEach((name, i) =>
        expect(values(b.grads.tensors[i]), name).to.deep.equal(values(a.grads.tensors[i])),
      );
      expect(stateValues(ckpt, 'vq._codebook.embed')).to.deep.equal(stateValues(plain, 'vq._codebook.embed'));
    });
  });

  describe('vector quantizer', function () {
    const D = 8,
      K = 12,
      N = 10;
    const cfg: CTViTConfig = { ...TINY, dim: D, codebook_size: K, heads: 1, seed: 31 };

    function rowsOf(flat: number[], n: number, d: number): number[][] {
      return Array.from({ length: n }, (_, i) => flat.slice(i * d, (i + 1) * d));
    }
    const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
    const norm = (a: number[]) => Math.sqrt(dot(a, a));
    const scale = (a: number[], s: number) => a.map((v) => v * s);
    const argmaxCos = (x: number[], E: number[][]) => {
      let best = 0,
        bestV = -Infinity;
      E.forEach((e, j) => {
        const c = dot(x, e) / (norm(x) * norm(e));
        if (c > bestV) [best, bestV] = [j, c];
      });
      return best;
    };

    it('straight-through (default): output = stored row, ∂L/∂x = ∂L/∂out exactly; eval leaves the codebook alone', async function () {
      const model = CTViT.create(cfg);
      const x = randomTensor([1, N, D], 41);
      const g = randomTensor([1, N, D], 42);
      const E = rowsOf(stateValues(model, 'vq._codebook.embed'), K, D);
      const xs = rowsOf(values(x), N, D);

      const ev = await model.vqForward(x, g);
      const idx = values(ev.indices);
      expect(idx).to.deep.equal(xs.map((r) => argmaxCos(r, E)));
      expect(values(ev.quantized)).to.deep.equal(idx.flatMap((j) => Array.from(new Float32Array(E[j]))));
      expect(ev.grad).to.equal(undefined); // eval: no gradient path
      expect(rowsOf(stateValues(model, 'vq._codebook.embed'), K, D)).to.deep.equal(E);

      model.train();
      const tr = await model.vqForward(x, g);
      expect(values(tr.indices)).to.deep.equal(idx);
      expect(
        maxAbsDiff(
          values(tr.quantized),
          idx.flatMap((j) => E[j]),
        ),
      ).to.be.below(1e-6);
      expect(values(tr.grad!)).to.deep.equal(values(g));
      expect(maxAbsDiff(stateValues(model, 'vq._codebook.embed'), E.flat())).to.be.above(1e-4); // EMA moved it
    });

    it('rotation: matches the closed form (value, gradient, EMA with embed_avg)', async function () {
      const model = CTViT.create({ ...cfg, vq: 'rotation' }).train();
      const sd = model.stateDict();
      expect(
        sd.names.slice(sd.names.indexOf('vq._codebook.initted'), sd.names.indexOf('vq._codebook.initted') + 4),
      ).to.deep.equal([
        'vq._codebook.initted',
        'vq._codebook.cluster_size',
        'vq._codebook.embed_avg',
        'vq._codebook.embed',
      ]);
      // a codebook that is not unit-norm, so the |e|/|x̂| factor matters
      const E0 = rowsOf(stateValues(model, 'vq._codebook.embed'), K, D).map((r, j) => scale(r, 0.7 + 0.05 * j));
      model.loadStateDict(
        ['vq._codebook.embed'],
        [tensorFromBuffer(new Float32Array(E0.flat()), 'float32', [1, K, D])],
        { strict: false },
      );
      const E = rowsOf(stateValues(model, 'vq._codebook.embed'), K, D);
      const avg0 = rowsOf(stateValues(model, 'vq._codebook.embed_avg'), K, D);
      const cs0 = stateValues(model, 'vq._codebook.cluster_size');

      const x = randomTensor([1, N, D], 51);
      const g = randomTensor([1, N, D], 52);
      const out = await model.vqForward(x, g);
      const xs = rowsOf(values(x), N, D);
      const gs = rowsOf(values(g), N, D);
      const idx = values(out.indices);
      const q = rowsOf(values(out.quantized), N, D);
      const grad = rowsOf(values(out.grad!), N, D);
      let worstValue = 0,
        worstGrad = 0;
      xs.forEach((xr, n) => {
        const xh = scale(xr, 1 / Math.max(norm(xr), 1e-6)); // 1.23.2 quantizes l2norm(x)
        expect(idx[n]).to.equal(argmaxCos(xh, E));
        const e = E[idx[n]];
        worstValue = Math.max(worstValue, maxAbsDiff(q[n], e)); // forward value = e
        const u = scale(xh, 1 / norm(xh));
        const qh = scale(e, 1 / norm(e));
        const w = scale(
          u.map((v, i) => v + qh[i]),
          1 / norm(u.map((v, i) => v + qh[i])),
        );
        const s = norm(e) / norm(xh);
        // ∂L/∂x̂ = s·(I − 2wwᵀ + 2u q̂ᵀ) g, then back through x̂ = x/|x|: (I − x̂x̂ᵀ)/|x|
        const gx = gs[n];
        const gxh = gx.map((v, i) => s * (v - 2 * w[i] * dot(w, gx) + 2 * u[i] * dot(qh, gx)));
        const nx = norm(xr);
        const expected = gxh.map((v, i) => (v - xh[i] * dot(xh, gxh)) / nx);
        worstGrad = Math.max(worstGrad, maxAbsDiff(grad[n], expected) / (1 + Math.max(...expected.map(Math.abs))));
      });
      expect(worstValue).to.be.below(1e-5);
      expect(worstGrad).to.be.below(1e-5);
      // the rotation is not the identity: the gradient differs from straight-through
      expect(maxAbsDiff(grad.flat(), gs.flat())).to.be.above(1e-3);

      // EMA: cluster_size, embed_avg lerp by 0.2; embed = l2norm(embed_avg / laplace-smoothed cluster_size)
      const bins = new Array(K).fill(0);
      const sums = Array.from({ length: K }, () => new Array(D).fill(0));
      xs.forEach((xr, n) => {
        const xh = scale(xr, 1 / Math.max(norm(xr), 1e-6));
        bins[idx[n]] += 1;
        xh.forEach((v, i) => (sums[idx[n]][i] += v));
      });
      const cs = cs0.map((c, j) => 0.8 * c + 0.2 * bins[j]);
      const avg = avg0.map((r, j) => r.map((v, i) => 0.8 * v + 0.2 * sums[j][i]));
      const total = cs.reduce((a, b) => a + b, 0);
      const smoothed = cs.map((c) => ((c + 1e-5) / (total + K * 1e-5)) * total);
      const embed = avg.map((r, j) => {
        const m = r.map((v) => v / smoothed[j]);
        return scale(m, 1 / Math.max(norm(m), 1e-6));
      });
      expect(maxAbsDiff(stateValues(model, 'vq._codebook.cluster_size'), cs)).to.be.below(1e-5);
      expect(maxAbsDiff(stateValues(model, 'vq._codebook.embed_avg'), avg.flat())).to.be.below(1e-5);
      expect(maxAbsDiff(stateValues(model, 'vq._codebook.embed'), embed.flat())).to.be.below(1e-5);
    });
  });

  describe('shapes and configuration', function () {
    it('rejects bad video shapes with SHAPE_ERROR naming the sizes', async function () {
      const model = CTViT.create(TINY);
      await expectRejects(
        model.forward(randomTensor([1, 1, 12, 32, 24], 1)),
        'SHAPE_ERROR',
        '32×24',
        'image_size = 32',
      );
      await expectRejects(
        model.forward(randomTensor([1, 1, 10, 32, 32], 1)),
        'SHAPE_ERROR',
        'F = 10',
        'temporal_patch_size = 4',
      );
      await expectRejects(model.forward(randomTensor([1, 12, 32, 32], 1)), 'SHAPE_ERROR', '5-D');
      await expectRejects(model.forward(randomTensor([1, 2, 12, 32, 32], 1)), 'SHAPE_ERROR', '2 channels');
      const g = randomTensor([1, 7], 1);
      await expectRejects(model.train().forwardBackward(video(TINY, 1, 12, 1), g), 'SHAPE_ERROR', 'gradOutput');
    });

    it('rejects bad configurations with ARGUMENT_ERROR naming the key (TS and native)', async function () {
      await expectRejects(
        () => CTViT.create({ ...TINY, image_size: 30 }),
        'ARGUMENT_ERROR',
        "'image_size' (30)",
        "'patch_size' (8)",
      );
      await expectRejects(() => CTViT.create({ ...TINY, heads: 0 }), 'ARGUMENT_ERROR', "'heads'");
      await expectRejects(() => CTViT.create({ ...TINY, vq: 'gumbel' as never }), 'ARGUMENT_ERROR', "'vq'");
      await expectRejects(() => resolveCTViTConfig({ ...TINY, dimm: 3 }), 'ARGUMENT_ERROR', "'dimm'");
      const raw = loadAddon();
      await expectRejects(() => raw.createCTViT({ ...TINY, image_size: 30 }), 'ARGUMENT_ERROR', "'image_size'");
      const { dim: _dim, ...noDim } = TINY;
      await expectRejects(() => raw.createCTViT(noDim as CTViTConfig), 'ARGUMENT_ERROR', "'dim'");
      await expectRejects(() => raw.createCTViT({ ...TINY, vq_decay: 1.5 }), 'ARGUMENT_ERROR', "'vq_decay'");
    });

    it('works at 480×480 (patch 20, temporal patch 10) and at 32×32×12; every size comes from the config', async function () {
      const big: CTViTConfig = {
        dim: 8,
        codebook_size: 16,
        image_size: 480,
        patch_size: 20,
        temporal_patch_size: 10,
        spatial_depth: 1,
        temporal_depth: 1,
        heads: 1,
        dim_head: 8,
        seed: 1,
      };
      const model = CTViT.create(big);
      const r = await model.forward(video(big, 1, 20, 3));
      expect(readTensor(r.embedding).shape).to.deep.equal([1, 24 * 24 * 8]);
      expect(readTensor(r.quantized).shape).to.deep.equal([1, 2, 24, 24, 8]);
      expect(readTensor(r.indices).shape).to.deep.equal([1, 2 * 24 * 24]);
      await expectRejects(model.forward(video(big, 1, 25, 3)), 'SHAPE_ERROR', 'F = 25');
      const tiny = CTViT.create(TINY);
      const t = await tiny.forward(video(TINY, 3, 12, 4));
      expect(readTensor(t.embedding).shape).to.deep.equal([3, 4 * 4 * 16]);
      // 240 slices: 24 slabs; the analytic FLOPs of the published config match the reference's FlopCounterMode totals (docs/reference.md)
      const published = resolveCTViTConfig({ ...PUBLISHED_CTVIT, seed: 0 });
      const f = ctvitFlops(published, 1, 240);
      expect(f.forward / 1e9).to.be.closeTo(966.67, 0.5);
      expect(ctvitFlops(published, 1, 240, { train: true }).forward / 1e9).to.be.closeTo(1082.63, 0.5);
    });
  });

  describe('state and determinism', function () {
    it('same seed ⇒ identical weights; another seed ⇒ different; inert tensors are marked and excluded from training', function () {
      const a = CTViT.create({ ...TINY, seed: 5 });
      const b = CTViT.create({ ...TINY, seed: 5 });
      const c = CTViT.create({ ...TINY, seed: 6 });
      const sa = a.stateDict();
      const sb = b.stateDict();
      sa.names.forEach((n, i) => expect(values(sb.tensors[i]), n).to.deep.equal(values(sa.tensors[i])));
      expect(stateValues(c, 'to_patch_emb.2.weight')).to.not.deep.equal(stateValues(a, 'to_patch_emb.2.weight'));
      const inert = sa.names.filter((_, i) => sa.kinds[i] === 'inert');
      expect(inert).to.include.members([
        'to_patch_emb_first_frame.2.weight',
        'to_pixels.0.weight',
        'to_pixels_first_frame.0.bias',
        'enc_spatial_transformer.layers.0.1.context_norm.gamma',
      ]);
      expect(sa.kinds[sa.names.indexOf('vq._codebook.embed')]).to.equal('buffer');
      expect(sa.kinds[sa.names.indexOf('enc_temporal_transformer.norm_out.beta')]).to.equal('buffer');
      expect(sa.shapes[sa.names.indexOf('enc_spatial_transformer.layers.0.1.null_kv')]).to.deep.equal([2, 0, 8]);
      // codebook rows start at unit norm
      const E = stateValues(a, 'vq._codebook.embed');
      for (let j = 0; j < TINY.codebook_size; j++) {
        const r = E.slice(j * TINY.dim, (j + 1) * TINY.dim);
        expect(Math.sqrt(r.reduce((s, v) => s + v * v, 0))).to.be.closeTo(1, 1e-5);
      }
      expect(a.trainableParameterCount()).to.be.below(a.parameterCount());
    });

    it('safetensors round trip: save → load into a differently seeded model → forward is bit-identical', async function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-ctvit-'));
      try {
        const src = CTViT.create({ ...TINY, seed: 11 }).train();
        const x = video(TINY, 2, 12, 77);
        await src.forward(x); // one EMA step so the buffers are not at their init values
        src.eval();
        const sd = src.stateDict();
        const file = path.join(dir, 'ctvit.safetensors');
        await saveSafetensors(file, sd.names, sd.tensors, { format: 'pt', note: 'round trip' });
        const loaded = await loadSafetensors(file);
        expect(loaded.names).to.deep.equal(sd.names);
        expect(loaded.metadata).to.deep.equal({ format: 'pt', note: 'round trip' });
        const dst = CTViT.create({ ...TINY, seed: 12 });
        expect(dst.loadStateDict(loaded.names, loaded.tensors)).to.deep.equal({ missing: [], unexpected: [] });
        const [a, b] = [
          await src.forward(x, { returnIntermediates: true }),
          await dst.forward(x, { returnIntermediates: true }),
        ];
        for (const name of Object.keys(a.intermediates!)) {
          expect(values(b.intermediates![name]), name).to.deep.equal(values(a.intermediates![name]));
        }
        expect(values(b.embedding)).to.deep.equal(values(a.embedding));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('strict loading names missing/unexpected keys and wrong shapes', async function () {
      const model = CTViT.create(TINY);
      const sd = model.stateDict();
      await expectRejects(
        () => model.loadStateDict(sd.names.slice(1), sd.tensors.slice(1)),
        'DATA_ERROR',
        'missing keys',
        sd.names[0],
      );
      await expectRejects(
        () => model.loadStateDict([...sd.names, 'extra.weight'], [...sd.tensors, sd.tensors[0]]),
        'DATA_ERROR',
        'unexpected keys: extra.weight',
      );
      const report = model.loadStateDict(['extra.weight'], [sd.tensors[0]], { strict: false });
      expect(report.unexpected).to.deep.equal(['extra.weight']);
      expect(report.missing.length).to.equal(sd.names.length);
      await expectRejects(
        () => model.loadStateDict(['to_patch_emb.2.weight'], [randomTensor([3, 3], 1)], { strict: false }),
        'SHAPE_ERROR',
        'to_patch_emb.2.weight',
        '[3, 3]',
      );
    });
  });
});
