/**
 * Preprocessing throughput (volumes/s) on a CT-RATE-sized input: a 512×512×300 int16 NIfTI (.nii.gz) of a noisy
 * chest phantom at 0.7 × 0.7 × 1.0 mm, preprocessed at the defaults (spacing 0.75, 0.75, 1.5 → 477×477×200,
 * padded to 480×480×240, float16).
 *
 *   node bench/preprocess.js [--volumes N] [--workers 1,2] [--threads T] [--plain] [--json]
 *
 * Reports, per stage, one volume's read + gunzip + conversion to float32 (JS), the native op (clip → resample →
 * /1000 → crop/pad → float16), and the whole `ctclip preprocess` driver (read, native, shard writing, index) over
 * N copies of the volume (symlinks) for each --workers value. Temp files are removed afterwards.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { Rng } from '../lib/rng';
import { configureThreads } from '../lib/runtime';
import { writeNifti, readNifti } from '../lib/preprocess/nifti';
import { preprocessNifti } from '../lib/preprocess/pipeline';
import { preprocessDataset } from '../lib/preprocess/dataset';

export interface PreprocessBenchOptions {
  volumes?: number;
  workers?: number[];
  threads?: number;
  gzip?: boolean;
  dims?: [number, number, number];
  log?: (line: string) => void;
}

export interface PreprocessBenchResult {
  dims: [number, number, number];
  fileBytes: number;
  threads: number;
  single: { readSeconds: number; nativeSeconds: number; totalSeconds: number; nativeSteps: Record<string, number> };
  driver: { workers: number; volumes: number; seconds: number; volumesPerSecond: number }[];
}

/** A chest-like phantom in HU: air, an elliptic body (40 HU), two lungs (−850), a spine (700), noise σ≈10. */
export function chestPhantom(dims: [number, number, number], seed = 0): Int16Array {
  const [ni, nj, nk] = dims;
  const out = new Int16Array(ni * nj * nk);
  const rng = new Rng(seed);
  const noise = new Float32Array(65536).map(() => (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * 20);
  let p = 0;
  for (let k = 0; k < nk; k++) {
    for (let j = 0; j < nj; j++) {
      const y = (j - nj / 2) / (nj * 0.33);
      for (let i = 0; i < ni; i++, p++) {
        const x = (i - ni / 2) / (ni * 0.42);
        let hu = -1000;
        if (x * x + y * y <= 1) {
          hu = 40;
          const lx = (Math.abs(x) - 0.45) / 0.3,
            ly = (y + 0.05) / 0.6;
          if (lx * lx + ly * ly <= 1) hu = -850;
          const sx = x / 0.08,
            sy = (y - 0.7) / 0.12;
          if (sx * sx + sy * sy <= 1) hu = 700;
        }
        out[p] = Math.round(hu + noise[(p * 7919) & 65535]);
      }
    }
  }
  return out;
}

export async function benchPreprocess(opts: PreprocessBenchOptions = {}): Promise<PreprocessBenchResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dims = opts.dims ?? [512, 512, 300];
  const n = opts.volumes ?? 4;
  const threads = configureThreads(opts.threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-bench-pre-'));
  try {
    log(`synthesising a ${dims.join('×')} int16 phantom …`);
    const data = chestPhantom(dims);
    const gz = opts.gzip ?? true;
    const file = path.join(dir, gz ? 'src.nii.gz' : 'src.nii');
    fs.writeFileSync(file, writeNifti({ data, shape: dims, datatype: 'int16', spacing: [0.7, 0.7, 1.0], gzip: gz }));
    const fileBytes = fs.statSync(file).size;
    log(`${path.basename(file)}: ${(fileBytes / 1e6).toFixed(1)} MB; libtorch threads ${threads}`);

    // One volume, stage by stage (warm page cache: read once first).
    await readNifti(file);
    const t0 = performance.now();
    const nifti = await readNifti(file);
    const t1 = performance.now();
    const r = await preprocessNifti(nifti, {}, 0, true);
    const t2 = performance.now();
    const single = {
      readSeconds: (t1 - t0) / 1000,
      nativeSeconds: (t2 - t1) / 1000,
      totalSeconds: (t2 - t0) / 1000,
      nativeSteps: r.meta.seconds.nativeSteps,
    };
    log(
      `single volume: read+gunzip+convert ${single.readSeconds.toFixed(2)} s, native ${single.nativeSeconds.toFixed(2)} s → ${r.shape.join('×')} (resampled ${r.meta.resampledSize.join('×')}); native steps ${Object.entries(
        single.nativeSteps,
      )
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(', ')} s`,
    );

    // The driver over N copies.
    const vdir = path.join(dir, 'vol');
    fs.mkdirSync(vdir);
    const rows = ['VolumeName,Findings_EN,Impressions_EN'];
    const labels = ['VolumeName,A'];
    for (let v = 0; v < n; v++) {
      const id = `train_${v + 1}_a_1`;
      fs.symlinkSync(file, path.join(vdir, `${id}.nii${gz ? '.gz' : ''}`));
      rows.push(`${id}.nii.gz,Findings.,Impressions.`);
      labels.push(`${id}.nii.gz,0`);
    }
    fs.writeFileSync(path.join(dir, 'reports.csv'), rows.join('\n') + '\n');
    fs.writeFileSync(path.join(dir, 'labels.csv'), labels.join('\n') + '\n');
    const driver: PreprocessBenchResult['driver'] = [];
    for (const workers of opts.workers ?? [1, 2]) {
      const out = path.join(dir, `out-${workers}`);
      const rep = await preprocessDataset({
        volumes: vdir,
        reports: path.join(dir, 'reports.csv'),
        labels: path.join(dir, 'labels.csv'),
        out,
        workers,
        samplesPerShard: 100,
        onWarning: () => undefined,
      });
      driver.push({
        workers,
        volumes: n,
        seconds: rep.throughput.seconds,
        volumesPerSecond: rep.throughput.volumesPerSecond,
      });
      log(
        `ctclip preprocess, --workers ${workers}: ${n} volumes in ${rep.throughput.seconds.toFixed(2)} s = ${rep.throughput.volumesPerSecond.toFixed(3)} volumes/s`,
      );
      fs.rmSync(out, { recursive: true, force: true });
    }
    return { dims, fileBytes, threads, single, driver };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      volumes: { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      plain: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  benchPreprocess({
    volumes: values.volumes ? parseInt(values.volumes, 10) : undefined,
    workers: values.workers ? values.workers.split(',').map((s) => parseInt(s, 10)) : undefined,
    threads: values.threads ? parseInt(values.threads, 10) : undefined,
    gzip: !values.plain,
  }).then(
    (r) => {
      if (values.json) process.stdout.write(JSON.stringify(r, null, 1) + '\n');
    },
    (e: unknown) => {
      process.stderr.write(`bench/preprocess: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
