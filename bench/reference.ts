/**
 * The side-by-side bench: the reference Python CT-CLIP training step (scripts/reference-step.py over the public
 * CT-CLIP code at $CTCLIP_REFERENCE_DIR) and ours, in separate processes, interleaved pair by pair, same preset,
 * batch, threads and torch build. Ratios are per pair (ours ÷ the reference's median step of the same pair), then
 * summarised as median with min–max spread, so a slow spell of a shared machine hits both sides of a pair.
 *
 *   node bench/run.js --reference [--pairs 5] [--presets mid,large] [--threads 2] [--device cpu|cuda]
 *                                 [--precision fp32|bf16]
 *
 * Our addons: "same torch" = $CTCLIP_ADDON_TORCH2 or build-torch2/Release/ctclip.node (built against the Python
 * venv's torch: `LIBTORCH=<venv>/…/site-packages/torch node scripts/build-native.js --out build-torch2`), and,
 * when present, the default addon ($CTCLIP_ADDON or build/Release, e.g. Debian's libtorch 1.13) as a further
 * column. The Python is $CTCLIP_PYTHON or .cache/torch2-venv (as for the world tests). Without
 * $CTCLIP_REFERENCE_DIR the bench says so and prints our figures only.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { worldPython } from '../test/helpers/python';
import { PRESETS, type CtclipBenchResult, type CtclipPreset } from './ctclip';
import { cliFlags, median } from './common';
import { runCtclipPresetInChild } from './run';

const REPO = path.resolve(__dirname, '..');

export interface ReferenceRun {
  stepMs: number;
  stepTimesMs: number[];
  cpuMsPerStep: number;
  torch: string;
  threads: number;
  device: string;
  parameters: number;
}

export interface SideBySideOptions {
  presets?: CtclipPreset[];
  pairs?: number;
  threads?: number;
  batch?: number;
  warmup?: number;
  iters?: number;
  device?: string;
  precision?: 'fp32' | 'bf16';
  log?: (line: string) => void;
}

/** One of our addons in the comparison. */
export interface OurAddon {
  label: string;
  file: string;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface SideBySidePreset {
  preset: CtclipPreset;
  referenceMs: number[];
  ours: { label: string; torchVersion: string; stepMs: number[]; ratio: Spread | null; kernelChoices: unknown }[];
  referenceTorch: string | null;
}

export interface SideBySideResult {
  referenceDir: string | null;
  /** Why there is no reference column, when there is none. */
  referenceMissing: string | null;
  pairs: number;
  threads: number;
  batch: number;
  device: string;
  precision: string;
  presets: SideBySidePreset[];
}

/** Median with min–max of a list (NaN-free). */
export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** The --spec JSON of scripts/reference-step.py for a preset: the same shapes and hyper-parameters as ours. */
export function referenceSpec(
  preset: CtclipPreset,
  o: { batch: number; threads: number; warmup: number; iters: number; device: string; precision: string },
): Record<string, unknown> {
  const p = PRESETS[preset];
  const t = p.config.training ?? {};
  return {
    image: p.config.image,
    text: p.config.text,
    dim_latent: p.config.dim_latent,
    batch: o.batch,
    frames: p.frames,
    seq: p.seqLen,
    threads: o.threads,
    warmup: o.warmup,
    iters: o.iters,
    device: o.device.startsWith('cuda') ? 'cuda' : 'cpu',
    precision: o.precision,
    lr: 1e-5,
    weight_decay: t.weight_decay,
    betas: t.betas,
    eps: t.eps,
    max_grad_norm: t.max_grad_norm,
  };
}

/** Runs the reference step once in a child Python process; throws with its stderr when it fails. */
/** The command line of one reference step process: [python, script, --spec, JSON]. */
export function referenceArgv(python: string, spec: Record<string, unknown>): string[] {
  return [python, path.join(REPO, 'scripts', 'reference-step.py'), '--spec', JSON.stringify(spec)];
}

export function runReferenceInChild(python: string, spec: Record<string, unknown>): ReferenceRun {
  const [cmd, ...args] = referenceArgv(python, spec);
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: process.env,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    throw new Error(`reference step failed (exit ${r.status}): ${String(r.stderr).slice(-3000)}`);
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as ReferenceRun;
}

/** Our addons for the comparison: the one on the reference's torch first, then the default build if different. */
export function ourAddons(): OurAddon[] {
  const out: OurAddon[] = [];
  const same = process.env.CTCLIP_ADDON_TORCH2 ?? path.join(REPO, 'build-torch2', 'Release', 'ctclip.node');
  if (fs.existsSync(same)) out.push({ label: 'same torch', file: path.resolve(same) });
  const dflt = process.env.CTCLIP_ADDON ?? path.join(REPO, 'build', 'Release', 'ctclip.node');
  if (fs.existsSync(dflt) && !out.some((a) => a.file === path.resolve(dflt)))
    out.push({ label: 'default build', file: path.resolve(dflt) });
  if (out.length === 0) throw new Error(`no ctclip addon found (looked for ${same} and ${dflt})`);
  return out;
}

/** Why the reference cannot run here, or null when it can. */
export function referenceUnavailable(python: string | null): string | null {
  const dir = process.env.CTCLIP_REFERENCE_DIR;
  if (!dir) return 'CTCLIP_REFERENCE_DIR is not set (a checkout of the public CT-CLIP repository)';
  if (!fs.existsSync(dir)) return `CTCLIP_REFERENCE_DIR=${dir} does not exist`;
  if (!python) return 'no Python with torch: set CTCLIP_PYTHON or create .cache/torch2-venv';
  return null;
}

export async function runSideBySide(opts: SideBySideOptions = {}): Promise<SideBySideResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const presets = opts.presets ?? ['mid', 'large'];
  const pairs = opts.pairs ?? 5;
  const threads = opts.threads ?? 2;
  const batch = opts.batch ?? 4;
  // 5 warm-up steps per process on both sides: our step runs on whichever libuv thread takes its AsyncWorker, and
  // glibc gives each such thread its own arena, so our first ~6 steps still page memory in (docs/performance.md).
  const warmup = opts.warmup ?? 5;
  const iters = opts.iters ?? 7;
  const device = opts.device ?? 'cpu';
  const precision = opts.precision ?? 'fp32';
  for (const p of presets)
    if (!(p in PRESETS)) throw new Error(`unknown preset '${p}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const python = worldPython();
  const missing = referenceUnavailable(python);
  if (missing) log(`reference Python: not run — ${missing}; our figures only`);
  const addons = ourAddons();
  const result: SideBySideResult = {
    referenceDir: missing ? null : (process.env.CTCLIP_REFERENCE_DIR ?? null),
    referenceMissing: missing,
    pairs,
    threads,
    batch,
    device,
    precision,
    presets: [],
  };
  const ourArgs = cliFlags({ threads, batch, warmup, iters, device, precision });
  for (const preset of presets) {
    const spec = referenceSpec(preset, { batch, threads, warmup, iters, device, precision });
    const refMs: number[] = [];
    let refTorch: string | null = null;
    const ours = addons.map(() => [] as CtclipBenchResult[]);
    for (let pair = 0; pair < pairs; pair++) {
      // Rotate the order each pair, so neither side always runs first after the other's memory churn.
      const runs: (() => void)[] = [];
      if (!missing)
        runs.push(() => {
          const r = runReferenceInChild(python!, spec);
          refMs.push(r.stepMs);
          refTorch = r.torch;
        });
      addons.forEach((a, i) =>
        runs.push(() => {
          ours[i].push(runCtclipPresetInChild(preset, ourArgs, { ...process.env, CTCLIP_ADDON: a.file }));
        }),
      );
      for (let j = 0; j < runs.length; j++) runs[(j + pair) % runs.length]();
      const cells = [
        ...(missing ? [] : [`reference ${refMs[pair].toFixed(1)} ms`]),
        ...addons.map((a, i) => `${a.label} (${ours[i][pair].torchVersion}) ${ours[i][pair].stepMs.toFixed(1)} ms`),
      ];
      log(`  ${preset} pair ${pair + 1}/${pairs}: ${cells.join(', ')}`);
    }
    result.presets.push({
      preset,
      referenceMs: refMs,
      referenceTorch: refTorch,
      ours: addons.map((a, i) => ({
        label: a.label,
        torchVersion: ours[i][0].torchVersion,
        stepMs: ours[i].map((r) => r.stepMs),
        ratio: missing ? null : spread(ours[i].map((r, k) => r.stepMs / refMs[k])),
        kernelChoices: ours[i][0].kernelChoices,
      })),
    });
  }
  log(formatSideBySide(result));
  return result;
}

/** The side-by-side table: medians over pairs, and ours ÷ reference per pair as median (min–max). */
export function formatSideBySide(r: SideBySideResult): string {
  const f = (x: number) => x.toFixed(1);
  const lines = [
    `side by side: batch ${r.batch}, ${r.precision}, ${r.threads} threads, ${r.device}, ${r.pairs} interleaved pairs` +
      (r.referenceMissing ? ' (no reference)' : ''),
  ];
  for (const p of r.presets) {
    const cells: string[] = [];
    if (p.referenceMs.length > 0) {
      const s = spread(p.referenceMs);
      cells.push(`reference (torch ${p.referenceTorch}) ${f(s.median)} ms [${f(s.min)}–${f(s.max)}]`);
    }
    for (const o of p.ours) {
      const s = spread(o.stepMs);
      const ratio = o.ratio
        ? `, ×ref ${o.ratio.median.toFixed(2)} (${o.ratio.min.toFixed(2)}–${o.ratio.max.toFixed(2)})`
        : '';
      cells.push(`ctclip ${o.label} (libtorch ${o.torchVersion}) ${f(s.median)} ms [${f(s.min)}–${f(s.max)}]${ratio}`);
    }
    lines.push(`  ${p.preset}: ${cells.join('; ')}`);
    const same = p.ours[0];
    if (p.referenceTorch && same && !p.referenceTorch.startsWith(same.torchVersion.split('.').slice(0, 2).join('.')))
      lines.push(
        `  note: the reference ran on torch ${p.referenceTorch}, our '${same.label}' addon on ${same.torchVersion}`,
      );
  }
  return lines.join('\n');
}
