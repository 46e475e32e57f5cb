/**
 * Training-state (de)serialisation round-trips bit-exactly: AdamW moments keyed by parameter name (fixture C's
 * post-step state as the data), loss-scaler JSON, native generator states (U8 tensors) and TS Rng states — alone
 * and through CheckpointManager parts.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointManager } from '../../lib/checkpoint';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import {
  decodeNativeRngStates,
  decodeScalerState,
  decodeTsRngStates,
  encodeNativeRngStates,
  encodeScalerState,
  encodeTsRngStates,
  loadOptimizerState,
  nativeRngFromTensors,
  nativeRngToTensors,
  optimizerStateFromModel,
  optimizerStateToModel,
  scalerStateFromModel,
  readTrainingState,
  saveOptimizerState,
  trainingStateParts,
  type OptimizerStateData,
} from '../../lib/model/training-state';
import { Rng } from '../../lib/rng';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { expectSameTensors, tmpDir } from '../helpers/weights-fixtures';

describe('training state: (de)serialisation', function () {
  let dir: string;
  let opt: OptimizerStateData;
  before(async function () {
    dir = tmpDir('state');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  async function fixtureOptimizer(): Promise<OptimizerStateData> {
    const c = await loadSafetensors(fixturePath('ctclip_tiny', 'adamw_state_after_step.safetensors'));
    const names = c.names.filter((n) => n.startsWith('exp_avg.')).map((n) => n.slice('exp_avg.'.length));
    const by = new Map(c.names.map((n, i) => [n, c.tensors[i]]));
    return {
      names,
      expAvg: names.map((n) => by.get(`exp_avg.${n}`)!),
      expAvgSq: names.map((n) => by.get(`exp_avg_sq.${n}`)!),
      step: 1,
      hyper: { lr: 1e-3, betas: [0.9, 0.99], eps: 1e-8, weight_decay: 0.01 },
    };
  }

  it('optimizer state round-trips bit-exactly, keyed by name, in the saved order', async function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    opt = await fixtureOptimizer();
    expect(opt.names.length).to.equal(80);
    const file = path.join(dir, 'optimizer.safetensors');
    await saveOptimizerState(file, opt);
    const back = await loadOptimizerState(file);
    expect(back.names).to.deep.equal(opt.names);
    expect(back.step).to.equal(1);
    expect(back.hyper).to.deep.equal(opt.hyper);
    expectSameTensors(
      { names: back.names, tensors: back.expAvg },
      { names: opt.names, tensors: opt.expAvg },
      'exp_avg',
    );
    expectSameTensors(
      { names: back.names, tensors: back.expAvgSq },
      { names: opt.names, tensors: opt.expAvgSq },
      'exp_avg_sq',
    );
  });

  it('per-parameter steps and the model-shape adapters round-trip', async function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    opt = opt ?? (await fixtureOptimizer());
    const steps = opt.names.map((_, i) => (i % 3 === 0 ? 0 : 5));
    const modelShape = optimizerStateToModel({ ...opt, step: steps });
    expect(modelShape.exp_avg).to.equal(opt.expAvg);
    const file = path.join(dir, 'optimizer-steps.safetensors');
    await saveOptimizerState(file, optimizerStateFromModel(modelShape, opt.hyper));
    const back = await loadOptimizerState(file);
    expect(back.step).to.deep.equal(steps);
    expect(optimizerStateToModel({ ...back, step: 4 }).step).to.deep.equal(opt.names.map(() => 4));
    const rng = nativeRngFromTensors(
      nativeRngToTensors({ init: Uint8Array.from([1, 2, 3]), dropout: new Uint8Array(0) }),
    );
    expect(Array.from(rng.init)).to.deep.equal([1, 2, 3]);
    expect(rng.dropout.length).to.equal(0);
    expect(scalerStateFromModel({ enabled: false, scale: 1, growthTracker: 0 })).to.equal(null);
    expect(scalerStateFromModel({ enabled: true, scale: 8, growthTracker: 2 })).to.deep.equal({
      scale: 8,
      growthTracker: 2,
    });
  });

  it('loss scaler and TS Rng states round-trip through JSON text exactly; bad states are DATA_ERRORs', () => {
    const scaler = { scale: 65536 * 0.5 ** 3 * 1.0000001, growthTracker: 1999 };
    expect(decodeScalerState(JSON.parse(JSON.stringify(encodeScalerState(scaler))))).to.deep.equal(scaler);
    expect(decodeScalerState(JSON.parse(JSON.stringify(encodeScalerState(null))))).to.equal(null);
    expect(() => decodeScalerState({ format: 'ctclip-scaler', state: { scale: -1, growthTracker: 0 } })).to.throw(
      /state\.scale/,
    );

    const a = Rng.derive(7, 'data', 3);
    a.nextFloat();
    const b = new Rng(123);
    const states = { data: a.getState(), bootstrap: b.getState() };
    const back = decodeTsRngStates(JSON.parse(JSON.stringify(encodeTsRngStates(states))));
    expect(back).to.deep.equal(states);
    const a2 = Rng.fromState(back.data);
    expect(Array.from({ length: 5 }, () => a2.nextFloat())).to.deep.equal(
      Array.from({ length: 5 }, () => a.nextFloat()),
    );
    expect(() => decodeTsRngStates({ format: 'ctclip-ts-rng', streams: { x: [0, 0, 0, 0] } })).to.throw(/stream 'x'/);
  });

  it('native generator states round-trip as U8 tensors in safetensors bytes', () => {
    const cpu = Uint8Array.from({ length: 5056 }, (_, i) => (i * 31 + 7) & 0xff); // mt19937 state size
    const cuda = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
    const bytes = encodeNativeRngStates({ cpu, 'cuda:0': cuda, dropout: new Uint8Array(0) });
    const back = decodeNativeRngStates(bytes);
    expect(Object.keys(back)).to.deep.equal(['cpu', 'cuda:0', 'dropout']);
    expect(Buffer.from(back.cpu).equals(Buffer.from(cpu))).to.equal(true);
    expect(Buffer.from(back['cuda:0']).equals(Buffer.from(cuda))).to.equal(true);
    expect(back.dropout.length).to.equal(0);
  });

  it('all four parts go through CheckpointManager and read back identically', async function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    opt = opt ?? (await fixtureOptimizer());
    const nativeRng = { cpu: Uint8Array.from({ length: 64 }, (_, i) => i) };
    const tsRng = { data: new Rng(5).getState() };
    const scaler = { scale: 1024, growthTracker: 3 };
    const mgr = new CheckpointManager({ dir: path.join(dir, 'ckpt'), keepLastN: 2 });
    const saved = await mgr.save(10, trainingStateParts({ optimizer: opt, scaler, nativeRng, tsRng }), {});
    const back = await readTrainingState(saved.path);
    expect(back.scaler).to.deep.equal(scaler);
    expect(back.tsRng).to.deep.equal(tsRng);
    expect(Buffer.from(back.nativeRng.cpu).equals(Buffer.from(nativeRng.cpu))).to.equal(true);
    expect(back.optimizer.step).to.equal(opt.step);
    expectSameTensors(
      { names: back.optimizer.names, tensors: back.optimizer.expAvgSq },
      { names: opt.names, tensors: opt.expAvgSq },
      'ckpt exp_avg_sq',
    );
  });
});
