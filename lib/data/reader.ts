/**
 * Positioned reads of indexed samples straight into caller-provided Buffers (no intermediate copies of the
 * volume, no per-voxel JS). Large `bin` payloads are split into chunks so several libuv threadpool threads
 * copy one sample in parallel; a FIFO semaphore bounds the reads in flight (`readers`), and because it is
 * FIFO, earlier samples finish first. The small members (json, labels, txt) are adjacent in canonical shards,
 * so they are fetched with one read of their span when it is small.
 */
import * as fs from 'fs';
import * as os from 'os';
import { parseSampleJson, type Extent, type ShardIndex } from './shard-index';
import { cleanReport } from './report';

/** A sample that could not be read; `reason` says why (I/O error, size mismatch, bad JSON, …). */
export class SampleReadError extends Error {
  constructor(
    readonly shard: string,
    readonly key: string,
    readonly reason: string,
  ) {
    super(`shard '${shard}' sample '${key}': ${reason}`);
    this.name = 'SampleReadError';
  }
}

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
    if (next) next(); // the slot passes directly to the next waiter
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
    this.chunkBytes = Math.max(64 * 1024, Math.floor(opts.chunkBytes ?? 8 * 1024 * 1024));
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
  private async readExact(fh: fs.promises.FileHandle, dst: Buffer, dstOffset: number, length: number, position: number): Promise<void> {
    await this.sem.acquire();
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(dst, dstOffset + done, length - done, position + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${position + done} (needed ${length} bytes at ${position}; shard truncated since indexing?)`);
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
  async readSample(i: number, volumes: Buffer, volOffset: number, labels: Float32Array | null, labelOffset: number): Promise<SampleMeta> {
    const s = this.index.samples[i];
    const shardName = this.index.shards[s.shard].file;
    const fail = (reason: string): never => {
      throw new SampleReadError(shardName, s.key, reason);
    };
    if (s.bin[1] !== this.index.sampleBytes) fail(`'.bin' is ${s.bin[1]} bytes in the index, the dataset's volumes are ${this.index.sampleBytes}`);
    const C = this.index.numClasses;
    if (C > 0 && (!s.labels || s.labels[1] !== C * 4)) fail(`labels member is ${s.labels ? s.labels[1] : 0} bytes, expected ${C * 4} (${C} float32)`);
    const f = this.acquireFile(s.shard);
    try {
      let fh: fs.promises.FileHandle;
      try {
        fh = await f.fh;
      } catch (e) {
        return fail(`cannot open shard: ${(e as Error).message}`);
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
      for (let done = 0; done < binSize; done += this.chunkBytes) {
        const len = Math.min(this.chunkBytes, binSize - done);
        chunks.push(this.readExact(fh, volumes, volOffset + done, len, binOff + done));
      }
      const settled = await Promise.allSettled([smallRead, ...chunks]);
      const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (bad) fail(`I/O error: ${(bad.reason as Error).message}`);

      const meta = parseSampleJson(parts.get('json')!);
      if (typeof meta === 'string') return fail(meta);
      const shape = this.index.volumeShape;
      if (meta.dtype !== this.index.volumeDtype) fail(`volume_dtype '${meta.dtype}' differs from the index's '${this.index.volumeDtype}'`);
      if (meta.shape.join(',') !== shape.join(',')) fail(`volume_shape ${JSON.stringify(meta.shape)} differs from the index's ${JSON.stringify(shape)} (size mismatch)`);
      if (labels && C > 0) {
        const lb = parts.get('labels')!;
        Buffer.from(labels.buffer, labels.byteOffset + labelOffset * 4, C * 4).set(lb);
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
