/**
 * safetensors in pure TypeScript (no addon): a reader and a writer for tools, exports and tests.
 *
 * The native reader/writer (`native/io/safetensors.cc`, wrapped by `lib/weights/safetensors-native.ts`) moves tensors in
 * and out of libtorch; this module works on plain typed arrays and needs nothing but Node, so that exports such
 * as `ctclip embed`'s can be written and checked without the addon.
 *
 * Format (https://github.com/huggingface/safetensors, as written by the Python package):
 * - 8 bytes: N, the header length, unsigned 64-bit little-endian;
 * - N bytes: a UTF-8 JSON object `{name: {dtype, shape, data_offsets: [begin, end]}, …, "__metadata__"?: {str: str}}`.
 *   We pad it with trailing spaces so that N is a multiple of 8 (the data then starts 8-byte aligned), as the
 *   Python writer does;
 * - the data: every tensor's bytes, row-major, little-endian, at `[begin, end)` relative to the start of the data.
 *
 * The reader checks what the reference implementation checks: the header fits in the file and is a JSON object,
 * every entry has a known dtype, a shape of non-negative integers, offsets whose length equals numel·itemsize,
 * and the entries tile the data section exactly (no gaps, no overlaps, nothing left over). Before parsing, the
 * header's length (`MAX_HEADER_LENGTH`), entries (`MAX_TENSORS`) and JSON separators (`MAX_JSON_SEPARATORS`) are
 * bounded, the same limits as the native reader's. Errors are `DATA_ERROR` (malformed file or over a limit) or
 * `IO_ERROR` (cannot read), and name the file and the entry.
 */
import * as fs from 'fs';
import * as os from 'os';
import { CtclipError } from '../errors';
import { writeFileAtomic } from './atomic';

/** The safetensors dtype names this module reads and writes. */
export type SafetensorsDtype =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const SAFETENSORS_ITEMSIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/**
 * The typed array a dtype is read into. F16 and BF16 come back as their raw bits (`Uint16Array`): JavaScript has no
 * half-precision array in Node 20.
 */
export type SafetensorsArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

/** One header entry. `dataOffsets` are relative to the start of the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  dataOffsets: [number, number];
}

/** A parsed header. */
export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes (including padding). */
  headerLength: number;
  /** Absolute file offset of the data section (8 + N). */
  dataStart: number;
  /** Total bytes of the data section, as the entries describe it. */
  dataLength: number;
  /** The entries in the order the header's JSON lists them. */
  tensors: SafetensorsEntry[];
  /** `__metadata__` (string → string), or {} when absent. */
  metadata: Record<string, string>;
}

/** A tensor to write, or one that was read. `data` must hold exactly numel elements of the dtype's array type. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: SafetensorsArray;
}

/** A whole file, read. `tensors` keeps the header's order. */
export interface SafetensorsFile {
  header: SafetensorsHeader;
  tensors: Map<string, SafetensorsTensor>;
}

const ARRAY_TYPES: Record<
  SafetensorsDtype,
  { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): SafetensorsArray; name: string }
> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/**
 * Largest header we accept: 100 MiB, as the native reader (the reference implementation's limit is 100 000 000
 * bytes). A longer header is refused with its length and this limit named.
 */
export const MAX_HEADER_LENGTH = 100 * 1024 * 1024;

/** Most tensor entries a header may list (real models have hundreds to a few thousand). */
export const MAX_TENSORS = 100_000;

/**
 * Most JSON separators (',' and ':') a header may contain, a bound on the values `JSON.parse` would build: a real
 * entry has about 11. Counted before parsing, together with the entries, so a hostile header costs one pass.
 */
export const MAX_JSON_SEPARATORS = 20 * MAX_TENSORS;

/** Top-level members and separators of a JSON text, counted without parsing it (strings skipped). */
function countJson(b: Uint8Array): { members: number; separators: number } {
  let depth = 0;
  let members = 0;
  let separators = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x22) {
      // A string: skip to its closing quote (escapes skip one byte).
      for (i++; i < b.length && b[i] !== 0x22; i++) if (b[i] === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x3a) {
      separators++;
      if (depth === 1) members++;
    } else if (c === 0x2c) separators++;
  }
  return { members, separators };
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

function isDtype(v: unknown): v is SafetensorsDtype {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_ITEMSIZE, v);
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reverses the byte order of every `itemsize`-byte element of `bytes` in place (big-endian hosts only). */
function swapBytes(bytes: Uint8Array, itemsize: number): void {
  if (itemsize === 1) return;
  for (let i = 0; i < bytes.length; i += itemsize) {
    for (let a = i, b = i + itemsize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

/**
 * Parses and validates a header from the first bytes of a file. `prefix` must hold at least 8 + N bytes;
 * `fileSize`, when known, is checked against the data the entries describe. `what` names the file in errors.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, what = 'safetensors', fileSize?: number): SafetensorsHeader {
  if (prefix.length < 8)
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: file is ${prefix.length} bytes; a safetensors file starts with an 8-byte header length`,
    );
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const big = view.getBigUint64(0, true);
  if (big > BigInt(MAX_HEADER_LENGTH))
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: header length ${big} exceeds the limit of 100 MiB (${MAX_HEADER_LENGTH} bytes)`,
    );
  const headerLength = Number(big);
  if (fileSize !== undefined && 8 + headerLength > fileSize) {
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: header length ${headerLength} runs past the end of the ${fileSize}-byte file`,
    );
  }
  if (prefix.length < 8 + headerLength)
    throw new CtclipError('DATA_ERROR', `${what}: truncated header (${prefix.length - 8} of ${headerLength} bytes)`);
  const counts = countJson(prefix.subarray(8, 8 + headerLength));
  if (counts.members > MAX_TENSORS + 1)
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: the header has ${counts.members} entries, over the limit of ${MAX_TENSORS} tensors`,
    );
  if (counts.separators > MAX_JSON_SEPARATORS) {
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: the header has ${counts.separators} JSON separators, over the limit of ${MAX_JSON_SEPARATORS} (20 per tensor)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw new CtclipError('DATA_ERROR', `${what}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new CtclipError('DATA_ERROR', `${what}: header is not a JSON object`);

  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
        throw new CtclipError('DATA_ERROR', `${what}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new CtclipError('DATA_ERROR', `${what}: __metadata__.${k} is ${typeof v}; expected a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (e === null || typeof e !== 'object')
      throw new CtclipError('DATA_ERROR', `${what}: entry "${name}" is not an object`);
    if (!isDtype(e.dtype))
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: entry "${name}" has dtype ${JSON.stringify(e.dtype)}; expected one of ${Object.keys(SAFETENSORS_ITEMSIZE).join(', ')}`,
      );
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: entry "${name}" has shape ${JSON.stringify(e.shape)}; expected a list of non-negative integers`,
      );
    }
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[1] < off[0]
    ) {
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: entry "${name}" has data_offsets ${JSON.stringify(off)}; expected [begin, end] with 0 ≤ begin ≤ end`,
      );
    }
    const shape = e.shape as number[];
    const expected = numelOf(shape) * SAFETENSORS_ITEMSIZE[e.dtype];
    if (off[1] - off[0] !== expected) {
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: entry "${name}" (${e.dtype} ${JSON.stringify(shape)}) spans ${off[1] - off[0]} bytes; expected ${expected}`,
      );
    }
    tensors.push({ name, dtype: e.dtype, shape: shape.slice(), dataOffsets: [off[0], off[1]] });
  }

  // The entries must tile [0, dataLength) exactly.
  const byOffset = tensors
    .slice()
    .sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let end = 0;
  for (const t of byOffset) {
    if (t.dataOffsets[0] !== end) {
      const kind =
        t.dataOffsets[0] < end ? 'overlaps the previous entry' : `leaves a gap (previous data ends at ${end})`;
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: entry "${t.name}" starts at data offset ${t.dataOffsets[0]} and ${kind}`,
      );
    }
    end = t.dataOffsets[1];
  }
  const dataStart = 8 + headerLength;
  if (fileSize !== undefined && dataStart + end !== fileSize) {
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: the header describes ${end} data bytes but the file has ${fileSize - dataStart}`,
    );
  }
  return { headerLength, dataStart, dataLength: end, tensors, metadata };
}

/** Reads and validates only the header of a safetensors file (reads 8 + N bytes). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${file}: cannot open (${(e as Error).message})`, { cause: e });
  }
  try {
    const { size } = await fh.stat();
    const lenBuf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(lenBuf, 0, 8, 0);
    const len = bytesRead === 8 ? lenBuf.readBigUInt64LE(0) : 0n;
    const want =
      bytesRead < 8 || len > BigInt(MAX_HEADER_LENGTH) || 8n + len > BigInt(size) ? bytesRead : 8 + Number(len);
    const prefix = Buffer.alloc(want);
    if (want > 0) await fh.read(prefix, 0, want, 0);
    return parseSafetensorsHeader(prefix, file, size);
  } finally {
    await fh.close();
  }
}

/** Decodes a whole file held in memory. Every tensor is copied into its own aligned typed array (host order). */
export function decodeSafetensors(bytes: Uint8Array, what = 'safetensors'): SafetensorsFile {
  const header = parseSafetensorsHeader(bytes, what, bytes.length);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of header.tensors) {
    const begin = header.dataStart + t.dataOffsets[0];
    const end = header.dataStart + t.dataOffsets[1];
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(begin, end));
    if (!LITTLE_ENDIAN_HOST) swapBytes(copy, SAFETENSORS_ITEMSIZE[t.dtype]);
    const Ctor = ARRAY_TYPES[t.dtype];
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape.slice(), data: new Ctor(copy.buffer, 0, numelOf(t.shape)) });
  }
  return { header, tensors };
}

/** Reads a whole safetensors file. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${file}: cannot read (${(e as Error).message})`, { cause: e });
  }
  return decodeSafetensors(bytes, file);
}

/** Checks that a tensor to write is consistent; returns its data as little-endian bytes. */
function tensorBytes(name: string, t: SafetensorsTensor): Uint8Array {
  if (!isDtype(t.dtype))
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `safetensors: tensor "${name}" has dtype ${JSON.stringify(t.dtype)}; expected one of ${Object.keys(SAFETENSORS_ITEMSIZE).join(', ')}`,
    );
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `safetensors: tensor "${name}" has shape ${JSON.stringify(t.shape)}; expected non-negative integers`,
    );
  }
  const Ctor = ARRAY_TYPES[t.dtype];
  if (!(t.data instanceof Ctor)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `safetensors: tensor "${name}" (${t.dtype}) holds a ${t.data?.constructor?.name ?? typeof t.data}; expected a ${Ctor.name}`,
    );
  }
  const numel = numelOf(t.shape);
  if (t.data.length !== numel) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `safetensors: tensor "${name}" has ${t.data.length} elements but shape ${JSON.stringify(t.shape)} needs ${numel}`,
    );
  }
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const copy = bytes.slice();
  swapBytes(copy, SAFETENSORS_ITEMSIZE[t.dtype]);
  return copy;
}

/**
 * Encodes tensors (in the given order, data laid out in that order) and optional `__metadata__` into the bytes of a
 * safetensors file. Names must be unique and not `__metadata__`; metadata values must be strings.
 */
export function encodeSafetensors(
  tensors: ReadonlyArray<readonly [string, SafetensorsTensor]> | ReadonlyMap<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Buffer {
  const list =
    tensors instanceof Map
      ? Array.from(tensors.entries())
      : (tensors as ReadonlyArray<readonly [string, SafetensorsTensor]>);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw new CtclipError('ARGUMENT_ERROR', `safetensors: metadata "${k}" is ${typeof v}; expected a string`);
    }
    header.__metadata__ = { ...metadata };
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of list) {
    if (typeof name !== 'string' || name === '__metadata__')
      throw new CtclipError('ARGUMENT_ERROR', `safetensors: invalid tensor name ${JSON.stringify(name)}`);
    if (Object.prototype.hasOwnProperty.call(header, name))
      throw new CtclipError('ARGUMENT_ERROR', `safetensors: duplicate tensor name "${name}"`);
    const bytes = tensorBytes(name, t);
    header[name] = { dtype: t.dtype, shape: t.shape.slice(), data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...chunks], 8 + json.length + offset);
}

/**
 * Writes a safetensors file atomically: to a temporary file next to `file`, then renamed into place, so a reader
 * never sees a half-written file. Creates the parent folder.
 */
export async function writeSafetensors(
  file: string,
  tensors: ReadonlyArray<readonly [string, SafetensorsTensor]> | ReadonlyMap<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  await writeFileAtomic(file, bytes);
}
