/**
 * Device placement: `CTClip.to(device)`, the `device` getter, DEVICE_UNAVAILABLE for CUDA devices
 * libtorch does not have, device-independent save → load, and (on a machine whose libtorch sees a GPU) a train step
 * on cuda:0 against the same step on the CPU. BERT dropout is on (p = 0.1), so the dropout generator matters.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../lib/config/load';
import { float32ArrayToFloat16 } from '../../lib/data/float16';
import type { Config } from '../../lib/config/schema';
import * as api from '../../lib/index';
import { CTClip, resolveCTClipConfig, type CTClipBatch, type CTClipConfig } from '../../lib/model/ctclip';
import { loadAddon } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { requireAddon } from '../helpers/native';
import { BERT_SPECIAL_TOKENS } from '../helpers/expected-names';
import { TINY_BERT, TINY_CTVIT, tinyRunModel } from '../helpers/tiny-configs';

const B = 3;
const L = 8;
const H = TINY_CTVIT.image_size;
const F = 8;

function config(seed = 5): CTClipConfig {
  return resolveCTClipConfig({
    image: TINY_CTVIT,
    text: { ...TINY_BERT, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 },
    dim_latent: 8,
    seed,
  });
}

/** Deterministic inputs: int64 ids/mask (ragged lengths), float16 volumes (B, H, W, D) as the loader gives them. */
function batch(offset = 0): CTClipBatch {
  const ids = new BigInt64Array(B * L);
  const mask = new BigInt64Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < L - b; i++) {
      ids[b * L + i] = BigInt(i === 0 ? 2 : 5 + ((i * 7 + b * 3 + offset) % 40));
      mask[b * L + i] = 1n;
    }
  }
  const vol = new Float32Array(B * H * H * F);
  for (let i = 0; i < vol.length; i++) vol[i] = Math.sin(i * 0.013 + offset) * 0.5;
  return {
    inputIds: tensorFromBuffer(ids, 'int64', [B, L]),
    attentionMask: tensorFromBuffer(mask, 'int64', [B, L]),
    volumes: tensorFromBuffer(float32ArrayToFloat16(vol), 'float16', [B, H, H, F]),
  };
}

function stateValues(model: CTClip): Map<string, Float32Array | BigInt64Array | Uint8Array> {
  const sd = model.stateDict();
  const out = new Map<string, Float32Array | BigInt64Array | Uint8Array>();
  sd.names.forEach((n, i) => out.set(n, readTensor(sd.tensors[i]).data as Float32Array));
  sd.tensors.forEach((t) => t.dispose());
  return out;
}

function expectSameState(a: CTClip, b: CTClip): void {
  const sa = stateValues(a);
  const sb = stateValues(b);
  expect([...sb.keys()]).to.deep.equal([...sa.keys()]);
  for (const [name, va] of sa)
    expect(Buffer.from((sb.get(name) as Float32Array).buffer).equals(Buffer.from(va.buffer)), name).to.equal(true);
}

async function expectRejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    expect((e as { code?: string }).code, (e as Error).message).to.equal(code);
    expect((e as Error).message).to.match(pattern);
    return e as Error;
  }
  throw new Error(`expected a rejection with ${code}`);
}

function cudaDeviceCount(): number {
  const info = loadAddon().buildInfo();
  return info.cudaAvailable ? info.cudaDeviceCount : 0;
}

describe('native: device placement (CTClip.to)', function () {
  before(function () {
    requireAddon(this);
    expect(
      typeof (loadAddon() as unknown as Record<string, unknown>).ctclipToDevice,
      'addon lacks ctclipToDevice (rebuild it)',
    ).to.equal('function');
  });

  it("starts on the CPU; to('cpu') keeps a train step bit-identical (loss, every weight, the dropout stream)", async () => {
    const a = CTClip.create(config()).train();
    const b = CTClip.create(config()).train();
    try {
      expect(a.device).to.equal('cpu');
      expect(await b.to('cpu')).to.equal(b);
      expect(b.device).to.equal('cpu');
      const ra = await a.trainStep(batch(), 1e-3);
      const rb = await b.trainStep(batch(), 1e-3);
      expect(rb.loss).to.equal(ra.loss);
      expect(rb.gradNorm).to.equal(ra.gradNorm);
      // After a step (AdamW moments exist), another to('cpu') and a second step: still identical.
      await b.to('cpu');
      const ra2 = await a.trainStep(batch(1), 1e-3);
      const rb2 = await b.trainStep(batch(1), 1e-3);
      expect(rb2.loss).to.equal(ra2.loss);
      expectSameState(a, b);
      const oa = a.optimizerState();
      const ob = b.optimizerState();
      expect(ob.names).to.deep.equal(oa.names);
      expect(ob.step).to.deep.equal(oa.step);
      oa.exp_avg.forEach((t, i) =>
        expect(
          Buffer.from(readTensor(ob.exp_avg[i]).data.buffer).equals(Buffer.from(readTensor(t).data.buffer)),
          oa.names[i],
        ).to.equal(true),
      );
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('rejects a CUDA device libtorch does not have with DEVICE_UNAVAILABLE, naming the device', async function () {
    const n = cudaDeviceCount();
    const model = CTClip.create(config());
    try {
      if (n === 0) {
        const e = await expectRejects(
          model.to('cuda'),
          'DEVICE_UNAVAILABLE',
          /device 'cuda' requested, but libtorch reports 0 CUDA devices/,
        );
        expect(e.message).to.match(/CPU-only libtorch|sees no GPU/);
      }
      await expectRejects(
        model.to(`cuda:${Math.max(n, 3)}`),
        'DEVICE_UNAVAILABLE',
        new RegExp(`device 'cuda:${Math.max(n, 3)}' requested, but libtorch reports ${n} CUDA device`),
      );
      await expectRejects(model.to('gpu'), 'ARGUMENT_ERROR', /device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'/);
      await expectRejects(model.to('cpu:0'), 'ARGUMENT_ERROR', /got 'cpu:0'/);
      // A refused move leaves the model where it was, usable.
      expect(model.device).to.equal('cpu');
      model.train();
      const r = await model.trainStep(batch(), 1e-3);
      expect(Number.isFinite(r.loss)).to.equal(true);
    } finally {
      model.dispose();
    }
  });

  it('refuses to move with accumulated micro-batches pending', async () => {
    const model = CTClip.create(config()).train();
    try {
      await model.accumulate(batch(), { accumulationSteps: 2 });
      // Same device: nothing to move, nothing refused.
      await model.to('cpu');
      expect(model.info().pendingMicroBatches).to.equal(1);
      if (cudaDeviceCount() > 0) await expectRejects(model.to('cuda:0'), 'ARGUMENT_ERROR', /pending/);
    } finally {
      model.dispose();
    }
  });

  it('a dropout state from another device type (another size) re-seeds the stream from its bytes, deterministically', async () => {
    // A CUDA (Philox) state is not an mt19937 state: its bytes seed the CPU generator instead, and the caller is told.
    const foreign = new Uint8Array(16).map((_, i) => i * 17 + 3);
    const a = CTClip.create(config()).train();
    const b = CTClip.create(config()).train();
    const c = CTClip.create(config()).train();
    try {
      const own = a.rngState();
      expect(a.setRngState({ dropout: tensorFromBuffer(foreign, 'uint8', [16]) })).to.deep.equal({
        reseeded: ['dropout'],
      });
      expect(b.setRngState({ dropout: tensorFromBuffer(foreign.slice(), 'uint8', [16]) })).to.deep.equal({
        reseeded: ['dropout'],
      });
      const ra = await a.trainStep(batch(), 1e-3);
      const rb = await b.trainStep(batch(), 1e-3);
      const rc = await c.trainStep(batch(), 1e-3);
      expect(rb.loss).to.equal(ra.loss);
      expect(rc.loss).to.not.equal(ra.loss); // a fresh stream draws other masks
      // A same-size state is restored as it is.
      expect(c.setRngState({ dropout: own.dropout, init: own.init })).to.deep.equal({ reseeded: [] });
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  describe('save → load with {device}', function () {
    let dir: string;
    const VOCAB = [...BERT_SPECIAL_TOKENS, 'lung', 'opacity', 'is', 'present', 'not', '.'];
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-device-'));
      fs.writeFileSync(path.join(dir, 'vocab.txt'), `${VOCAB.join('\n')}\n`);
    });
    after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    function runConfig(useCuda: boolean | 'auto'): Config {
      return parseConfig({
        experiment: { name: 'device', seed: 3 },
        model: tinyRunModel({
          vocab: path.join(dir, 'vocab.txt'),
          max_length: 8,
          hidden_dropout_prob: 0.1,
          attention_probs_dropout_prob: 0.1,
        }),
        device: { use_cuda: useCuda },
      });
    }

    it("a model trained one step, saved, loaded with {device: 'cpu'} has the same weights and latents", async () => {
      const cfg = runConfig(false);
      const { model, tokenizer } = await api.createModelOn(cfg);
      const file = path.join(dir, 'model.safetensors');
      const enc = api.textTensors(tokenizer.encodeBatch(['lung opacity is present .', 'not present'], 8));
      const vol = new Float32Array(2 * 16 * 16 * 4).map((_, i) => Math.cos(i * 0.11));
      const volumes = tensorFromBuffer(vol, 'float32', [2, 16, 16, 4]);
      try {
        expect(model.device).to.equal('cpu');
        model.train();
        const r = await model.trainStep({ ...enc, volumes }, 1e-3);
        expect(r.optimizerSteps).to.equal(1);
        model.eval();
        await api.saveModel(model, file);
        const loaded = await api.loadModel(cfg, file, { device: 'cpu' });
        try {
          expect(loaded.model.device).to.equal('cpu');
          expectSameState(model, loaded.model);
          const want = readTensor(await model.encodeImage(volumes)).data as Float32Array;
          const got = readTensor(await loaded.model.encodeImage(volumes)).data as Float32Array;
          expect(Array.from(got)).to.deep.equal(Array.from(want));
        } finally {
          loaded.model.dispose();
        }
        // A device libtorch does not have is refused before anything is loaded (CONFIG_ERROR naming the key): an
        // explicit request, or the config's device section.
        if (cudaDeviceCount() === 0) {
          await expectRejects(
            api.loadModel(cfg, file, { device: 'cuda' }),
            'CONFIG_ERROR',
            /^device: 'cuda' needs a CUDA device/,
          );
          await expectRejects(
            api.loadModel(runConfig(true), file),
            'CONFIG_ERROR',
            /^device\.use_cuda: true needs a CUDA device/,
          );
        } else {
          const beyond = `cuda:${cudaDeviceCount()}` as const;
          await expectRejects(
            api.loadModel(cfg, file, { device: beyond }),
            'CONFIG_ERROR',
            new RegExp(`^device: '${beyond}' is not available`),
          );
        }
        // use_cuda false: the CPU even with a GPU; an explicit request wins over the section.
        for (const [c, device] of [
          [runConfig(false), undefined],
          [runConfig(true), 'cpu' as const],
        ] as const) {
          const onCpu = await api.loadModel(c, file, { device });
          try {
            expect(onCpu.model.device).to.equal('cpu');
          } finally {
            onCpu.model.dispose();
          }
        }
      } finally {
        model.dispose();
      }
    });
  });

  describe('on a GPU (needs CUDA)', function () {
    before(function () {
      if (cudaDeviceCount() === 0) this.skip();
    });

    it('a tiny train step on cuda:0 gives the CPU loss within 1e-4 relative; results come back as CPU tensors', async () => {
      // Dropout off: the CUDA generator (Philox) draws other masks than the CPU one (mt19937).
      const cfg = resolveCTClipConfig({
        ...config(),
        text: { ...config().text, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 },
      });
      const cpu = CTClip.create(cfg).train();
      const gpu = CTClip.create(cfg);
      try {
        await gpu.to('cuda:0');
        expect(gpu.device).to.equal('cuda:0');
        gpu.train();
        const rc = await cpu.trainStep(batch(), 1e-3);
        const rg = await gpu.trainStep(batch(), 1e-3);
        expect(Math.abs(rg.loss - rc.loss) / Math.abs(rc.loss)).to.be.below(1e-4);
        const sd = gpu.stateDict();
        expect(readTensor(sd.tensors[0]).data.length).to.equal(1); // temperature, copied to the host
        sd.tensors.forEach((t) => t.dispose());
        // Back to the CPU: the weights follow.
        await gpu.to('cpu');
        expect(gpu.device).to.equal('cpu');
      } finally {
        cpu.dispose();
        gpu.dispose();
      }
    });
  });
});
