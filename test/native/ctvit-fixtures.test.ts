/**
 * Golden fixtures A (`ctvit_tiny_eval`) and B (`ctvit_tiny_train_step`), checked with the tolerances of the fixture
 * docs/reference.md. Everything (config, key table, output names, gradient keys) is read from the fixture's meta.json and
 * files, so the same test works on any fixture set of these kinds (other shapes, depths, seeds).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import { CTViT, type CTViTConfig } from '../../lib/model/ctvit';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import type { SafetensorsContent, TensorHandle } from '../../lib/native';
import { readTensor } from '../../lib/tensor';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';

interface KeyEntry {
  key: string;
  shape: number[];
  dtype: string;
  kind: 'param' | 'buffer';
  numel: number;
}
interface FixtureMeta {
  ctvit_config: Omit<CTViTConfig, 'seed'>;
  state_dict_keys: KeyEntry[];
  param_count?: number;
  loss?: number;
  grad_keys?: string[];
  params_without_grad?: string[];
  buffers_after_keys?: string[];
}

function values(t: TensorHandle): number[] {
  const d = readTensor(t).data;
  return Array.from(d as ArrayLike<number | bigint>, (v) => Number(v));
}

function shapeOf(t: TensorHandle): number[] {
  return readTensor(t).shape;
}

function get(c: SafetensorsContent, name: string): TensorHandle {
  const i = c.names.indexOf(name);
  if (i < 0) throw new Error(`fixture file has no tensor '${name}'`);
  return c.tensors[i];
}

/** Max |a − b| and max |b| (b = reference). */
function diff(a: TensorHandle, b: TensorHandle): { maxAbs: number; maxRef: number } {
  expect(shapeOf(a), 'shape').to.deep.equal(shapeOf(b));
  const x = values(a);
  const y = values(b);
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < x.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
    maxRef = Math.max(maxRef, Math.abs(y[i]));
  }
  return { maxAbs, maxRef };
}

function expectClose(name: string, got: TensorHandle, ref: TensorHandle, atol: number): number {
  const { maxAbs } = diff(got, ref);
  expect(maxAbs, `${name}: max |Δ| = ${maxAbs} > ${atol}`).to.be.at.most(atol);
  return maxAbs;
}

function expectExact(name: string, got: TensorHandle, ref: TensorHandle): void {
  expect(shapeOf(got), `${name} shape`).to.deep.equal(shapeOf(ref));
  expect(values(got), name).to.deep.equal(values(ref));
}

/** Activations: atol 1e-5; indices exact; eval-mode quantized tokens are stored rows (1e-6). */
function toleranceFor(name: string, mode: 'eval' | 'train'): number | 'exact' {
  if (name === 'vq_indices') return 'exact';
  if (name === 'quantized' && mode === 'eval') return 1e-6;
  return 1e-5;
}

// Gradients that are mathematically zero (a constant added to every logit of a softmax row): compare magnitude only.
const NOISE_GRADS = new Set(['spatial_rel_pos_bias.net.2.bias']);

async function buildModel(dir: string, meta: FixtureMeta, extra: Partial<CTViTConfig> = {}) {
  const weights = await loadSafetensors(fixturePath(dir, 'weights.safetensors'));
  const model = CTViT.create({ ...meta.ctvit_config, seed: 0, ...extra });
  model.loadStateDict(weights.names, weights.tensors, { strict: true });
  return { model, weights };
}

function readMeta(dir: string): FixtureMeta {
  return JSON.parse(fs.readFileSync(fixturePath(dir, 'meta.json'), 'utf8')) as FixtureMeta;
}

describe('native: CTViT golden fixtures', function () {
  before(function () {
    requireAddon(this);
    // a stale addon built before this module existed cannot run these tests (rebuild with npm run build:native)
    if (!fixturesAvailable()) this.skip();
  });

  describe('A: ctvit_tiny_eval', function () {
    const dir = 'ctvit_tiny_eval';

    it('has the reference state_dict keys, order, shapes and kinds, and parameter count', async function () {
      const meta = readMeta(dir);
      const model = CTViT.create({ ...meta.ctvit_config, seed: 0 });
      const sd = model.stateDict();
      expect(sd.names).to.deep.equal(meta.state_dict_keys.map((k) => k.key));
      sd.names.forEach((name, i) => {
        const ref = meta.state_dict_keys[i];
        expect(sd.shapes[i], name).to.deep.equal(ref.shape);
        if (sd.kinds[i] !== 'inert') expect(sd.kinds[i], name).to.equal(ref.kind === 'param' ? 'parameter' : 'buffer');
      });
      const paramCount = meta.state_dict_keys.filter((k) => k.kind === 'param').reduce((a, k) => a + k.numel, 0);
      expect(model.parameterCount()).to.equal(paramCount);
      if (meta.param_count !== undefined) expect(model.parameterCount()).to.equal(meta.param_count);
      model.dispose();
    });

    it('reproduces every intermediate output in eval mode (and leaves the codebook untouched)', async function () {
      const meta = readMeta(dir);
      const { model, weights } = await buildModel(dir, meta);
      const inputs = await loadSafetensors(fixturePath(dir, 'inputs.safetensors'));
      const outputs = await loadSafetensors(fixturePath(dir, 'outputs.safetensors'));
      const codebookBefore = values(get(weights, 'vq._codebook.embed'));
      const result = await model.forward(get(inputs, 'video'), { returnIntermediates: true });
      const im = result.intermediates!;
      const worst: Record<string, number> = {};
      for (const name of outputs.names) {
        expect(im, `intermediate '${name}'`).to.have.property(name);
        const tol = toleranceFor(name, 'eval');
        if (tol === 'exact') expectExact(name, im[name], get(outputs, name));
        else worst[name] = expectClose(name, im[name], get(outputs, name), tol);
      }
      expectClose('embedding', result.embedding, get(outputs, 'image_embedding'), 1e-5);
      expectExact('indices', result.indices, get(outputs, 'vq_indices'));
      const sd = model.stateDict();
      expect(values(sd.tensors[sd.names.indexOf('vq._codebook.embed')])).to.deep.equal(codebookBefore);
      if (process.env.CTCLIP_VERBOSE) console.log('      fixture A max |Δ|:', worst);
      model.dispose();
    });
  });

  describe('B: ctvit_tiny_train_step', function () {
    const dir = 'ctvit_tiny_train_step';

    for (const checkpointing of [false, true]) {
      it(`matches outputs, loss, every gradient and the EMA-updated codebook${checkpointing ? ' (activation checkpointing)' : ''}`, async function () {
        const meta = readMeta(dir);
        const { model } = await buildModel(dir, meta, { activation_checkpointing: checkpointing });
        const inputs = await loadSafetensors(fixturePath(dir, 'inputs.safetensors'));
        const outputs = await loadSafetensors(fixturePath(dir, 'outputs.safetensors'));
        const grads = await loadSafetensors(fixturePath(dir, 'grads.safetensors'));
        const buffers = await loadSafetensors(fixturePath(dir, 'buffers_after.safetensors'));
        model.train();
        const result = await model.forwardBackward(get(inputs, 'video'), get(inputs, 'R'), {
          returnIntermediates: !checkpointing,
        });

        // outputs
        if (result.intermediates) {
          for (const name of outputs.names) {
            expect(result.intermediates, `intermediate '${name}'`).to.have.property(name);
            const tol = toleranceFor(name, 'train');
            if (tol === 'exact') expectExact(name, result.intermediates[name], get(outputs, name));
            else expectClose(name, result.intermediates[name], get(outputs, name), tol);
          }
        }
        expectClose('embedding', result.embedding, get(outputs, 'image_embedding'), 1e-5);
        expectExact('indices', result.indices, get(outputs, 'vq_indices'));
        if (meta.loss !== undefined) expect(values(result.loss)[0]).to.be.closeTo(meta.loss, 1e-5);

        // gradients: exactly the reference's set, in state-dict order
        const expectedKeys = meta.grad_keys ?? grads.names;
        expect(result.grads.names).to.deep.equal(expectedKeys);
        for (const name of meta.params_without_grad ?? []) expect(result.grads.names).to.not.include(name);
        const ratios: Record<string, number> = {};
        for (const name of grads.names) {
          const got = result.grads.tensors[result.grads.names.indexOf(name)];
          const ref = get(grads, name);
          expect(shapeOf(got), `${name} grad shape`).to.deep.equal(shapeOf(ref));
          if (NOISE_GRADS.has(name)) {
            for (const v of values(got)) expect(Math.abs(v), `${name} (mathematically zero)`).to.be.at.most(1e-6);
            continue;
          }
          const { maxAbs, maxRef } = diff(got, ref);
          const tol = 1e-5 + 1e-4 * maxRef;
          ratios[name] = maxAbs / tol;
          expect(maxAbs, `grad ${name}: max |Δ| = ${maxAbs} > ${tol}`).to.be.at.most(tol);
        }

        // buffers after exactly one EMA update
        const sd = model.stateDict();
        for (const name of meta.buffers_after_keys ?? buffers.names) {
          expectClose(name, sd.tensors[sd.names.indexOf(name)], get(buffers, name), 1e-6);
        }
        if (process.env.CTCLIP_VERBOSE)
          console.log('      fixture B worst grad |Δ|/tol:', Math.max(...Object.values(ratios)));
        model.dispose();
      });
    }
  });
});
