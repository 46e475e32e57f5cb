/**
 * Resume through files: fixture H weights are imported into the CT-CLIP model, one training step runs, then the
 * weights (safetensors), optimizer, loss-scaler and RNG state are written through CheckpointManager. Two further
 * steps on that model must equal, bit for bit, two steps on a fresh model restored from those files. BERT
 * dropout is on (p = 0.1), so the dropout generator state matters.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointManager } from '../../lib/checkpoint';
import { loadAddon } from '../../lib/native';
import { CTClip, resolveCTClipConfig, type CTClipBatch } from '../../lib/model/ctclip';
import { loadSafetensorsMap } from '../../lib/weights/safetensors-native';
import * as trainingState from '../../lib/model/training-state';
import { importTorchFile, loadWeightsFile, saveWeights } from '../../lib/weights';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { caseCMeta, expectSameTensors, hFile, tmpDir } from '../helpers/weights-fixtures';

const NEEDED = [
  'createCTClip',
  'ctclipTrainStep',
  'ctclipStateDict',
  'ctclipLoadStateDict',
  'ctclipOptimizerState',
  'ctclipLoadOptimizerState',
  'ctclipScalerState',
  'ctclipSetScalerState',
  'ctclipRngState',
  'ctclipSetRngState',
  'ctclipSetStepCounters',
] as const;

describe('weights: resume through saved weights + training state (CT-CLIP model)', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    const addon = loadAddon() as unknown as Record<string, unknown>;
    for (const fn of NEEDED) expect(typeof addon[fn], `addon function ${fn} (rebuild the addon)`).to.equal('function');
    dir = tmpDir('resume');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  function build(): CTClip {
    const m = caseCMeta();
    return CTClip.create(
      resolveCTClipConfig({
        image: m.ctvit_config,
        text: { ...m.bert_config, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 },
        dim_latent: m.dim_latent,
        seed: 11,
      }),
    );
  }

  it('two steps after a reload equal two steps without it, bit for bit', async () => {
    const inputs = await loadSafetensorsMap(fixturePath('ctclip_tiny', 'inputs.safetensors'));
    const batch: CTClipBatch = {
      inputIds: inputs.get('input_ids')!,
      attentionMask: inputs.get('attention_mask')!,
      volumes: inputs.get('images')!,
    };

    const a = build();
    const start = await importTorchFile(hFile('ctclip_tiny_cuda_tagged.pt'), {
      strict: true,
      expected: a.stateDict().names,
    });
    a.loadStateDict(start.names, start.tensors, { strict: true });
    a.train();
    await a.trainStep(batch, 1e-3);

    // Checkpoint after step 1.
    const sd = a.stateDict();
    const mgr = new CheckpointManager({ dir: path.join(dir, 'ckpt'), keepLastN: 2 });
    const saved = await mgr.save(
      1,
      {
        'model.safetensors': (tmp: string) => saveWeights(tmp, sd.names, sd.tensors),
        ...trainingState.trainingStateParts({
          optimizer: trainingState.optimizerStateFromModel(a.optimizerState()),
          scaler: trainingState.scalerStateFromModel(a.scalerState()),
          nativeRng: trainingState.nativeRngFromTensors(a.rngState()),
          tsRng: {},
        }),
      },
      {},
    );

    // Run A continues.
    await a.trainStep(batch, 1e-3);
    await a.trainStep(batch, 5e-4);

    // Run B restores from the files.
    const b = build();
    const w = await loadWeightsFile(path.join(saved.path, 'model.safetensors'), {
      strict: true,
      expected: b.stateDict().names,
    });
    b.loadStateDict(w.names, w.tensors, { strict: true });
    const st = await trainingState.readTrainingState(saved.path);
    b.loadOptimizerState(trainingState.optimizerStateToModel(st.optimizer));
    if (st.scaler) b.setScalerState(st.scaler);
    b.setRngState(trainingState.nativeRngToTensors(st.nativeRng));
    b.setStepCounters({ optimizerSteps: 1, skippedSteps: 0 });
    b.train();
    await b.trainStep(batch, 1e-3);
    await b.trainStep(batch, 5e-4);

    expectSameTensors(b.stateDict(), a.stateDict(), 'weights after 2 resumed steps');
    const oa = a.optimizerState();
    const ob = b.optimizerState();
    expect(ob.step).to.deep.equal(oa.step);
    expectSameTensors(
      { names: ob.names, tensors: ob.exp_avg_sq },
      { names: oa.names, tensors: oa.exp_avg_sq },
      'exp_avg_sq',
    );
  });
});
