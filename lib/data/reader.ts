/**
 * Positioned reads of indexed samples straight into caller-provided Buffers (no intermediate copies of the
 * volume, no per-voxel JS). Large `bin` payloads are split into chunks so several libuv threadpool threads
 * copy one sample in parallel; a FIFO semaphore bounds the reads in flight (`readers`), and because it is
 * FIFO, earlier samples finish first. The small members (json, labels, txt) are adjacent in canonical shards,
 * so they are fetched with one read of their span when it is small.
 *
 * Every sample is checked as it is read, because shards can change after indexing and an index can be older
 * than the checks: member sizes against the index and the caps (JSON 1 MiB, report `maxReportBytes`, checked
 * BEFORE anything is read), the JSON, the label values (finite, 0 or 1), and the volume for NaN/±Inf (float16
 * exponent bits all ones; each chunk is scanned as soon as it arrives, ≈ 16 ms per 480×480×240 volume on the
 * JS thread while the other chunks are still being read). A failure is a SampleReadError with a stable `code`
 * (reasons.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import {
  checkLabelValues,
  DEFAULT_MAX_REPORT_BYTES,
  MAX_JSON_BYTES,
  parseSampleJson,
  type Extent,
  type ShardIndex,
} from './shard-index';
import { float16HasNonFinite, float16NonFiniteSummary } from './float16';
import type { BadSampleReason } from './reasons';
import { cleanReport } from './report';

/** A sample that could not be read; `reason` says why (I/O error, size mismatch, bad JSON, …), `code` names it. */
export class SampleReadError extends Error {
  constructor(
    readonly shard: string,
    readonly key: string,
    readonly reason: string,
    readonly code: BadSampleReason = 'unexpected',
  ) {
    super(`shard '${shard}' sample '${key}': ${reason}`);
    this.name = 'SampleReadError';
  }
}

/** A read that hit the end of the file (the shard was cut or changed since indexing). */
class EndOfFileError extends Error {}

/** FIFO counting semaphore. */
export class Semaphore {
  private waiting: Array<() => void> = [];
  private active = 0;
  constructor(readonly limit: number) {}
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes directly to the next waiter
    else this.active--;
  }
}

export interface ReaderOptions {
  /** Reads in flight at once (default: UV_THREADPOOL_SIZE or 4, the threads that serve fs reads). */
  readers?: number;
  /** Chunk size for volume reads (default 8 MiB). */
  chunkBytes?: number;
  /** Shard file handles kept open (default 64; least recently used idle ones are closed). */
  maxOpenFiles?: number;
  /** Largest report text (`txt` member) read, in bytes (config data.max_report_bytes; default 1 MiB). */
  maxReportBytes?: number;
}

/** Decoded small members of a sample. */
export interface SampleMeta {
  studyId: string;
  /** Cleaned report (see report.ts). */
  report: string;
}

interface OpenFile {
  fh: Promise<fs.promises.FileHandle>;
  refs: number;
  lastUse: number;
}

const SMALL_SPAN_LIMIT = 1 << 20;

if (os.endianness() !== 'LE') {
  // Shard payloads are little-endian and are handed to native code as-is.
  throw new Error('ctclip data loading requires a little-endian host');
}

export function defaultReaders(): number {
  const n = parseInt(process.env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isInteger(n) && n > 0 ? n : 4;
}

export class SampleReader {
  readonly readers: number;
  readonly chunkBytes: number;
  readonly maxReportBytes: number;
  private readonly maxOpen: number;
  private readonly sem: Semaphore;
  private readonly files = new Map<number, OpenFile>();
  private useClock = 0;
  /** Payload bytes read so far. */
  bytesRead = 0;

  constructor(
    readonly index: ShardIndex,
    opts: ReaderOptions = {},
  ) {
    this.readers = Math.max(1, Math.floor(opts.readers ?? defaultReaders()));
    // A multiple of 8, so every chunk of a volume starts on a float16 (and 32-bit scan) boundary.
    this.chunkBytes = Math.max(64 * 1024, Math.floor((opts.chunkBytes ?? 8 * 1024 * 1024) / 8) * 8);
    this.maxReportBytes = opts.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES;
    if (!Number.isSafeInteger(this.maxReportBytes) || this.maxReportBytes < 1) {
      throw new RangeError(`data.max_report_bytes must be a positive integer, got ${opts.maxReportBytes}`);
    }
    this.maxOpen = Math.max(1, opts.maxOpenFiles ?? 64);
    this.sem = new Semaphore(this.readers);
  }

  private acquireFile(shard: number): OpenFile {
    let f = this.files.get(shard);
    if (!f) {
      const entry: OpenFile = { fh: fs.promises.open(this.index.shardPaths[shard], 'r'), refs: 0, lastUse: 0 };
      // A failed open is reported to the reader of the sample; forget it so a later call retries.
      entry.fh.catch(() => {
        if (this.files.get(shard) === entry) this.files.delete(shard);
      });
      this.files.set(shard, entry);
      f = entry;
      this.evictIdle();
    }
    f.refs++;
    f.lastUse = ++this.useClock;
    return f;
  }

  private releaseFile(f: OpenFile): void {
    f.refs--;
  }

  private evictIdle(): void {
    if (this.files.size <= this.maxOpen) return;
    const idle = [...this.files.entries()].filter(([, f]) => f.refs === 0).sort((a, b) => a[1].lastUse - b[1].lastUse);
    for (const [shard, f] of idle) {
      if (this.files.size <= this.maxOpen) break;
      this.files.delete(shard);
      f.fh.then((h) => h.close()).catch(() => undefined);
    }
  }

  /** Reads `length` bytes at `position` into dst[dstOffset…], through the semaphore; throws on EOF. */
  private async readExact(
    fh: fs.promises.FileHandle,
    dst: Buffer,
    dstOffset: number,
    length: number,
    position: number,
  ): Promise<void> {
    await this.sem.acquire();
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(dst, dstOffset + done, length - done, position + done);
        if (bytesRead === 0)
          throw new EndOfFileError(
            `unexpected end of file at offset ${position + done} (needed ${length} bytes at ${position}; shard truncated since indexing?)`,
          );
        done += bytesRead;
      }
      this.bytesRead += length;
    } finally {
      this.sem.release();
    }
  }

  /**
   * Reads sample `i` of the index: the volume into `volumes[volOffset … + sampleBytes)`, the labels (if the
   * dataset has classes) into `labels[labelOffset … + C)`, and returns study id and cleaned report.
   * Throws SampleReadError naming shard and key.
   */
  async readSample(
    i: number,
    volumes: Buffer,
    volOffset: number,
    labels: Float32Array | null,
    labelOffset: number,
  ): Promise<SampleMeta> {
    const s = this.index.samples[i];
    const shardName = this.index.shards[s.shard].file;
    const fail = (reason: string, code: BadSampleReason): never => {
      throw new SampleReadError(shardName, s.key, reason, code);
    };
    if (s.bin[1] !== this.index.sampleBytes)
      fail(
        `'.bin' is ${s.bin[1]} bytes in the index, the dataset's volumes are ${this.index.sampleBytes}`,
        'size_mismatch',
      );
    const C = this.index.numClasses;
    if (C > 0 && (!s.labels || s.labels[1] !== C * 4))
      fail(
        `bad label: labels member is ${s.labels ? s.labels[1] : 0} bytes, expected ${C * 4} (${C} float32)`,
        'bad_label',
      );
    // Size caps before anything is read: a huge member never gets a buffer.
    if (s.json[1] > MAX_JSON_BYTES)
      fail(`bad JSON: implausible size ${s.json[1]} bytes (limit ${MAX_JSON_BYTES})`, 'bad_json');
    if (s.txt[1] > this.maxReportBytes)
      fail(
        `report text is ${s.txt[1]} bytes, above the limit of ${this.maxReportBytes} (data.max_report_bytes)`,
        'oversize_report',
      );
    const f = this.acquireFile(s.shard);
    try {
      let fh: fs.promises.FileHandle;
      try {
        fh = await f.fh;
      } catch (e) {
        return fail(`cannot open shard: ${(e as Error).message}`, 'io_error');
      }
      // Small members: one read of their span when they sit together (canonical order bin, json, labels, txt).
      const small: Array<[string, Extent]> = [
        ['json', s.json],
        ['txt', s.txt],
      ];
      if (C > 0 && s.labels) small.push(['labels', s.labels]);
      const lo = Math.min(...small.map(([, e]) => e[0]));
      const hi = Math.max(...small.map(([, e]) => e[0] + e[1]));
      const parts = new Map<string, Buffer>();
      const smallRead = (async () => {
        if (hi - lo <= SMALL_SPAN_LIMIT) {
          const span = Buffer.allocUnsafe(hi - lo);
          await this.readExact(fh, span, 0, hi - lo, lo);
          for (const [name, [off, size]] of small) parts.set(name, span.subarray(off - lo, off - lo + size));
        } else {
          await Promise.all(
            small.map(async ([name, [off, size]]) => {
              const b = Buffer.allocUnsafe(size);
              await this.readExact(fh, b, 0, size, off);
              parts.set(name, b);
            }),
          );
        }
      })();
      const [binOff, binSize] = s.bin;
      const chunks: Promise<void>[] = [];
      let nonFinite = false;
      for (let done = 0; done < binSize; done += this.chunkBytes) {
        const len = Math.min(this.chunkBytes, binSize - done);
        const at = volOffset + done;
        // Scan each chunk as soon as it is in (cheap: see float16HasNonFinite), while later chunks are read.
        chunks.push(
          this.readExact(fh, volumes, at, len, binOff + done).then(() => {
            if (!nonFinite && float16HasNonFinite(volumes, at, at + len)) nonFinite = true;
          }),
        );
      }
      const settled = await Promise.allSettled([smallRead, ...chunks]);
      const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (bad) {
        const eof = bad.reason instanceof EndOfFileError;
        fail(`I/O error: ${(bad.reason as Error).message}`, eof ? 'truncated_member' : 'io_error');
      }

      const meta = parseSampleJson(parts.get('json')!);
      if (typeof meta === 'string') return fail(meta, 'bad_json');
      const shape = this.index.volumeShape;
      if (meta.dtype !== this.index.volumeDtype)
        fail(`volume_dtype '${meta.dtype}' differs from the index's '${this.index.volumeDtype}'`, 'bad_dtype');
      if (meta.shape.join(',') !== shape.join(','))
        fail(
          `volume_shape ${JSON.stringify(meta.shape)} differs from the index's ${JSON.stringify(shape)} (size mismatch)`,
          'shape_mismatch',
        );
      if (C > 0) {
        const lb = parts.get('labels')!;
        const labelProblem = checkLabelValues(lb, this.index.classNames);
        if (labelProblem) fail(labelProblem, 'bad_label');
        if (labels) Buffer.from(labels.buffer, labels.byteOffset + labelOffset * 4, C * 4).set(lb);
      }
      if (nonFinite) {
        const n = float16NonFiniteSummary(volumes, volOffset, volOffset + binSize);
        const total = n.nan + n.posInf + n.negInf;
        fail(
          `non-finite volume: ${total} of ${binSize / 2} voxels are NaN/±Inf (${n.nan} NaN, ${n.posInf} +Inf, ${n.negInf} -Inf; first at element ${n.first}: ${n.firstValue})`,
          'non_finite_volume',
        );
      }
      return { studyId: meta.studyId, report: cleanReport(parts.get('txt')!.toString('utf8')) };
    } finally {
      this.releaseFile(f);
    }
  }

  /** Closes all shard file handles. */
  async close(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    await Promise.all(all.map((f) => f.fh.then((h) => h.close()).catch(() => undefined)));
  }
}
