/**
 * `ctclip preprocess`: CT-RATE NIfTI volumes + reports/labels/metadata CSVs → canonical WebDataset shards, our
 * index, and `preprocess_report.json` (docs/preprocess.md).
 *
 * Plan: the volumes found under `volumes` (recursively, `*.nii.gz` / `*.nii`; study id = file name without the
 * extension; `split` keeps names starting with `<split>_`) that have both a reports row and a labels row, sorted
 * by study id; volume n goes to shard ⌊n / samplesPerShard⌋ as key `{shard:06d}_{n mod samplesPerShard:06d}`.
 * Volumes without a report or labels row are listed in the report (`skipped`), never silently dropped.
 *
 * Resume: the plan (inputs with size/mtime, and every option that changes the bytes) is saved as
 * `preprocess_plan.json`. On a re-run with the same plan, a shard is complete — and skipped — when its final
 * file exists (it only appears by an atomic rename after fsync, so it was fully written), its tar headers scan
 * cleanly, and its per-shard record `.preprocess/shard-NNNNNN.json` exists. Any other shard is redone. A
 * different plan is refused unless `force` (which deletes the old shards first).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CtclipError } from '../errors';
import { LABEL_ID_COLUMNS } from '../data/classes';
import { indexShards, type ShardIndexFile } from '../data/shard-index';
import { scanTar } from '../data/tar-index';
import { TarWriter } from '../data/tar-writer';
import { pandasStr, readCsvTable, type CsvTable } from '../io/csv';
import type { Reorient } from './orientation';
import {
  DEFAULT_MAX_RESAMPLED_VOXELS,
  DEFAULT_MAX_VOXELS,
  DEFAULT_SHAPE,
  DEFAULT_SPACING,
  DEFAULT_WINDOW,
  preprocessNifti,
  readVolume,
  type RescaleMode,
  type VolumeMeta,
} from './pipeline';
import type { Vec3 } from './resample';
import { writeFileAtomicSync } from '../io/atomic';

export const PLAN_FILE = 'preprocess_plan.json';
export const REPORT_FILE = 'preprocess_report.json';
const STATE_DIR = '.preprocess';

export interface PreprocessDatasetOptions {
  volumes: string;
  reports: string;
  labels: string;
  metadata?: string;
  out: string;
  split?: string;
  samplesPerShard?: number;
  /** Volumes in flight at once (default `defaultWorkers()`: 1 on ≤ 3 CPUs, else ⌊CPUs/2⌋ up to 4). */
  workers?: number;
  rescale?: RescaleMode;
  spacing?: Vec3;
  shape?: Vec3;
  window?: [number, number];
  reorient?: Reorient;
  /** Largest stored grid ni·nj·nk per volume (default 2^29); a larger volume fails (listed in the report). */
  maxVoxels?: number;
  /** Largest resampled grid per volume (default 2^29); a larger one fails (listed in the report). */
  maxResampledVoxels?: number;
  /** Redo everything even when a previous plan differs (old shards are deleted). */
  force?: boolean;
  onProgress?: (p: Progress) => void;
  onWarning?: (msg: string) => void;
}

export interface Progress {
  done: number;
  total: number;
  /** Volumes processed in this run (skipped-complete shards excluded), elapsed seconds, volumes/s, ETA s. */
  processed: number;
  toProcess: number;
  seconds: number;
  rate: number;
  eta: number;
}

export interface FoundVolume {
  studyId: string;
  file: string;
}

interface PlannedVolume extends FoundVolume {
  n: number;
  shard: number;
  key: string;
  size: number;
  mtimeMs: number;
}

export interface VolumeRecord {
  studyId: string;
  file: string;
  shard: number;
  key: string;
  status: 'ok' | 'failed';
  error?: string;
  meta?: Omit<VolumeMeta, 'file'>;
}

export interface SkippedVolume {
  studyId: string;
  file: string | null;
  reason: string;
}

export interface PreprocessReport {
  format: 'ctclip-preprocess-report';
  version: 1;
  options: Record<string, unknown>;
  classNames: string[];
  counts: {
    found: number;
    planned: number;
    written: number;
    failed: number;
    skipped: number;
    withWarnings: number;
    shards: number;
    shardsReused: number;
  };
  throughput: { volumesProcessed: number; seconds: number; volumesPerSecond: number };
  volumes: VolumeRecord[];
  skipped: SkippedVolume[];
  /** Report rows (of the split) with no volume file under --volumes: count and the first 20 study ids. */
  rowsWithoutVolume: { count: number; first: string[] };
  indexPath: string;
  pattern: string;
}

/**
 * Volumes in flight by default. Each volume's native op already uses every libtorch thread; overlapping a second
 * volume (its gunzip and conversion) only pays off with spare cores: on the 2-core development VM --workers 2
 * measured 13 % slower than 1 (docs/preprocess.md).
 */
export function defaultWorkers(): number {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return cpus <= 3 ? 1 : Math.min(4, Math.floor(cpus / 2));
}

/** Study id of a volume file name (CT-RATE VolumeName without `.nii.gz` / `.nii`). */
export function studyIdOf(name: string): string {
  return path.basename(name).replace(/\.nii(\.gz)?$/i, '');
}

/** `*.nii.gz` / `*.nii` files under `dir`, recursively, sorted by study id then path. */
export function findVolumes(dir: string): FoundVolume[] {
  const out: FoundVolume[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot list volumes directory '${d}': ${(e as Error).message}`, { cause: e });
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if ((e.isFile() || e.isSymbolicLink()) && /\.nii(\.gz)?$/i.test(e.name))
        out.push({ studyId: studyIdOf(e.name), file: p });
    }
  };
  walk(dir);
  return out.sort((a, b) => (a.studyId < b.studyId ? -1 : a.studyId > b.studyId ? 1 : a.file < b.file ? -1 : 1));
}

/** First number of an XYSpacing cell like "[0.75, 0.75]" (or a bare number). */
export function parseXYSpacing(cell: string): number {
  const m = /^\s*\[?\s*([-+0-9.eE]+)/.exec(cell);
  return m ? Number(m[1]) : NaN;
}

function byStudy(table: CsvTable): Map<string, CsvTable['rows'][number]> {
  const col = table.column('VolumeName');
  const m = new Map<string, CsvTable['rows'][number]>();
  for (const r of table.rows) {
    const id = studyIdOf((r.fields[col] ?? '').trim());
    if (id && !m.has(id)) m.set(id, r);
  }
  return m;
}

function shardName(k: number): string {
  return `shard-${String(k).padStart(6, '0')}.tar`;
}

function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomicSync(file, JSON.stringify(value, null, 1) + '\n');
}

/** The stored JSON member, formatted as Python's json.dumps writes it (the reference's bytes). */
export function sampleJson(studyId: string, shape: readonly number[]): string {
  return `{"study_id": ${JSON.stringify(studyId)}, "volume_shape": [${shape.join(', ')}], "volume_dtype": "float16"}`;
}

/** Runs the whole preprocessing; returns the report (also written to `<out>/preprocess_report.json`). */
export async function preprocessDataset(o: PreprocessDatasetOptions): Promise<PreprocessReport> {
  const sps = o.samplesPerShard ?? 100;
  const workers = Math.max(1, o.workers ?? defaultWorkers());
  const spacing = o.spacing ?? DEFAULT_SPACING;
  const shape = o.shape ?? DEFAULT_SHAPE;
  const window = o.window ?? DEFAULT_WINDOW;
  const rescale = o.rescale ?? 'auto';
  const reorient = o.reorient ?? 'none';
  const maxVoxels = o.maxVoxels ?? DEFAULT_MAX_VOXELS;
  const maxResampledVoxels = o.maxResampledVoxels ?? DEFAULT_MAX_RESAMPLED_VOXELS;
  const warn = o.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));

  if (!fs.existsSync(o.volumes) || !fs.statSync(o.volumes).isDirectory()) {
    throw new CtclipError('ARGUMENT_ERROR', `--volumes '${o.volumes}' is not a directory`);
  }
  const reports = readCsvTable(o.reports, ['VolumeName', 'Findings_EN', 'Impressions_EN']);
  const labels = readCsvTable(o.labels, ['VolumeName']);
  const metadata = o.metadata
    ? readCsvTable(o.metadata, ['VolumeName', 'RescaleSlope', 'RescaleIntercept', 'XYSpacing', 'ZSpacing'])
    : null;
  const classCols = labels.header
    .map((h, k) => ({ h, k }))
    .filter(({ h }) => h !== '' && !LABEL_ID_COLUMNS.includes(h));
  if (classCols.length === 0)
    throw new CtclipError('DATA_ERROR', `${o.labels}: no class columns in the header (${labels.header.join(', ')})`);
  const classNames = classCols.map((c) => c.h);
  const reportRows = byStudy(reports);
  const labelRows = byStudy(labels);
  const metaRows = metadata ? byStudy(metadata) : new Map();

  // Inventory.
  let found = findVolumes(o.volumes);
  if (o.split) found = found.filter((v) => v.studyId.startsWith(`${o.split}_`));
  const skipped: SkippedVolume[] = [];
  const planned: PlannedVolume[] = [];
  const seen = new Set<string>();
  for (const v of found) {
    if (seen.has(v.studyId)) {
      skipped.push({
        studyId: v.studyId,
        file: v.file,
        reason: 'duplicate study id (another file with the same name was taken)',
      });
      continue;
    }
    seen.add(v.studyId);
    const missing = [!reportRows.has(v.studyId) && 'report', !labelRows.has(v.studyId) && 'labels'].filter(Boolean);
    if (missing.length) {
      skipped.push({ studyId: v.studyId, file: v.file, reason: `no ${missing.join(' and no ')} row` });
      continue;
    }
    const labelRow = labelRows.get(v.studyId)!;
    const bad = classCols.find(
      ({ k }) =>
        !Number.isFinite(Number((labelRow.fields[k] ?? '').trim())) || (labelRow.fields[k] ?? '').trim() === '',
    );
    if (bad) {
      skipped.push({
        studyId: v.studyId,
        file: v.file,
        reason: `labels row (${o.labels} line ${labelRow.line}): '${bad.h}' is not a number ('${labelRow.fields[bad.k] ?? ''}')`,
      });
      continue;
    }
    const st = fs.statSync(v.file);
    const n = planned.length;
    const shard = Math.floor(n / sps);
    planned.push({
      ...v,
      n,
      shard,
      key: `${String(shard).padStart(6, '0')}_${String(n % sps).padStart(6, '0')}`,
      size: st.size,
      mtimeMs: st.mtimeMs,
    });
  }
  // CSV rows without a volume file are counted (a partial download is normal; the first few are named).
  const rowsWithoutVolume = [...reportRows.keys()].filter(
    (id) => !seen.has(id) && (!o.split || id.startsWith(`${o.split}_`)),
  );
  if (planned.length === 0) {
    throw new CtclipError(
      'DATA_ERROR',
      `no volume to preprocess under '${o.volumes}'${o.split ? ` for split '${o.split}'` : ''}: ${found.length} file(s) found, ${skipped.length} skipped`,
    );
  }
  const numShards = Math.ceil(planned.length / sps);

  // Plan / resume.
  fs.mkdirSync(path.join(o.out, STATE_DIR), { recursive: true });
  // The grid limits decide which volumes fail, so they belong to the plan — when not the defaults (plans written
  // before the limits existed stay valid).
  const options = {
    spacing,
    shape,
    window,
    rescale,
    reorient,
    samplesPerShard: sps,
    split: o.split ?? null,
    ...(maxVoxels !== DEFAULT_MAX_VOXELS ? { maxVoxels } : {}),
    ...(maxResampledVoxels !== DEFAULT_MAX_RESAMPLED_VOXELS ? { maxResampledVoxels } : {}),
  };
  const plan = {
    format: 'ctclip-preprocess-plan',
    version: 1,
    options,
    classNames,
    csv: {
      reports: path.resolve(o.reports),
      labels: path.resolve(o.labels),
      metadata: o.metadata ? path.resolve(o.metadata) : null,
    },
    volumes: planned.map((v) => ({
      studyId: v.studyId,
      file: path.resolve(v.file),
      size: v.size,
      mtimeMs: v.mtimeMs,
      key: v.key,
    })),
  };
  const planPath = path.join(o.out, PLAN_FILE);
  if (fs.existsSync(planPath)) {
    const old = JSON.parse(fs.readFileSync(planPath, 'utf8')) as typeof plan;
    if (JSON.stringify(old) !== JSON.stringify(plan)) {
      if (!o.force) {
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `'${o.out}' holds shards from a different plan (other volumes, CSVs or options; see ${planPath}); use a new --out, or --force to redo everything`,
        );
      }
    }
    if (o.force) {
      for (const f of fs.readdirSync(o.out))
        if (/^shard-\d{6}\.tar(\.tmp-\d+)?$/.test(f)) fs.rmSync(path.join(o.out, f));
      fs.rmSync(path.join(o.out, STATE_DIR), { recursive: true, force: true });
      fs.mkdirSync(path.join(o.out, STATE_DIR), { recursive: true });
    }
  }
  writeJsonAtomic(planPath, plan);

  const recordPath = (k: number): string => path.join(o.out, STATE_DIR, `shard-${String(k).padStart(6, '0')}.json`);
  const complete = new Set<number>();
  for (let k = 0; k < numShards; k++) {
    const file = path.join(o.out, shardName(k));
    if (!fs.existsSync(file) || !fs.existsSync(recordPath(k))) continue;
    try {
      const scan = await scanTar(file);
      const expected = planned.filter((v) => v.shard === k).length;
      if (!scan.problem && scan.members.length <= 4 * expected) complete.add(k);
    } catch {
      /* redo */
    }
  }
  const records: VolumeRecord[][] = Array.from({ length: numShards }, () => []);
  for (const k of complete)
    records[k] = (JSON.parse(fs.readFileSync(recordPath(k), 'utf8')) as { volumes: VolumeRecord[] }).volumes;

  // Work: every volume of an incomplete shard, in plan order, `workers` in flight, written in order.
  const todo = planned.filter((v) => !complete.has(v.shard));
  const t0 = performance.now();
  let processed = 0;
  const progress = (): void => {
    if (!o.onProgress) return;
    const seconds = (performance.now() - t0) / 1000;
    const rate = seconds > 0 ? processed / seconds : 0;
    const doneBefore = planned.length - todo.length;
    o.onProgress({
      done: doneBefore + processed,
      total: planned.length,
      processed,
      toProcess: todo.length,
      seconds,
      rate,
      eta: rate > 0 ? (todo.length - processed) / rate : Infinity,
    });
  };
  progress();

  type Result = { ok: true; volume: Buffer; shape: Vec3; meta: VolumeMeta } | { ok: false; error: string };
  const results = new Map<number, Promise<Result>>();
  let next = 0;
  const startOne = (i: number): void => {
    const v = todo[i];
    const m = metaRows.get(v.studyId);
    results.set(
      i,
      (async (): Promise<Result> => {
        let slope = 1;
        let intercept = 0;
        let sourceSpacing: { xy: number; z: number } | undefined;
        const pre: string[] = [];
        if (metadata && m) {
          slope = Number(metadata.get(m, 'RescaleSlope'));
          intercept = Number(metadata.get(m, 'RescaleIntercept'));
          if (!Number.isFinite(slope) || !Number.isFinite(intercept) || metadata.get(m, 'RescaleSlope').trim() === '') {
            pre.push(
              `metadata: RescaleSlope/RescaleIntercept not numeric ('${metadata.get(m, 'RescaleSlope')}', '${metadata.get(m, 'RescaleIntercept')}'); using 1/0`,
            );
            slope = 1;
            intercept = 0;
          }
          const xy = parseXYSpacing(metadata.get(m, 'XYSpacing'));
          const z = Number(metadata.get(m, 'ZSpacing'));
          if (xy > 0 && z > 0) sourceSpacing = { xy, z };
          else
            pre.push(
              `metadata: XYSpacing/ZSpacing not usable ('${metadata.get(m, 'XYSpacing')}', '${metadata.get(m, 'ZSpacing')}'); using the NIfTI pixdim`,
            );
        } else if (metadata)
          pre.push('metadata: no row in the metadata CSV; spacing from the NIfTI pixdim, slope/intercept 1/0');
        if (!metadata && rescale === 'always') pre.push('rescale always without --metadata: slope/intercept are 1/0');
        try {
          const tr = performance.now();
          const popts = {
            spacing,
            shape,
            window,
            rescale,
            slope,
            intercept,
            sourceSpacing,
            reorient,
            maxVoxels,
            maxResampledVoxels,
          };
          // The header is checked (grid limits, pixdim unless the metadata CSV gives the spacing) before the voxels are read.
          const nifti = await readVolume(v.file, popts);
          const r = await preprocessNifti(nifti, popts, (performance.now() - tr) / 1000, true);
          r.meta.warnings.unshift(...pre);
          return { ok: true, volume: r.volume, shape: r.shape, meta: r.meta };
        } catch (e) {
          return { ok: false, error: e instanceof Error ? e.message : String(e) };
        }
      })(),
    );
  };
  const fill = (written: number): void => {
    while (next < todo.length && next < written + workers) startOne(next++);
  };

  let i = 0;
  fill(0);
  while (i < todo.length) {
    const k = todo[i].shard;
    const shardPath = path.join(o.out, shardName(k));
    const tw = new TarWriter(shardPath);
    const recs: VolumeRecord[] = [];
    try {
      while (i < todo.length && todo[i].shard === k) {
        const v = todo[i];
        const r = await results.get(i)!;
        results.delete(i);
        i++;
        fill(i);
        processed++;
        if (!r.ok) {
          warn(`${v.file}: ${r.error} (volume skipped)`);
          recs.push({ studyId: v.studyId, file: v.file, shard: k, key: v.key, status: 'failed', error: r.error });
          progress();
          continue;
        }
        const labelRow = labelRows.get(v.studyId)!;
        const lab = new Float32Array(classCols.map(({ k: c }) => Number(labelRow.fields[c].trim())));
        const rep = reportRows.get(v.studyId)!;
        const txt = `${pandasStr(reports.get(rep, 'Findings_EN'))}\n${pandasStr(reports.get(rep, 'Impressions_EN'))}`;
        tw.add(`${v.key}.bin`, r.volume);
        tw.add(`${v.key}.json`, Buffer.from(sampleJson(v.studyId, r.shape), 'utf8'));
        tw.add(`${v.key}.labels`, new Uint8Array(lab.buffer, lab.byteOffset, lab.byteLength));
        tw.add(`${v.key}.txt`, Buffer.from(txt, 'utf8'));
        const { file: _f, ...meta } = r.meta;
        void _f;
        for (const w of meta.warnings) warn(`${v.studyId}: ${w}`);
        recs.push({ studyId: v.studyId, file: v.file, shard: k, key: v.key, status: 'ok', meta });
        progress();
      }
    } catch (e) {
      tw.abort();
      throw e;
    }
    // Record first, then the shard's atomic rename: a shard file under its final name always has a record.
    writeJsonAtomic(recordPath(k), { shard: k, volumes: recs });
    tw.close();
    records[k] = recs;
  }
  const seconds = (performance.now() - t0) / 1000;

  // Index (class names from the labels CSV header).
  const pattern = path.join(
    path.resolve(o.out),
    `shard-{${'0'.repeat(6)}..${String(numShards - 1).padStart(6, '0')}}.tar`,
  );
  const { indexPath } = await indexShards(pattern, { classNames });

  const volumes = records.flat();
  const failed = volumes.filter((v) => v.status === 'failed').length;
  const report: PreprocessReport = {
    format: 'ctclip-preprocess-report',
    version: 1,
    options: { ...options, volumes: path.resolve(o.volumes), ...plan.csv, workers },
    classNames,
    counts: {
      found: found.length,
      planned: planned.length,
      written: volumes.length - failed,
      failed,
      skipped: skipped.length,
      withWarnings: volumes.filter((v) => (v.meta?.warnings.length ?? 0) > 0).length,
      shards: numShards,
      shardsReused: complete.size,
    },
    throughput: { volumesProcessed: processed, seconds, volumesPerSecond: seconds > 0 ? processed / seconds : 0 },
    volumes,
    skipped,
    rowsWithoutVolume: { count: rowsWithoutVolume.length, first: rowsWithoutVolume.slice(0, 20) },
    indexPath,
    pattern,
  };
  writeJsonAtomic(path.join(o.out, REPORT_FILE), report);
  return report;
}

export type { ShardIndexFile };
