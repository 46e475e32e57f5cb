/**
 * One data-parallel training step of a tiny CT-CLIP for test/native/dist-equivalence.test.ts. Samples are
 * generated per index (so any split of the global batch over ranks and micro-batches sees the same data);
 * `STEP_SPLIT` gives this process's micro-batches as sample-index lists per rank, e.g. `[[[0,1]],[[2,3]]]` = two
 * ranks of one micro-batch of 2. Writes `{loss, gradNorm, clipCoef, grads, state}` as JSON to `STEP_OUT`.
 */
import * as fs from 'fs';
import { distEnvFrom } from '../../lib/dist/env';
import { ProcessGroup } from '../../lib/dist/group';
import { CTClip, type CTClipBatch } from '../../lib/model/ctclip';
import type { CTClipNativeConfig } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from './tiny-configs';

const F = 4;
const L = 10;

export function tinyConfig(loss: 'softmax' | 'siglip', localLoss: boolean): CTClipNativeConfig {
  return {
    image: TINY_CTCLIP_IMAGE,
    text: TINY_BERT,
    dim_latent: 8,
    loss,
    seed: 11,
    training: { max_grad_norm: 0.5, gather: true, local_loss: localLoss },
  };
}

/** Sample i: a report of 3..L tokens and a (1, F, H, W) volume, both from i alone. */
function sampleBatch(indices: number[], H: number): CTClipBatch {
  const B = indices.length;
  const ids = new BigInt64Array(B * L);
  const mask = new BigInt64Array(B * L);
  const vol = new Float32Array(B * F * H * H);
  indices.forEach((idx, b) => {
    let s = (idx + 1) * 2654435761;
    const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    const len = 3 + (idx % (L - 2));
    for (let i = 0; i < len; i++) {
      ids[b * L + i] = BigInt(i === 0 ? 2 : i === len - 1 ? 3 : 5 + (next() % 45));
      mask[b * L + i] = 1n;
    }
    for (let k = 0; k < F * H * H; k++) vol[b * F * H * H + k] = (next() / 2 ** 32) * 2 - 1;
  });
  return {
    inputIds: tensorFromBuffer(ids, 'int64', [B, L]),
    attentionMask: tensorFromBuffer(mask, 'int64', [B, L]),
    volumes: tensorFromBuffer(vol, 'float32', [B, 1, F, H, H]),
  };
}

async function main(): Promise<void> {
  const env = distEnvFrom(process.env);
  const split = JSON.parse(process.env.STEP_SPLIT!) as number[][][];
  const config = tinyConfig(
    (process.env.STEP_LOSS as 'softmax' | 'siglip') ?? 'softmax',
    process.env.STEP_LOCAL_LOSS !== 'false',
  );
  config.training!.gather = process.env.STEP_GATHER !== 'false';
  const group = env.worldSize > 1 ? await ProcessGroup.init(env, { backend: 'gloo', timeoutMs: 60000 }) : null;
  // Ranks > 0 start from different weights on purpose: the broadcast must make them identical.
  const model = CTClip.create({ ...config, seed: config.seed + env.rank });
  if (group) {
    model.setDistributed(group.handle);
    await model.broadcastState(0);
  }
  model.train();
  const batches = split[env.rank].map((idx) => sampleBatch(idx, config.image.image_size));
  const r = await model.trainStepBatches(batches, 1e-3, { captureGrads: true });
  const grads: Record<string, number[]> = {};
  r.grads!.names.forEach((n, i) => (grads[n] = Array.from(readTensor(r.grads!.tensors[i]).data as Float32Array)));
  const sd = model.stateDict();
  const state: Record<string, { kind: string; values: number[] }> = {};
  sd.names.forEach(
    (n, i) => (state[n] = { kind: sd.kinds[i], values: Array.from(readTensor(sd.tensors[i]).data as Float32Array) }),
  );
  fs.writeFileSync(
    process.env.STEP_OUT!,
    JSON.stringify({
      rank: env.rank,
      loss: r.loss,
      gradNorm: r.gradNorm,
      clipCoef: r.clipCoef,
      worldSize: r.worldSize,
      grads,
      state,
    }),
  );
  group?.shutdown();
}

if (require.main === module) {
  main().catch((e: Error & { code?: string }) => {
    process.stderr.write(`ERROR ${e.code ?? ''} ${e.message}\n`);
    process.exit(1);
  });
}
