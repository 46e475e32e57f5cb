/**
 * A full CT-CLIP training step (forward, backward, global-norm clip 0.5, AdamW) on the `mid` or `large` config.
 *
 *   node bench/ctclip.js [--preset mid|large|full] [--batch B] [--frames F] [--seq L] [--threads T] [--warmup W]
 *                        [--iters K] [--matmul N] [--precision fp32|bf16] [--device cpu|cuda|cuda:N]
 *                        [--image JSON] [--text JSON] [--kernels MODE] [--json]
 *
 * `full` is configs/base_config.yaml's model (read with loadConfig + modelConfigFromConfig: CTViT dim 512, 4+4
 * layers, image 480, F 240; BERT-base, 512 tokens, dropout 0.25) — a GPU configuration (no reference time).
 * `--device` places the model (default cpu); on a CUDA device the step is still timed synchronously, because the
 * native step reads the loss and the gradient norm with .item() before it returns.
 *
 * --image / --text merge overrides into the preset's image / text config (e.g. '{"use_flash_attention":true}').
 * --kernels sets the custom-kernel mode (addon.setKernelMode: table, calibrate, custom, aten or 'bmm=aten,…'); the
 * result lists the choices made (`kernelChoices`) and the libtorch the addon runs on (`torchVersion`, `blas`).
 * `large` is the second preset (see LARGE_CTCLIP_CONFIG; reference 624 ms per step).
 *
 * Config `mid` (docs/performance.md): CTViT dim 128, codebook 1024, image 96, patch 16, temporal patch 8, F 48,
 * depth 2+2, heads 4 × 32; BERT hidden 128, 2 layers, 2 heads, intermediate 512, vocab 1500, sequence 64,
 * dropout 0; latent 128; batch 4; fp32; 2 intra-op threads. Volumes enter as the loader gives them (float16
 * (B, H, W, D), permuted and cast natively). Reports the median wall time of a step and the median forward /
 * backward / optimizer breakdown (native timings) after warm-up, the achieved GFLOP/s (FLOPs counted analytically:
 * `ctvitFlops` for the image side, the BERT matmuls and the projections for the rest; backward = 2× forward,
 * optimizer not counted), the GFLOP/s of an N×N float32 matmul in the same process (the ceiling), and the ratio
 * to the reference Python's median of 110 ms per step on this machine kind.
 */
import * as path from 'path';
import { parseArgs } from 'util';
import { loadConfig } from '../lib/config/load';
import { float32ArrayToFloat16 } from '../lib/data/float16';
import { modelConfigFromConfig } from '../lib/model/config';
import { CTClip, type CTClipConfig } from '../lib/model/ctclip';
import { ctvitFlops, resolveCTViTConfig } from '../lib/model/ctvit';
import { loadAddon, type KernelChoice } from '../lib/native';
import { tensorFromBuffer } from '../lib/tensor';
import { perfWindow } from './perf-control';
import { median, runBenchMain, STEP_BENCH_OPTIONS, stepBenchNumbers, uniformArray } from './common';

export const REFERENCE_STEP_MS = 110;

/**
 * The benchmark presets of docs/performance.md (reference = the Python reference's median step, torch 2.13 CPU, 2 threads) and
 * `full`, the base config's model (no reference: NaN).
 */
export type CtclipPreset = 'mid' | 'large' | 'full';

export const MID_CTCLIP_CONFIG: CTClipConfig = {
  image: {
    dim: 128,
    codebook_size: 1024,
    image_size: 96,
    patch_size: 16,
    temporal_patch_size: 8,
    spatial_depth: 2,
    temporal_depth: 2,
    heads: 4,
    dim_head: 32,
  },
  text: {
    vocab_size: 1500,
    hidden_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 512,
    max_position_embeddings: 512,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  },
  dim_latent: 128,
  seed: 0,
  training: { precision: 'fp32', max_grad_norm: 0.5, weight_decay: 0.01, betas: [0.9, 0.99], eps: 1e-8 },
};

/** `large`: CTViT dim 256, codebook 2048, image 160, patch 20/10, F 80, depth 2+2, heads 8×32; BERT 256×4, 4 heads,
 * intermediate 1024, sequence 128; latent 256; batch 4. Reference: 624 ms per step. */
export const LARGE_CTCLIP_CONFIG: CTClipConfig = {
  image: {
    dim: 256,
    codebook_size: 2048,
    image_size: 160,
    patch_size: 20,
    temporal_patch_size: 10,
    spatial_depth: 2,
    temporal_depth: 2,
    heads: 8,
    dim_head: 32,
  },
  text: {
    vocab_size: 1500,
    hidden_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    intermediate_size: 1024,
    max_position_embeddings: 512,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  },
  dim_latent: 256,
  seed: 0,
  training: MID_CTCLIP_CONFIG.training,
};

export interface CtclipPresetSpec {
  config: CTClipConfig;
  frames: number;
  seqLen: number;
  referenceMs: number;
}

/** configs/base_config.yaml's model through the repository's own loader and model-config builder. */
export function fullPreset(
  configFile = path.resolve(__dirname, '..', 'configs', 'base_config.yaml'),
): CtclipPresetSpec {
  const { config: cfg } = loadConfig(configFile);
  const te = cfg.model.text_encoder;
  const config = modelConfigFromConfig(cfg, te.vocab_size ?? 30522);
  return {
    config: { ...config, training: { ...config.training, precision: 'fp32' } },
    frames: cfg.model.image_encoder.frames,
    seqLen: te.max_length,
    referenceMs: NaN,
  };
}

let fullCache: CtclipPresetSpec | null = null;

export const PRESETS: Record<CtclipPreset, CtclipPresetSpec> = {
  mid: { config: MID_CTCLIP_CONFIG, frames: 48, seqLen: 64, referenceMs: REFERENCE_STEP_MS },
  large: { config: LARGE_CTCLIP_CONFIG, frames: 80, seqLen: 128, referenceMs: 624 },
  // Read on first use (the config file is parsed only when `full` is asked for).
  get full(): CtclipPresetSpec {
    fullCache ??= fullPreset();
    return fullCache;
  },
};

export interface CtclipBenchOptions {
  preset?: CtclipPreset;
  /** Image-encoder overrides on top of the preset (e.g. the modern variants). */
  imageOverrides?: Partial<CTClipConfig['image']>;
  /** Text-encoder overrides on top of the preset. */
  textOverrides?: Partial<CTClipConfig['text']>;
  batch?: number;
  frames?: number;
  seqLen?: number;
  threads?: number;
  warmup?: number;
  iters?: number;
  matmulN?: number;
  precision?: 'fp32' | 'bf16';
  /** 'cpu' (default), 'cuda' or 'cuda:N': where the model and the step run. */
  device?: string;
  /** addon.setKernelMode before the model is built (default: leave $CTCLIP_KERNELS / the table). */
  kernels?: string;
  log?: (line: string) => void;
}

export interface CtclipBenchResult {
  preset: CtclipPreset;
  config: CTClipConfig;
  batch: number;
  frames: number;
  seqLen: number;
  threads: number;
  iters: number;
  precision: string;
  /** The device the step ran on, as libtorch names it. */
  device: string;
  /** The libtorch the addon runs on and its BLAS (buildInfo). */
  torchVersion: string;
  blas: string;
  /** The custom-kernel choices made during the run (native/model/kernel_choice.h). */
  kernelMode: string;
  kernelChoices: KernelChoice[];
  stepMs: number;
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
  gflop: number;
  gflops: number;
  matmulGflops: number;
  ratioToMatmul: number;
  referenceMs: number;
  /** stepMs / reference (below 1 = faster than the reference Python). */
  ratioToReference: number;
  parameters: number;
  trainableParameters: number;
  samplesPerSec: number;
  /** Peak resident set of this process (MiB; run one preset per process for a per-config figure). */
  peakRssMiB: number;
  /** Per-step wall times (ms), for spread. */
  stepTimesMs: number[];
  /** Median process CPU time (user + system, all threads) per step, ms: robust to other processes' load. */
  cpuMsPerStep: number;
  /** Median forward phase times (CTClip::TakePhaseTimes via the step's timings), ms. */
  phasesMs: { spatial: number; temporal: number; text: number; heads: number };
}

/** Forward FLOPs of the text tower and the two projections (matmuls only). */
export function textAndHeadFlops(config: CTClipConfig, batch: number, seqLen: number): number {
  const t = config.text;
  const H = t.hidden_size;
  const I = t.intermediate_size;
  const tokens = batch * seqLen;
  const perLayer =
    2 * tokens * H * 3 * H + 2 * 2 * batch * seqLen * seqLen * H + 2 * tokens * H * H + 2 * 2 * tokens * H * I;
  const hp = config.image.image_size / config.image.patch_size;
  const dimImage = hp * hp * config.image.dim;
  return t.num_hidden_layers * perLayer + 2 * batch * (H + dimImage) * config.dim_latent;
}

export async function runCtclipBench(opts: CtclipBenchOptions = {}): Promise<CtclipBenchResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const addon = loadAddon();
  const threads = opts.threads ?? 2;
  addon.setNumThreads(threads);
  if (opts.kernels !== undefined) addon.setKernelMode(opts.kernels);
  const preset = opts.preset ?? 'mid';
  const p = PRESETS[preset];
  const batch = opts.batch ?? 4;
  const frames = opts.frames ?? p.frames;
  const seqLen = opts.seqLen ?? p.seqLen;
  const warmup = opts.warmup ?? 2;
  const iters = opts.iters ?? 7;
  const matmulN = opts.matmulN ?? 1024;
  const precision = opts.precision ?? 'fp32';
  const config: CTClipConfig = {
    ...p.config,
    image: { ...p.config.image, ...(opts.imageOverrides ?? {}) },
    text: { ...p.config.text, ...(opts.textOverrides ?? {}) },
    training: { ...p.config.training, precision },
  };

  const model = CTClip.create(config);
  await model.to(opts.device ?? 'cpu');
  model.train();
  const H = config.image.image_size;
  const ids = new BigInt64Array(batch * seqLen);
  const mask = new BigInt64Array(batch * seqLen);
  let s = 7;
  for (let b = 0; b < batch; b++) {
    const len = seqLen - 5 * b; // some padding, like real reports
    for (let i = 0; i < len; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      ids[b * seqLen + i] = BigInt(i === 0 ? 2 : i === len - 1 ? 3 : 5 + (s % (config.text.vocab_size - 5)));
      mask[b * seqLen + i] = 1n;
    }
  }
  const volumes = float32ArrayToFloat16(uniformArray(batch * H * H * frames, 1));
  // Timing: trainStep resolves after the native step has read the loss and norm with .item(), which waits for the
  // device, so wall times are synchronous on CUDA too (no explicit synchronize needed).
  const step = () =>
    model.trainStep(
      {
        inputIds: tensorFromBuffer(ids, 'int64', [batch, seqLen]),
        attentionMask: tensorFromBuffer(mask, 'int64', [batch, seqLen]),
        volumes: tensorFromBuffer(volumes, 'float16', [batch, H, H, frames]),
      },
      1e-5,
    );
  for (let i = 0; i < warmup; i++) await step();
  perfWindow('enable');
  const wall: number[] = [];
  const fwd: number[] = [];
  const bwd: number[] = [];
  const opt: number[] = [];
  const cpu: number[] = [];
  const ph = { spatial: [] as number[], temporal: [] as number[], text: [] as number[], heads: [] as number[] };
  for (let i = 0; i < iters; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = await step();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1e3);
    fwd.push(r.timings.forwardMs);
    bwd.push(r.timings.backwardMs);
    opt.push(r.timings.optimizerMs);
    ph.spatial.push(r.timings.spatialMs ?? 0);
    ph.temporal.push(r.timings.temporalMs ?? 0);
    ph.text.push(r.timings.textMs ?? 0);
    ph.heads.push(r.timings.headsMs ?? 0);
  }
  perfWindow('disable');
  const info = model.info();
  model.dispose();
  const build = addon.buildInfo();

  const matmulIters = Math.max(3, Math.round(2e10 / (2 * matmulN ** 3)));
  const matmul = await addon.matmulGflops(matmulN, matmulIters);
  const vit = ctvitFlops(resolveCTViTConfig({ ...config.image, seed: 0 }), batch, frames, { train: true });
  const textFwd = textAndHeadFlops(config, batch, seqLen);
  const flop = vit.forward + vit.backward + 3 * textFwd;
  const stepMs = median(wall);
  const gflops = flop / 1e9 / (stepMs / 1e3);
  const result: CtclipBenchResult = {
    preset,
    config,
    batch,
    frames,
    seqLen,
    threads,
    iters,
    precision,
    device: info.device,
    torchVersion: build.runtimeTorchVersion || build.compiledTorchVersion,
    blas: build.blas,
    kernelMode: build.kernelMode,
    kernelChoices: addon.kernelChoices(),
    stepMs,
    forwardMs: median(fwd),
    backwardMs: median(bwd),
    optimizerMs: median(opt),
    gflop: flop / 1e9,
    gflops,
    matmulGflops: matmul,
    ratioToMatmul: gflops / matmul,
    referenceMs: p.referenceMs,
    ratioToReference: stepMs / p.referenceMs,
    parameters: info.parameterCount,
    trainableParameters: info.trainableParameterCount,
    samplesPerSec: batch / (stepMs / 1e3),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    stepTimesMs: wall,
    cpuMsPerStep: median(cpu),
    phasesMs: {
      spatial: median(ph.spatial),
      temporal: median(ph.temporal),
      text: median(ph.text),
      heads: median(ph.heads),
    },
  };

  const f = (x: number, d = 1) => x.toFixed(d);
  const c = config.image;
  log(
    `CT-CLIP train step bench (${preset}): CTViT dim ${c.dim}, codebook ${c.codebook_size}, image ${c.image_size}, patch ${c.patch_size}/${c.temporal_patch_size}, ` +
      `F ${frames}, depth ${c.spatial_depth}+${c.temporal_depth}, heads ${c.heads}×${c.dim_head}; BERT ${config.text.hidden_size}×${config.text.num_hidden_layers}, ` +
      `seq ${seqLen}, vocab ${config.text.vocab_size}; latent ${config.dim_latent}; batch ${batch}; ${precision}; ${info.device}; ${threads} threads; ` +
      `median of ${iters} after ${warmup} warm-up`,
  );
  log(
    `  step (wall)      ${f(stepMs).padStart(8)} ms   ${f(result.gflop, 2)} GFLOP  ${f(gflops)} GFLOP/s  ${f(100 * result.ratioToMatmul)}% of matmul`,
  );
  log(
    `    forward        ${f(result.forwardMs).padStart(8)} ms   (spatial ${f(result.phasesMs.spatial)}, temporal ${f(result.phasesMs.temporal)}, text ${f(result.phasesMs.text)}, heads ${f(result.phasesMs.heads)})`,
  );
  log(`    backward       ${f(result.backwardMs).padStart(8)} ms`);
  log(
    `    optimizer      ${f(result.optimizerMs).padStart(8)} ms   (clip + AdamW over ${result.trainableParameters} trainable parameters)`,
  );
  log(`  matmul ceiling ${matmulN}×${matmulN} float32: ${f(matmul)} GFLOP/s`);
  log(`  libtorch ${result.torchVersion} (${result.blas}); kernels: ${formatKernelChoices(result.kernelChoices)}`);
  log(`  peak RSS ${f(result.peakRssMiB, 0)} MiB; ${f(result.samplesPerSec, 1)} samples/s`);
  if (Number.isFinite(p.referenceMs)) {
    log(
      `  reference Python: ${p.referenceMs} ms/step → ratio ${f(result.ratioToReference, 2)} (${result.ratioToReference <= 1 ? 'faster' : 'slower'})`,
    );
  }
  return result;
}

/** The kernel choices of a run on one line: "bmm_nt 576x6x32x6/f32 custom (table), …, adamw per parameter: 14 custom (table) + 6 aten (table)". */
export function formatKernelChoices(choices: KernelChoice[]): string {
  if (choices.length === 0) return 'none used';
  // AdamW decides per parameter size (dozens of entries): summarised as counts per path and source.
  const adamw = new Map<string, number>();
  for (const c of choices.filter((c) => c.kernel === 'adamw')) {
    const k = `${c.custom ? 'custom' : 'aten'} (${c.source})`;
    adamw.set(k, (adamw.get(k) ?? 0) + 1);
  }
  const adamwLine = [...adamw].map(([k, n]) => `${n} ${k}`).join(' + ');
  return choices
    .filter((c) => c.kernel !== 'adamw')
    .map((c) => {
      const timed = c.customMs !== undefined ? ` ${c.customMs.toFixed(2)} vs ${(c.atenMs ?? NaN).toFixed(2)} ms` : '';
      return `${c.kernel} ${c.shape} ${c.custom ? 'custom' : 'aten'} (${c.source}${timed})`;
    })
    .concat(adamwLine ? [`adamw per parameter: ${adamwLine}`] : [])
    .join(', ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...STEP_BENCH_OPTIONS,
      precision: { type: 'string' },
      preset: { type: 'string' },
      image: { type: 'string' },
      text: { type: 'string' },
      seq: { type: 'string' },
      device: { type: 'string' },
      kernels: { type: 'string' },
    },
  });
  const precision = values.precision as 'fp32' | 'bf16' | undefined;
  const preset = (values.preset ?? 'mid') as CtclipPreset;
  if (!(preset in PRESETS)) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const r = await runCtclipBench({
    preset,
    imageOverrides: values.image ? (JSON.parse(values.image) as Partial<CTClipConfig['image']>) : undefined,
    textOverrides: values.text ? (JSON.parse(values.text) as Partial<CTClipConfig['text']>) : undefined,
    ...stepBenchNumbers(values),
    seqLen: values.seq === undefined ? undefined : Number(values.seq),
    precision,
    device: values.device,
    kernels: values.kernels,
    log: values.json ? () => undefined : undefined,
  });
  if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

runBenchMain(module, main);
