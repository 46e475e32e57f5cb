/**
 * OUR shard index (`ctclip-index.json`, written next to the shards; a user's `manifest.json` is never
 * touched or trusted): the exact list of valid samples with the byte offsets and sizes of their members,
 * built by scanning tar headers only. It exists because the reference trusts `manifest.json.total_samples`,
 * which is often an estimate (pipeline-spec §1.6), and because positioned reads need offsets.
 *
 * Built by `ctclip shards index <pattern>` (or `ctclip synth`). Every sample is checked at index time:
 * grouping (duplicate extensions, repeated keys), truncation, required members (bin, json, txt, and
 * labels/cls when the dataset has classes), the JSON member (parsed: study_id, volume_shape, volume_dtype),
 * the dtype (float16 only), the `bin` payload size against shape × dtype, the label count, and one volume
 * shape for the whole dataset (batches are contiguous). Bad samples and missing/corrupt shards are excluded
 * and listed in the report; the bin payloads are never read.
 *
 * `openIndex(pattern)` is what training calls: it refuses (DATA_ERROR) when the index is missing or stale
 * (a shard's size or mtime changed, or a shard of the pattern is not in the index), naming the command that
 * (re)builds it. A pattern that selects a subset of the indexed shards is served from the same index.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { parseCsv } from '../io/csv';
import { expandShardPattern } from './brace';
import { CT_RATE_CLASSES, LABEL_ID_COLUMNS } from './classes';
import { scanTar } from './tar-index';
import { groupMembers, type MemberRef } from './webdataset';

export const INDEX_FILE_NAME = 'ctclip-index.json';
export const INDEX_FORMAT = 'ctclip-shard-index';
export const INDEX_VERSION = 1;

/** Bytes per element of the volume dtypes we accept. Only float16 is accepted: the native bridge takes it as is. */
export const VOLUME_DTYPE_BYTES: Readonly<Record<string, number>> = { float16: 2 };

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
  /** Why the scan of this shard stopped early (truncated tar, bad checksum, …). */
  problem?: string;
}

/** A sample (or whole shard, key '*') excluded at index time. */
export interface ExcludedSample {
  shard: string;
  key: string;
  reason: string;
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
  if (names.length === 0) throw new CtclipError('DATA_ERROR', `labels CSV '${file}' has no class columns in its header ('${header.join(',')}')`);
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
export function parseSampleJson(raw: Buffer | string): { studyId: string; shape: [number, number, number]; dtype: string } | string {
  let meta: unknown;
  try {
    meta = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (e) {
    return `bad JSON: ${(e as Error).message}`;
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) return 'bad JSON: expected an object {study_id, volume_shape, volume_dtype}';
  const m = meta as Record<string, unknown>;
  if (typeof m.study_id !== 'string' || m.study_id === '') return `bad JSON: study_id must be a non-empty string, got ${JSON.stringify(m.study_id)}`;
  const shape = m.volume_shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    return `bad JSON: volume_shape must be three positive integers [H, W, D], got ${JSON.stringify(shape)}`;
  }
  if (typeof m.volume_dtype !== 'string') return `bad JSON: volume_dtype must be a string, got ${JSON.stringify(m.volume_dtype)}`;
  return { studyId: m.study_id, shape: shape as [number, number, number], dtype: m.volume_dtype };
}

/** Scans one shard: candidates (samples that passed the per-sample checks) and exclusions. */
async function scanShard(
  file: string,
  shardNo: number,
  numClasses: number | null,
): Promise<{ info: Omit<IndexedShard, 'file' | 'samples' | 'excluded'>; candidates: Candidate[]; excluded: Array<{ key: string; reason: string }>; labelSizes: number[] }> {
  const excluded: Array<{ key: string; reason: string }> = [];
  const candidates: Candidate[] = [];
  const labelSizes: number[] = [];
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    excluded.push({ key: '*', reason: code === 'ENOENT' ? 'missing shard file' : `cannot stat shard: ${(e as Error).message}` });
    return { info: { size: 0, mtimeMs: 0, missing: true }, candidates, excluded, labelSizes };
  }
  const info: Omit<IndexedShard, 'file' | 'samples' | 'excluded'> = { size: st.size, mtimeMs: st.mtimeMs };
  let scan;
  try {
    scan = await scanTar(file);
  } catch (e) {
    excluded.push({ key: '*', reason: `cannot read shard: ${(e as Error).message}` });
    info.problem = (e as Error).message;
    return { info, candidates, excluded, labelSizes };
  }
  if (scan.problem) {
    // Shard-level entry: members after the problem are unreachable (their keys are unknown).
    info.problem = scan.problem.reason;
    excluded.push({ key: '*', reason: `scan stopped: ${scan.problem.reason}` });
  }
  const { samples, problems } = groupMembers(scan.members);
  for (const p of problems) excluded.push(p);
  // A scan that stopped early on corruption may have cut the last grouped sample short: its missing members
  // are reported below as 'missing member', with the scan problem appended so the cause is visible.
  const lastKey = samples.length ? samples[samples.length - 1].key : null;
  const fh = await fs.promises.open(file, 'r');
  try {
    for (const s of samples) {
      const suffix = scan.problem && s.key === lastKey ? ` (${scan.problem.reason})` : '';
      const m = s.members;
      const labelsRef = m.labels ?? m.cls;
      const missing = ['bin', 'json', 'txt'].filter((e) => !m[e]);
      if (numClasses !== null && numClasses > 0 && !labelsRef) missing.push('labels');
      if (missing.length) {
        excluded.push({ key: s.key, reason: `missing member${missing.length > 1 ? 's' : ''} ${missing.map((e) => "'." + e + "'").join(', ')}${suffix}` });
        continue;
      }
      if (m.json.size > 1024 * 1024) {
        excluded.push({ key: s.key, reason: `bad JSON: implausible size ${m.json.size} bytes` });
        continue;
      }
      let parsed;
      try {
        parsed = parseSampleJson(await readSmall(fh, m.json));
      } catch (e) {
        excluded.push({ key: s.key, reason: `cannot read JSON member: ${(e as Error).message}` });
        continue;
      }
      if (typeof parsed === 'string') {
        excluded.push({ key: s.key, reason: parsed });
        continue;
      }
      const itemBytes = VOLUME_DTYPE_BYTES[parsed.dtype];
      if (!itemBytes) {
        excluded.push({ key: s.key, reason: `unknown volume_dtype '${parsed.dtype}' (supported: ${Object.keys(VOLUME_DTYPE_BYTES).join(', ')})` });
        continue;
      }
      const expected = parsed.shape[0] * parsed.shape[1] * parsed.shape[2] * itemBytes;
      if (m.bin.size !== expected) {
        excluded.push({
          key: s.key,
          reason: `wrong payload size: '.bin' has ${m.bin.size} bytes, volume_shape ${JSON.stringify(parsed.shape)} × ${parsed.dtype} needs ${expected}`,
        });
        continue;
      }
      if (labelsRef) labelSizes.push(labelsRef.size);
      candidates.push({ shard: shardNo, key: s.key, studyId: parsed.studyId, shape: parsed.shape, members: m });
    }
  } finally {
    await fh.close();
  }
  return { info, candidates, excluded, labelSizes };
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

/** Scans the shards of `pattern` and builds the index in memory (see module comment). */
export async function buildIndex(pattern: string, opts: BuildIndexOptions = {}): Promise<{ index: ShardIndexFile; indexPath: string }> {
  const files = shardPathsOf(pattern);
  const indexPath = path.resolve(opts.indexPath ?? path.join(commonDir(files), INDEX_FILE_NAME));
  if (path.basename(indexPath) === 'manifest.json') {
    throw new CtclipError('ARGUMENT_ERROR', `refusing to write our index over '${indexPath}': manifest.json belongs to the reference tooling`);
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

  const results: Awaited<ReturnType<typeof scanShard>>[] = new Array(files.length);
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, files.length) }, async () => {
      while (next < files.length) {
        const i = next++;
        results[i] = await scanShard(files[i], i, numClassesOpt);
      }
    }),
  );

  const indexDir = path.dirname(indexPath);
  const relName = (i: number): string => path.relative(indexDir, files[i]).split(path.sep).join('/');
  const excluded: ExcludedSample[] = [];
  const shardExcluded = new Array<number>(files.length).fill(0);
  for (let i = 0; i < files.length; i++) {
    for (const x of results[i].excluded) {
      excluded.push({ shard: relName(i), key: x.key, reason: x.reason });
      if (x.key !== '*') shardExcluded[i]++;
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
  const shape = mode(candidates.map((c) => c.shape), (s) => s.join('x')) ?? [0, 0, 0];
  const kept: IndexedSample[] = [];
  for (const c of candidates) {
    const labelsRef = c.members.labels ?? c.members.cls ?? null;
    let reason: string | null = null;
    if (c.shape.join('x') !== shape.join('x')) {
      reason = `volume_shape ${JSON.stringify(c.shape)} differs from the dataset's ${JSON.stringify(shape)} (batches need one shape)`;
    } else if (numClasses > 0 && (!labelsRef || labelsRef.size !== numClasses * 4)) {
      reason = labelsRef
        ? `wrong label count: '${labelsRef.name}' has ${labelsRef.size} bytes (${labelsRef.size / 4} float32), expected ${numClasses} classes (${numClasses * 4} bytes)`
        : `missing member '.labels'`;
    }
    if (reason) {
      excluded.push({ shard: relName(c.shard), key: c.key, reason });
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
  const shards: IndexedShard[] = files.map((_, i) => ({ file: relName(i), ...results[i].info, samples: perShard[i], excluded: shardExcluded[i] }));
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
    totalExcluded: excluded.length,
    shards,
    excluded,
    samples: kept,
  };
  return { index, indexPath };
}

/** Writes an index atomically (temp file + rename). */
export function writeIndex(index: ShardIndexFile, indexPath: string): void {
  if (path.basename(indexPath) === 'manifest.json') {
    throw new CtclipError('ARGUMENT_ERROR', `refusing to write our index over '${indexPath}': manifest.json belongs to the reference tooling`);
  }
  const tmp = `${indexPath}.tmp-${process.pid}`;
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
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, indexPath);
}

/** Builds and writes the index; the exclusions are in `index.excluded`. */
export async function indexShards(pattern: string, opts: BuildIndexOptions = {}): Promise<{ index: ShardIndexFile; indexPath: string }> {
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
}

/**
 * Opens our index for the shards of `pattern` (training's entry point). Throws DATA_ERROR, naming the command
 * that builds the index, when it is missing, of another format/version, or stale; serves a subset pattern
 * from an index of more shards. Samples keep the pattern's shard order.
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

function readIndexFile(indexPath: string, cmd: string): ShardIndexFile {
  let text: string;
  try {
    text = fs.readFileSync(indexPath, 'utf8');
  } catch {
    const manifest = path.join(path.dirname(indexPath), 'manifest.json');
    let note = '';
    if (fs.existsSync(manifest)) {
      let total = '?';
      try {
        total = String((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { total_samples?: unknown }).total_samples ?? '?');
      } catch {
        /* unreadable manifest: still not trusted */
      }
      note = ` A reference manifest.json is there (total_samples=${total}), but it is not trusted: its counts are often estimates and it has no member offsets.`;
    }
    throw new CtclipError('DATA_ERROR', `no ctclip shard index at '${indexPath}'.${note} Build it with: ${cmd}`);
  }
  let file: ShardIndexFile;
  try {
    file = JSON.parse(text) as ShardIndexFile;
  } catch (e) {
    throw new CtclipError('DATA_ERROR', `shard index '${indexPath}' is not valid JSON (${(e as Error).message}); rebuild it with: ${cmd}`);
  }
  if (file.format !== INDEX_FORMAT || file.version !== INDEX_VERSION) {
    throw new CtclipError('DATA_ERROR', `'${indexPath}' is not a ctclip shard index of version ${INDEX_VERSION}; rebuild it with: ${cmd}`);
  }
  return file;
}

function openResolved(indexPath: string, files: string[], cmd: string, pattern: string, opts: OpenIndexOptions, preloaded?: ShardIndexFile): ShardIndex {
  const file = preloaded ?? readIndexFile(indexPath, cmd);
  const indexDir = path.dirname(indexPath);
  const byPath = new Map<string, number>();
  file.shards.forEach((s, i) => byPath.set(path.resolve(indexDir, s.file), i));
  const verify = opts.verify ?? true;
  const remap = new Map<number, number>();
  const shards: IndexedShard[] = [];
  for (const f of files) {
    const i = byPath.get(f);
    if (i === undefined) throw new CtclipError('DATA_ERROR', `shard index '${indexPath}' does not cover '${f}' (it was built for '${file.pattern}'); rebuild it with: ${cmd}`);
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
      if (stale) throw new CtclipError('DATA_ERROR', `shard index '${indexPath}' is stale: '${f}' changed since indexing (${stale}); rebuild it with: ${cmd}`);
    }
    remap.set(i, shards.length);
    shards.push(s);
  }
  const samples: IndexedSample[] = [];
  // Keep the pattern's shard order, then tar order within a shard.
  const byShard = new Map<number, IndexedSample[]>();
  for (const s of file.samples) {
    const list = byShard.get(s.shard);
    if (list) list.push(s);
    else byShard.set(s.shard, [s]);
  }
  for (const f of files) {
    const old = byPath.get(f)!;
    for (const s of byShard.get(old) ?? []) samples.push({ ...s, shard: remap.get(old)! });
  }
  const keptNames = new Set(shards.map((s) => s.file));
  const excluded = file.excluded.filter((x) => keptNames.has(x.shard));
  if (samples.length === 0) {
    throw new CtclipError('DATA_ERROR', `shard index '${indexPath}' has no valid samples for '${pattern}' (${excluded.length} excluded; first: ${excluded[0] ? `${excluded[0].shard} ${excluded[0].key}: ${excluded[0].reason}` : 'none'})`);
  }
  return {
    ...file,
    shards,
    samples,
    excluded,
    totalSamples: samples.length,
    totalExcluded: excluded.length,
    indexPath,
    shardPaths: files,
  };
}
