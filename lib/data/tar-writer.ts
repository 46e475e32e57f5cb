/**
 * A minimal streaming tar writer (ustar, GNU long names for names over 100 bytes) used by `ctclip synth`
 * and by tests. Output is deterministic: fixed mtime/uid/gid, so the same members give the same bytes.
 * Files are written under a temporary name and renamed into place on `close()`, so a crash never leaves a
 * half-written shard under the final name. A failed write (a full disk, a file-size limit) removes the
 * temporary file and throws IO_ERROR naming the shard.
 */
import * as fs from 'fs';
import { CtclipError } from '../errors';

const BLOCK = 512;
const RECORD = 10240; // GNU tar pads archives to 20-block records; we do the same for fidelity.

function writeString(b: Buffer, s: string, start: number, len: number): void {
  const bytes = Buffer.from(s, 'utf8');
  bytes.copy(b, start, 0, Math.min(len, bytes.length));
}

function writeOctal(b: Buffer, value: number, start: number, len: number): void {
  const digits = value.toString(8).padStart(len - 1, '0');
  if (digits.length > len - 1) throw new RangeError(`tar field too small for ${value}`);
  b.write(digits + '\0', start, len, 'latin1');
}

/** Builds one 512-byte header block. */
export function tarHeader(name: string, size: number, type = '0', mtime = 0): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, name, 0, 100);
  writeOctal(b, type === '5' ? 0o755 : 0o644, 100, 8);
  writeOctal(b, 0, 108, 8);
  writeOctal(b, 0, 116, 8);
  writeOctal(b, size, 124, 12);
  writeOctal(b, mtime, 136, 12);
  b.fill(0x20, 148, 156);
  b.write(type, 156, 1, 'latin1');
  b.write('ustar\0', 257, 6, 'latin1');
  b.write('00', 263, 2, 'latin1');
  writeString(b, 'ctclip', 265, 32);
  writeString(b, 'ctclip', 297, 32);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/** Streaming writer: `add` members in order, then `close` (atomic rename). */
export class TarWriter {
  private fd: number;
  private pos = 0;
  private closed = false;
  private readonly tmp: string;

  constructor(readonly file: string) {
    this.tmp = `${file}.tmp-${process.pid}`;
    try {
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (e) {
      throw new CtclipError('IO_ERROR', `${file}: cannot create shard (${(e as Error).message})`, { cause: e });
    }
  }

  /** Removes the temporary file and throws IO_ERROR naming the shard. */
  private fail(what: string, e: unknown): never {
    this.abort();
    throw new CtclipError(
      'IO_ERROR',
      `${this.file}: cannot ${what} (${(e as Error).message}); the partial file was removed`,
      { cause: e },
    );
  }

  private write(buf: Uint8Array): void {
    if (this.closed) throw new CtclipError('IO_ERROR', `${this.file}: write after close/abort`);
    let done = 0;
    try {
      while (done < buf.byteLength) done += fs.writeSync(this.fd, buf, done, buf.byteLength - done, this.pos + done);
    } catch (e) {
      this.fail(`write shard at offset ${this.pos + done}`, e);
    }
    this.pos += buf.byteLength;
  }

  /** Appends a regular file. Names over 100 bytes get a GNU `././@LongLink` header first. */
  add(name: string, data: Uint8Array): { offset: number; size: number } {
    if (Buffer.byteLength(name, 'utf8') > 100) {
      const longName = Buffer.concat([Buffer.from(name, 'utf8'), Buffer.alloc(1)]);
      this.write(tarHeader('././@LongLink', longName.length, 'L'));
      this.write(longName);
      this.pad();
    }
    this.write(tarHeader(name, data.byteLength));
    const offset = this.pos;
    this.write(data);
    this.pad();
    return { offset, size: data.byteLength };
  }

  private pad(): void {
    const rem = this.pos % BLOCK;
    if (rem) this.write(Buffer.alloc(BLOCK - rem));
  }

  /** Writes the end-of-archive blocks, pads to a record, fsyncs and renames into place. */
  close(): void {
    if (this.closed) return;
    this.write(Buffer.alloc(2 * BLOCK));
    const rem = this.pos % RECORD;
    if (rem) this.write(Buffer.alloc(RECORD - rem));
    try {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.closed = true;
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      this.closed = false; // so abort() closes what is still open and removes the temporary file
      this.fail('finish shard', e);
    }
  }

  /** Abandons the file (removes the temporary). */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
    try {
      fs.rmSync(this.tmp, { force: true });
    } catch {
      /* best effort: the caller gets the original error */
    }
  }
}
