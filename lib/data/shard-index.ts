/**
 * OUR shard index (`ctclip-index.json`, written next to the shards; a user's `manifest.json` is never
 * touched or trusted): the exact list of valid samples with the byte offsets and sizes of their members,
 * built by scanning tar headers only. It exists because the reference trusts `manifest.json.total_samples`,
 * which is often an estimate, and because positioned reads need offsets.
 *
 * Built by `ctclip shards index <pattern>` (or `ctclip synth`). Every sample is checked at index time:
 * grouping (duplicate extensions, repeated keys), truncation, required members (bin, json, txt, and
 * labels/cls when the dataset has classes), the JSON member (parsed: study_id, volume_shape, volume_dtype),
 * the dtype (float16 only), the `bin` payload size against shape × dtype, the label count, and one volume
 * shape for the whole dataset (batches are contiguous), the label VALUES (finite, 0 or 1) and the report size
 * (`maxReportBytes`). Bad samples and missing/corrupt shards are excluded and listed in the report, each with a
 * stable reason code (reasons.ts); the bin payloads are never read.
 *
 * Nothing is lost silently: a shard that is missing, empty or unreadable, or that stops early (cut inside a
 * member, cut at a member boundary — seen as missing end-of-archive blocks — or a corrupt header), gets a
 * shard-level entry (key '*') that counts the samples it lost: exactly, from the previous index of the same
 * shard when one is there, else estimated from the other shards' typical sample count. `totalExcluded` is the
 * number of samples excluded or lost, not the number of entries.
 *
 * `openIndex(pattern)` is what training calls: it validates the file (zod; bounded size and shapes; errors name
 * the file and the JSON path), refuses (DATA_ERROR) when the index is missing or stale (a shard's size or mtime
 * changed, or a shard of the pattern is not in the index), naming the command that (re)builds it, and — with
 * `missingShards: 'error'`, the default — when a shard of the pattern was missing, empty or unreadable at
 * index time. A pattern that selects a subset of the indexed shards is served from the same index.
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { CtclipError } from '../errors';
import { parseCsv } from '../io/csv';
import { writeFileAtomicSync } from '../io/atomic';
import { expandShardPattern } from './brace';
import { CT_RATE_CLASSES, LABEL_ID_COLUMNS } from './classes';
import type { BadSampleReason } from './reasons';
import { scanTar } from './tar-index';
import { groupMembers, type MemberRef } from './webdataset';

export const INDEX_FILE_NAME = 'ctclip-index.json';
export const INDEX_FORMAT = 'ctclip-shard-index';
export const INDEX_VERSION = 1;

/** Bytes per element of the volume dtypes we accept. Only float16 is accepted: the native bridge takes it as is. */
export const VOLUME_DTYPE_BYTES: Readonly<Record<string, number>> = { float16: 2 };

/** Default cap on a sample's report text (`txt` member), config `data.max_report_bytes`. */
export const DEFAULT_MAX_REPORT_BYTES = 1024 * 1024;
/** Cap on a sample's JSON member (it holds three small fields). */
export const MAX_JSON_BYTES = 1024 * 1024;
/** Cap on a sample's labels member (262 144 float32 classes). */
export const MAX_LABEL_BYTES = 1024 * 1024;
/** Largest `ctclip-index.json` read (≈ 1 M samples); a bigger file is refused before it is read. */
export const MAX_INDEX_FILE_BYTES = 256 * 1024 * 1024;
/** Largest volume side accepted from an index. */
export const MAX_VOLUME_DIM = 65536;
/** Largest volume (bytes) accepted from an index: 2 GiB, e.g. 1024³ float16. */
export const MAX_SAMPLE_BYTES = 2 ** 31;

/** What to do with shards of the pattern that are missing, empty or unreadable (config `data.missing_shards`). */
export type MissingShardsPolicy = 'error' | 'skip';

/** [offset, size] of a member payload in its shard. */
export type Extent = [number, number];

/** One valid sample in the index. */
export interface IndexedSample {
  /** Index into `shards`. */
  shard: number;
  /** WebDataset key (directory part kept). */
  key: string;
  /** `study_id` from the sample's JSON. */
  studyId: string;
  bin: Extent;
  json: Extent;
  txt: Extent;
  /** The `labels` (or `cls`) member; null when the dataset has no classes. */
  labels: Extent | null;
}

/** Per-shard bookkeeping; `size`/`mtimeMs` detect a stale index. */
export interface IndexedShard {
  /** Path relative to the index file's directory. */
  file: string;
  size: number;
  mtimeMs: number;
  /** Valid samples of this shard in the index. */
  samples: number;
  /** Samples of this shard excluded at index time. */
  excluded: number;
  /** True when the shard file did not exist at index time. */
  missing?: boolean;
  /** True when the shard file held no samples at all (0 bytes, or a tar without sample members). */
  empty?: boolean;
  /** True when the shard file exists but nothing in it could be read (permissions, gzip data, corrupt first header). */
  unreadable?: boolean;
  /** Why the scan of this shard stopped early (truncated tar, bad checksum, …). */
  problem?: string;
  /** Samples lost at the shard level (missing/empty/unreadable file, or the unreachable rest after a cut). */
  lost?: number;
  /** True when `lost` is an estimate (no previous index of this shard to compare with). */
  lostEstimated?: boolean;
}

/** A sample (or whole shard, key '*') excluded at index time. */
export interface ExcludedSample {
  shard: string;
  key: string;
  reason: string;
  /** Stable reason name (reasons.ts); absent in indexes written before reason codes existed. */
  code?: BadSampleReason;
  /** Samples this entry stands for: 1 for a sample (the default), the lost count for a shard-level ('*') entry. */
  samples?: number;
  /** True when `samples` is an estimate. */
  estimated?: boolean;
}

/** How many samples an exclusion entry stands for. */
export function excludedCount(x: ExcludedSample): number {
  return x.samples ?? 1;
}

/** True for a shard that contributed nothing because its file was missing, empty or unreadable at index time. */
export function isUnusableShard(s: IndexedShard): boolean {
  return !!(s.missing || s.empty || s.unreadable);
}

/** The on-disk index (JSON). */
export interface ShardIndexFile {
  format: typeof INDEX_FORMAT;
  version: number;
  createdAt: string;
  /** The pattern it was built from (as given). */
  pattern: string;
  volumeShape: [number, number, number];
  volumeDtype: string;
  /** Bytes of one `bin` payload. */
  sampleBytes: number;
  numClasses: number;
  classNames: string[] | null;
  /** Where the class names came from ('option', 'labels-csv:<file>', 'ct-rate-default', 'none'). */
  classNamesSource: string;
  totalSamples: number;
  /** Samples excluded or lost at index time (shard-level entries count the samples they lost). */
  totalExcluded: number;
  shards: IndexedShard[];
  excluded: ExcludedSample[];
  samples: IndexedSample[];
}

/** An opened index: the file contents restricted to a pattern's shards, with absolute shard paths. */
export interface ShardIndex extends ShardIndexFile {
  indexPath: string;
  /** Absolute path of each entry of `shards`. */
  shardPaths: string[];
}

export interface BuildIndexOptions {
  /** Class names in label order (wins over `labelsCsv`). */
  classNames?: string[];
  /** A labels CSV whose header (minus VolumeName/study_id) gives the class names. */
  labelsCsv?: string;
  /** Where to write the index (default `<common dir of the shards>/ctclip-index.json`). */
  indexPath?: string;
  /** Shards scanned in parallel (default 8). */
  concurrency?: number;
  /** Largest report text (`txt` member) kept, in bytes (default 1 MiB, config `data.max_report_bytes`). */
  maxReportBytes?: number;
  /**
   * Compare with the index already at the index path (default true): a shard that now stops early is
   * charged exactly the samples it had then.
   */
  usePreviousIndex?: boolean;
}

function commonDir(files: string[]): string {
  let dir = path.dirname(files[0]);
  for (const f of files) {
    const d = path.dirname(f);
    const under = (): boolean => d === dir || d.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
    while (!under()) dir = path.dirname(dir); // terminates at the root, which is above everything
  }
  return dir;
}

/** Absolute shard paths of a pattern (relative patterns resolve against the current directory). */
export function shardPathsOf(pattern: string): string[] {
  return expandShardPattern(pattern).map((p) => path.resolve(p));
}

/** Default location of our index for a pattern: the shards' common directory + `ctclip-index.json`. */
export function defaultIndexPath(pattern: string): string {
  return path.join(commonDir(shardPathsOf(pattern)), INDEX_FILE_NAME);
}

/** Class names from a labels CSV header: all columns except VolumeName/study_id, in column order. */
export function classNamesFromLabelsCsv(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read labels CSV '${file}': ${(e as Error).message}`, { cause: e });
  }
  const header = parseCsv(text, file)[0]?.fields ?? [];
  const names = header.map((s) => s.trim()).filter((c) => c !== '' && !LABEL_ID_COLUMNS.includes(c));
  if (names.length === 0)
    throw new CtclipError(
      'DATA_ERROR',
      `labels CSV '${file}' has no class columns in its header ('${header.join(',')}')`,
    );
  return names;
}

interface Candidate {
  shard: number;
  key: string;
  studyId: string;
  shape: [number, number, number];
  members: Record<string, MemberRef>;
}

async function readSmall(fh: fs.promises.FileHandle, ref: MemberRef): Promise<Buffer> {
  const buf = Buffer.alloc(ref.size);
  let done = 0;
  while (done < ref.size) {
    const { bytesRead } = await fh.read(buf, done, ref.size - done, ref.offset + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file reading '${ref.name}'`);
    done += bytesRead;
  }
  return buf;
}

/**
 * Checks the JSON member of a sample. Returns the parsed fields, or a reason string when the sample is bad.
 * Exported because the reader applies the same rules at read time.
 */
export function parseSampleJson(
  raw: Buffer | string,
): { studyId: string; shape: [number, number, number]; dtype: string } | string {
  let meta: unknown;
  try {
    meta = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (e) {
    return `bad JSON: ${(e as Error).message}`;
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta))
    return 'bad JSON: expected an object {study_id, volume_shape, volume_dtype}';
  const m = meta as Record<string, unknown>;
  if (typeof m.study_id !== 'string' || m.study_id === '')
    return `bad JSON: study_id must be a non-empty string, got ${JSON.stringify(m.study_id)}`;
  const shape = m.volume_shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    return `bad JSON: volume_shape must be three positive integers [H, W, D], got ${JSON.stringify(shape)}`;
  }
  if (typeof m.volume_dtype !== 'string')
    return `bad JSON: volume_dtype must be a string, got ${JSON.stringify(m.volume_dtype)}`;
  return { studyId: m.study_id, shape: shape as [number, number, number], dtype: m.volume_dtype };
}

/**
 * Checks the values of a labels member (little-endian float32): every one finite and exactly 0 or 1. Returns
 * null when they are, else a reason naming the first bad class index (and name) and its value. Exported because
 * the reader applies the same rule at read time.
 */
export function checkLabelValues(raw: Uint8Array, classNames?: readonly string[] | null): string | null {
  if (raw.byteLength % 4 !== 0)
    return `bad label: the labels member has ${raw.byteLength} bytes, not a whole number of float32 values`;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let bad = 0;
  let first = -1;
  let firstValue = 0;
  for (let c = 0; c < raw.byteLength / 4; c++) {
    const v = view.getFloat32(c * 4, true);
    if (v === 0 || v === 1) continue;
    if (bad++ === 0) {
      first = c;
      firstValue = v;
    }
  }
  if (bad === 0) return null;
  const name = classNames && classNames[first] !== undefined ? ` (${JSON.stringify(classNames[first])})` : '';
  const value = Number.isNaN(firstValue) ? 'NaN' : String(firstValue);
  return `bad label: class index ${first}${name} is ${value}, expected 0 or 1${bad > 1 ? ` (${bad} bad values in this sample)` : ''}`;
}

type Exclusion = { key: string; reason: string; code: BadSampleReason };

interface ShardScan {
  info: Omit<IndexedShard, 'file' | 'samples' | 'excluded'>;
  candidates: Candidate[];
  excluded: Exclusion[];
  labelSizes: number[];
  /** Distinct sample keys seen (kept or excluded), for the lost-sample count of a shard that stops early. */
  seen: number;
  /** The shard-level problem (key '*'), if any, and whether the cut fell inside a sample already counted. */
  shardProblem: { reason: string; code: BadSampleReason; cutInsideSample: boolean } | null;
}

/** Scans one shard: candidates (samples that passed the per-sample checks) and exclusions. */
async function scanShard(
  file: string,
  shardNo: number,
  numClasses: number | null,
  classNames: readonly string[] | null,
  maxReportBytes: number,
): Promise<ShardScan> {
  const excluded: Exclusion[] = [];
  const candidates: Candidate[] = [];
  const labelSizes: number[] = [];
  const shardLevel = (info: ShardScan['info'], reason: string, code: BadSampleReason): ShardScan => ({
    info,
    candidates,
    excluded,
    labelSizes,
    seen: 0,
    shardProblem: { reason, code, cutInsideSample: false },
  });
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return shardLevel({ size: 0, mtimeMs: 0, missing: true }, 'missing shard file', 'missing_shard');
    return shardLevel(
      { size: 0, mtimeMs: 0, missing: true },
      `cannot stat shard: ${(e as Error).message}`,
      'missing_shard',
    );
  }
  const info: ShardScan['info'] = { size: st.size, mtimeMs: st.mtimeMs };
  if (st.size === 0) return shardLevel({ ...info, empty: true }, 'empty shard file (0 bytes)', 'empty_shard');
  let scan;
  try {
    scan = await scanTar(file);
  } catch (e) {
    return shardLevel(
      { ...info, unreadable: true, problem: (e as Error).message },
      `cannot read shard: ${(e as Error).message}`,
      'unreadable_shard',
    );
  }
  if (scan.problem && scan.members.length === 0) {
    const code: BadSampleReason = scan.problem.kind === 'truncated' ? 'truncated_shard' : 'unreadable_shard';
    return shardLevel(
      { ...info, unreadable: true, problem: scan.problem.reason },
      `scan stopped: ${scan.problem.reason}`,
      code,
    );
  }
  let shardProblem: ShardScan['shardProblem'] = null;
  if (scan.problem) {
    // Shard-level entry: members after the problem are unreachable (their keys are unknown).
    info.problem = scan.problem.reason;
    const code: BadSampleReason =
      scan.problem.kind === 'truncated'
        ? 'truncated_shard'
        : scan.problem.kind === 'corrupt'
          ? 'corrupt_shard'
          : 'unreadable_shard';
    const lastMember = scan.members[scan.members.length - 1];
    shardProblem = { reason: `scan stopped: ${scan.problem.reason}`, code, cutInsideSample: !!lastMember?.truncated };
  }
  const { samples, problems } = groupMembers(scan.members);
  for (const p of problems) excluded.push({ key: p.key, reason: p.reason, code: p.code });
  const seen = samples.length + problems.length;
  if (seen === 0 && !scan.problem) {
    return {
      ...shardLevel(
        { ...info, empty: true },
        `empty shard: ${scan.members.length} member(s), none of them part of a sample`,
        'empty_shard',
      ),
      seen,
    };
  }
  // A scan that stopped early on corruption may have cut the last grouped sample short: its missing members
  // are reported below as 'missing member', with the scan problem appended so the cause is visible.
  const lastKey = samples.length ? samples[samples.length - 1].key : null;
  if (scan.problem && shardProblem && lastKey !== null && scan.members.length && !shardProblem.cutInsideSample) {
    // A cut at a member boundary can still split the last sample: then that sample is counted on its own.
    const last = samples[samples.length - 1];
    const required = ['bin', 'json', 'txt'];
    if (numClasses !== null && numClasses > 0) required.push('labels');
    if (required.some((e) => !(e === 'labels' ? (last.members.labels ?? last.members.cls) : last.members[e])))
      shardProblem.cutInsideSample = true;
  }
  const fh = await fs.promises.open(file, 'r');
  try {
    for (const s of samples) {
      const cut = scan.problem && s.key === lastKey;
      const suffix = cut ? ` (${scan.problem!.reason})` : '';
      const m = s.members;
      const labelsRef = m.labels ?? m.cls;
      const missing = ['bin', 'json', 'txt'].filter((e) => !m[e]);
      if (numClasses !== null && numClasses > 0 && !labelsRef) missing.push('labels');
      if (missing.length) {
        excluded.push({
          key: s.key,
          reason: `missing member${missing.length > 1 ? 's' : ''} ${missing.map((e) => "'." + e + "'").join(', ')}${suffix}`,
          code: cut ? 'truncated_member' : 'missing_member',
        });
        continue;
      }
      if (m.json.size > MAX_JSON_BYTES) {
        excluded.push({
          key: s.key,
          reason: `bad JSON: implausible size ${m.json.size} bytes (limit ${MAX_JSON_BYTES})`,
          code: 'bad_json',
        });
        continue;
      }
      if (m.txt.size > maxReportBytes) {
        excluded.push({
          key: s.key,
          reason: `report text '${m.txt.name}' is ${m.txt.size} bytes, above the limit of ${maxReportBytes} (data.max_report_bytes)`,
          code: 'oversize_report',
        });
        continue;
      }
      if (labelsRef && labelsRef.size > MAX_LABEL_BYTES) {
        excluded.push({
          key: s.key,
          reason: `bad label: '${labelsRef.name}' has an implausible size of ${labelsRef.size} bytes (limit ${MAX_LABEL_BYTES})`,
          code: 'bad_label',
        });
        continue;
      }
      let parsed;
      let labelProblem: string | null = null;
      try {
        const [jsonBuf, labelBuf] = await readSmallMembers(fh, m.json, labelsRef ?? null);
        parsed = parseSampleJson(jsonBuf);
        if (labelBuf) labelProblem = checkLabelValues(labelBuf, classNames);
      } catch (e) {
        excluded.push({
          key: s.key,
          reason: `cannot read JSON/labels members: ${(e as Error).message}`,
          code: 'io_error',
        });
        continue;
      }
      if (typeof parsed === 'string') {
        excluded.push({ key: s.key, reason: parsed, code: 'bad_json' });
        continue;
      }
      const itemBytes = VOLUME_DTYPE_BYTES[parsed.dtype];
      if (!itemBytes) {
        excluded.push({
          key: s.key,
          reason: `unknown volume_dtype '${parsed.dtype}' (supported: ${Object.keys(VOLUME_DTYPE_BYTES).join(', ')})`,
          code: 'bad_dtype',
        });
        continue;
      }
      const expected = parsed.shape[0] * parsed.shape[1] * parsed.shape[2] * itemBytes;
      if (m.bin.size !== expected) {
        excluded.push({
          key: s.key,
          reason: `wrong payload size: '.bin' has ${m.bin.size} bytes, volume_shape ${JSON.stringify(parsed.shape)} × ${parsed.dtype} needs ${expected}`,
          code: 'size_mismatch',
        });
        continue;
      }
      if (labelProblem) {
        excluded.push({ key: s.key, reason: labelProblem, code: 'bad_label' });
        continue;
      }
      if (labelsRef) labelSizes.push(labelsRef.size);
      candidates.push({ shard: shardNo, key: s.key, studyId: parsed.studyId, shape: parsed.shape, members: m });
    }
  } finally {
    await fh.close();
  }
  return { info, candidates, excluded, labelSizes, seen, shardProblem };
}

/** The JSON member and (when given) the labels member: one read of their span when they are adjacent. */
async function readSmallMembers(
  fh: fs.promises.FileHandle,
  json: MemberRef,
  labels: MemberRef | null,
): Promise<[Buffer, Buffer | null]> {
  if (!labels) return [await readSmall(fh, json), null];
  const lo = Math.min(json.offset, labels.offset);
  const hi = Math.max(json.offset + json.size, labels.offset + labels.size);
  if (hi - lo > 64 * 1024) return [await readSmall(fh, json), await readSmall(fh, labels)];
  const span = await readSmall(fh, { name: `${json.name}…${labels.name}`, offset: lo, size: hi - lo });
  return [
    span.subarray(json.offset - lo, json.offset - lo + json.size),
    span.subarray(labels.offset - lo, labels.offset - lo + labels.size),
  ];
}

function mode<T>(values: T[], keyOf: (v: T) => string): T | undefined {
  const counts = new Map<string, { v: T; n: number }>();
  let best: { v: T; n: number } | undefined;
  for (const v of values) {
    const k = keyOf(v);
    const e = counts.get(k) ?? { v, n: 0 };
    e.n++;
    counts.set(k, e);
    if (!best || e.n > best.n) best = e;
  }
  return best?.v;
}

/** Per-shard sample counts (kept + excluded + lost) of a usable previous index at `indexPath`, by shard file. */
function previousShardCounts(indexPath: string): Map<string, number> {
  const counts = new Map<string, number>();
  let file: ShardIndexFile;
  try {
    file = readIndexFile(indexPath, '');
  } catch {
    return counts; // no (usable) previous index: estimates instead
  }
  for (const s of file.shards) {
    // Only a shard that was read completely then tells how many samples it holds.
    if (isUnusableShard(s) || s.problem) continue;
    counts.set(s.file, s.samples + s.excluded);
  }
  return counts;
}

/** Scans the shards of `pattern` and builds the index in memory (see module comment). */
export async function buildIndex(
  pattern: string,
  opts: BuildIndexOptions = {},
): Promise<{ index: ShardIndexFile; indexPath: string }> {
  const files = shardPathsOf(pattern);
  const indexPath = path.resolve(opts.indexPath ?? path.join(commonDir(files), INDEX_FILE_NAME));
  if (path.basename(indexPath) === 'manifest.json') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `refusing to write our index over '${indexPath}': manifest.json belongs to the reference tooling`,
    );
  }
  const maxReportBytes = opts.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES;
  if (!Number.isSafeInteger(maxReportBytes) || maxReportBytes < 1) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `maxReportBytes (data.max_report_bytes) must be a positive integer, got ${maxReportBytes}`,
    );
  }
  let classNames: string[] | null = null;
  let classNamesSource = 'none';
  if (opts.classNames && opts.classNames.length) {
    classNames = [...opts.classNames];
    classNamesSource = 'option';
  } else if (opts.labelsCsv) {
    classNames = classNamesFromLabelsCsv(opts.labelsCsv);
    classNamesSource = `labels-csv:${path.resolve(opts.labelsCsv)}`;
  }
  const numClassesOpt = classNames ? classNames.length : null;

  const results: ShardScan[] = new Array(files.length);
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, files.length) }, async () => {
      while (next < files.length) {
        const i = next++;
        results[i] = await scanShard(files[i], i, numClassesOpt, classNames, maxReportBytes);
      }
    }),
  );

  const indexDir = path.dirname(indexPath);
  const relName = (i: number): string => path.relative(indexDir, files[i]).split(path.sep).join('/');

  // Samples lost at the shard level: exact from the previous index of the same shard, else estimated from the
  // typical sample count of the shards read completely.
  const previous = opts.usePreviousIndex === false ? new Map<string, number>() : previousShardCounts(indexPath);
  const typical = mode(
    results.filter((r) => !r.shardProblem).map((r) => r.seen),
    String,
  );
  const lostOf = (i: number): { lost: number; estimated: boolean } => {
    const r = results[i];
    const unusable = isUnusableShard({ file: '', samples: 0, excluded: 0, ...r.info });
    const before = previous.get(relName(i));
    if (before !== undefined) return { lost: Math.max(0, before - r.seen), estimated: false };
    // Nothing to compare with: a whole shard lost counts the typical shard (at least 1); a shard cut inside a
    // sample (already counted on its own) counts the typical rest; any other early stop at least one sample.
    const rest = typical !== undefined ? typical - r.seen : 0;
    if (unusable) return { lost: Math.max(1, rest), estimated: true };
    return { lost: Math.max(r.shardProblem?.cutInsideSample ? 0 : 1, rest), estimated: true };
  };

  const excluded: ExcludedSample[] = [];
  const shardExcluded = new Array<number>(files.length).fill(0);
  const shardLost = new Array<{ lost: number; estimated: boolean } | null>(files.length).fill(null);
  for (let i = 0; i < files.length; i++) {
    const r = results[i];
    if (r.shardProblem) {
      const l = lostOf(i);
      shardLost[i] = l;
      excluded.push({
        shard: relName(i),
        key: '*',
        reason: r.shardProblem.reason,
        code: r.shardProblem.code,
        samples: l.lost,
        ...(l.estimated ? { estimated: true } : {}),
      });
    }
    for (const x of r.excluded) {
      excluded.push({ shard: relName(i), key: x.key, reason: x.reason, code: x.code });
      shardExcluded[i]++;
    }
  }

  let candidates = results.flatMap((r) => r.candidates);
  // Class count: given, else the most common labels size (wrong ones are excluded below).
  let numClasses = numClassesOpt ?? 0;
  if (numClassesOpt === null) {
    const sizes = results.flatMap((r) => r.labelSizes);
    const common = mode(sizes, String);
    numClasses = common !== undefined && common % 4 === 0 ? common / 4 : 0;
    if (numClasses === 18) {
      classNames = [...CT_RATE_CLASSES];
      classNamesSource = 'ct-rate-default';
    }
  }
  const shape = mode(
    candidates.map((c) => c.shape),
    (s) => s.join('x'),
  ) ?? [0, 0, 0];
  const kept: IndexedSample[] = [];
  for (const c of candidates) {
    const labelsRef = c.members.labels ?? c.members.cls ?? null;
    let reason: string | null = null;
    let code: BadSampleReason = 'shape_mismatch';
    if (c.shape.join('x') !== shape.join('x')) {
      reason = `volume_shape ${JSON.stringify(c.shape)} differs from the dataset's ${JSON.stringify(shape)} (batches need one shape)`;
    } else if (numClasses > 0 && (!labelsRef || labelsRef.size !== numClasses * 4)) {
      code = labelsRef ? 'bad_label' : 'missing_member';
      reason = labelsRef
        ? `wrong label count: '${labelsRef.name}' has ${labelsRef.size} bytes (${labelsRef.size / 4} float32), expected ${numClasses} classes (${numClasses * 4} bytes)`
        : `missing member '.labels'`;
    }
    if (reason) {
      excluded.push({ shard: relName(c.shard), key: c.key, reason, code });
      shardExcluded[c.shard]++;
      continue;
    }
    const ext = (r: MemberRef): Extent => [r.offset, r.size];
    kept.push({
      shard: c.shard,
      key: c.key,
      studyId: c.studyId,
      bin: ext(c.members.bin),
      json: ext(c.members.json),
      txt: ext(c.members.txt),
      labels: numClasses > 0 && labelsRef ? ext(labelsRef) : null,
    });
  }
  candidates = [];
  const perShard = new Array<number>(files.length).fill(0);
  for (const s of kept) perShard[s.shard]++;
  const shards: IndexedShard[] = files.map((_, i) => {
    const l = shardLost[i];
    return {
      file: relName(i),
      ...results[i].info,
      samples: perShard[i],
      excluded: shardExcluded[i],
      ...(l ? { lost: l.lost, ...(l.estimated ? { lostEstimated: true } : {}) } : {}),
    };
  });
  const index: ShardIndexFile = {
    format: INDEX_FORMAT,
    version: INDEX_VERSION,
    createdAt: new Date().toISOString(),
    pattern,
    volumeShape: shape,
    volumeDtype: 'float16',
    sampleBytes: shape[0] * shape[1] * shape[2] * 2,
    numClasses,
    classNames,
    classNamesSource,
    totalSamples: kept.length,
    totalExcluded: excluded.reduce((n, x) => n + excludedCount(x), 0),
    shards,
    excluded,
    samples: kept,
  };
  return { index, indexPath };
}

/**
 * Writes an index atomically (temp file + rename). A failed write (a full disk) removes the temporary file and
 * throws IO_ERROR naming the index file; the previous index, if any, stays as it was.
 */
export function writeIndex(index: ShardIndexFile, indexPath: string): void {
  if (path.basename(indexPath) === 'manifest.json') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `refusing to write our index over '${indexPath}': manifest.json belongs to the reference tooling`,
    );
  }
  // One sample per line keeps the file diffable and readable without a huge single line.
  const { samples, excluded, shards, ...head } = index;
  const text =
    '{\n' +
    Object.entries(head)
      .map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},\n`)
      .join('') +
    `  "shards": [\n${shards.map((s) => '    ' + JSON.stringify(s)).join(',\n')}\n  ],\n` +
    `  "excluded": [\n${excluded.map((s) => '    ' + JSON.stringify(s)).join(',\n')}\n  ],\n` +
    `  "samples": [\n${samples.map((s) => '    ' + JSON.stringify(s)).join(',\n')}\n  ]\n}\n`;
  writeFileAtomicSync(indexPath, text);
}

/** Builds and writes the index; the exclusions are in `index.excluded`. */
export async function indexShards(
  pattern: string,
  opts: BuildIndexOptions = {},
): Promise<{ index: ShardIndexFile; indexPath: string }> {
  const r = await buildIndex(pattern, opts);
  writeIndex(r.index, r.indexPath);
  return r;
}

function buildCommand(pattern: string): string {
  return `ctclip shards index '${pattern}'`;
}

export interface OpenIndexOptions {
  /** Index file to use (default: `defaultIndexPath(pattern)`). */
  indexPath?: string;
  /** Check shard sizes/mtimes against the index (default true). */
  verify?: boolean;
  /**
   * Shards of the pattern that were missing, empty or unreadable at index time (config `data.missing_shards`):
   * 'error' (default) refuses with DATA_ERROR naming them; 'skip' serves the rest, their lost samples counted in
   * `totalExcluded` (and so against the loaders' error budget).
   */
  missingShards?: MissingShardsPolicy;
}

/**
 * Throws DATA_ERROR naming the shards of `index` that were missing, empty or unreadable at index time, unless
 * `policy` is 'skip'. `shards index` and `openIndex` apply it.
 */
export function checkMissingShards(
  index: Pick<ShardIndexFile, 'shards' | 'excluded'>,
  policy: MissingShardsPolicy,
  pattern: string,
  indexPath: string,
): void {
  if (policy !== 'error' && policy !== 'skip')
    throw new CtclipError(
      'CONFIG_ERROR',
      `data.missing_shards must be 'error' or 'skip', got ${JSON.stringify(policy)}`,
    );
  if (policy === 'skip') return;
  const bad = index.shards.filter(isUnusableShard);
  if (bad.length === 0) return;
  const why = (s: IndexedShard): string =>
    index.excluded.find((x) => x.shard === s.file && x.key === '*')?.reason ??
    (s.missing ? 'missing shard file' : s.empty ? 'empty shard' : 'unreadable shard');
  const list = bad
    .slice(0, 10)
    .map((s) => `'${s.file}' (${why(s)})`)
    .join(', ');
  throw new CtclipError(
    'DATA_ERROR',
    `${bad.length} of ${index.shards.length} shard(s) of '${pattern}' ${bad.length === 1 ? 'is' : 'are'} missing, empty or unreadable (index '${indexPath}'): ${list}` +
      `${bad.length > 10 ? `, … ${bad.length - 10} more` : ''}. Restore them and re-index with ${buildCommand(pattern)}, or set data.missing_shards: skip ` +
      `(shards index: --missing-shards skip) to go on without them; their samples then count against data.max_bad_samples`,
  );
}

/**
 * Opens our index for the shards of `pattern` (training's entry point). Throws DATA_ERROR, naming the command
 * that builds the index, when it is missing, invalid, of another format/version, or stale, or (policy 'error')
 * when a shard of the pattern was missing, empty or unreadable; serves a subset pattern from an index of more
 * shards. Samples keep the pattern's shard order.
 */
export function openIndex(pattern: string, opts: OpenIndexOptions = {}): ShardIndex {
  const files = shardPathsOf(pattern);
  const indexPath = path.resolve(opts.indexPath ?? path.join(commonDir(files), INDEX_FILE_NAME));
  return openResolved(indexPath, files, buildCommand(pattern), pattern, opts);
}

/**
 * Opens an index file for all the shards it lists (benchmarks and tools that have no pattern at hand).
 * Same checks as `openIndex`.
 */
export function openIndexFile(indexPath: string, opts: Omit<OpenIndexOptions, 'indexPath'> = {}): ShardIndex {
  const abs = path.resolve(indexPath);
  const file = readIndexFile(abs, `ctclip shards index '<pattern>' --out '${abs}'`);
  const files = file.shards.map((s) => path.resolve(path.dirname(abs), s.file));
  return openResolved(abs, files, buildCommand(file.pattern), file.pattern, opts, file);
}

// ---- validation of ctclip-index.json (it is read back from disk: never trusted blindly) ----------------------

const safeNonNeg = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const extentSchema = z.tuple([safeNonNeg, safeNonNeg]);
const nameSchema = z.string().min(1).max(4096);
const reasonCodeSchema = z.string().regex(/^[a-z_]{1,64}$/);

const indexedSampleSchema = z.object({
  shard: safeNonNeg,
  key: nameSchema,
  studyId: nameSchema,
  bin: extentSchema,
  json: extentSchema,
  txt: extentSchema,
  labels: extentSchema.nullable(),
});

const indexedShardSchema = z.object({
  file: nameSchema,
  size: safeNonNeg,
  mtimeMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER),
  samples: safeNonNeg,
  excluded: safeNonNeg,
  missing: z.boolean().optional(),
  empty: z.boolean().optional(),
  unreadable: z.boolean().optional(),
  problem: z.string().max(65536).optional(),
  lost: safeNonNeg.optional(),
  lostEstimated: z.boolean().optional(),
});

const excludedSchema = z.object({
  shard: z.string().max(4096),
  key: z.string().max(4096),
  reason: z.string().max(65536),
  code: reasonCodeSchema.optional(),
  samples: safeNonNeg.optional(),
  estimated: z.boolean().optional(),
});

const volumeDim = z.number().int().min(0).max(MAX_VOLUME_DIM);

const indexFileSchema = z
  .object({
    format: z.literal(INDEX_FORMAT),
    version: z.literal(INDEX_VERSION),
    createdAt: z.string().max(64),
    pattern: z.string().max(65536),
    volumeShape: z.tuple([volumeDim, volumeDim, volumeDim]),
    volumeDtype: z.string().refine((d) => VOLUME_DTYPE_BYTES[d] !== undefined, {
      message: `expected one of: ${Object.keys(VOLUME_DTYPE_BYTES).join(', ')}`,
    }),
    sampleBytes: z.number().int().min(0).max(MAX_SAMPLE_BYTES),
    numClasses: z
      .number()
      .int()
      .min(0)
      .max(MAX_LABEL_BYTES / 4),
    classNames: z.array(z.string().max(4096)).nullable(),
    classNamesSource: z.string().max(65536),
    totalSamples: safeNonNeg,
    totalExcluded: safeNonNeg,
    shards: z.array(indexedShardSchema),
    excluded: z.array(excludedSchema),
    // Checked one by one below: a fast check first, zod (for its message) only for a sample that fails it.
    samples: z.array(z.unknown()),
  })
  .superRefine((f, ctx) => {
    const [h, w, d] = f.volumeShape;
    const bytes = h * w * d * (VOLUME_DTYPE_BYTES[f.volumeDtype] ?? 0);
    if (bytes !== f.sampleBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['sampleBytes'],
        message: `expected volumeShape ${h}×${w}×${d} × ${VOLUME_DTYPE_BYTES[f.volumeDtype] ?? '?'} bytes (${f.volumeDtype}) = ${bytes}`,
      });
    }
    if (f.classNames !== null && f.classNames.length !== f.numClasses) {
      ctx.addIssue({
        code: 'custom',
        path: ['classNames'],
        message: `expected ${f.numClasses} names (numClasses), got ${f.classNames.length}`,
      });
    }
  });

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isExtent = (v: unknown): v is Extent => Array.isArray(v) && v.length === 2 && isNat(v[0]) && isNat(v[1]);
const isName = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= 4096;

/**
 * `indexedSampleSchema` without zod's per-object cost (zod alone took ≈ 0.4 s for 50 000 samples): accepts
 * exactly what the schema accepts, and returns the sample with only the schema's keys.
 */
function fastSample(v: unknown): IndexedSample | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (
    !isNat(o.shard) ||
    !isName(o.key) ||
    !isName(o.studyId) ||
    !isExtent(o.bin) ||
    !isExtent(o.json) ||
    !isExtent(o.txt)
  )
    return null;
  if (o.labels !== null && !isExtent(o.labels)) return null;
  return {
    shard: o.shard,
    key: o.key,
    studyId: o.studyId,
    bin: o.bin,
    json: o.json,
    txt: o.txt,
    labels: o.labels as Extent | null,
  };
}

/** `a.b[3].c` from a zod issue path. */
function jsonPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out || '(top level)';
}

/** The value at `p` in `root` (for error messages), shortened. */
function valueAt(root: unknown, p: readonly PropertyKey[]): string {
  let v: unknown = root;
  for (const k of p) {
    if (v === null || typeof v !== 'object') return 'nothing';
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function readIndexFile(indexPath: string, cmd: string): ShardIndexFile {
  let size: number;
  try {
    size = fs.statSync(indexPath).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CtclipError('IO_ERROR', `cannot read shard index '${indexPath}': ${(e as Error).message}`, {
        cause: e,
      });
    const manifest = path.join(path.dirname(indexPath), 'manifest.json');
    let note = '';
    if (fs.existsSync(manifest)) {
      let total = '?';
      try {
        if (fs.statSync(manifest).size <= MAX_JSON_BYTES)
          total = String(
            (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { total_samples?: unknown }).total_samples ?? '?',
          );
      } catch {
        /* unreadable manifest: still not trusted */
      }
      note = ` A reference manifest.json is there (total_samples=${total}), but it is not trusted: its counts are often estimates and it has no member offsets.`;
    }
    throw new CtclipError('DATA_ERROR', `no ctclip shard index at '${indexPath}'.${note} Build it with: ${cmd}`);
  }
  if (size > MAX_INDEX_FILE_BYTES) {
    throw new CtclipError(
      'DATA_ERROR',
      `shard index '${indexPath}' is ${size} bytes, above the limit of ${MAX_INDEX_FILE_BYTES}; it is not a ctclip index (or rebuild it with: ${cmd})`,
    );
  }
  let text: string;
  try {
    text = fs.readFileSync(indexPath, 'utf8');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read shard index '${indexPath}': ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CtclipError(
      'DATA_ERROR',
      `shard index '${indexPath}' is not valid JSON (${(e as Error).message}); rebuild it with: ${cmd}`,
    );
  }
  const head = raw as { format?: unknown; version?: unknown } | null;
  if (
    !head ||
    typeof head !== 'object' ||
    Array.isArray(head) ||
    head.format !== INDEX_FORMAT ||
    head.version !== INDEX_VERSION
  ) {
    throw new CtclipError(
      'DATA_ERROR',
      `'${indexPath}' is not a ctclip shard index of version ${INDEX_VERSION}; rebuild it with: ${cmd}`,
    );
  }
  const invalid = (
    issues: ReadonlyArray<{ path: readonly PropertyKey[]; message: string }>,
    more: number,
  ): CtclipError => {
    const first = issues[0];
    const extra = issues.length - 1 + more;
    return new CtclipError(
      'DATA_ERROR',
      `shard index '${indexPath}' is invalid at ${jsonPath(first.path)}: ${first.message} (found ${valueAt(raw, first.path)})` +
        `${extra > 0 ? ` (and ${extra} more problem${extra > 1 ? 's' : ''})` : ''}; rebuild it with: ${cmd}`,
    );
  };
  const parsed = indexFileSchema.safeParse(raw);
  if (!parsed.success) throw invalid(parsed.error.issues, 0);
  const samples: IndexedSample[] = new Array(parsed.data.samples.length);
  for (let i = 0; i < samples.length; i++) {
    const ok = fastSample(parsed.data.samples[i]);
    if (ok) {
      samples[i] = ok;
      continue;
    }
    const r = indexedSampleSchema.safeParse(parsed.data.samples[i]);
    if (r.success) throw new Error(`internal: the fast check of samples[${i}] disagrees with the schema`);
    const badLater = parsed.data.samples.slice(i + 1).filter((x) => !fastSample(x)).length;
    throw invalid(
      r.error.issues.map((x) => ({ path: ['samples', i, ...x.path], message: x.message })),
      badLater,
    );
  }
  return { ...(parsed.data as Omit<ShardIndexFile, 'samples'>), samples };
}

/** Why a sample of the index cannot be right (shard not listed, extents outside its shard, sizes off), or null. */
function sampleRefProblem(s: IndexedSample, file: ShardIndexFile): string | null {
  const shard = file.shards[s.shard];
  if (!shard) return `names shard #${s.shard}, but the index lists ${file.shards.length} shard(s)`;
  const extents: Array<[string, Extent | null]> = [
    ['bin', s.bin],
    ['json', s.json],
    ['txt', s.txt],
    ['labels', s.labels],
  ];
  for (const [name, e] of extents) {
    if (e && e[0] + e[1] > shard.size)
      return `'${name}' extent [${e[0]}, ${e[1]}] runs past the end of '${shard.file}' (${shard.size} bytes)`;
  }
  if (s.bin[1] !== file.sampleBytes) return `'bin' is ${s.bin[1]} bytes, the index's volumes are ${file.sampleBytes}`;
  if (file.numClasses > 0 && (!s.labels || s.labels[1] !== file.numClasses * 4))
    return `labels extent is ${s.labels ? s.labels[1] : 0} bytes, expected ${file.numClasses * 4}`;
  return null;
}

function openResolved(
  indexPath: string,
  files: string[],
  cmd: string,
  pattern: string,
  opts: OpenIndexOptions,
  preloaded?: ShardIndexFile,
): ShardIndex {
  const file = preloaded ?? readIndexFile(indexPath, cmd);
  const indexDir = path.dirname(indexPath);
  const byPath = new Map<string, number>();
  file.shards.forEach((s, i) => byPath.set(path.resolve(indexDir, s.file), i));
  const verify = opts.verify ?? true;
  const remap = new Map<number, number>();
  const shards: IndexedShard[] = [];
  for (const f of files) {
    const i = byPath.get(f);
    if (i === undefined)
      throw new CtclipError(
        'DATA_ERROR',
        `shard index '${indexPath}' does not cover '${f}' (it was built for '${file.pattern}'); rebuild it with: ${cmd}`,
      );
    const s = file.shards[i];
    if (verify) {
      let st: fs.Stats | null = null;
      try {
        st = fs.statSync(f);
      } catch {
        st = null;
      }
      let stale: string | null = null;
      if (st === null && !s.missing) stale = 'it no longer exists';
      else if (st !== null && s.missing) stale = 'it was missing when indexed and exists now';
      else if (st !== null && (st.size !== s.size || st.mtimeMs !== s.mtimeMs)) {
        stale = `size ${s.size} → ${st.size}, mtime ${new Date(s.mtimeMs).toISOString()} → ${new Date(st.mtimeMs).toISOString()}`;
      }
      if (stale)
        throw new CtclipError(
          'DATA_ERROR',
          `shard index '${indexPath}' is stale: '${f}' changed since indexing (${stale}); rebuild it with: ${cmd}`,
        );
    }
    remap.set(i, shards.length);
    shards.push(s);
  }
  const keptNames = new Set(shards.map((s) => s.file));
  const excluded = file.excluded.filter((x) => keptNames.has(x.shard));
  checkMissingShards({ shards, excluded }, opts.missingShards ?? 'error', pattern, indexPath);
  const samples: IndexedSample[] = [];
  // Keep the pattern's shard order, then tar order within a shard. A sample that cannot be right (names a shard
  // the index does not list, extents outside its shard) is excluded and counted, never dropped silently.
  const byShard = new Map<number, IndexedSample[]>();
  for (const s of file.samples) {
    const problem = sampleRefProblem(s, file);
    if (problem) {
      const shardName = file.shards[s.shard]?.file ?? `#${s.shard}`;
      // Samples of shards outside a subset pattern are not this pattern's business; broken references are.
      if (file.shards[s.shard] && !keptNames.has(shardName)) continue;
      excluded.push({ shard: shardName, key: s.key, reason: `bad index entry: ${problem}`, code: 'bad_index_ref' });
      continue;
    }
    const list = byShard.get(s.shard);
    if (list) list.push(s);
    else byShard.set(s.shard, [s]);
  }
  for (const f of files) {
    const old = byPath.get(f)!;
    for (const s of byShard.get(old) ?? []) samples.push({ ...s, shard: remap.get(old)! });
  }
  const totalExcluded = excluded.reduce((n, x) => n + excludedCount(x), 0);
  if (samples.length === 0) {
    throw new CtclipError(
      'DATA_ERROR',
      `shard index '${indexPath}' has no valid samples for '${pattern}' (${totalExcluded} excluded; first: ${excluded[0] ? `${excluded[0].shard} ${excluded[0].key}: ${excluded[0].reason}` : 'none'})`,
    );
  }
  return {
    ...file,
    shards,
    samples,
    excluded,
    totalSamples: samples.length,
    totalExcluded,
    indexPath,
    shardPaths: files,
  };
}
