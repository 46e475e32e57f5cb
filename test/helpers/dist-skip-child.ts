/**
 * One rank of test/native/train-nonfinite-dist.test.ts: two tiny CT-CLIPs on the same process group, `run` and
 * `ref`. Both take finite step 1; `run` then takes a step that is non-finite on rank 1 ONLY (a NaN voxel in its last
 * micro-batch, or the injected +inf gradient on rank 1); both take finite step 3. Writes as JSON to `SKIP_OUT`:
 * whether step 2 was skipped, the state hashes (test/helpers/train-state.ts) before and after it, and both models'
 * state hashes, loss and norm after step 3.
 *
 * Env: SKIP_OUT, SKIP_SOURCE ('nan' | 'inject'), SKIP_GATHER ('true' | 'false'), SKIP_MICRO (micro-batches per rank).
 */
import * as fs from 'fs';
import { distEnvFrom } from '../../lib/dist/env';
import { ProcessGroup } from '../../lib/dist/group';
import { CTClip } from '../../lib/model/ctclip';
import type { CTClipNativeConfig } from '../../lib/native';
import { seededMicroBatch } from './ctclip-batch';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from './tiny-configs';
import { stateHashes, trainingState } from './train-state';

function config(gather: boolean, seed: number): CTClipNativeConfig {
  return {
    image: TINY_CTCLIP_IMAGE,
    text: { ...TINY_BERT, hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.1 },
    dim_latent: 8,
    seed,
    training: { max_grad_norm: 0.5, gather },
  };
}

async function main(): Promise<void> {
  const env = distEnvFrom(process.env);
  const source = process.env.SKIP_SOURCE as 'nan' | 'inject';
  const gather = process.env.SKIP_GATHER !== 'false';
  const A = Number(process.env.SKIP_MICRO ?? '1');
  const group = await ProcessGroup.init(env, { backend: 'gloo', timeoutMs: 60000 });
  // Each rank its own dropout stream (as the trainer does); rank 0's weights everywhere after the broadcast.
  const models = [CTClip.create(config(gather, 31 + env.rank)), CTClip.create(config(gather, 31 + env.rank))];
  for (const m of models) {
    m.setDistributed(group.handle);
    await m.broadcastState(0);
    m.train();
  }
  const [run, ref] = models;
  const micro = (step: number, nanOnThisRank = false) =>
    Array.from({ length: A }, (_, a) =>
      seededMicroBatch(1000 * step + 100 * env.rank + a, nanOnThisRank && a === A - 1),
    );
  for (const m of models) await m.trainStepBatches(micro(1), 1e-3);
  const before = stateHashes(trainingState(run));
  const bad = await run.trainStepBatches(micro(2, source === 'nan' && env.rank === 1), 1e-3, {
    injectNonFiniteGrad: source === 'inject' && env.rank === 1,
  });
  const after = stateHashes(trainingState(run));
  const r3 = await run.trainStepBatches(micro(3), 1e-3);
  const f3 = await ref.trainStepBatches(micro(3), 1e-3);
  fs.writeFileSync(
    process.env.SKIP_OUT!,
    JSON.stringify({
      rank: env.rank,
      skipped: bad.skipped,
      before,
      after,
      run: { skipped: r3.skipped, loss: r3.loss, gradNorm: r3.gradNorm, state: stateHashes(trainingState(run)) },
      ref: { skipped: f3.skipped, loss: f3.loss, gradNorm: f3.gradNorm, state: stateHashes(trainingState(ref)) },
    }),
  );
  for (const m of models) m.dispose();
  group.shutdown();
}

if (require.main === module) {
  main().catch((e: Error & { code?: string }) => {
    process.stderr.write(`ERROR ${e.code ?? ''} ${e.message}\n`);
    process.exit(1);
  });
}
