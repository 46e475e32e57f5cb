/**
 * Opening input files without trusting what they are. A path named by a user may be a FIFO (whose `open` waits
 * for a writer forever), a character device such as `/dev/zero` (endless bytes), a directory or a socket.
 * These helpers open with O_NONBLOCK (a FIFO opens at once instead of blocking), `fstat` the open descriptor
 * (no stat-then-open race: what is checked is what is read), accept regular files only, and read at most a
 * byte cap. O_NONBLOCK changes nothing for reads of a regular file.
 */
import * as fs from 'fs';
import { CtclipError, type ErrorCode } from '../errors';

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

/** What a non-regular file is, in words ('a FIFO (named pipe)', 'a character device', …). */
export function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return st.isFile() ? 'a regular file' : 'not a regular file';
}

export interface RegularFileOptions {
  /** How the file is named in errors, e.g. "config" or "NIfTI file". */
  what: string;
  /** Error code for "not a regular file" / "too large" (default DATA_ERROR); unreadable files are IO_ERROR unless `ioCode`. */
  code?: ErrorCode;
  /** Error code for a file that cannot be opened or read (default IO_ERROR). */
  ioCode?: ErrorCode;
  /** Largest size accepted, in bytes (default: no cap). */
  maxBytes?: number;
  /** Names the limit in the "too large" error (e.g. "the 1 MiB limit for YAML configs"). */
  limitName?: string;
}

function openFailed(file: string, o: RegularFileOptions, e: unknown): never {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'file not found' : err.message;
  throw new CtclipError(o.ioCode ?? 'IO_ERROR', `cannot read ${o.what} '${file}': ${why}`, { cause: e });
}

function checkStats(file: string, st: fs.Stats, o: RegularFileOptions): void {
  if (!st.isFile()) {
    throw new CtclipError(
      o.code ?? 'DATA_ERROR',
      `${o.what} '${file}' is ${fileKind(st)}, not a regular file; only regular files are read`,
    );
  }
  if (o.maxBytes !== undefined && st.size > o.maxBytes) {
    throw new CtclipError(
      o.code ?? 'DATA_ERROR',
      `${o.what} '${file}' is ${st.size} bytes, over ${o.limitName ?? `the limit of ${o.maxBytes} bytes`}`,
    );
  }
}

/**
 * Opens a regular file for reading (sync): O_NONBLOCK open, fstat, regular files only, size cap.
 * Returns the descriptor (the caller closes it) and the size.
 */
export function openRegularFileSync(file: string, o: RegularFileOptions): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (e) {
    return openFailed(file, o, e);
  }
  try {
    const st = fs.fstatSync(fd);
    checkStats(file, st, o);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Reads a whole regular file (sync), at most `maxBytes`: also a file that grows between the fstat and the read
 * is refused once it passes the cap, never read to its end.
 */
export function readRegularFileSync(file: string, o: RegularFileOptions): Buffer {
  const { fd, size } = openRegularFileSync(file, o);
  try {
    const cap = o.maxBytes ?? Number.MAX_SAFE_INTEGER;
    // One byte more than the cap (or the size) tells "grew past the cap" from "exactly at the cap".
    let buf = Buffer.allocUnsafe(Math.min(size, cap) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > cap) {
          throw new CtclipError(
            o.code ?? 'DATA_ERROR',
            `${o.what} '${file}' grew past ${o.limitName ?? `the limit of ${cap} bytes`} while it was read`,
          );
        }
        const bigger = Buffer.allocUnsafe(Math.min(cap + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      let got: number;
      try {
        got = fs.readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        return openFailed(file, o, e);
      }
      if (got === 0) break;
      n += got;
    }
    if (n > cap)
      throw new CtclipError(
        o.code ?? 'DATA_ERROR',
        `${o.what} '${file}' grew past ${o.limitName ?? `the limit of ${cap} bytes`} while it was read`,
      );
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Async `openRegularFileSync`: a FileHandle (the caller closes it) and the size. */
export async function openRegularFile(
  file: string,
  o: RegularFileOptions,
): Promise<{ handle: fs.promises.FileHandle; size: number }> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, OPEN_FLAGS);
  } catch (e) {
    return openFailed(file, o, e);
  }
  try {
    const st = await handle.stat();
    checkStats(file, st, o);
    return { handle, size: st.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}
