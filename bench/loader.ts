/**
 * Loader throughput vs. the read ceiling, on full-size 480×480×240 float16 samples (110.6 MB each).
 *
 *   node bench/loader.js [--dir D] [--samples N] [--batch B] [--prefetch P] [--readers R] [--passes K] [--json]
 *
 * Without --dir, N (default 8) samples are synthesised into a temp dir (removed afterwards). With --dir, the
 * directory must hold our index (ctclip-index.json).
 *
 * Ceiling: one thread, `fs.readSync` at each sample's `bin` offset into ONE preallocated Buffer — the fastest
 * a single reader can move the same bytes. Loader: a TrainLoader epoch (W=1, A=1) over the same samples,
 * batches released as soon as they arrive; one loader runs a warm-up epoch and then `passes` timed epochs,
 * so its pooled batch Buffers are reused as in training. Page cache: every file is read once first (untimed) so both
 * measurements are WARM (memory-bandwidth bound); the first, possibly cold, ceiling pass is reported too.
 * Each figure is the best of `passes` runs.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { openIndexFile, type ShardIndex } from '../lib/data/shard-index';
import { TrainLoader } from '../lib/data/loader';
import { writeSynthDataset } from '../lib/data/synth';

export interface LoaderBenchOptions {
  dir?: string;
  samples?: number;
  shape?: [number, number, number];
  batchSize?: number;
  prefetch?: number;
  readers?: number;
  passes?: number;
  log?: (line: string) => void;
}

export interface Throughput {
  seconds: number;
  samplesPerSec: number;
  MBps: number;
}

export interface LoaderBenchResult {
  samples: number;
  sampleBytes: number;
  volumeShape: [number, number, number];
  cache: 'warm';
  firstPass: Throughput;
  ceiling: Throughput;
  loader: Throughput & {
    batchSize: number;
    prefetch: number;
    readers: number;
    peakHeldBytes: number;
    expectedPeakBytes: number;
  };
  /** loader MB/s ÷ ceiling MB/s (best passes). */
  ratio: number;
  /** The same from the median passes. */
  median: { ceiling: Throughput; loader: Throughput; ratio: number };
}

function throughput(samples: number, bytes: number, seconds: number): Throughput {
  return { seconds, samplesPerSec: samples / seconds, MBps: bytes / 1e6 / seconds };
}

function ceilingPass(index: ShardIndex): number {
  const buf = Buffer.allocUnsafeSlow(index.sampleBytes);
  const fds = index.shardPaths.map((p) => fs.openSync(p, 'r'));
  try {
    const t0 = process.hrtime.bigint();
    for (const s of index.samples) {
      let done = 0;
      while (done < s.bin[1]) {
        const n = fs.readSync(fds[s.shard], buf, done, s.bin[1] - done, s.bin[0] + done);
        if (n === 0) throw new Error(`short read in ${index.shardPaths[s.shard]}`);
        done += n;
      }
    }
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

async function loaderPass(loader: TrainLoader, epoch: number): Promise<{ seconds: number; samples: number }> {
  let samples = 0;
  const t0 = process.hrtime.bigint();
  for await (const b of loader.batches({ epoch, globalSamplePosition: 0 })) {
    samples += b.keys.length;
    b.release();
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, samples };
}

/** Runs the benchmark (see module comment) and returns the figures; `log` receives the report lines. */
export async function benchLoader(opts: LoaderBenchOptions = {}): Promise<LoaderBenchResult> {
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const passes = Math.max(1, opts.passes ?? 7);
  let tmp: string | null = null;
  let dir = opts.dir;
  try {
    if (!dir) {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-bench-loader-'));
      dir = tmp;
      const n = opts.samples ?? 8;
      const shape = opts.shape ?? [480, 480, 240];
      const t0 = Date.now();
      await writeSynthDataset({
        out: dir,
        samples: n,
        shape,
        shards: Math.max(1, Math.ceil(n / 4)),
        seed: 1,
        vocabSize: 512,
      });
      log(
        `synthesised ${n} samples of ${shape.join('×')} float16 in ${((Date.now() - t0) / 1000).toFixed(1)} s into ${dir}`,
      );
    }
    let index = openIndexFile(path.join(dir, 'ctclip-index.json'));
    if (opts.samples && opts.dir && opts.samples < index.samples.length)
      index = { ...index, samples: index.samples.slice(0, opts.samples) };
    const N = index.samples.length;
    const bytes = N * index.sampleBytes;
    const batchSize = Math.min(opts.batchSize ?? 1, N);
    const lopts = { batchSize, prefetch: opts.prefetch ?? 2, readers: opts.readers ?? 4 };

    const first = throughput(N, bytes, ceilingPass(index)); // warms the page cache
    // One loader for all passes, as in training: its pooled batch Buffers are allocated (and page-faulted)
    // during the warm-up epoch and reused afterwards.
    const loader = new TrainLoader(index, { ...lopts, seed: 0 });
    await loaderPass(loader, 99); // warm-up (JIT, buffer pool)
    // Ceiling and loader passes alternate, so drifting machine load affects both alike.
    const ceilTimes: number[] = [];
    const loaderTimes: number[] = [];
    let loaderSamples = 0;
    for (let k = 0; k < passes; k++) {
      ceilTimes.push(ceilingPass(index));
      const r = await loaderPass(loader, k);
      loaderTimes.push(r.seconds);
      loaderSamples = r.samples;
    }
    await loader.close();
    const best = Math.min(...ceilTimes);
    const bestLoader = Math.min(...loaderTimes);
    const ceiling = throughput(N, bytes, best);
    const lt = throughput(loaderSamples, loaderSamples * index.sampleBytes, bestLoader);
    const st = loader.stats();
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const medianCeiling = throughput(N, bytes, median(ceilTimes));
    const medianLoader = throughput(loaderSamples, loaderSamples * index.sampleBytes, median(loaderTimes));
    const result: LoaderBenchResult = {
      samples: N,
      sampleBytes: index.sampleBytes,
      volumeShape: index.volumeShape,
      cache: 'warm',
      firstPass: first,
      ceiling,
      loader: { ...lt, ...lopts, peakHeldBytes: st.peakHeldBytes, expectedPeakBytes: st.expectedPeakBytes },
      ratio: lt.MBps / ceiling.MBps,
      median: { ceiling: medianCeiling, loader: medianLoader, ratio: medianLoader.MBps / medianCeiling.MBps },
    };
    const mb = (b: number): string => (b / 1e6).toFixed(1);
    log(
      `samples: ${N} × ${index.volumeShape.join('×')} float16 (${mb(index.sampleBytes)} MB each), page cache warm, best of ${passes} alternating passes`,
    );
    log(`first pass (may be cold): ${first.samplesPerSec.toFixed(1)} samples/s, ${first.MBps.toFixed(0)} MB/s`);
    log(
      `ceiling (1 thread, pread into one preallocated Buffer): ${ceiling.samplesPerSec.toFixed(1)} samples/s, ${ceiling.MBps.toFixed(0)} MB/s`,
    );
    log(
      `loader (B=${batchSize}, prefetch ${lopts.prefetch}, readers ${lopts.readers}): ${lt.samplesPerSec.toFixed(1)} samples/s, ${lt.MBps.toFixed(0)} MB/s` +
        ` — ${(result.ratio * 100).toFixed(0)} % of the ceiling; peak loader memory ${mb(st.peakHeldBytes)} MB (bound ${mb(st.expectedPeakBytes)} MB)`,
    );
    log(
      `median passes: ceiling ${medianCeiling.MBps.toFixed(0)} MB/s, loader ${medianLoader.MBps.toFixed(0)} MB/s — ${(result.median.ratio * 100).toFixed(0)} %`,
    );
    return result;
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      samples: { type: 'string' },
      batch: { type: 'string' },
      prefetch: { type: 'string' },
      readers: { type: 'string' },
      passes: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : parseInt(v, 10));
  const r = await benchLoader({
    dir: values.dir,
    samples: num(values.samples),
    batchSize: num(values.batch),
    prefetch: num(values.prefetch),
    readers: num(values.readers),
    passes: num(values.passes),
    log: values.json ? () => undefined : undefined,
  });
  if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`bench/loader: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
