/**
 * CT-CLIP behaviour beyond the golden fixtures (tiny configs, seconds in all): the dynamic loss scaler with injected
 * non-finite gradients, non-finite losses, bf16 autocast on CPU, gradient accumulation, inert tensors, optimizer /
 * scaler / RNG state export and import, seeded determinism, the loss formulas against the returned logits, the
 * loader's float16 (B, H, W, D) volume layout, zero-shot shapes, config errors and the run-config mapper.
 */
import { expect } from 'chai';
import { parseConfig } from '../../lib/config/load';
import { float32ArrayToFloat16 } from '../../lib/data/float16';
import { modelConfigFromConfig } from '../../lib/model/config';
import {
  CTClip,
  resolveCTClipConfig,
  zeroShotPromptTexts,
  type CTClipBatch,
  type CTClipConfig,
} from '../../lib/model/ctclip';
import { loadAddon, type TensorHandle } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { makeCTClipBatch } from '../helpers/ctclip-batch';
import { requireAddon } from '../helpers/native';
import { TINY_BERT, TINY_CTCLIP_IMAGE, tinyRunModel } from '../helpers/tiny-configs';
import { maxAbs, randomData, scalar, shapeOf, values } from '../helpers/tensors';
import { expectRejects } from '../helpers/errors';

const F = 4;
const TINY: CTClipConfig = {
  image: TINY_CTCLIP_IMAGE,
  text: TINY_BERT,
  dim_latent: 8,
  seed: 7,
  training: { max_grad_norm: 0.5 },
};

function cfg(
  over: Partial<CTClipConfig> = {},
  image: Partial<CTClipConfig['image']> = {},
  text: Partial<CTClipConfig['text']> = {},
): CTClipConfig {
  return { ...TINY, ...over, image: { ...TINY.image, ...image }, text: { ...TINY.text, ...text } };
}

function makeBatch(config: CTClipConfig, B: number, seed: number, L = 10): CTClipBatch {
  return makeCTClipBatch(config, B, seed, { L, frames: F });
}

function stateValues(model: CTClip): Map<string, number[]> {
  const sd = model.stateDict();
  return new Map(sd.names.map((n, i) => [n, values(sd.tensors[i])]));
}

/** Independent copies of every state tensor (the state dict shares memory with the model). */
function stateCopy(model: CTClip): { names: string[]; tensors: TensorHandle[] } {
  const sd = model.stateDict();
  return {
    names: sd.names,
    tensors: sd.tensors.map((t) => {
      const d = readTensor(t);
      return tensorFromBuffer(d.data, d.dtype, d.shape);
    }),
  };
}

function maxDiff(a: number[], b: number[]): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('native: CT-CLIP model and training step', function () {
  before(function () {
    requireAddon(this);
    // An addon built without the CT-CLIP functions must fail these tests, not skip them.
    expect(
      typeof (loadAddon() as unknown as Record<string, unknown>).createCTClip,
      'addon lacks createCTClip (rebuild it)',
    ).to.equal('function');
  });

  describe('dynamic loss scaling and skipped steps', function () {
    it('injected inf gradients: skip (no optimizer advance), backoff ×0.5, growth ×2 after N good steps', async function () {
      const model = CTClip.create(
        cfg({ training: { max_grad_norm: 0.5, loss_scale: { enabled: true, init_scale: 1024, growth_interval: 3 } } }),
      );
      model.train();
      const batch = makeBatch(TINY, 3, 1);
      expect(model.scalerState()).to.deep.equal({ enabled: true, scale: 1024, growthTracker: 0 });
      const before = stateValues(model);

      await model.accumulate(batch);
      const bad = await model.optimizerStep(1e-3, { injectNonFiniteGrad: true });
      expect(bad.skipped).to.equal(true);
      expect(bad.gradNorm).to.satisfy((x: number) => !Number.isFinite(x));
      expect(bad.lossScale).to.equal(512);
      expect(bad.optimizerSteps).to.equal(0);
      expect(bad.skippedSteps).to.equal(1);
      expect(model.optimizerState().names, 'no optimizer state after a skipped step').to.deep.equal([]);
      const afterSkip = stateValues(model);
      for (const [name, v] of before) {
        if (!name.includes('vq._codebook'))
          expect(afterSkip.get(name), `${name} unchanged by a skipped step`).to.deep.equal(v);
      }

      const scales: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await model.trainStep(batch, 1e-3);
        expect(r.skipped).to.equal(false);
        expect(Number.isFinite(r.gradNorm)).to.equal(true);
        scales.push(r.lossScale);
      }
      expect(scales).to.deep.equal([512, 512, 1024, 1024]);
      expect(model.scalerState()).to.deep.equal({ enabled: true, scale: 1024, growthTracker: 1 });
      expect(model.info().optimizerSteps).to.equal(4);
      expect(model.info().skippedSteps).to.equal(1);
      expect(model.optimizerState().step.every((s) => s === 4)).to.equal(true);

      // a restored scaler state continues from there
      model.setScalerState({ scale: 8, growthTracker: 2 });
      const r = await model.trainStep(batch, 1e-3);
      expect(r.lossScale).to.equal(16);
      model.dispose();
    });

    it('loss scaling is transparent: the same pre-clip norm and update as without it', async function () {
      const plain = CTClip.create(cfg());
      const scaled = CTClip.create(
        cfg({ training: { max_grad_norm: 0.5, loss_scale: { enabled: true, init_scale: 65536 } } }),
      );
      const batch = makeBatch(TINY, 3, 2);
      plain.train();
      scaled.train();
      const a = await plain.trainStep(batch, 1e-3);
      const b = await scaled.trainStep(batch, 1e-3);
      expect(Math.abs(a.gradNorm - b.gradNorm) / a.gradNorm).to.be.below(1e-6);
      expect(b.lossScale).to.equal(65536);
      const pa = stateValues(plain);
      const pb = stateValues(scaled);
      for (const [name, v] of pa) expect(maxDiff(v, pb.get(name)!), name).to.be.below(1e-6);
      plain.dispose();
      scaled.dispose();
    });

    it('a non-finite loss skips the step in fp32 too (no scaler)', async function () {
      const model = CTClip.create(cfg());
      const sd = model.stateDict();
      // exp(100) overflows float32: the logits and the loss become non-finite
      model.loadStateDict(['temperature'], [tensorFromBuffer(new Float32Array([100]), 'float32', [])], {
        strict: false,
      });
      model.train();
      const before = stateValues(model);
      const r = await model.trainStep(makeBatch(TINY, 2, 3), 1e-3);
      expect(r.skipped).to.equal(true);
      expect(r.lossScale).to.equal(1);
      expect(r.optimizerSteps).to.equal(0);
      const after = stateValues(model);
      for (const [name, v] of before)
        if (!name.includes('vq._codebook')) expect(after.get(name), name).to.deep.equal(v);
      void sd;
      model.dispose();
    });
  });

  it('bf16 autocast runs on the CPU and stays close to fp32', async function () {
    const fp32 = CTClip.create(cfg());
    const bf16 = CTClip.create(cfg({ training: { max_grad_norm: 0.5, precision: 'bf16' } }));
    expect(bf16.info().precision).to.equal('bf16');
    const batch = makeBatch(TINY, 3, 4);
    fp32.train();
    bf16.train();
    const a = await fp32.accumulate(batch, { returnGrads: true });
    const b = await bf16.accumulate(batch, { returnGrads: true });
    expect(Math.abs(a.loss - b.loss), `loss fp32 ${a.loss} vs bf16 ${b.loss}`).to.be.below(0.05);
    expect(maxDiff(values(a.textLatents), values(b.textLatents))).to.be.below(0.05);
    expect(maxDiff(values(a.imageLatents), values(b.imageLatents))).to.be.below(0.05);
    // loss math in float32, parameters and gradients stay float32
    expect(readTensor(b.logits).dtype).to.equal('float32');
    expect(b.grads!.names).to.deep.equal(a.grads!.names);
    for (const t of b.grads!.tensors) expect(readTensor(t).dtype).to.equal('float32');
    const sa = await fp32.optimizerStep(1e-3);
    const sb = await bf16.optimizerStep(1e-3);
    expect(sb.skipped).to.equal(false);
    expect(Math.abs(sa.gradNorm - sb.gradNorm) / sa.gradNorm).to.be.below(0.1);
    fp32.dispose();
    bf16.dispose();
  });

  it('activation checkpointing under bf16 autocast recomputes in bf16: the same gradients as without checkpointing', async function () {
    const plain = CTClip.create(cfg({ training: { max_grad_norm: 0.5, precision: 'bf16' } }));
    const ckpt = CTClip.create(
      cfg({ training: { max_grad_norm: 0.5, precision: 'bf16' } }, { activation_checkpointing: true }),
    );
    const batch = makeBatch(TINY, 3, 5);
    plain.train();
    ckpt.train();
    const a = await plain.accumulate(batch, { returnGrads: true });
    const b = await ckpt.accumulate(batch, { returnGrads: true });
    expect(b.loss).to.equal(a.loss);
    expect(b.grads!.names).to.deep.equal(a.grads!.names);
    a.grads!.names.forEach((name, i) =>
      expect(values(b.grads!.tensors[i]), name).to.deep.equal(values(a.grads!.tensors[i])),
    );
    plain.dispose();
    ckpt.dispose();
  });

  it('fp16 (with the dynamic loss scaler) runs where libtorch has half CPU kernels, and is refused naming the key elsewhere', async function () {
    const v = loadAddon().buildInfo().compiledTorchVersion.split('.').map(Number);
    const hasHalf = v[0] > 2 || (v[0] === 2 && v[1] >= 1);
    const make = () => CTClip.create(cfg({ training: { precision: 'fp16' } }));
    if (hasHalf) {
      const m = make();
      expect(m.scalerState()).to.deep.equal({ enabled: true, scale: 65536, growthTracker: 0 });
      const ref = CTClip.create(cfg());
      m.train();
      ref.train();
      const batch = makeBatch(TINY, 3, 9);
      const b = await ref.trainStep(batch, 1e-3);
      // as with torch's GradScaler, fp16 gradients at the initial scale may overflow: those steps are skipped and
      // the scale backs off until a step goes through
      let scale = 65536;
      let a = await m.trainStep(batch, 1e-3);
      for (let i = 0; a.skipped && i < 20; i++) {
        scale /= 2;
        expect(a.lossScale).to.equal(scale);
        a = await m.trainStep(batch, 1e-3);
      }
      expect(a.skipped).to.equal(false);
      expect(a.lossScale).to.equal(scale);
      expect(a.optimizerSteps).to.equal(1);
      // (the skipped forwards still ran the VQ EMA, so the codebook differs a little from the fp32 run)
      expect(Math.abs(a.loss - b.loss)).to.be.below(0.15);
      m.dispose();
      ref.dispose();
    } else {
      expect(make).to.throw(/precision/);
    }
  });

  it('accumulating 2 micro-batches gives the mean loss and the average of the per-micro-batch gradients', async function () {
    // vq_decay 1: the codebook does not move between micro-batches, so both paths see the same quantizer.
    const c = cfg({}, { vq_decay: 1 });
    const acc = CTClip.create(c);
    const ref = CTClip.create(c);
    acc.train();
    ref.train();
    const b1 = makeBatch(c, 3, 5);
    const b2 = makeBatch(c, 3, 6);
    await acc.accumulate(b1, { accumulationSteps: 2 });
    const r2 = await acc.accumulate(b2, { accumulationSteps: 2, returnGrads: true });
    const g1 = await ref.accumulate(b1, { returnGrads: true });
    ref.zeroGrad();
    const g2 = await ref.accumulate(b2, { returnGrads: true });
    expect(r2.grads!.names).to.deep.equal(g1.grads!.names);
    for (const [i, name] of r2.grads!.names.entries()) {
      const got = values(r2.grads!.tensors[i]);
      const x = values(g1.grads!.tensors[i]);
      const y = values(g2.grads!.tensors[i]);
      const mean = x.map((v, k) => (v + y[k]) / 2);
      expect(maxDiff(got, mean), name).to.be.at.most(1e-6 + 1e-5 * maxAbs(mean));
    }
    const step = await acc.optimizerStep(1e-3);
    expect(step.microBatches).to.equal(2);
    expect(step.loss).to.be.closeTo((g1.loss + g2.loss) / 2, 1e-6);
    expect(acc.info().pendingMicroBatches).to.equal(0);
    await expectRejects(() => acc.optimizerStep(1e-3), 'ARGUMENT_ERROR', 'no micro-batch');
    acc.dispose();
    ref.dispose();
  });

  it('inert tensors never change, get no gradient and no optimizer state', async function () {
    const model = CTClip.create(cfg({ training: { max_grad_norm: 0.5, weight_decay: 0.5 } }));
    const sd = model.stateDict();
    const inert = sd.names.filter((_, i) => sd.kinds[i] === 'inert');
    for (const key of [
      'text_transformer.pooler.dense.weight',
      'to_text_latent_extra.weight',
      'to_visual_latent_extra.weight',
    ]) {
      expect(inert).to.include(key);
    }
    // the reference's deepcopy: extras start equal to the real projections
    const v0 = stateValues(model);
    expect(v0.get('to_text_latent_extra.weight')).to.deep.equal(v0.get('to_text_latent.weight'));
    model.train();
    const batch = makeBatch(TINY, 3, 8);
    const r = await model.accumulate(batch, { returnGrads: true });
    for (const name of inert) expect(r.grads!.names).to.not.include(name);
    await model.optimizerStep(1e-2);
    for (let i = 0; i < 2; i++) await model.trainStep(batch, 1e-2);
    const v1 = stateValues(model);
    for (const name of inert) expect(v1.get(name), name).to.deep.equal(v0.get(name));
    expect(model.optimizerState().names.filter((n) => inert.includes(n))).to.deep.equal([]);
    // trainable parameters did move, and the temperature is among them
    expect(v1.get('to_text_latent.weight')).to.not.deep.equal(v0.get('to_text_latent.weight'));
    expect(model.optimizerState().names).to.include('temperature');
    model.dispose();
  });

  it('optimizer, scaler, RNG state and counters export/import give an identical next step', async function () {
    const c = cfg({}, {}, { hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.1 });
    const a = CTClip.create(c);
    a.train();
    const b1 = makeBatch(c, 3, 10);
    const b2 = makeBatch(c, 3, 11);
    await a.trainStep(b1, 1e-3);

    // snapshot after step 1
    const weights = stateCopy(a);
    const opt = a.optimizerState();
    const rng = a.rngState();
    const rngCopy = {
      init: tensorFromBuffer(readTensor(rng.init).data, 'uint8', readTensor(rng.init).shape),
      dropout: tensorFromBuffer(readTensor(rng.dropout).data, 'uint8', readTensor(rng.dropout).shape),
    };
    const info = a.info();

    const s2 = await a.trainStep(b2, 1e-3);
    const expected = stateValues(a);

    const restored = CTClip.create({ ...c, seed: 12345 }); // a different seed: everything must come from the snapshot
    restored.loadStateDict(weights.names, weights.tensors);
    restored.loadOptimizerState(opt);
    restored.setRngState(rngCopy);
    restored.setScalerState(a.scalerState());
    restored.setStepCounters({ optimizerSteps: info.optimizerSteps, skippedSteps: info.skippedSteps });
    restored.train();
    const r2 = await restored.trainStep(b2, 1e-3);
    expect(r2.loss).to.equal(s2.loss);
    expect(r2.gradNorm).to.equal(s2.gradNorm);
    expect(r2.optimizerSteps).to.equal(2);
    const got = stateValues(restored);
    for (const [name, v] of expected) expect(got.get(name), name).to.deep.equal(v);
    expect(restored.optimizerState().step.every((s) => s === 2)).to.equal(true);

    // without the optimizer state the same step differs (the import matters)
    const fresh = CTClip.create(c);
    fresh.loadStateDict(weights.names, weights.tensors);
    fresh.setRngState(rngCopy);
    fresh.train();
    await fresh.trainStep(b2, 1e-3);
    expect(stateValues(fresh).get('to_text_latent.weight')).to.not.deep.equal(expected.get('to_text_latent.weight'));

    // bad optimizer state is refused with the key named
    await expectRejects(
      () =>
        restored.loadOptimizerState({
          names: ['nope'],
          exp_avg: [opt.exp_avg[0]],
          exp_avg_sq: [opt.exp_avg_sq[0]],
          step: [1],
        }),
      'DATA_ERROR',
      "'nope'",
    );
    await expectRejects(
      () =>
        restored.loadOptimizerState({
          names: [opt.names[1]],
          exp_avg: [opt.exp_avg[0]],
          exp_avg_sq: [opt.exp_avg_sq[0]],
          step: [1],
        }),
      'SHAPE_ERROR',
      opt.names[1],
    );
    for (const m of [a, restored, fresh]) m.dispose();
  });

  it('is deterministic per seed (weights, dropout masks, steps) and seeds differ', async function () {
    const c = cfg({}, {}, { hidden_dropout_prob: 0.25, attention_probs_dropout_prob: 0.25 });
    const x = CTClip.create(c);
    const y = CTClip.create(c);
    const z = CTClip.create({ ...c, seed: c.seed + 1 });
    const vx = stateValues(x);
    const vy = stateValues(y);
    const vz = stateValues(z);
    for (const [name, v] of vx) expect(vy.get(name), name).to.deep.equal(v);
    expect(vz.get('to_text_latent.weight')).to.not.deep.equal(vx.get('to_text_latent.weight'));
    expect(vz.get('text_transformer.embeddings.word_embeddings.weight')).to.not.deep.equal(
      vx.get('text_transformer.embeddings.word_embeddings.weight'),
    );
    // BERT padding row starts at zero
    expect(maxAbs(vx.get('text_transformer.embeddings.word_embeddings.weight')!.slice(0, c.text.hidden_size))).to.equal(
      0,
    );
    const batch = makeBatch(c, 3, 12);
    x.train();
    y.train();
    const losses: number[][] = [[], []];
    for (let i = 0; i < 2; i++) {
      losses[0].push((await x.trainStep(batch, 1e-3)).loss);
      losses[1].push((await y.trainStep(batch, 1e-3)).loss);
    }
    expect(losses[0]).to.deep.equal(losses[1]);
    // dropout is active in train mode: two forwards with the generator advancing differ; eval forwards do not
    const f1 = await x.forward(batch);
    const f2 = await x.forward(batch);
    expect(values(f1.textLatents)).to.not.deep.equal(values(f2.textLatents));
    x.eval();
    const e1 = await x.forward(batch);
    const e2 = await x.forward(batch);
    expect(values(e1.textLatents)).to.deep.equal(values(e2.textLatents));
    for (const m of [x, y, z]) m.dispose();
  });

  it('losses equal their formulas on the returned logits (InfoNCE symmetric CE, SigLIP)', async function () {
    for (const loss of ['softmax', 'siglip'] as const) {
      const model = CTClip.create(cfg({ loss }));
      model.train();
      const B = 3;
      const r = await model.forward(makeBatch(TINY, B, 13));
      const L = values(r.logits);
      expect(shapeOf(r.logits)).to.deep.equal([B, B]);
      let expected = 0;
      if (loss === 'softmax') {
        let rows = 0;
        let cols = 0;
        for (let i = 0; i < B; i++) {
          let sr = 0;
          let sc = 0;
          for (let j = 0; j < B; j++) {
            sr += Math.exp(L[i * B + j]);
            sc += Math.exp(L[j * B + i]);
          }
          rows += -(L[i * B + i] - Math.log(sr));
          cols += -(L[i * B + i] - Math.log(sc));
        }
        expected = (rows / B + cols / B) / 2;
      } else {
        for (let i = 0; i < B; i++) {
          for (let j = 0; j < B; j++) {
            const z = (i === j ? 1 : -1) * L[i * B + j];
            expected += Math.log1p(Math.exp(-z));
          }
        }
        expected /= B;
        // SigLIP init: temperature ln 10, bias −10
        const t = values(r.textLatents);
        const im = values(r.imageLatents);
        const d = t.length / B;
        let dot = 0;
        for (let k = 0; k < d; k++) dot += t[k] * im[k];
        expect(L[0]).to.be.closeTo(10 * dot - 10, 1e-4);
      }
      expect(r.loss).to.be.closeTo(expected, 1e-5);
      model.dispose();
    }
  });

  it("takes the loader's float16 (B, H, W, D) volumes: permuted and cast natively", async function () {
    const model = CTClip.create(TINY);
    const B = 2;
    const H = TINY.image.image_size;
    const D = F;
    const hwd = randomData(B * H * H * D, 21);
    const half = float32ArrayToFloat16(hwd);
    // the float32 (B, 1, D, H, W) equivalent built in JS from the float16-rounded values
    const { float16ArrayToFloat32 } = await import('../../lib/data/float16');
    const rounded = float16ArrayToFloat32(half);
    const video = new Float32Array(B * D * H * H);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < H; w++)
          for (let d = 0; d < D; d++) {
            video[((b * D + d) * H + h) * H + w] = rounded[((b * H + h) * H + w) * D + d];
          }
    const fromLoader = await model.encodeImage(tensorFromBuffer(half, 'float16', [B, H, H, D]));
    const fromVideo = await model.encodeImage(tensorFromBuffer(video, 'float32', [B, 1, D, H, H]));
    expect(values(fromLoader)).to.deep.equal(values(fromVideo));
    model.dispose();
  });

  it('zero-shot: prompt texts from the templates, (2·C, d) or (C, 2, d) prompt latents, P(present) from each pair', async function () {
    expect(
      zeroShotPromptTexts(['Cardiomegaly', 'Lung nodule'], {
        positive: '{p} is present.',
        negative: '{p} is not present.',
      }),
    ).to.deep.equal([
      'Cardiomegaly is present.',
      'Cardiomegaly is not present.',
      'Lung nodule is present.',
      'Lung nodule is not present.',
    ]);
    expect(
      zeroShotPromptTexts(['Emphysema'], { positive: 'There is {p}.', negative: 'There is no {p}.' }),
    ).to.deep.equal(['There is Emphysema.', 'There is no Emphysema.']);
    expect(() => zeroShotPromptTexts(['x'], { positive: 'no placeholder', negative: '{p}' })).to.throw(
      /validation\.prompts\.positive/,
    );

    const model = CTClip.create(TINY);
    const batch = makeBatch(TINY, 4, 30); // 4 texts = 2 classes × (present, absent)
    const text = await model.encodeText(batch.inputIds, batch.attentionMask);
    const image = await model.encodeImage(makeBatch(TINY, 3, 31).volumes);
    const z = await model.zeroShot(image, text);
    expect(shapeOf(z.logits)).to.deep.equal([3, 2, 2]);
    expect(shapeOf(z.pPresent)).to.deep.equal([3, 2]);
    const t = values(text);
    const im = values(image);
    const lg = values(z.logits);
    const p = values(z.pPresent);
    const s = Math.exp(scalar(model.stateDict().tensors[0]));
    const d = TINY.dim_latent;
    for (let v = 0; v < 3; v++) {
      for (let c = 0; c < 2; c++) {
        const dots = [0, 1].map((k) => {
          let acc = 0;
          for (let e = 0; e < d; e++) acc += t[(c * 2 + k) * d + e] * im[v * d + e];
          return s * acc;
        });
        expect(lg[(v * 2 + c) * 2]).to.be.closeTo(dots[0], 1e-5);
        expect(lg[(v * 2 + c) * 2 + 1]).to.be.closeTo(dots[1], 1e-5);
        expect(p[v * 2 + c]).to.be.closeTo(1 / (1 + Math.exp(dots[1] - dots[0])), 1e-6);
      }
    }
    const z3 = await model.zeroShot(image, tensorFromBuffer(new Float32Array(t), 'float32', [2, 2, d]), { scale: 1 });
    expect(values(z3.pPresent)[0]).to.be.closeTo(1 / (1 + Math.exp((lg[1] - lg[0]) / s)), 1e-6);
    await expectRejects(
      () => model.zeroShot(image, tensorFromBuffer(new Float32Array(3 * d), 'float32', [3, d])),
      'SHAPE_ERROR',
      'promptLatents',
    );
    model.dispose();
  });

  it('rejects bad configurations, inputs and learning rates with errors naming the key', async function () {
    expect(() => resolveCTClipConfig({ ...TINY, bogus: 1 })).to.throw(/unknown key 'bogus'/);
    expect(() => CTClip.create(cfg({}, {}, { num_attention_heads: 3 }))).to.throw(/num_attention_heads/);
    expect(() => CTClip.create(cfg({ loss: 'hinge' as 'softmax' }))).to.throw(/loss/);
    expect(() => CTClip.create(cfg({ training: { max_grad_norm: -1 } }))).to.throw(/max_grad_norm/);
    expect(() => CTClip.create(cfg({ dim_latent: 0 }))).to.throw(/dim_latent/);
    const model = CTClip.create(TINY);
    const batch = makeBatch(TINY, 2, 40);
    expect(() => model.trainStep(batch, -1)).to.throw(/learning rate/);
    expect(() => model.accumulate(batch, { accumulationSteps: 0 })).to.throw(/gradient_accumulation_steps/);
    const badIds = tensorFromBuffer(new BigInt64Array([2n, 999n, 3n, 2n, 5n, 3n]), 'int64', [2, 3]);
    const mask = tensorFromBuffer(new BigInt64Array(6).fill(1n), 'int64', [2, 3]);
    await expectRejects(
      model.forward({ ...batch, inputIds: badIds, attentionMask: mask }),
      'ARGUMENT_ERROR',
      'vocab_size',
    );
    const longIds = tensorFromBuffer(new BigInt64Array(2 * 20).fill(5n), 'int64', [2, 20]);
    await expectRejects(model.encodeText(longIds, longIds), 'SHAPE_ERROR', 'max_position_embeddings');
    await expectRejects(model.forward({ ...batch, volumes: makeBatch(TINY, 3, 41).volumes }), 'SHAPE_ERROR');
    expect(() => model.loadStateDict(['temperature'], [])).to.throw(/1 names but 0 tensors/);
    expect(() =>
      model.loadStateDict(['temperature'], [tensorFromBuffer(new Float32Array([1]), 'float32', [])]),
    ).to.throw(/missing keys/);
    model.dispose();
  });

  it('loads a state dict with the stale position_ids key, and maps a run config to a working model', async function () {
    const model = CTClip.create(TINY);
    const sd = stateCopy(model);
    const pos = tensorFromBuffer(
      new BigInt64Array(16).map((_, i) => BigInt(i)),
      'int64',
      [1, 16],
    );
    const r = model.loadStateDict(['text_transformer.embeddings.position_ids', ...sd.names], [pos, ...sd.tensors]);
    expect(r).to.deep.equal({ missing: [], unexpected: [] });
    model.dispose();

    const config = parseConfig({
      experiment: { name: 't', seed: 3 },
      model: { ...tinyRunModel({ max_length: 10 }), loss: { type: 'siglip' } },
      training: { mixed_precision: 'bf16', max_grad_norm: 1.0 },
    });
    const native = modelConfigFromConfig(config, 50);
    expect(native.text.vocab_size).to.equal(50);
    expect(native.loss).to.equal('siglip');
    expect(native.training!.precision).to.equal('bf16');
    expect(() =>
      modelConfigFromConfig(
        { ...config, model: { ...config.model, text_encoder: { ...config.model.text_encoder, vocab_size: 40 } } },
        50,
      ),
    ).to.throw(/model\.text_encoder\.vocab_size/);
    const m = CTClip.create(native);
    expect(m.stateDict().names.slice(0, 2)).to.deep.equal(['temperature', 'logit_bias']);
    m.train();
    const step = await m.trainStep(makeBatch(TINY, 2, 50), 1e-3);
    expect(step.skipped).to.equal(false);
    expect(step.timings.forwardMs).to.be.above(0);
    expect(step.timings.backwardMs).to.be.above(0);
    expect(step.timings.optimizerMs).to.be.above(0);
    m.dispose();
  });
});
