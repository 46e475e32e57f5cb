/**
 * A skipped (non-finite) training step leaves no trace: the state dict (parameters AND buffers, the VQ codebook
 * EMA included), the AdamW state and the dropout generator are bit-for-bit as before the step, and the next finite
 * step gives exactly what it gives when the skipped step never happened. Every step path of native/train/step.cc:
 * `trainStep` (one batch), `trainStepBatches` with one micro-batch, `accumulate` × 2 + `optimizerStep`,
 * `trainStepBatches` × 2 sequential (loss.gather false) and × 2 through the feature cache (gather true); both
 * sources of a non-finite step: a real NaN voxel in one volume (which poisoned the codebook, and with it every
 * later step) and the injected +inf gradient. The data-parallel path is in train-nonfinite-dist.test.ts.
 */
import { expect } from 'chai';
import { CTClip, type CTClipBatch, type CTClipConfig } from '../../lib/model/ctclip';
import type { CTClipStepResult } from '../../lib/native';
import { requireAddon } from '../helpers/native';
import { makeCTClipBatch } from '../helpers/ctclip-batch';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from '../helpers/tiny-configs';
import { stateDiff, trainingState } from '../helpers/train-state';

const F = 4;
const H = 16;
const B = 3;
const LR = 1e-3;

/** A tiny model with dropout in the text tower, so that the dropout stream matters. */
function config(
  over: { vq?: 'straight_through' | 'rotation'; gather?: boolean; lossScale?: boolean } = {},
): CTClipConfig {
  return {
    image: { ...TINY_CTCLIP_IMAGE, image_size: H, vq: over.vq ?? 'straight_through' },
    text: { ...TINY_BERT, hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.1 },
    dim_latent: 8,
    seed: 21,
    training: {
      max_grad_norm: 0.5,
      gather: over.gather ?? true,
      ...(over.lossScale ? { loss_scale: { enabled: true, init_scale: 1024 } } : {}),
    },
  };
}

/** B reports and B volumes (B, 1, F, H, W) from `seed`; `nan` puts one NaN voxel into the second volume. */
function batch(seed: number, nan = false): CTClipBatch {
  return makeCTClipBatch(config(), B, seed, {
    frames: F,
    editVolumes: nan
      ? (v) => {
          v[F * H * H + 5 * H + 7] = NaN;
        }
      : undefined,
  });
}

interface StepPath {
  name: string;
  micro: number;
  gather: boolean;
  /** Whether the path has an injectNonFiniteGrad flag. */
  canInject: boolean;
  run(model: CTClip, batches: CTClipBatch[], inject: boolean): Promise<CTClipStepResult>;
}

const PATHS: StepPath[] = [
  { name: 'trainStep (one batch)', micro: 1, gather: true, canInject: false, run: (m, b) => m.trainStep(b[0], LR) },
  {
    name: 'trainStepBatches, one micro-batch',
    micro: 1,
    gather: true,
    canInject: true,
    run: (m, b, inject) => m.trainStepBatches(b, LR, { injectNonFiniteGrad: inject }),
  },
  {
    name: 'accumulate × 2 + optimizerStep',
    micro: 2,
    gather: true,
    canInject: true,
    run: async (m, b, inject) => {
      for (const x of b) await m.accumulate(x, { accumulationSteps: b.length });
      return m.optimizerStep(LR, { injectNonFiniteGrad: inject });
    },
  },
  {
    name: 'trainStepBatches × 2, sequential (gather false)',
    micro: 2,
    gather: false,
    canInject: true,
    run: (m, b, inject) => m.trainStepBatches(b, LR, { injectNonFiniteGrad: inject }),
  },
  {
    name: 'trainStepBatches × 2, feature cache (gather true)',
    micro: 2,
    gather: true,
    canInject: true,
    run: (m, b, inject) => m.trainStepBatches(b, LR, { injectNonFiniteGrad: inject }),
  },
];

function batches(n: number, seed: number, nanIn: number | null = null): CTClipBatch[] {
  return Array.from({ length: n }, (_, i) => batch(seed + i * 17, nanIn === i));
}

describe('native: a skipped (non-finite) step leaves no trace', function () {
  this.timeout(60_000);
  before(function () {
    requireAddon(this);
  });

  for (const vq of ['straight_through', 'rotation'] as const) {
    for (const path of PATHS) {
      for (const source of ['NaN voxel', 'injected inf gradient'] as const) {
        if (source === 'injected inf gradient' && !path.canInject) continue;
        // The rotation quantizer (embed_avg) on the paths that update the codebook between micro-batches.
        if (vq === 'rotation' && path.micro === 1) continue;
        it(`${path.name}, ${source}, ${vq} VQ: bit-identical state after the skip, and the next step as if it never happened`, async function () {
          const cfg = config({ vq, gather: path.gather });
          const model = CTClip.create(cfg).train();
          const reference = CTClip.create(cfg).train();
          try {
            // A finite step first, so that AdamW has moments and step counts to keep.
            for (const m of [model, reference])
              expect((await path.run(m, batches(path.micro, 1), false)).skipped).to.equal(false);
            const before = trainingState(model);
            const bad = source === 'NaN voxel' ? batches(path.micro, 50, path.micro - 1) : batches(path.micro, 50);
            const skipped = await path.run(model, bad, source !== 'NaN voxel');
            expect(skipped.skipped, 'the non-finite step is skipped').to.equal(true);
            expect(skipped.optimizerSteps).to.equal(1);
            expect(skipped.skippedSteps).to.equal(1);
            expect(stateDiff(before, trainingState(model)), 'state changed by the skipped step').to.deep.equal([]);
            expect(model.info().pendingMicroBatches).to.equal(0);

            // The next finite step: exactly the reference's, which never saw the skipped one.
            const next = await path.run(model, batches(path.micro, 90), false);
            const ref = await path.run(reference, batches(path.micro, 90), false);
            expect(next.skipped, 'the step after a skipped one is finite').to.equal(false);
            expect(next.loss).to.equal(ref.loss);
            expect(next.gradNorm).to.equal(ref.gradNorm);
            expect(
              stateDiff(trainingState(model), trainingState(reference)),
              'differs from the run without the skipped step',
            ).to.deep.equal([]);
          } finally {
            model.dispose();
            reference.dispose();
          }
        });
      }
    }
  }

  it('only the dynamic loss scaler changes on a skip (it backs off)', async function () {
    const model = CTClip.create(config({ lossScale: true })).train();
    try {
      await model.trainStep(batch(1), LR);
      const before = trainingState(model);
      const r = await model.trainStep(batch(2, true), LR);
      expect(r.skipped).to.equal(true);
      expect(model.scalerState()).to.deep.equal({ enabled: true, scale: 512, growthTracker: 0 });
      expect(stateDiff(before, trainingState(model))).to.deep.equal([]);
    } finally {
      model.dispose();
    }
  });

  it('zeroGrad abandons an accumulation in progress: its codebook updates and dropout draws are rolled back', async function () {
    const model = CTClip.create(config()).train();
    try {
      await model.trainStep(batch(1), LR);
      const before = trainingState(model);
      await model.accumulate(batch(3), { accumulationSteps: 2 });
      await model.accumulate(batch(4), { accumulationSteps: 2 });
      expect(
        stateDiff(before, trainingState(model)),
        'accumulate updates the codebook and draws dropout masks',
      ).to.include.members(['model/visual_transformer.vq._codebook.embed', 'rng/dropout']);
      model.zeroGrad();
      expect(model.info().pendingMicroBatches).to.equal(0);
      expect(stateDiff(before, trainingState(model))).to.deep.equal([]);
    } finally {
      model.dispose();
    }
  });

  it('a NaN volume no longer poisons later steps: 1 skip, then finite steps', async function () {
    const model = CTClip.create(config()).train();
    try {
      const skipped: boolean[] = [];
      for (let i = 0; i < 5; i++) skipped.push((await model.trainStep(batch(100 + i, i === 1), LR)).skipped);
      expect(skipped).to.deep.equal([false, true, false, false, false]);
    } finally {
      model.dispose();
    }
  });
});
