/**
 * `npm run bench`: every benchmark of the product in one process, printed as ratios against ceilings measured
 * in the same run (never as timed tests), plus a JSON record under bench/results/.
 *
 *   node bench/run.js [--only loader,ctvit,ctclip,preprocess,distributed,reference] [--quick]
 *                     [--reference [--pairs N] [--presets mid,large] [--threads T] [--device D] [--precision P]]
 *
 *   loader      loader MB/s ÷ single-thread positioned-read MB/s of the same full-size files (target ≥ 0.9)
 *   ctvit       CTViT mid config: forward and forward+backward GFLOP/s ÷ this process's matmul GFLOP/s
 *   ctclip      full CT-CLIP train step, `mid` and `large` configs, each in its own child process (clean peak RSS):
 *               forward / backward / optimizer / step medians, ratio to the reference Python (110 / 624 ms),
 *               GFLOP/s ÷ matmul GFLOP/s, samples/s, peak RSS — printed as ONE table (`formatStepTable`); further
 *               rows (e.g. a 2-rank vs 1-rank distributed step) are appended as more `StepRow`s.
 *   preprocess  volumes/s for a 512×512×300 int16 NIfTI at the default spacing/shape
 *   distributed `mid` train step as W = 1 and W = 2 ranks (Gloo, 127.0.0.1), 1 thread per rank: samples/s each,
 *               the all-reduce share, and the scaling efficiency samples/s(W=2) ÷ (2 × samples/s(W=1))
 *   reference   (only with --reference or --only reference) the reference Python CT-CLIP step and ours, side by
 *               side in interleaved processes on the same torch build (bench/reference.ts): ratios per pair as
 *               median (min–max); without $CTCLIP_REFERENCE_DIR it says so and prints our figures only
 *
 * --quick shrinks the work (fewer samples/iterations) for a smoke run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { parseArgs } from 'util';
import { addonAvailable, loadAddon } from '../lib/native';
import type { CtclipBenchResult, CtclipPreset } from './ctclip';
import { cliFlags } from './common';

interface Row {
  bench: string;
  figure: string;
  ratio: string;
}

/** One row of the train-step table. */
export interface StepRow {
  name: string;
  forwardMs: number;
  backwardMs: number;
  optimizerMs: number;
  stepMs: number;
  referenceMs: number | null;
  /** Achieved GFLOP/s ÷ this process's matmul GFLOP/s. */
  ratioToMatmul: number;
  gflops: number;
  samplesPerSec: number;
  peakRssMiB: number;
}

export function stepRowFromResult(name: string, r: CtclipBenchResult): StepRow {
  return {
    name,
    forwardMs: r.forwardMs,
    backwardMs: r.backwardMs,
    optimizerMs: r.optimizerMs,
    stepMs: r.stepMs,
    referenceMs: r.referenceMs,
    ratioToMatmul: r.ratioToMatmul,
    gflops: r.gflops,
    samplesPerSec: r.samplesPerSec,
    peakRssMiB: r.peakRssMiB,
  };
}

/** The train-step table: one line per row, medians in ms. */
export function formatStepTable(rows: StepRow[]): string {
  const head = [
    'config',
    'fwd ms',
    'bwd ms',
    'opt ms',
    'step ms',
    'ref ms',
    '×ref',
    'GFLOP/s',
    '÷matmul',
    'samples/s',
    'peak RSS MiB',
  ];
  const body = rows.map((r) => [
    r.name,
    r.forwardMs.toFixed(1),
    r.backwardMs.toFixed(1),
    r.optimizerMs.toFixed(1),
    r.stepMs.toFixed(1),
    r.referenceMs === null ? '-' : String(r.referenceMs),
    r.referenceMs === null ? '-' : (r.stepMs / r.referenceMs).toFixed(2),
    r.gflops.toFixed(1),
    r.ratioToMatmul.toFixed(2),
    r.samplesPerSec.toFixed(1),
    r.peakRssMiB.toFixed(0),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ') + ' |';
  return [
    line(head),
    '|' + w.map((n, i) => (i === 0 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 ? '' : ':')).join('|') + '|',
    ...body.map(line),
  ].join('\n');
}

/** Runs `bench/ctclip.js --preset <p> --json` in a child process (its own peak RSS) and parses the result. */
export function runCtclipPresetInChild(
  preset: CtclipPreset,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): CtclipBenchResult {
  const args = [path.join(__dirname, 'ctclip.js'), ...cliFlags({ preset, json: true }), ...extra];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bench ctclip --preset ${preset} failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as CtclipBenchResult;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      reference: { type: 'boolean', default: false },
      pairs: { type: 'string' },
      presets: { type: 'string' },
      threads: { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
    },
  });
  const all = ['loader', 'ctvit', 'ctclip', 'preprocess', 'distributed', 'reference'];
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : all.filter((b) => b !== 'reference');
  if (values.reference && !only.includes('reference')) only.push('reference');
  for (const o of only) if (!all.includes(o)) throw new Error(`unknown bench '${o}' (known: ${all.join(', ')})`);
  const quick = values.quick ?? false;
  const rows: Row[] = [];
  const stepRows: StepRow[] = [];
  // loadavg: other processes' load when the run started (figures from a loaded machine are not comparable).
  const record: Record<string, unknown> = {
    time: new Date().toISOString(),
    host: os.hostname(),
    cpus: os.cpus().length,
    loadavg: os.loadavg(),
    quick,
  };
  if (addonAvailable()) record.buildInfo = loadAddon().buildInfo();

  if (only.includes('loader')) {
    const { benchLoader } = await import('./loader');
    const r = await benchLoader({ samples: quick ? 2 : 8, passes: quick ? 2 : 5 });
    record.loader = r;
    rows.push({
      bench: 'loader (480×480×240 f16)',
      figure: `${r.loader.samplesPerSec.toFixed(1)} samples/s, ${r.loader.MBps.toFixed(0)} MB/s (ceiling ${r.ceiling.MBps.toFixed(0)} MB/s)`,
      ratio: `${r.ratio.toFixed(2)} of ceiling`,
    });
  }
  if (only.includes('ctvit')) {
    const { runCtvitBench } = await import('./ctvit');
    const r = await runCtvitBench({ iters: quick ? 2 : 5, warmup: quick ? 1 : 2 });
    record.ctvit = r;
    rows.push({
      bench: 'CTViT forward (mid)',
      figure: `${r.forward.ms.toFixed(1)} ms, ${r.forward.gflops.toFixed(1)} GFLOP/s`,
      ratio: `${r.forward.ratioToMatmul.toFixed(2)} of matmul (${r.matmulGflops.toFixed(1)} GFLOP/s)`,
    });
    rows.push({
      bench: 'CTViT fwd+bwd (mid)',
      figure: `${r.forwardBackward.ms.toFixed(1)} ms, ${r.forwardBackward.gflops.toFixed(1)} GFLOP/s`,
      ratio: `${r.forwardBackward.ratioToMatmul.toFixed(2)} of matmul`,
    });
  }
  if (only.includes('ctclip')) {
    const presets: CtclipPreset[] = ['mid', 'large'];
    const results: Record<string, CtclipBenchResult> = {};
    for (const preset of presets) {
      const r = runCtclipPresetInChild(preset, quick ? cliFlags({ iters: 2, warmup: 1 }) : []);
      results[preset] = r;
      stepRows.push(stepRowFromResult(`${preset} (B${r.batch}, ${r.precision}, ${r.threads} thr)`, r));
    }
    record.ctclip = results;
    record.stepTable = stepRows;
  }
  if (only.includes('reference')) {
    const { runSideBySide } = await import('./reference');
    const presets = (values.presets ?? 'mid,large').split(',').map((p) => p.trim()) as CtclipPreset[];
    const pairs = values.pairs === undefined ? (quick ? 2 : 5) : Number(values.pairs);
    if (!Number.isInteger(pairs) || pairs < 1) throw new Error(`--pairs must be an integer ≥ 1, got '${values.pairs}'`);
    const precision = values.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16')
      throw new Error(`--precision must be fp32 or bf16, got '${precision}'`);
    record.reference = await runSideBySide({
      presets,
      pairs,
      threads: values.threads === undefined ? undefined : Number(values.threads),
      device: values.device,
      precision,
      ...(quick ? { iters: 3, warmup: 1 } : {}),
    });
  }
  if (only.includes('preprocess')) {
    const { benchPreprocess } = await import('./preprocess');
    const r = await benchPreprocess({ volumes: quick ? 1 : 3, workers: [1] });
    record.preprocess = r;
    const d = r.driver[0];
    rows.push({
      bench: 'preprocess 512×512×300 i16',
      figure: `${d.volumesPerSecond.toFixed(2)} volumes/s`,
      ratio: `native ${r.single.nativeSeconds.toFixed(2)} s of ${r.single.totalSeconds.toFixed(2)} s per volume`,
    });
  }
  if (only.includes('distributed')) {
    const { runDistributedBench } = await import('./distributed');
    const r = await runDistributedBench({ preset: 'mid', iters: quick ? 2 : 7, warmup: quick ? 1 : 2 });
    record.distributed = r;
    const [w1, w2] = r.rows;
    rows.push({
      bench: 'data parallel mid, 1 thr/rank',
      figure: `W=1 ${w1.samplesPerSec.toFixed(1)} samples/s, W=2 ${w2.samplesPerSec.toFixed(1)} samples/s (all-reduce ${((100 * w2.allReduceMs) / w2.stepMs).toFixed(0)}% of the step)`,
      ratio: `${r.scalingEfficiency.toFixed(2)} scaling efficiency`,
    });
  }

  if (stepRows.length > 0) {
    console.log(
      '\nCT-CLIP train step (medians; ×ref = step ÷ the reference Python; ÷matmul = achieved GFLOP/s ÷ matmul GFLOP/s)',
    );
    console.log(formatStepTable(stepRows));
    for (const [name, r] of Object.entries((record.ctclip ?? {}) as Record<string, CtclipBenchResult>)) {
      const p = r.phasesMs;
      if (p)
        console.log(
          `forward phases, ${name}: spatial ${p.spatial.toFixed(1)} ms, temporal ${p.temporal.toFixed(1)} ms, text ${p.text.toFixed(1)} ms, heads ${p.heads.toFixed(1)} ms`,
        );
    }
    console.log(
      `(load average at start: ${(record.loadavg as number[]).map((l) => l.toFixed(2)).join(', ')} on ${os.cpus().length} CPUs)`,
    );
  }
  if (rows.length > 0) {
    const w = [Math.max(...rows.map((r) => r.bench.length)), Math.max(...rows.map((r) => r.figure.length))];
    console.log('\nother benchmarks (ratios against ceilings measured in this run)');
    for (const r of rows) console.log(`  ${r.bench.padEnd(w[0])}  ${r.figure.padEnd(w[1])}  ${r.ratio}`);
  }
  const dir = path.resolve(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(record, null, 2));
  // The latest summary under a fixed name (committed for CPU runs: bench/results/latest-cpu.json) — only from runs
  // that produced the train-step table (a side-by-side-only run must not replace it).
  const summary = only.includes('ctclip');
  if (summary) fs.writeFileSync(path.join(dir, 'latest-cpu.json'), JSON.stringify(record, null, 2));
  console.log(`\nwrote ${path.relative(process.cwd(), file)}${summary ? ' (and bench/results/latest-cpu.json)' : ''}`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`bench: ${e instanceof Error ? e.stack : String(e)}`);
    process.exit(1);
  });
}
