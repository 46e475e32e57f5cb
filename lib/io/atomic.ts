/**
 * Whole-file replacement for small and medium files: write a temporary sibling, then rename it over the target,
 * so a reader sees either the old file or the new one, never half of it. On failure the temporary file is
 * removed and an IO_ERROR names the target. (Checkpoints need more — fsync of files and folders — and use
 * lib/checkpoint/durable.ts.)
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';

let counter = 0;

function tempSibling(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${(counter++).toString(36)}`);
}

function ioError(file: string, e: unknown): CtclipError {
  return new CtclipError('IO_ERROR', `${file}: cannot write (${(e as Error).message})`, { cause: e });
}

/** Replaces `file` with `data` atomically (creating its folder). */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempSibling(file);
  try {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(file, e);
  }
}

/** Synchronous twin of `writeFileAtomic`, for short files written between steps. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = tempSibling(file);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* best effort */
    }
    throw ioError(file, e);
  }
}
