/**
 * Durable file-system primitives: fsync of files and folders, atomic replacement of small files, and removal
 * that first renames a folder out of the listing (so a crash mid-delete never leaves a half-deleted folder under
 * a checkpoint name).
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { pointerTempName } from './names';

/** fsyncs a regular file (opened read-only: fsync works on any descriptor on Linux/macOS). */
export async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * fsyncs a folder so that renames/creations inside it are durable. Platforms that cannot open or sync a
 * directory (Windows: EISDIR/EPERM/EACCES; some file systems: EINVAL) are tolerated.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(dir, 'r');
  } catch (e) {
    if (isCode(e, 'EISDIR', 'EPERM', 'EACCES')) return;
    throw e;
  }
  try {
    await fh.sync();
  } catch (e) {
    if (!isCode(e, 'EINVAL', 'EPERM', 'EBADF', 'ENOTSUP')) throw e;
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch (e) {
    if (isCode(e, 'EISDIR', 'EPERM', 'EACCES')) return;
    throw e;
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    if (!isCode(e, 'EINVAL', 'EPERM', 'EBADF', 'ENOTSUP')) throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `data` to `file` (exclusive create) and fsyncs it. */
export async function writeFileDurable(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await fsp.open(file, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `dir/name` atomically: writes `.name.tmp-<pid>-<random>` in the same folder, fsyncs it, renames it
 * over `name`, fsyncs the folder. Readers see the old content or the new one, never a mix.
 */
export async function replaceFileAtomic(dir: string, name: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(dir, pointerTempName(name));
  try {
    await writeFileDurable(tmp, data);
    await fsp.rename(tmp, path.join(dir, name));
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
}

/** Removes `file` (if present) and fsyncs its folder. */
export async function unlinkDurable(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return;
    throw e;
  }
  await fsyncDir(path.dirname(file));
}

export function isCode(e: unknown, ...codes: string[]): boolean {
  return typeof e === 'object' && e !== null && codes.includes((e as { code?: string }).code ?? '');
}

/** The newest mtime (ms) of a path and, for a folder, of its direct entries; 0 when it vanished meanwhile. */
export function newestMtimeSync(p: string): number {
  let newest = 0;
  try {
    const st = fs.lstatSync(p);
    newest = st.mtimeMs;
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p)) {
        try {
          newest = Math.max(newest, fs.lstatSync(path.join(p, e)).mtimeMs);
        } catch {
          /* vanished */
        }
      }
    }
  } catch {
    return 0;
  }
  return newest;
}

/** True when a process with this pid exists on this host (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isCode(e, 'EPERM');
  }
}
