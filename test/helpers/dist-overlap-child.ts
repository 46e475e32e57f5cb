/**
 * One rank of test/native/dist-overlap.test.ts: a tiny CT-CLIP trained for five steps with the gradient all-reduce
 * overlapped with backward or not (`OVL_OVERLAP`), in small buckets (many buckets, so some can go early). The steps:
 * A = 1; A = 2; A = 2 with a NaN voxel in rank 1's last micro-batch (a genuine non-finite step, skipped); the
 * injected +inf gradient on rank 1 (skipped); A = 1 again. Writes as JSON to `OVL_OUT`: each step's result and the
 * state hashes (test/helpers/train-state.ts) after every step.
 *
 * Env: OVL_OUT, OVL_OVERLAP ('true' | 'false'), OVL_GATHER ('true' | 'false'), OVL_PRECISION ('fp32' | 'bf16' |
 * 'fp16'), OVL_BUCKET_BYTES.
 */
import * as fs from 'fs';
import { distEnvFrom } from '../../lib/dist/env';
import { ProcessGroup } from '../../lib/dist/group';
import { CTClip } from '../../lib/model/ctclip';
import { seededMicroBatch } from './ctclip-batch';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from './tiny-configs';
import { stateHashes, trainingState } from './train-state';

async function main(): Promise<void> {
  const env = distEnvFrom(process.env);
  const precision = (process.env.OVL_PRECISION ?? 'fp32') as 'fp32' | 'bf16' | 'fp16';
  const group = await ProcessGroup.init(env, { backend: 'gloo', timeoutMs: 60000 });
  const model = CTClip.create({
    image: TINY_CTCLIP_IMAGE,
    text: { ...TINY_BERT, hidden_dropout_prob: 0.2, attention_probs_dropout_prob: 0.1 },
    dim_latent: 8,
    seed: 31 + env.rank,
    training: {
      precision,
      max_grad_norm: 0.5,
      gather: process.env.OVL_GATHER !== 'false',
      overlap_allreduce: process.env.OVL_OVERLAP === 'true',
      bucket_bytes: Number(process.env.OVL_BUCKET_BYTES ?? '4096'),
    },
  });
  model.setDistributed(group.handle);
  await model.broadcastState(0);
  model.train();
  const plan = [
    { micro: 1, nan: false, inject: false },
    { micro: 2, nan: false, inject: false },
    { micro: 2, nan: true, inject: false },
    { micro: 1, nan: false, inject: true },
    { micro: 1, nan: false, inject: false },
  ];
  const steps = [];
  for (const [k, p] of plan.entries()) {
    const batches = Array.from({ length: p.micro }, (_, a) =>
      seededMicroBatch(1000 * (k + 1) + 100 * env.rank + a, p.nan && env.rank === 1 && a === p.micro - 1),
    );
    const r = await model.trainStepBatches(batches, 1e-3, { injectNonFiniteGrad: p.inject && env.rank === 1 });
    steps.push({
      skipped: r.skipped,
      loss: r.loss,
      gradNorm: r.gradNorm,
      lossScale: r.lossScale,
      allReduceBuckets: r.allReduceBuckets,
      overlappedBuckets: r.overlappedBuckets,
      state: stateHashes(trainingState(model)),
    });
  }
  fs.writeFileSync(process.env.OVL_OUT!, JSON.stringify({ rank: env.rank, steps }));
  model.dispose();
  group.shutdown();
}

if (require.main === module) {
  main().catch((e: Error & { code?: string }) => {
    process.stderr.write(`ERROR ${e.code ?? ''} ${e.message}\n`);
    process.exit(1);
  });
}
