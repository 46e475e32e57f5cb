/**
 * A rank of a small c10d job for test/native/dist.test.ts, started with the torchrun environment (RANK,
 * WORLD_SIZE, MASTER_ADDR, MASTER_PORT, …). `DIST_SCENARIO` picks what it does (collectives, listen, stuck, dead); it prints one JSON line
 * `RESULT {...}` (or `ERROR {...}` with the error's code and message) and exits.
 */
import * as fs from 'fs';
import { distEnvFrom } from '../../lib/dist/env';
import { ProcessGroup } from '../../lib/dist/group';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';

async function main(): Promise<void> {
  const env = distEnvFrom(process.env);
  const scenario = process.env.DIST_SCENARIO ?? 'collectives';
  const timeoutMs = Number(process.env.DIST_TIMEOUT_MS ?? 60000);
  const group = await ProcessGroup.init(env, { backend: 'gloo', timeoutMs });
  const r = group.rank;
  const W = group.worldSize;
  try {
    if (scenario === 'collectives') {
      const a = tensorFromBuffer(Float32Array.from([r + 1, 10 * (r + 1), -r]), 'float32', [3]);
      await group.allReduceSum([a]);
      const gathered = await group.allGather(tensorFromBuffer(Float32Array.from([r, r + 0.5]), 'float32', [1, 2]));
      const b = tensorFromBuffer(Float64Array.from([r * 7, r * 7 + 1]), 'float64', [2]);
      await group.broadcast([b], W - 1);
      await group.barrier('test');
      // Uneven rows: rank r contributes r + 1 rows of width 2.
      const rows = Float64Array.from({ length: (r + 1) * 2 }, (_, i) => 100 * r + i);
      const g = await group.gatherRows(rows, 2);
      process.stdout.write(
        `RESULT ${JSON.stringify({
          rank: r,
          worldSize: W,
          env,
          allReduce: Array.from(readTensor(a).data as Float32Array),
          allGather: { shape: readTensor(gathered).shape, data: Array.from(readTensor(gathered).data as Float32Array) },
          broadcast: Array.from(readTensor(b).data as Float64Array),
          gatherRows: { counts: g.counts, data: Array.from(g.data) },
        })}\n`,
      );
    } else if (scenario === 'listen') {
      // Stays in the job (store up, Gloo connected) until the test has looked at the listening sockets.
      await group.barrier('joined');
      process.stdout.write(`READY ${process.pid}\n`);
      const release = process.env.DIST_RELEASE_FILE as string;
      while (!fs.existsSync(release)) await new Promise((resolve) => setTimeout(resolve, 50));
      await group.barrier('released');
      process.stdout.write(`RESULT ${JSON.stringify({ rank: r, storeAddress: group.storeAddress })}\n`);
    } else if (scenario === 'stuck' || scenario === 'dead') {
      // The last rank stops answering: stopped (SIGSTOP, alive but silent) or gone (SIGKILL).
      if (r === W - 1) {
        process.stdout.write(`READY ${process.pid}\n`);
        process.kill(process.pid, scenario === 'stuck' ? 'SIGSTOP' : 'SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, 600000));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      const t0 = Date.now();
      const a = tensorFromBuffer(Float32Array.from([1]), 'float32', [1]);
      await group.allReduceSum([a]);
      process.stdout.write(
        `RESULT ${JSON.stringify({ unexpected: 'the all-reduce completed', ms: Date.now() - t0 })}\n`,
      );
    }
  } finally {
    group.shutdown();
  }
}

main().catch((e: Error & { code?: string }) => {
  process.stdout.write(`ERROR ${JSON.stringify({ code: e.code, message: e.message })}\n`);
  process.exit(1);
});
