/**
 * `npm run bench`: every benchmark of the product in one process, printed as ratios against ceilings measured
 * in the same run (never as timed tests), plus a JSON record under bench/results/.
 *
 *   node bench/run.js [--only loader,ctvit,ctclip,preprocess] [--quick]
 *
 *   loader      loader MB/s ÷ single-thread positioned-read MB/s of the same full-size files (target ≥ 0.9)
 *   ctvit       CTViT mid config: forward and forward+backward GFLOP/s ÷ this process's matmul GFLOP/s
 *   ctclip      full CT-CLIP train step, mid config: GFLOP/s ÷ matmul, and ms ÷ the reference Python's 110 ms
 *   preprocess  volumes/s for a 512×512×300 int16 NIfTI at the default spacing/shape
 *
 * --quick shrinks the work (fewer samples/iterations) for a smoke run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { addonAvailable, loadAddon } from '../lib/native';

interface Row {
  bench: string;
  figure: string;
  ratio: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean', default: false } } });
  const all = ['loader', 'ctvit', 'ctclip', 'preprocess'];
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : all;
  for (const o of only) if (!all.includes(o)) throw new Error(`unknown bench '${o}' (known: ${all.join(', ')})`);
  const quick = values.quick ?? false;
  const rows: Row[] = [];
  const record: Record<string, unknown> = { time: new Date().toISOString(), host: os.hostname(), cpus: os.cpus().length, quick };
  if (addonAvailable()) record.buildInfo = loadAddon().buildInfo();

  if (only.includes('loader')) {
    const { benchLoader } = await import('./loader');
    const r = await benchLoader({ samples: quick ? 2 : 8, passes: quick ? 2 : 5 });
    record.loader = r;
    rows.push({ bench: 'loader (480×480×240 f16)', figure: `${r.loader.samplesPerSec.toFixed(1)} samples/s, ${r.loader.MBps.toFixed(0)} MB/s (ceiling ${r.ceiling.MBps.toFixed(0)} MB/s)`, ratio: `${r.ratio.toFixed(2)} of ceiling` });
  }
  if (only.includes('ctvit')) {
    const { runCtvitBench } = await import('./ctvit');
    const r = await runCtvitBench({ iters: quick ? 2 : 5, warmup: quick ? 1 : 2 });
    record.ctvit = r;
    rows.push({ bench: 'CTViT forward (mid)', figure: `${r.forward.ms.toFixed(1)} ms, ${r.forward.gflops.toFixed(1)} GFLOP/s`, ratio: `${r.forward.ratioToMatmul.toFixed(2)} of matmul (${r.matmulGflops.toFixed(1)} GFLOP/s)` });
    rows.push({ bench: 'CTViT fwd+bwd (mid)', figure: `${r.forwardBackward.ms.toFixed(1)} ms, ${r.forwardBackward.gflops.toFixed(1)} GFLOP/s`, ratio: `${r.forwardBackward.ratioToMatmul.toFixed(2)} of matmul` });
  }
  if (only.includes('ctclip')) {
    const { runCtclipBench } = await import('./ctclip');
    const r = await runCtclipBench({ iters: quick ? 2 : 7, warmup: quick ? 1 : 2 });
    record.ctclip = r;
    rows.push({ bench: 'CT-CLIP train step (mid)', figure: `${r.stepMs.toFixed(1)} ms (fwd ${r.forwardMs.toFixed(0)}, bwd ${r.backwardMs.toFixed(0)}, opt ${r.optimizerMs.toFixed(0)}), ${r.gflops.toFixed(1)} GFLOP/s`, ratio: `${r.ratioToReference.toFixed(2)}× the reference's ${r.referenceMs} ms; ${r.ratioToMatmul.toFixed(2)} of matmul` });
  }
  if (only.includes('preprocess')) {
    const { benchPreprocess } = await import('./preprocess');
    const r = await benchPreprocess({ volumes: quick ? 1 : 3, workers: [1] });
    record.preprocess = r;
    const d = r.driver[0];
    rows.push({ bench: 'preprocess 512×512×300 i16', figure: `${d.volumesPerSecond.toFixed(2)} volumes/s`, ratio: `native ${r.single.nativeSeconds.toFixed(2)} s of ${r.single.totalSeconds.toFixed(2)} s per volume` });
  }

  const w = [Math.max(...rows.map((r) => r.bench.length)), Math.max(...rows.map((r) => r.figure.length))];
  console.log('\nctclip benchmarks (ratios against ceilings measured in this run)');
  for (const r of rows) console.log(`  ${r.bench.padEnd(w[0])}  ${r.figure.padEnd(w[1])}  ${r.ratio}`);
  const dir = path.resolve(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(record, null, 2));
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

main().catch((e) => {
  console.error(`bench: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
