/**
 * Checkpoint parts: each is one opaque file of the checkpoint folder, produced by a writer the caller passes.
 * A writer receives the path it may write (inside the temporary folder) and either writes the file itself
 * (native code writing safetensors) or returns the content: bytes, a string, or a JSON value (written as strict
 * JSON: NaN/±Infinity → null). A plain value may be given instead of a writer.
 */
import * as fsp from 'fs/promises';
import { toStrictJson } from '../io/strict-json';
import { CtclipError } from '../errors';
import { fsyncFile, writeFileDurable } from './durable';
import { MANIFEST_FILE, META_FILE } from './names';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue | undefined };
/** What a writer may return; `void` means "I wrote the file at tmpPath myself". */
export type PartValue = Buffer | Uint8Array | string | JsonValue | object;
export type PartWriter = (tmpPath: string) => Promise<PartValue | void> | PartValue | void;
export type PartSource = PartWriter | PartValue;

export const RESERVED_PART_NAMES: readonly string[] = [MANIFEST_FILE, META_FILE];

const PART_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Throws ARGUMENT_ERROR unless `name` is a plain file name that is not reserved. */
export function validatePartName(name: string): void {
  if (!PART_NAME_RE.test(name) || name.length > 200) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `checkpoint part name ${JSON.stringify(name)} is not a plain file name ([A-Za-z0-9_][A-Za-z0-9._-]*)`,
    );
  }
  if (RESERVED_PART_NAMES.includes(name)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `checkpoint part name "${name}" is reserved (the manager writes ${RESERVED_PART_NAMES.join(', ')})`,
    );
  }
}

/** Bytes for a returned value: Buffers/typed arrays as is, strings as UTF-8, anything else as strict JSON. */
export function encodePartValue(value: PartValue): Uint8Array | string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const text = toStrictJson(value, 2);
  if (text === undefined) throw new Error('value is not JSON-serialisable');
  return text + '\n';
}

/**
 * Produces one part at `file` (which must not exist yet): runs the writer, writes what it returned (or checks
 * that it created a regular file), and fsyncs the file.
 */
export async function writePart(file: string, source: PartSource): Promise<void> {
  const value = typeof source === 'function' ? await (source as PartWriter)(file) : source;
  if (value === undefined) {
    let st;
    try {
      st = await fsp.lstat(file);
    } catch {
      throw new Error(`the writer returned nothing and did not create ${file}`);
    }
    if (!st.isFile()) throw new Error(`the writer created ${file} but it is not a regular file`);
    await fsyncFile(file);
    return;
  }
  if (
    await fsp.lstat(file).then(
      () => true,
      () => false,
    )
  ) {
    throw new Error(`the writer created ${file} and also returned content; do one or the other`);
  }
  await writeFileDurable(file, encodePartValue(value as PartValue));
}
