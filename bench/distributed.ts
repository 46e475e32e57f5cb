/**
 * Data-parallel throughput: the `mid` (or `large`) CT-CLIP train step as W = 1 and W = 2 ranks on 127.0.0.1 (Gloo),
 * 1 thread per rank, B = 4 per rank, the global-batch loss on (2-rank vs 1-rank throughput).
 *
 *   node bench/distributed.js [--preset mid|large|full] [--iters N] [--warmup N] [--device cpu|cuda] [--json]
 *                             [--no-overlap] [--bucket-mb MiB]
 *
 * `--device cuda`: rank r runs on cuda:<LOCAL_RANK> with NCCL (resolveDevice 'cuda'); default cpu with Gloo.
 * `--no-overlap`: distributed.overlap_allreduce false (every gradient bucket is sent after the backward pass).
 * `--bucket-mb`: distributed.bucket_mb (default 25; `mid`'s 9 MiB of gradients are then one bucket, which can only
 * leave at the end of backward, so overlap needs smaller buckets there).
 *
 * Figures: median step time per W, samples/s (B·W / step), the all-reduce share of the step, and the scaling
 * efficiency = samples/s(W=2) ÷ (2 × samples/s(W=1)). On a 2-core machine W = 2 uses both cores, so the ideal is 1.
 * Each rank runs in its own process with the torchrun environment (RANK, WORLD_SIZE, MASTER_*).
 */
import { spawn } from 'child_process';
import { parseArgs } from 'util';
import { distEnvFrom } from '../lib/dist/env';
import { resolveLaunchOptions, torchrunEnv } from '../lib/commands/launch';
import { ProcessGroup } from '../lib/dist/group';
import { float32ArrayToFloat16 } from '../lib/data/float16';
import { CTClip } from '../lib/model/ctclip';
import { isCudaDevice, resolveDevice } from '../lib/model/device';
import { loadAddon } from '../lib/native';
import { tensorFromBuffer } from '../lib/tensor';
import { cliFlags, freePort, median, uniformArray } from './common';
import { PRESETS, type CtclipPreset } from './ctclip';

export interface DistributedBenchRow {
  worldSize: number;
  stepMs: number;
  allReduceMs: number;
  samplesPerSec: number;
}

export interface DistributedBenchResult {
  preset: CtclipPreset;
  /** The requested device: 'cpu' (Gloo) or 'cuda' (cuda:<LOCAL_RANK>, NCCL). */
  device: string;
  /** distributed.overlap_allreduce. */
  overlap: boolean;
  /** distributed.bucket_mb. */
  bucketMb: number;
  batchPerRank: number;
  threadsPerRank: number;
  rows: DistributedBenchRow[];
  /** samples/s(W=2) ÷ (2 × samples/s(W=1)). */
  scalingEfficiency: number;
}

const BATCH = 4;

/** One rank: warm up, time `iters` steps, print `RESULT {...}` on rank 0. */
async function worker(
  preset: CtclipPreset,
  warmup: number,
  iters: number,
  requested: string,
  overlap: boolean,
  bucketMb: number,
): Promise<void> {
  const env = distEnvFrom(process.env);
  const addon = loadAddon();
  addon.setNumThreads(1);
  const p = PRESETS[preset];
  const info = addon.buildInfo();
  const device = resolveDevice(requested, {
    cudaDeviceCount: info.cudaAvailable ? info.cudaDeviceCount : 0,
    localRank: env.localRank,
  });
  const group =
    env.worldSize > 1
      ? await ProcessGroup.init(env, {
          backend: isCudaDevice(device) ? 'auto' : 'gloo',
          cuda: isCudaDevice(device),
          timeoutMs: 600_000,
        })
      : null;
  const model = CTClip.create({
    ...p.config,
    training: {
      ...p.config.training,
      gather: true,
      overlap_allreduce: overlap,
      bucket_bytes: Math.round(bucketMb * 1024 * 1024),
    },
  });
  await model.to(device);
  if (group) {
    model.setDistributed(group.handle);
    await model.broadcastState(0);
  }
  model.train();
  const H = p.config.image.image_size;
  const L = p.seqLen;
  const ids = new BigInt64Array(BATCH * L);
  const mask = new BigInt64Array(BATCH * L);
  for (let b = 0; b < BATCH; b++) {
    for (let i = 0; i < L - 5 * b; i++) {
      ids[b * L + i] = BigInt(i === 0 ? 2 : 5 + ((i * 31 + b * 7 + env.rank) % (p.config.text.vocab_size - 5)));
      mask[b * L + i] = 1n;
    }
  }
  const volumes = float32ArrayToFloat16(uniformArray(BATCH * H * H * p.frames, 1 + env.rank));
  const step = () =>
    model.trainStepBatches(
      [
        {
          inputIds: tensorFromBuffer(ids, 'int64', [BATCH, L]),
          attentionMask: tensorFromBuffer(mask, 'int64', [BATCH, L]),
          volumes: tensorFromBuffer(volumes, 'float16', [BATCH, H, H, p.frames]),
        },
      ],
      1e-5,
    );
  for (let i = 0; i < warmup; i++) await step();
  const wall: number[] = [];
  const reduce: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    const r = await step();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    reduce.push(r.timings.allReduceMs);
  }
  if (env.rank === 0) {
    const stepMs = median(wall);
    const row: DistributedBenchRow = {
      worldSize: env.worldSize,
      stepMs,
      allReduceMs: median(reduce),
      samplesPerSec: (BATCH * env.worldSize) / (stepMs / 1000),
    };
    process.stdout.write(`RESULT ${JSON.stringify(row)}\n`);
  }
  model.dispose();
  group?.shutdown();
}

async function runWorld(
  worldSize: number,
  preset: CtclipPreset,
  warmup: number,
  iters: number,
  device: string,
  overlap: boolean,
  bucketMb: number,
): Promise<DistributedBenchRow> {
  const job = resolveLaunchOptions(
    { nprocPerNode: worldSize, masterPort: await freePort(), script: __filename },
    false,
  );
  const outputs = await Promise.all(
    Array.from(
      { length: worldSize },
      (_, rank) =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          const child = spawn(
            process.execPath,
            [
              __filename,
              ...cliFlags({
                worker: true,
                preset,
                warmup,
                iters,
                device,
                'no-overlap': !overlap,
                'bucket-mb': bucketMb,
              }),
            ],
            {
              env: { ...process.env, ...torchrunEnv(job, rank, 0) },
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (err += d));
          child.on('exit', (code) => resolve({ code, out, err }));
        }),
    ),
  );
  const bad = outputs.findIndex((o) => o.code !== 0);
  if (bad >= 0) throw new Error(`distributed bench W=${worldSize}: rank ${bad} failed: ${outputs[bad].err}`);
  const line = outputs[0].out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`distributed bench W=${worldSize}: rank 0 printed no result:\n${outputs[0].out}`);
  return JSON.parse(line.slice(7)) as DistributedBenchRow;
}

/** W = 1 and W = 2 at 1 thread per rank (see the module comment). */
export async function runDistributedBench(
  opts: {
    preset?: CtclipPreset;
    warmup?: number;
    iters?: number;
    device?: string;
    overlap?: boolean;
    bucketMb?: number;
  } = {},
): Promise<DistributedBenchResult> {
  const preset = opts.preset ?? 'mid';
  const warmup = opts.warmup ?? 2;
  const iters = opts.iters ?? 7;
  const device = opts.device ?? 'cpu';
  const overlap = opts.overlap ?? true;
  const bucketMb = opts.bucketMb ?? 25;
  const rows = [
    await runWorld(1, preset, warmup, iters, device, overlap, bucketMb),
    await runWorld(2, preset, warmup, iters, device, overlap, bucketMb),
  ];
  return {
    preset,
    device,
    overlap,
    bucketMb,
    batchPerRank: BATCH,
    threadsPerRank: 1,
    rows,
    scalingEfficiency: rows[1].samplesPerSec / (2 * rows[0].samplesPerSec),
  };
}

export function formatDistributedBench(r: DistributedBenchResult): string[] {
  const where = r.device === 'cpu' ? 'Gloo' : `${r.device}:<LOCAL_RANK>, NCCL`;
  const lines = [
    `Data parallel, ${r.preset}, B = ${r.batchPerRank} per rank, ${r.threadsPerRank} thread per rank, ${where} on 127.0.0.1, overlap ${r.overlap ? 'on' : 'off'}, ${r.bucketMb} MiB buckets:`,
  ];
  for (const row of r.rows) {
    lines.push(
      `  W=${row.worldSize}: step ${row.stepMs.toFixed(1)} ms (all-reduce ${row.allReduceMs.toFixed(1)} ms, ${((100 * row.allReduceMs) / row.stepMs).toFixed(1)}%), ${row.samplesPerSec.toFixed(2)} samples/s`,
    );
  }
  lines.push(`  scaling efficiency W=2 vs 2 × W=1: ${r.scalingEfficiency.toFixed(2)} (ideal 1.00)`);
  return lines;
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      worker: { type: 'boolean', default: false },
      preset: { type: 'string', default: 'mid' },
      warmup: { type: 'string', default: '2' },
      iters: { type: 'string', default: '7' },
      device: { type: 'string', default: 'cpu' },
      json: { type: 'boolean', default: false },
      'no-overlap': { type: 'boolean', default: false },
      'bucket-mb': { type: 'string', default: '25' },
    },
  });
  const preset = values.preset as CtclipPreset;
  if (!(preset in PRESETS)) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}`);
  const warmup = Number(values.warmup);
  const iters = Number(values.iters);
  const main = values.worker
    ? worker(preset, warmup, iters, values.device as string, !values['no-overlap'], Number(values['bucket-mb']))
    : runDistributedBench({
        preset,
        warmup,
        iters,
        device: values.device as string,
        overlap: !values['no-overlap'],
        bucketMb: Number(values['bucket-mb']),
      }).then((r) => console.log(values.json ? JSON.stringify(r) : formatDistributedBench(r).join('\n')));
  main.catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
