/**
 * CTViT encoder throughput vs. this process's matmul ceiling.
 *
 *   node bench/ctvit.js [--batch B] [--frames F] [--threads T] [--warmup W] [--iters K] [--matmul N] [--json]
 *
 * Config `mid` (the CTViT part of docs/performance.md's `mid`): dim 128, codebook 1024, image 96, patch 16, temporal patch 8,
 * F 48, depth 2+2, heads 4, dim_head 32, batch 4, 2 intra-op threads. Reports the median wall time of a forward
 * (eval mode, no autograd) and of a forward+backward (train mode: EMA + straight-through, backward of
 * Σ embedding ⊙ R), the achieved GFLOP/s with FLOPs counted analytically as docs/reference.md says (`ctvitFlops`), the
 * GFLOP/s of an N×N float32 matmul in the same process and thread setting (the ceiling), and the ratio.
 */
import { parseArgs } from 'util';
import { CTViT, ctvitFlops, type CTViTConfig } from '../lib/model/ctvit';
import { loadAddon } from '../lib/native';
import { MID_CTCLIP_CONFIG } from './ctclip';
import { runBenchMain, STEP_BENCH_OPTIONS, stepBenchNumbers, timeIt, uniformTensor } from './common';

/** `mid`: the image encoder of the CT-CLIP `mid` preset (bench/ctclip.ts), seed 0. */
export const MID_CONFIG: CTViTConfig = { ...MID_CTCLIP_CONFIG.image, seed: 0 };

export interface CtvitBenchOptions {
  config?: Partial<CTViTConfig>;
  batch?: number;
  frames?: number;
  threads?: number;
  warmup?: number;
  iters?: number;
  matmulN?: number;
  log?: (line: string) => void;
}

export interface TimedFigure {
  ms: number;
  gflop: number;
  gflops: number;
  ratioToMatmul: number;
}

export interface CtvitBenchResult {
  config: CTViTConfig;
  batch: number;
  frames: number;
  threads: number;
  iters: number;
  forward: TimedFigure;
  forwardBackward: TimedFigure;
  matmulGflops: number;
  matmulN: number;
}

export async function runCtvitBench(opts: CtvitBenchOptions = {}): Promise<CtvitBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const addon = loadAddon();
  const threads = opts.threads ?? 2;
  addon.setNumThreads(threads);
  const batch = opts.batch ?? 4;
  const frames = opts.frames ?? 48;
  const warmup = opts.warmup ?? 2;
  const iters = opts.iters ?? 5;
  const matmulN = opts.matmulN ?? 1024;

  const model = CTViT.create({ ...MID_CONFIG, ...opts.config });
  const config = model.config;
  const video = uniformTensor([batch, config.channels, frames, config.image_size, config.image_size], 1);
  const grad = uniformTensor([batch, model.embeddingDim], 2);

  model.eval();
  const fwdMs = await timeIt(warmup, iters, () => model.forward(video));
  model.train();
  const fbMs = await timeIt(warmup, iters, () => model.forwardBackward(video, grad));
  model.dispose();

  // Enough iterations for ~0.5 s of matmul at a few tens of GFLOP/s.
  const matmulIters = Math.max(3, Math.round(2e10 / (2 * matmulN ** 3)));
  const matmul = await addon.matmulGflops(matmulN, matmulIters);

  const evalFlops = ctvitFlops(config, batch, frames);
  const trainFlops = ctvitFlops(config, batch, frames, { train: true });
  const figure = (ms: number, flop: number): TimedFigure => {
    const gflops = flop / 1e9 / (ms / 1e3);
    return { ms, gflop: flop / 1e9, gflops, ratioToMatmul: gflops / matmul };
  };
  const result: CtvitBenchResult = {
    config,
    batch,
    frames,
    threads,
    iters,
    forward: figure(fwdMs, evalFlops.forward),
    forwardBackward: figure(fbMs, trainFlops.forward + trainFlops.backward),
    matmulGflops: matmul,
    matmulN,
  };

  const f = (x: number, d = 1) => x.toFixed(d);
  log(
    `CTViT bench: dim ${config.dim}, codebook ${config.codebook_size}, image ${config.image_size}, patch ${config.patch_size}, ` +
      `temporal patch ${config.temporal_patch_size}, F ${frames}, depth ${config.spatial_depth}+${config.temporal_depth}, ` +
      `heads ${config.heads}×${config.dim_head}, batch ${batch}, ${threads} threads; median of ${iters} after ${warmup} warm-up`,
  );
  log(
    `  forward (eval)          ${f(result.forward.ms).padStart(9)} ms  ${f(result.forward.gflop, 2).padStart(8)} GFLOP  ${f(result.forward.gflops).padStart(7)} GFLOP/s  ${f(100 * result.forward.ratioToMatmul)}% of matmul`,
  );
  log(
    `  forward+backward (train)${f(result.forwardBackward.ms).padStart(9)} ms  ${f(result.forwardBackward.gflop, 2).padStart(8)} GFLOP  ${f(result.forwardBackward.gflops).padStart(7)} GFLOP/s  ${f(100 * result.forwardBackward.ratioToMatmul)}% of matmul`,
  );
  log(`  matmul ceiling ${matmulN}×${matmulN} float32: ${f(matmul)} GFLOP/s`);
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: STEP_BENCH_OPTIONS,
  });
  const r = await runCtvitBench({
    ...stepBenchNumbers(values),
    log: values.json ? () => undefined : undefined,
  });
  if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

runBenchMain(module, main);
