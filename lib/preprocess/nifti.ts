/**
 * A small NIfTI-1 reader and writer (single-file `.nii`, and `.nii.gz` through zlib; gzip is detected from the
 * magic bytes, not the name).
 *
 * Reader: header fields dim, pixdim, datatype, vox_offset, scl_slope/scl_inter, qform/sform, xyzt_units, with
 * the byte order detected from `sizeof_hdr` (348 read little- or big-endian). The voxels come back as a
 * Float32Array in NIfTI index order (i fastest, then j, then k) with scl_slope/scl_inter applied the way
 * nibabel's `get_fdata()` does (slope 0 or non-finite ⇒ no scaling). Datatypes: int8, uint8, int16, uint16,
 * int32, uint32, float32, float64; RGB/RGBA, complex, 64-bit integers and float128 are refused by name.
 * Every error names the file and the header field.
 *
 * Hostile files (docs/limits.md): the header is read and checked before anything volume-sized is allocated or
 * inflated — ni·nj·nk against `maxVoxels` (default 2^29), vox_offset against MAX_VOX_OFFSET, pixdim[1..3] must be
 * finite and non-zero unless a spacing is given — then exactly the voxel data are read (a `.nii.gz` is inflated
 * only up to vox_offset + n · bytes per voxel). Only regular files are opened.
 *
 * Writer (`writeNifti`): builds a `.nii` (or gzip'ed) Buffer in memory with known geometry, for tests and the
 * benchmark.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { CtclipError } from '../errors';
import { openRegularFile } from '../io/regular-file';

export type NiftiDatatype = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

/** NIfTI datatype codes → our names and byte sizes. */
export const NIFTI_DATATYPES: Record<NiftiDatatype, { code: number; bytes: number }> = {
  uint8: { code: 2, bytes: 1 },
  int16: { code: 4, bytes: 2 },
  int32: { code: 8, bytes: 4 },
  float32: { code: 16, bytes: 4 },
  float64: { code: 64, bytes: 8 },
  int8: { code: 256, bytes: 1 },
  uint16: { code: 512, bytes: 2 },
  uint32: { code: 768, bytes: 4 },
};

const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1 bit)',
  32: 'complex64',
  128: 'rgb24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

/** A 4×4 affine, row-major (voxel (i, j, k, 1) → world (x, y, z, 1), NIfTI RAS+ world). */
export type Affine = number[][];

export interface NiftiHeader {
  littleEndian: boolean;
  /** dim[0..7] as stored. */
  dim: number[];
  /** pixdim[0..7] as stored (pixdim[0] is qfac). */
  pixdim: number[];
  datatype: NiftiDatatype;
  datatypeCode: number;
  bitpix: number;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  /** xyzt_units & 7: 0 unknown, 1 metre, 2 mm, 3 µm. */
  spatialUnits: number;
  qformCode: number;
  sformCode: number;
  /** quatern_b, c, d, qoffset_x, y, z. */
  quatern: [number, number, number, number, number, number];
  /** srow_x, srow_y, srow_z. */
  srow: [number[], number[], number[]];
  magic: string;
  descrip: string;
}

/** Where a volume's voxels are: the grid, voxel size and affines, from the header (and the read options). */
export interface NiftiSpatial {
  file: string;
  header: NiftiHeader;
  /** [ni, nj, nk]. */
  shape: [number, number, number];
  /** Voxel size in mm along i, j, k in effect: the `spacing` read option when given, else |pixdim[1..3]| in mm. */
  spacing: [number, number, number];
  /** |pixdim[1..3]| converted to mm as stored (may be 0, NaN or ±Inf when the `spacing` option overrides it). */
  pixdimSpacing: [number, number, number];
  /** The affine in effect: sform when sform_code > 0, else qform when qform_code > 0, else diag(pixdim). */
  affine: Affine;
  affineSource: 'sform' | 'qform' | 'pixdim';
  qform: Affine | null;
  sform: Affine | null;
}

export interface NiftiVolume extends NiftiSpatial {
  /** Voxels in NIfTI order (i fastest), scl_slope/scl_inter applied; length ni·nj·nk. */
  data: Float32Array;
  /** Whether scl_slope/scl_inter changed the values. */
  sclApplied: boolean;
  /**
   * Min/max of the stored values (before scl) when scl_slope/scl_inter changed them (computed while scaling);
   * null otherwise — the stored values are then the returned values (the pipeline reports their range).
   */
  storedRange: [number, number] | null;
}

function fail(file: string, field: string, msg: string): never {
  throw new CtclipError('DATA_ERROR', `${file}: NIfTI ${field}: ${msg}`);
}

/** Whether a buffer starts with the gzip magic bytes. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** The qform affine from the quaternion fields (NIfTI-1 method 2). */
export function qformAffine(quatern: readonly number[], pixdim: readonly number[]): Affine {
  const [b, c, d, qx, qy, qz] = quatern;
  const a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // Numerically 0 (a 180° rotation): normalise (b, c, d) as nifti1_io does.
    const n = Math.sqrt(b * b + c * c + d * d);
    return qformFrom(0, b / n, c / n, d / n, qx, qy, qz, pixdim);
  }
  return qformFrom(Math.sqrt(a), b, c, d, qx, qy, qz, pixdim);
}

function qformFrom(
  a: number,
  b: number,
  c: number,
  d: number,
  qx: number,
  qy: number,
  qz: number,
  pixdim: readonly number[],
): Affine {
  const qfac = pixdim[0] < 0 ? -1 : 1;
  const dx = pixdim[1],
    dy = pixdim[2],
    dz = pixdim[3] * qfac;
  const r = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  return [
    [r[0][0] * dx, r[0][1] * dy, r[0][2] * dz, qx],
    [r[1][0] * dx, r[1][1] * dy, r[1][2] * dz, qy],
    [r[2][0] * dx, r[2][1] * dy, r[2][2] * dz, qz],
    [0, 0, 0, 1],
  ];
}

/** Parses the 348-byte NIfTI-1 header (byte order from sizeof_hdr). */
export function parseNiftiHeader(buf: Uint8Array, file = '<buffer>'): NiftiHeader {
  if (buf.length < 348) fail(file, 'header', `file is ${buf.length} bytes, shorter than the 348-byte NIfTI-1 header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let le: boolean;
  const sizeLe = dv.getInt32(0, true);
  if (sizeLe === 348) le = true;
  else if (dv.getInt32(0, false) === 348) le = false;
  else if (sizeLe === 540 || dv.getInt32(0, false) === 540)
    fail(file, 'sizeof_hdr', 'NIfTI-2 (540) is not supported; convert to NIfTI-1');
  else fail(file, 'sizeof_hdr', `expected 348 (either byte order), got ${sizeLe}; not a NIfTI-1 file`);
  const i16 = (o: number): number => dv.getInt16(o, le);
  const f32 = (o: number): number => dv.getFloat32(o, le);
  const str = (o: number, n: number): string => {
    const bytes = buf.subarray(o, o + n);
    const z = bytes.indexOf(0);
    return Buffer.from(bytes.subarray(0, z < 0 ? n : z)).toString('latin1');
  };
  const magic = str(344, 4);
  if (magic === 'ni1')
    fail(file, 'magic', "'ni1' is a two-file (.hdr/.img) NIfTI pair; only single-file .nii/.nii.gz is supported");
  if (magic !== 'n+1') fail(file, 'magic', `expected 'n+1', got '${magic.replace(/[^\x20-\x7e]/g, '?')}'`);
  const dim = Array.from({ length: 8 }, (_, k) => i16(40 + 2 * k));
  const pixdim = Array.from({ length: 8 }, (_, k) => f32(76 + 4 * k));
  const datatypeCode = i16(70);
  const entry = (Object.entries(NIFTI_DATATYPES) as [NiftiDatatype, { code: number; bytes: number }][]).find(
    ([, v]) => v.code === datatypeCode,
  );
  if (!entry) {
    const known = UNSUPPORTED_DATATYPES[datatypeCode];
    fail(
      file,
      'datatype',
      known
        ? `${known} (code ${datatypeCode}) is not supported for CT volumes (supported: ${Object.keys(NIFTI_DATATYPES).join(', ')})`
        : `unknown datatype code ${datatypeCode}`,
    );
  }
  return {
    littleEndian: le,
    dim,
    pixdim,
    datatype: entry[0],
    datatypeCode,
    bitpix: i16(72),
    voxOffset: f32(108),
    sclSlope: f32(112),
    sclInter: f32(116),
    spatialUnits: buf[123] & 7,
    qformCode: i16(252),
    sformCode: i16(254),
    quatern: [f32(256), f32(260), f32(264), f32(268), f32(272), f32(276)],
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f32(280 + 16 * r + 4 * c))) as [number[], number[], number[]],
    magic,
    descrip: str(148, 80),
  };
}

/** Largest ni·nj·nk accepted by default: 2^29 = 536,870,912 voxels (512×512×2048; CT-RATE volumes are 512×512×≤ ~1000). */
export const DEFAULT_MAX_VOXELS = 2 ** 29;
/** Largest vox_offset accepted: the header plus at most 64 MiB of NIfTI extensions (bytes that are inflated and skipped). */
export const MAX_VOX_OFFSET = 348 + 64 * 2 ** 20;

/** Decompressed bytes produced per step while inflating a `.nii.gz` (the most inflated past the voxel data). */
const INFLATE_CHUNK = 1 << 20;

export interface NiftiReadOptions {
  /**
   * Voxel size in mm along i, j, k to use instead of pixdim[1..3] (the spacing in effect and the pixdim affine).
   * Without it, a pixdim[1..3] of 0, NaN or ±Inf is an error naming the field.
   */
  spacing?: [number, number, number];
  /** Largest ni·nj·nk accepted (default DEFAULT_MAX_VOXELS), checked from the header before any voxel is read. */
  maxVoxels?: number;
  /**
   * Called with the geometry from the header, before the voxel data are read or inflated (throw to refuse the
   * file: the pipeline checks the resampled grid size here).
   */
  check?: (geometry: NiftiGeometry) => void;
}

/** What the header says about the volume: validated, before any voxel is read. */
export interface NiftiGeometry extends NiftiSpatial {
  voxOffset: number;
  /** ni·nj·nk and the bytes they take as stored (n · bytes per voxel). */
  voxels: number;
  dataBytes: number;
}

/** Human-readable byte count (GiB / MiB / KiB / B). */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

function checkSpacingOverride(file: string, s: readonly number[]): void {
  if (s.length !== 3 || !s.every((x) => Number.isFinite(x) && x > 0)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `${file}: the spacing given instead of pixdim must be three positive numbers (mm along i, j, k), got [${s.join(', ')}]`,
    );
  }
}

/**
 * Validates a parsed header and derives the geometry (shape, spacing, affine, byte counts), enforcing the voxel
 * cap. Nothing volume-sized is allocated.
 */
export function niftiGeometry(h: NiftiHeader, file: string, opts: NiftiReadOptions = {}): NiftiGeometry {
  const ndim = h.dim[0];
  if (ndim < 1 || ndim > 7) fail(file, 'dim[0]', `must be 1..7, got ${ndim}`);
  const dims = [1, 2, 3].map((k) => (k <= ndim ? h.dim[k] : 1)) as [number, number, number];
  dims.forEach((n, k) => {
    if (n < 1) fail(file, `dim[${k + 1}]`, `must be >= 1, got ${n}`);
  });
  for (let k = 4; k <= ndim; k++) {
    if (h.dim[k] > 1)
      fail(file, `dim[${k}]`, `is ${h.dim[k]}: only 3-D volumes are supported (one time point / component)`);
  }
  const { bytes } = NIFTI_DATATYPES[h.datatype];
  const voxels = dims[0] * dims[1] * dims[2];
  const dataBytes = voxels * bytes;
  const maxVoxels = opts.maxVoxels ?? DEFAULT_MAX_VOXELS;
  if (voxels > maxVoxels) {
    fail(
      file,
      'dim[1..3]',
      `${dims.join('×')} is ${voxels.toLocaleString('en-US')} voxels (${h.datatype}: ${formatBytes(dataBytes)} of voxel data, ` +
        `${formatBytes(voxels * 4)} as float32), over the limit of ${maxVoxels.toLocaleString('en-US')} voxels (maxVoxels, CLI --max-voxels)`,
    );
  }
  if (h.bitpix !== bytes * 8) fail(file, 'bitpix', `${h.bitpix} does not match datatype ${h.datatype} (${bytes * 8})`);
  const voxOffset = h.voxOffset;
  if (!Number.isInteger(voxOffset) || voxOffset < 348)
    fail(file, 'vox_offset', `must be an integer >= 348 for a single-file NIfTI, got ${voxOffset}`);
  if (voxOffset > MAX_VOX_OFFSET) {
    fail(
      file,
      'vox_offset',
      `${voxOffset} leaves ${formatBytes(voxOffset - 348)} of extensions before the voxel data, over the limit of ${MAX_VOX_OFFSET} (header + 64 MiB)`,
    );
  }
  const unit = h.spatialUnits === 1 ? 1000 : h.spatialUnits === 3 ? 0.001 : 1;
  const unitName = h.spatialUnits === 1 ? ' (metres)' : h.spatialUnits === 3 ? ' (micrometres)' : '';
  const pixdimSpacing = [1, 2, 3].map((k) => (k <= ndim ? Math.abs(h.pixdim[k]) * unit : 1)) as [
    number,
    number,
    number,
  ];
  let spacing: [number, number, number];
  if (opts.spacing) {
    checkSpacingOverride(file, opts.spacing);
    spacing = [...opts.spacing] as [number, number, number];
  } else {
    pixdimSpacing.forEach((v, a) => {
      if (!(Number.isFinite(v) && v > 0)) {
        fail(
          file,
          `pixdim[${a + 1}]`,
          `${h.pixdim[a + 1]}${unitName} is not a usable voxel size (expected a finite, non-zero size); ` +
            "give the spacing explicitly to override it (ctclip predict --source-spacing X,Y,Z; ctclip preprocess: the metadata CSV's XYSpacing/ZSpacing)",
        );
      }
    });
    spacing = pixdimSpacing;
  }
  const sform: Affine | null = h.sformCode > 0 ? [...h.srow.map((r) => [...r]), [0, 0, 0, 1]] : null;
  // The qform scales its rotation by pixdim; an overriding spacing (in the file's units) replaces pixdim[1..3].
  const qPixdim = opts.spacing ? [h.pixdim[0], ...spacing.map((s) => s / unit)] : h.pixdim;
  const qform = h.qformCode > 0 ? qformAffine(h.quatern, qPixdim) : null;
  const affine: Affine = sform ??
    qform ?? [
      [spacing[0], 0, 0, 0],
      [0, spacing[1], 0, 0],
      [0, 0, spacing[2], 0],
      [0, 0, 0, 1],
    ];
  return {
    file,
    header: h,
    shape: dims,
    spacing,
    pixdimSpacing,
    affine,
    affineSource: sform ? 'sform' : qform ? 'qform' : 'pixdim',
    qform,
    sform,
    voxOffset,
    voxels,
    dataBytes,
  };
}

/** Converts the stored voxels (`raw`: exactly the geometry's dataBytes) to float32 with scl applied. */
function decodeVoxels(g: NiftiGeometry, raw: Uint8Array): NiftiVolume {
  const h = g.header;
  const n = g.voxels;
  const data = new Float32Array(n);
  convert(raw, 0, n, h.datatype, h.littleEndian, data);
  const slope = Number.isFinite(h.sclSlope) ? h.sclSlope : 0;
  const inter = Number.isFinite(h.sclInter) ? h.sclInter : 0;
  const sclApplied = slope !== 0 && !(slope === 1 && inter === 0);
  let storedRange: [number, number] | null = null;
  if (sclApplied) {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = data[i];
      if (v < min) min = v;
      if (v > max) max = v;
      data[i] = v * slope + inter;
    }
    storedRange = [min, max];
  }
  const { voxOffset: _o, voxels: _n, dataBytes: _b, ...spatial } = g;
  return { ...spatial, data, sclApplied, storedRange };
}

function geometryFromHead(head: Uint8Array, file: string, opts: NiftiReadOptions): NiftiGeometry {
  const g = niftiGeometry(parseNiftiHeader(head, file), file, opts);
  opts.check?.(g);
  return g;
}

function truncated(g: NiftiGeometry, have: number): never {
  const need = g.voxOffset + g.dataBytes;
  return fail(
    g.file,
    'data',
    `dim ${g.shape.join('×')} ${g.header.datatype} needs ${need} bytes from vox_offset ${g.voxOffset}, file has ${have} (truncated?)`,
  );
}

/**
 * Inflates a gzip held in memory up to `want` decompressed bytes (or all of it when shorter), never much past:
 * growing prefixes of the compressed input are inflated with Z_SYNC_FLUSH, each capped at `want` + one chunk.
 */
function gunzipPrefixSync(input: Uint8Array, want: number, file: string): Buffer {
  const cap = want + INFLATE_CHUNK;
  const inflate = (p: number): Buffer | null => {
    try {
      return zlib.gunzipSync(input.subarray(0, p), {
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        maxOutputLength: cap,
        chunkSize: INFLATE_CHUNK,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return null;
      return fail(file, 'gzip', `cannot decompress: ${(e as Error).message}`);
    }
  };
  let lo = 0; // a prefix known to inflate to < want bytes
  let p = Math.min(input.length, 1 << 16);
  for (;;) {
    const out = inflate(p);
    if (out && out.length >= want) return out;
    if (out) {
      if (p === input.length) {
        // The whole stream is shorter than `want`: a stream cut short is an error here, not a short file.
        try {
          zlib.gunzipSync(input, { maxOutputLength: cap });
        } catch (e) {
          fail(file, 'gzip', `cannot decompress: ${(e as Error).message}`);
        }
        return out;
      }
      lo = p;
      p = Math.min(input.length, p * 2);
      continue;
    }
    // Too much output from p bytes: the point where `want` is reached lies in (lo, p); bisect.
    let hi = p;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      const o = inflate(mid);
      if (o && o.length >= want) return o;
      if (o) lo = mid;
      else hi = mid;
    }
    // Unreachable for deflate (one compressed byte inflates to a few KiB at most); refuse rather than loop.
    return fail(file, 'gzip', `a single compressed byte inflates to more than ${INFLATE_CHUNK} bytes at offset ${lo}`);
  }
}

/**
 * Decodes a NIfTI-1 file held in memory (decompressed or gzip'ed). A gzip is inflated only up to the end of
 * the voxel data (vox_offset + n · bytes per voxel), after the header and the voxel cap were checked.
 */
export function parseNifti(input: Uint8Array, file = '<buffer>', opts: NiftiReadOptions = {}): NiftiVolume {
  if (!isGzip(input)) {
    const g = geometryFromHead(input, file, opts);
    const need = g.voxOffset + g.dataBytes;
    if (input.length < need) truncated(g, input.length);
    return decodeVoxels(g, input.subarray(g.voxOffset, need));
  }
  const head = gunzipPrefixSync(input, 348, file);
  const g = geometryFromHead(head, file, opts);
  const need = g.voxOffset + g.dataBytes;
  const all = head.length >= need ? head : gunzipPrefixSync(input, need, file);
  if (all.length < need) truncated(g, all.length);
  return decodeVoxels(g, all.subarray(g.voxOffset, need));
}

/**
 * Reads a `.nii` or `.nii.gz` file (gzip detected from the magic bytes). Regular files only (a FIFO or a device
 * is refused, see lib/io/regular-file.ts). The header is read and checked first (the voxel cap, `check`); then
 * exactly the voxel data are read: a `.nii` by positioned reads, a `.nii.gz` by streaming inflation (on the
 * libuv threadpool) that stops at the end of the voxel data, so bytes after it are never inflated.
 */
export async function readNifti(file: string, opts: NiftiReadOptions = {}): Promise<NiftiVolume> {
  const { handle, size } = await openRegularFile(file, { what: 'NIfTI file' });
  try {
    const head = Buffer.alloc(Math.min(size, 348));
    await readFully(handle, head, 0, file);
    if (isGzip(head)) return await readGzipped(handle, file, opts);
    const g = geometryFromHead(head, file, opts);
    const need = g.voxOffset + g.dataBytes;
    if (size < need) truncated(g, size);
    const raw = Buffer.allocUnsafeSlow(g.dataBytes);
    await readFully(handle, raw, g.voxOffset, file);
    return decodeVoxels(g, raw);
  } finally {
    await handle.close();
  }
}

async function readFully(handle: fs.promises.FileHandle, buf: Buffer, position: number, file: string): Promise<void> {
  let n = 0;
  while (n < buf.length) {
    let got: number;
    try {
      ({ bytesRead: got } = await handle.read(buf, n, Math.min(buf.length - n, 1 << 30), position + n));
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot read NIfTI file '${file}': ${(e as Error).message}`, { cause: e });
    }
    if (got === 0)
      throw new CtclipError(
        'IO_ERROR',
        `cannot read NIfTI file '${file}': it ended at byte ${position + n} while being read`,
      );
    n += got;
  }
}

async function readGzipped(handle: fs.promises.FileHandle, file: string, opts: NiftiReadOptions): Promise<NiftiVolume> {
  const src = handle.createReadStream({ start: 0, highWaterMark: 1 << 16, autoClose: false });
  const gz = zlib.createGunzip({ chunkSize: INFLATE_CHUNK });
  src.on('error', (e) => gz.destroy(e));
  src.pipe(gz);
  const head: Buffer[] = [];
  let headBytes = 0;
  let g: NiftiGeometry | null = null;
  let raw: Buffer | null = null;
  let pos = 0; // decompressed bytes seen
  let filled = 0; // voxel bytes copied into raw
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      if (!g) {
        head.push(chunk);
        headBytes += chunk.length;
        if (headBytes < 348) continue;
        const first = Buffer.concat(head, headBytes);
        head.length = 0;
        g = geometryFromHead(first, file, opts);
        raw = Buffer.allocUnsafeSlow(g.dataBytes);
        filled = copyVoxels(first, 0, g, raw, filled);
        pos = first.length;
      } else {
        filled = copyVoxels(chunk, pos, g, raw!, filled);
        pos += chunk.length;
      }
      if (filled === g.dataBytes) break; // the voxel data are complete: nothing after them is inflated
    }
  } catch (e) {
    if (e instanceof CtclipError) throw e;
    fail(file, 'gzip', `cannot decompress: ${(e as Error).message}`);
  } finally {
    src.unpipe(gz);
    src.destroy();
    gz.destroy();
  }
  if (!g) return fail(file, 'header', `file inflates to ${headBytes} bytes, shorter than the 348-byte NIfTI-1 header`);
  if (filled < g.dataBytes) truncated(g, g.voxOffset + filled);
  return decodeVoxels(g, raw!);
}

/** Copies the part of `chunk` (at decompressed offset `pos`) that lies in the voxel data into `raw`. */
function copyVoxels(chunk: Buffer, pos: number, g: NiftiGeometry, raw: Buffer, filled: number): number {
  const start = Math.max(g.voxOffset, pos);
  const end = Math.min(g.voxOffset + g.dataBytes, pos + chunk.length);
  if (end <= start) return filled;
  chunk.copy(raw, start - g.voxOffset, start - pos, end - pos);
  return Math.max(filled, end - g.voxOffset);
}

type TypedCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayLike<number> & { length: number };
};
const CTORS: Record<NiftiDatatype, TypedCtor> = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Converts n stored values at `offset` into `out` (native TypedArray.set), byte-swapping when needed. */
function convert(
  buf: Uint8Array,
  offset: number,
  n: number,
  dtype: NiftiDatatype,
  le: boolean,
  out: Float32Array,
): void {
  const { bytes } = NIFTI_DATATYPES[dtype];
  const start = buf.byteOffset + offset;
  let src: Uint8Array = buf.subarray(offset, offset + n * bytes);
  const swap = bytes > 1 && le !== HOST_LE;
  if (swap || start % bytes !== 0) {
    const copy = Buffer.allocUnsafeSlow(n * bytes); // own ArrayBuffer, offset 0: aligned
    copy.set(src);
    if (swap) {
      if (bytes === 2) copy.swap16();
      else if (bytes === 4) copy.swap32();
      else copy.swap64();
    }
    src = copy;
  }
  const view = new CTORS[dtype](src.buffer, src.byteOffset, n);
  out.set(view as unknown as ArrayLike<number>);
}

export interface WriteNiftiOptions {
  /** Values in NIfTI order (i fastest); converted to `datatype` (rounded for integer types). */
  data: ArrayLike<number>;
  /** [ni, nj, nk]. */
  shape: [number, number, number];
  datatype: NiftiDatatype;
  /** Voxel size along i, j, k (default 1, 1, 1). */
  spacing?: [number, number, number];
  /** sform rows (3×4 or 4×4); sets sform_code 1. Default: none. */
  sform?: number[][];
  /** qform quaternion + offset (+ qfac); sets qform_code 1. Default: none. */
  qform?: { b: number; c: number; d: number; offset: [number, number, number]; qfac?: 1 | -1 };
  sclSlope?: number;
  sclInter?: number;
  /** Default true. */
  littleEndian?: boolean;
  /** Default 352. */
  voxOffset?: number;
  /** xyzt_units spatial code (default 2 = mm). */
  spatialUnits?: number;
  /** Gzip the result (default false). */
  gzip?: boolean;
  /** Raw header overrides for error tests: [byteOffset, 'i16'|'i32'|'f32', value]. */
  patch?: [number, 'i16' | 'i32' | 'f32', number][];
}

/** Builds a single-file NIfTI-1 in memory (gzip'ed when `gzip`). */
export function writeNifti(o: WriteNiftiOptions): Buffer {
  const le = o.littleEndian ?? true;
  const voxOffset = o.voxOffset ?? 352;
  const { code, bytes } = NIFTI_DATATYPES[o.datatype];
  const n = o.shape[0] * o.shape[1] * o.shape[2];
  if (o.data.length !== n)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `writeNifti: data has ${o.data.length} values, shape ${o.shape.join('×')} needs ${n}`,
    );
  const buf = Buffer.alloc(voxOffset + n * bytes);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const sp = o.spacing ?? [1, 1, 1];
  dv.setInt32(0, 348, le);
  dv.setInt16(40, 3, le);
  o.shape.forEach((s, k) => dv.setInt16(42 + 2 * k, s, le));
  for (let k = 4; k < 8; k++) dv.setInt16(40 + 2 * k, 1, le);
  dv.setInt16(70, code, le);
  dv.setInt16(72, bytes * 8, le);
  dv.setFloat32(76, o.qform?.qfac ?? 1, le);
  sp.forEach((s, k) => dv.setFloat32(80 + 4 * k, s, le));
  for (let k = 4; k < 8; k++) dv.setFloat32(76 + 4 * k, 1, le);
  dv.setFloat32(108, voxOffset, le);
  dv.setFloat32(112, o.sclSlope ?? 1, le);
  dv.setFloat32(116, o.sclInter ?? 0, le);
  buf[123] = (o.spatialUnits ?? 2) | 8; // + seconds
  buf.write('ctclip writeNifti', 148, 'latin1');
  if (o.qform) {
    dv.setInt16(252, 1, le);
    [o.qform.b, o.qform.c, o.qform.d, ...o.qform.offset].forEach((v, k) => dv.setFloat32(256 + 4 * k, v, le));
  }
  if (o.sform) {
    dv.setInt16(254, 1, le);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat32(280 + 16 * r + 4 * c, o.sform[r][c], le);
  }
  buf.write('n+1\0', 344, 'latin1');
  for (const [off, kind, v] of o.patch ?? []) {
    if (kind === 'i16') dv.setInt16(off, v, le);
    else if (kind === 'i32') dv.setInt32(off, v, le);
    else dv.setFloat32(off, v, le);
  }
  const isInt = !o.datatype.startsWith('float');
  const put = {
    int8: (p: number, v: number) => dv.setInt8(p, v),
    uint8: (p: number, v: number) => dv.setUint8(p, v),
    int16: (p: number, v: number) => dv.setInt16(p, v, le),
    uint16: (p: number, v: number) => dv.setUint16(p, v, le),
    int32: (p: number, v: number) => dv.setInt32(p, v, le),
    uint32: (p: number, v: number) => dv.setUint32(p, v, le),
    float32: (p: number, v: number) => dv.setFloat32(p, v, le),
    float64: (p: number, v: number) => dv.setFloat64(p, v, le),
  }[o.datatype];
  if (le === HOST_LE && (buf.byteOffset + voxOffset) % bytes === 0) {
    const view = new CTORS[o.datatype](buf.buffer, buf.byteOffset + voxOffset, n) as unknown as {
      set(a: ArrayLike<number>): void;
    } & ArrayLike<number>;
    if (isInt) {
      const tmp = new Float64Array(n);
      for (let i = 0; i < n; i++) tmp[i] = Math.round(o.data[i]);
      view.set(tmp);
    } else view.set(o.data);
  } else {
    for (let i = 0; i < n; i++) put(voxOffset + i * bytes, isInt ? Math.round(o.data[i]) : o.data[i]);
  }
  return o.gzip ? zlib.gzipSync(buf, { level: 1 }) : buf;
}
