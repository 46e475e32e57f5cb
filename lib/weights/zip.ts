/**
 * The zip container of PyTorch's `torch.save` files (and a minimal writer for the same layout).
 *
 * Reader: the central directory (classic and zip64), entry lookup by name, and reads of one entry's bytes at its
 * offset in the file: a storage is read straight into the buffer that becomes the tensor, nothing else is loaded.
 * torch writes every entry uncompressed ("stored"); deflate is accepted too (zlib), anything else is refused.
 * Encrypted entries, multi-disk archives and entries that point outside the file are DATA_ERRORs naming the file.
 *
 * Hostile archives: every read goes into a buffer of the entry's *declared* size, allocated only after the caller
 * has accepted that size (`maxBytes`, `ByteBudget`); a deflated entry is inflated into that buffer and refused as
 * soon as it produces one byte more (a deflate bomb never inflates past its declared size). Every entry's CRC-32
 * is checked, except when the archive records 0 (torch ≥ 2.6 writes 0 when saving with CRCs turned off).
 *
 * Writer: stored entries only, data aligned to 64 bytes with a padding extra field (as torch's writer does, so
 * a storage can be mapped in place), CRC-32 on every entry, no zip64 (files up to 4 GiB), written to a temporary
 * name and renamed into place.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Readable, Writable } from 'stream';
import { pipeline } from 'stream/promises';
import * as zlib from 'zlib';
import { CtclipError } from '../errors';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

/**
 * How many bytes the entries read from one archive may take in memory together. `charge` is called before each
 * allocation and refuses (DATA_ERROR naming the file, what asked, the request and the limit) when the running total
 * would pass the limit; `reason` says where the limit comes from.
 */
export class ByteBudget {
  used = 0;
  constructor(
    readonly limit: number,
    readonly reason: string,
  ) {}

  /** `what` names the request, e.g. "entry 'archive/data/0'". */
  charge(file: string, what: string, bytes: number): void {
    if (this.used + bytes > this.limit) {
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: ${what} needs ${bytes} bytes, which would take the tensor data read from this file to ${this.used + bytes} bytes, over the limit of ${this.limit} bytes (${this.reason})`,
      );
    }
    this.used += bytes;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CRC-32 (IEEE), used by the writer and to check every entry read.

let crcTables: Uint32Array[] | undefined;

/**
 * CRC-32 in JS for a Node without `zlib.crc32` (< 20.15): slicing-by-8 (eight bytes per step, about 0.8 GB/s),
 * so checking every storage's CRC stays a small part of a load there too.
 */
export function crc32Fallback(data: Uint8Array, crc = 0): number {
  if (!crcTables) {
    crcTables = Array.from({ length: 8 }, () => new Uint32Array(256));
    const t0 = crcTables[0];
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t0[n] = c >>> 0;
    }
    for (let n = 0; n < 256; n++) {
      for (let k = 1; k < 8; k++)
        crcTables[k][n] = (t0[crcTables[k - 1][n] & 0xff] ^ (crcTables[k - 1][n] >>> 8)) >>> 0;
    }
  }
  const [t0, t1, t2, t3, t4, t5, t6, t7] = crcTables;
  let c = (crc ^ 0xffffffff) >>> 0;
  let i = 0;
  const end8 = data.length - (data.length % 8);
  for (; i < end8; i += 8) {
    const a = (c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>> 0;
    c =
      t7[a & 0xff] ^
      t6[(a >>> 8) & 0xff] ^
      t5[(a >>> 16) & 0xff] ^
      t4[a >>> 24] ^
      t3[data[i + 4]] ^
      t2[data[i + 5]] ^
      t1[data[i + 6]] ^
      t0[data[i + 7]];
  }
  for (; i < data.length; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC-32 of `data` (continuing from `crc`); zlib's when this Node has it. */
export function crc32(data: Uint8Array, crc = 0): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  return native ? native(data, crc) >>> 0 : crc32Fallback(data, crc);
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number): number {
  const lo = u32(b, o);
  const hi = u32(b, o + 4);
  if (hi >= 0x200000) throw new RangeError('64-bit zip field beyond 2^53');
  return hi * 0x100000000 + lo;
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  /** Entry names in central-directory order. */
  readonly names: string[] = [];
  readonly size: number;
  private fd: number;

  private constructor(
    readonly file: string,
    fd: number,
    size: number,
  ) {
    this.fd = fd;
    this.size = size;
  }

  /** Opens a zip file and reads its central directory (IO_ERROR if unreadable, DATA_ERROR if not a valid zip). */
  static open(file: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new CtclipError('IO_ERROR', `${file}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const size = fs.fstatSync(fd).size;
      const reader = new ZipReader(file, fd, size);
      reader.readDirectory();
      return reader;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private fail(what: string): never {
    throw new CtclipError('DATA_ERROR', `${this.file}: not a valid zip archive: ${what}`);
  }

  /** Reads `length` bytes at `position` into `target` (a view; fills it exactly). */
  readAt(position: number, target: Uint8Array): void {
    if (this.fd < 0) throw new CtclipError('IO_ERROR', `${this.file}: the archive is closed`);
    let done = 0;
    while (done < target.length) {
      const chunk = Math.min(target.length - done, 1 << 30);
      let got: number;
      try {
        got = fs.readSync(this.fd, target, done, chunk, position + done);
      } catch (e) {
        throw new CtclipError(
          'IO_ERROR',
          `${this.file}: read failed at byte ${position + done}: ${(e as Error).message}`,
          { cause: e },
        );
      }
      if (got === 0) this.fail(`unexpected end of file at byte ${position + done}`);
      done += got;
    }
  }

  private bytes(position: number, length: number): Uint8Array {
    const b = new Uint8Array(length);
    this.readAt(position, b);
    return b;
  }

  private readDirectory(): void {
    if (this.size < 22) this.fail(`${this.size} bytes is too short`);
    const tailLen = Math.min(this.size, 22 + 0xffff);
    const tailStart = this.size - tailLen;
    const tail = this.bytes(tailStart, tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (u32(tail, i) === SIG_EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.fail('no end-of-central-directory record');
    let count = u16(tail, eocd + 10);
    let cdSize = u32(tail, eocd + 12);
    let cdOffset = u32(tail, eocd + 16);
    if (u16(tail, eocd + 4) !== 0 || u16(tail, eocd + 6) !== 0) {
      if (u16(tail, eocd + 4) !== 0xffff) this.fail('multi-disk archives are not supported');
    }
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const locPos = tailStart + eocd - 20;
      if (locPos < 0) this.fail('zip64 locator missing');
      const loc = this.bytes(locPos, 20);
      if (u32(loc, 0) !== SIG_EOCD64_LOCATOR) this.fail('zip64 locator missing');
      const eocd64Pos = u64(loc, 8);
      if (eocd64Pos + 56 > this.size) this.fail('zip64 end record outside the file');
      const e64 = this.bytes(eocd64Pos, 56);
      if (u32(e64, 0) !== SIG_EOCD64) this.fail('bad zip64 end record signature');
      count = u64(e64, 32);
      cdSize = u64(e64, 40);
      cdOffset = u64(e64, 48);
    }
    if (cdOffset + cdSize > this.size) this.fail(`central directory (${cdSize} bytes at ${cdOffset}) outside the file`);
    const cd = this.bytes(cdOffset, cdSize);
    let p = 0;
    const decoder = new TextDecoder('utf-8', { fatal: false });
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || u32(cd, p) !== SIG_CENTRAL) this.fail(`central directory entry ${i} is corrupt`);
      const flags = u16(cd, p + 8);
      const method = u16(cd, p + 10);
      const crc = u32(cd, p + 16);
      let compressedSize = u32(cd, p + 20);
      let size = u32(cd, p + 24);
      const nameLen = u16(cd, p + 28);
      const extraLen = u16(cd, p + 30);
      const commentLen = u16(cd, p + 32);
      let localHeaderOffset = u32(cd, p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) this.fail(`central directory entry ${i} is truncated`);
      const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information: the 64-bit values of the fields that are saturated, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = u16(cd, e);
        const len = u16(cd, e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) {
            size = u64(cd, q);
            q += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = u64(cd, q);
            q += 8;
          }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(cd, q);
        }
        e += 4 + len;
      }
      p += 46 + nameLen + extraLen + commentLen;
      if (flags & 1) this.fail(`entry '${name}' is encrypted`);
      if (this.entries.has(name)) this.fail(`entry '${name}' appears twice`);
      if (localHeaderOffset + 30 > this.size) this.fail(`entry '${name}' starts outside the file`);
      this.entries.set(name, { name, method, compressedSize, size, crc32: crc, localHeaderOffset });
      this.names.push(name);
    }
  }

  /** Absolute offset of an entry's data (after its local header, whose extra field may differ from the central one). */
  dataOffset(entry: ZipEntry): number {
    const h = this.bytes(entry.localHeaderOffset, 30);
    if (u32(h, 0) !== SIG_LOCAL) this.fail(`entry '${entry.name}': bad local header signature`);
    const start = entry.localHeaderOffset + 30 + u16(h, 26) + u16(h, 28);
    if (start + entry.compressedSize > this.size)
      this.fail(`entry '${entry.name}': data (${entry.compressedSize} bytes at ${start}) past the end of the file`);
    return start;
  }

  /** DATA_ERROR naming the entry when its CRC-32 is recorded (non-zero) and `data` does not match it. */
  private checkCrc(entry: ZipEntry, data: Uint8Array): void {
    if (entry.crc32 !== 0 && crc32(data) !== entry.crc32) {
      this.fail(
        `entry '${entry.name}' fails its CRC-32 check (recorded ${hex32(entry.crc32)}, data ${hex32(crc32(data))}): the file is corrupt`,
      );
    }
  }

  private checkMethod(entry: ZipEntry): void {
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.size)
        this.fail(`stored entry '${entry.name}' has compressed size ${entry.compressedSize} != size ${entry.size}`);
    } else if (entry.method === 8) {
      // Deflate never needs much more than the data itself (stored blocks cost 5 bytes per 64 KiB).
      if (entry.compressedSize > entry.size + Math.floor(entry.size / 256) + 1024) {
        this.fail(
          `deflated entry '${entry.name}' is ${entry.compressedSize} bytes compressed, more than deflate needs for its declared ${entry.size} bytes`,
        );
      }
    } else {
      this.fail(
        `entry '${entry.name}' uses compression method ${entry.method} (only stored and deflate are supported)`,
      );
    }
  }

  private inflateFailed(entry: ZipEntry, e: unknown): never {
    throw new CtclipError(
      'DATA_ERROR',
      `${this.file}: entry '${entry.name}': cannot inflate: ${(e as Error).message}`,
      { cause: e },
    );
  }

  private overflow(entry: ZipEntry): never {
    return this.fail(
      `deflated entry '${entry.name}' inflates to more than its declared ${entry.size} bytes (refused there)`,
    );
  }

  /**
   * Reads an entry's (uncompressed) bytes into `target`, which must be exactly `entry.size` long, synchronously
   * (small entries such as data.pkl: a deflated one transiently takes up to twice its declared size). Stored
   * entries are read straight into it; a deflated one is inflated with its declared size as the hard output limit.
   * The CRC-32 is checked.
   */
  readInto(entry: ZipEntry, target: Uint8Array): void {
    this.checkTarget(entry, target);
    const start = this.dataOffset(entry);
    if (entry.method === 0) {
      this.readAt(start, target);
    } else {
      let out: Buffer;
      try {
        out = zlib.inflateRawSync(this.bytes(start, entry.compressedSize), {
          maxOutputLength: Math.max(1, entry.size),
        });
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') this.overflow(entry);
        this.inflateFailed(entry, e);
      }
      if (out.length !== entry.size)
        this.fail(`entry '${entry.name}' inflates to ${out.length} bytes, expected ${entry.size}`);
      target.set(out);
    }
    this.checkCrc(entry, target);
  }

  /** Refuses a target of the wrong size and an entry whose compression method is not stored or deflate. */
  private checkTarget(entry: ZipEntry, target: Uint8Array): void {
    if (target.length !== entry.size)
      throw new CtclipError(
        'DATA_ERROR',
        `${this.file}: entry '${entry.name}' holds ${entry.size} bytes, expected ${target.length}`,
      );
    this.checkMethod(entry);
  }

  /**
   * `readInto` for large entries (tensor storages): a deflated entry is streamed from the file in 1 MiB pieces and
   * inflated straight into `target`, so memory stays at the declared size however far the data would inflate.
   */
  async readIntoStreaming(entry: ZipEntry, target: Uint8Array): Promise<void> {
    if (entry.method !== 8) return this.readInto(entry, target);
    this.checkTarget(entry, target);
    const start = this.dataOffset(entry);
    const piece = 1 << 20;
    const readAt = (pos: number, b: Buffer): void => this.readAt(pos, b);
    function* compressed(): Generator<Buffer> {
      for (let off = 0; off < entry.compressedSize; off += piece) {
        const b = Buffer.allocUnsafe(Math.min(piece, entry.compressedSize - off));
        readAt(start + off, b);
        yield b;
      }
    }
    let pos = 0;
    let over = false;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (pos + chunk.length > target.length) {
          over = true;
          done(new Error('declared size exceeded'));
          return;
        }
        target.set(chunk, pos);
        pos += chunk.length;
        done();
      },
    });
    try {
      await pipeline(Readable.from(compressed()), zlib.createInflateRaw({ chunkSize: 1 << 20 }), sink);
    } catch (e) {
      if (over) this.overflow(entry);
      if (e instanceof CtclipError) throw e;
      this.inflateFailed(entry, e);
    }
    if (pos !== entry.size) this.fail(`entry '${entry.name}' inflates to ${pos} bytes, expected ${entry.size}`);
    this.checkCrc(entry, target);
  }

  /**
   * Reads a whole entry into a new buffer, refusing (before allocating) an entry declared larger than `maxBytes`.
   */
  read(name: string, maxBytes: number): Uint8Array {
    const entry = this.entries.get(name);
    if (!entry) throw new CtclipError('DATA_ERROR', `${this.file}: the archive has no entry '${name}'`);
    if (entry.size > maxBytes) {
      throw new CtclipError(
        'DATA_ERROR',
        `${this.file}: entry '${name}' declares ${entry.size} bytes, over the limit of ${maxBytes} bytes for it`,
      );
    }
    const b = new Uint8Array(entry.size);
    this.readInto(entry, b);
    return b;
  }
}

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface ZipWriteEntry {
  name: string;
  data: Uint8Array;
}

const ALIGN = 64;

/**
 * Writes `entries` as an uncompressed zip (data 64-byte aligned) to `file`, atomically (temporary name, then
 * rename). IO_ERROR naming the file when writing fails; ARGUMENT_ERROR when it would need zip64.
 */
export function writeZipStored(file: string, entries: ZipWriteEntry[]): void {
  const encoder = new TextEncoder();
  const central: Buffer[] = [];
  const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`;
  let fd: number;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fd = fs.openSync(tmp, 'w');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${file}: cannot create: ${(e as Error).message}`, { cause: e });
  }
  let pos = 0;
  const write = (b: Uint8Array): void => {
    let done = 0;
    while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done);
    pos += b.length;
  };
  try {
    for (const entry of entries) {
      const name = encoder.encode(entry.name);
      const crc = crc32(entry.data);
      const size = entry.data.length;
      if (pos + size > 0xfffffff0)
        throw new CtclipError('ARGUMENT_ERROR', `${file}: archives over 4 GiB (zip64) are not written by this writer`);
      const offset = pos;
      let pad = (ALIGN - ((offset + 30 + name.length + 4) % ALIGN)) % ALIGN;
      const extra = Buffer.alloc(4 + pad);
      extra.writeUInt16LE(0x4246, 0); // 'FB', torch's padding field
      extra.writeUInt16LE(pad, 2);
      const local = Buffer.alloc(30);
      local.writeUInt32LE(SIG_LOCAL, 0);
      local.writeUInt16LE(20, 4); // version needed
      local.writeUInt16LE(0x0800, 6); // UTF-8 names
      local.writeUInt16LE(0, 8); // stored
      local.writeUInt32LE(0, 10); // time/date
      local.writeUInt32LE(crc, 14);
      local.writeUInt32LE(size, 18);
      local.writeUInt32LE(size, 22);
      local.writeUInt16LE(name.length, 26);
      local.writeUInt16LE(extra.length, 28);
      write(local);
      write(name);
      write(extra);
      write(entry.data);
      const c = Buffer.alloc(46);
      c.writeUInt32LE(SIG_CENTRAL, 0);
      c.writeUInt16LE(20, 4);
      c.writeUInt16LE(20, 6);
      c.writeUInt16LE(0x0800, 8);
      c.writeUInt16LE(0, 10);
      c.writeUInt32LE(0, 12);
      c.writeUInt32LE(crc, 16);
      c.writeUInt32LE(size, 20);
      c.writeUInt32LE(size, 24);
      c.writeUInt16LE(name.length, 28);
      c.writeUInt16LE(0, 30);
      c.writeUInt16LE(0, 32);
      c.writeUInt32LE(offset, 42);
      central.push(c, Buffer.from(name));
      pad = 0;
    }
    const cdOffset = pos;
    for (const b of central) write(b);
    const cdSize = pos - cdOffset;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(SIG_EOCD, 0);
    end.writeUInt16LE(entries.length, 8);
    end.writeUInt16LE(entries.length, 10);
    end.writeUInt32LE(cdSize, 12);
    end.writeUInt32LE(cdOffset, 16);
    write(end);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof CtclipError) throw e;
    throw new CtclipError('IO_ERROR', `${file}: cannot write: ${(e as Error).message}`, { cause: e });
  }
}
