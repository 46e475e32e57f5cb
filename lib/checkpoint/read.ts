/**
 * Reading parts back from a checkpoint folder. `readPart` checks the part against the manifest (size and
 * sha256) unless told not to, so a caller never loads silently corrupted bytes.
 */
import * as fsp from 'fs/promises';
import * as path from 'path';
import { CtclipError } from '../errors';
import { readManifest, sha256Of } from './manifest';
import { META_FILE } from './names';

export interface CheckpointMeta {
  step?: number;
  metrics?: Record<string, number | null>;
  [key: string]: unknown;
}

/** The bytes of part `name` of the checkpoint at `dir`, checked against the manifest (`verify: false` skips it). */
export async function readPart(dir: string, name: string, opts: { verify?: boolean } = {}): Promise<Buffer> {
  const file = path.join(dir, name);
  if (path.basename(name) !== name)
    throw new CtclipError('ARGUMENT_ERROR', `checkpoint part name ${JSON.stringify(name)} is not a plain file name`);
  let entry: { size: number; sha256: string } | undefined;
  if (opts.verify ?? true) {
    let manifest;
    try {
      manifest = await readManifest(dir);
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot read part ${file}: ${(e as Error).message}`);
    }
    entry = Object.prototype.hasOwnProperty.call(manifest.files, name) ? manifest.files[name] : undefined;
    if (!entry) {
      throw new CtclipError(
        'IO_ERROR',
        `${file}: not a part of this checkpoint (manifest lists: ${Object.keys(manifest.files).join(', ')})`,
      );
    }
  }
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read checkpoint part ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (entry) {
    if (data.length !== entry.size)
      throw new CtclipError('IO_ERROR', `${file}: size ${data.length} bytes, manifest says ${entry.size}`);
    if (sha256Of(data) !== entry.sha256)
      throw new CtclipError('IO_ERROR', `${file}: sha256 does not match the manifest (corrupt file)`);
  }
  return data;
}

/** A JSON part, parsed. */
export async function readJsonPart<T = unknown>(
  dir: string,
  name: string,
  opts: { verify?: boolean } = {},
): Promise<T> {
  const data = await readPart(dir, name, opts);
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${path.join(dir, name)}: invalid JSON (${(e as Error).message})`);
  }
}

/** The `meta` given to `save()` (strict JSON: NaN metrics read back as null), plus the step. */
export async function readMeta(dir: string, opts: { verify?: boolean } = {}): Promise<CheckpointMeta> {
  return readJsonPart<CheckpointMeta>(dir, META_FILE, opts);
}
