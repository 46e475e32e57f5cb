/**
 * The canonical preprocessing of one CT volume (the reference's, with ctclip's fixes; docs/preprocess.md):
 *
 *   read NIfTI (scl_slope/scl_inter applied, as nibabel's get_fdata does)
 *   → HU: the metadata-CSV RescaleSlope/Intercept, applied per `rescale` (auto | always | never)
 *   → clip to the window (default −1000, 1000)
 *   → trilinear resample to the target spacing (native libtorch interpolate, align_corners false, fp32;
 *     new size per axis = int(n · current / target))
 *   → divide by 1000 → centre crop/pad to the shape with −1 → float16, stored (H, W, D) C order.
 *
 * Orientation: none by default (H, W, D = NIfTI i, j, k as stored); `reorient` RAS/LPS is opt-in.
 * Spacing: an explicit `voxelSpacing` (predict --source-spacing) wins; else the metadata CSV's (XYSpacing first
 * value for i and j, ZSpacing for k) — that is what the reference resamples with; else the NIfTI pixdim, which
 * must then be finite and non-zero. A disagreement over 1 % between an explicit spacing and pixdim is a warning.
 *
 * Limits (docs/limits.md): the stored grid (ni·nj·nk ≤ `maxVoxels`) and the resampled grid the spacing ratio
 * implies (≤ `maxResampledVoxels`) are checked from the header, before the voxels are read or inflated
 * (`readVolume`), and again in `preprocessNifti` for volumes read elsewhere.
 *
 * `preprocessVolumeFile` is the in-memory path (`ctclip predict`): file → float16 Buffer + meta.
 */
import { CtclipError } from '../errors';
import { DEFAULT_MAX_VOXELS, formatBytes, readNifti, type Affine, type NiftiVolume } from './nifti';
import { orientationPlan, type Reorient } from './orientation';
import { preprocessVoxels, resampledSize, type PreprocessVolumeStats, type Vec3 } from './resample';

export type RescaleMode = 'auto' | 'always' | 'never';

export interface PreprocessOptions {
  /** Target spacing (mm) for H, W, D (default 0.75, 0.75, 1.5). */
  spacing?: Vec3;
  /** Output shape (H, W, D) (default 480, 480, 240). */
  shape?: Vec3;
  /** HU window (default −1000, 1000). */
  window?: [number, number];
  /** Default 'auto'. */
  rescale?: RescaleMode;
  /** Metadata-CSV RescaleSlope / RescaleIntercept (default 1 / 0). */
  slope?: number;
  intercept?: number;
  /** Metadata-CSV spacing: XYSpacing's first value (i and j) and ZSpacing (k). Default: from the NIfTI. */
  sourceSpacing?: { xy: number; z: number };
  /** Voxel size in mm along NIfTI i, j, k instead of pixdim (CLI `--source-spacing`); wins over `sourceSpacing`. */
  voxelSpacing?: Vec3;
  /** Default 'none'. */
  reorient?: Reorient;
  /** Largest stored grid ni·nj·nk (default DEFAULT_MAX_VOXELS = 2^29). */
  maxVoxels?: number;
  /** Largest resampled grid (the size before crop/pad; default DEFAULT_MAX_RESAMPLED_VOXELS = 2^29). */
  maxResampledVoxels?: number;
}

export const DEFAULT_SPACING: Vec3 = [0.75, 0.75, 1.5];
/** Largest resampled grid accepted by default: 2^29 = 536,870,912 voxels (2 GiB as float32). */
export const DEFAULT_MAX_RESAMPLED_VOXELS = 2 ** 29;
export { DEFAULT_MAX_VOXELS };
export const DEFAULT_SHAPE: Vec3 = [480, 480, 240];
export const DEFAULT_WINDOW: [number, number] = [-1000, 1000];
/** Divisor after resampling (HU → [−1, 1]) and the pad value. */
export const HU_DIVISOR = 1000;
export const PAD_VALUE = -1;
/** Air band used by rescale 'auto' and the air-mode check. */
export const AIR_BAND: [number, number] = [-1100, -900];

export interface VolumeMeta {
  file: string;
  datatype: string;
  /** NIfTI dims [ni, nj, nk] and pixdim spacing. */
  storedShape: Vec3;
  niftiSpacing: Vec3;
  affineSource: string;
  /** Spacing used for resampling, per output axis (H, W, D), and where it came from. */
  sourceSpacing: Vec3;
  spacingSource: 'override' | 'metadata-csv' | 'nifti';
  targetSpacing: Vec3;
  /** Size after resampling and the final shape, (H, W, D). */
  resampledSize: Vec3;
  shape: Vec3;
  window: [number, number];
  /** Stored value range (before scl; null when scl did not change the values) and value range after it. */
  storedRange: [number, number] | null;
  valueRange: [number, number];
  sclApplied: boolean;
  rescale: {
    mode: RescaleMode;
    slope: number;
    intercept: number;
    applied: boolean;
    /** Why: the rule that decided (see docs/preprocess.md). */
    reason: string;
    airVoxelsAsIs?: number;
    airVoxelsRescaled?: number;
  };
  /** HU air mode in [−1500, −500) (null: nothing below −500 HU). */
  airModeHu: number | null;
  /** Fraction of output voxels that are not air/padding (> −0.99). */
  nonAirFraction: number;
  orientation: { reorient: Reorient; order: Vec3; flip: number[]; inputCodes: string; outputCodes: string };
  warnings: string[];
  /** Wall seconds: read (+ gunzip + conversion), the native op, and its steps. */
  seconds: { read: number; native: number; nativeSteps: Record<string, number> };
}

export interface PreprocessedVolume {
  /** float16 bits, C order (H, W, D). */
  volume: Buffer;
  shape: Vec3;
  meta: VolumeMeta;
}

function checkVec(name: string, v: readonly number[], positive = true): void {
  if (v.length !== 3 || !v.every((x) => Number.isFinite(x) && (!positive || x > 0))) {
    throw new CtclipError('ARGUMENT_ERROR', `${name} must be three positive numbers, got [${v.join(', ')}]`);
  }
}

function checkLimit(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1))
    throw new CtclipError('ARGUMENT_ERROR', `${name} must be a positive integer, got ${v}`);
}

/** What `planVolume` needs from a volume: its header geometry (a NiftiGeometry or a NiftiVolume). */
export interface VolumeGeometry {
  file: string;
  shape: Vec3;
  /** Spacing in effect from the read (an override when one was given to the reader, else pixdim). */
  spacing: Vec3;
  /** |pixdim[1..3]| in mm as stored. */
  pixdimSpacing: Vec3;
  affine: Affine;
}

export interface VolumePlan {
  /** Spacing per NIfTI voxel axis used for resampling, and where it came from. */
  voxelSpacing: Vec3;
  spacingSource: VolumeMeta['spacingSource'];
  orientation: ReturnType<typeof orientationPlan>;
  /** Stored size and spacing per output axis, and the resampled size. */
  dims: Vec3;
  sourceSpacing: Vec3;
  size: Vec3;
  warnings: string[];
}

/** The spacing given instead of pixdim by the options (explicit voxelSpacing, else the metadata CSV), if any. */
export function spacingOverrideOf(opts: PreprocessOptions, file = 'volume'): Vec3 | undefined {
  if (opts.voxelSpacing) {
    checkVec('voxelSpacing (--source-spacing)', opts.voxelSpacing);
    return [...opts.voxelSpacing];
  }
  if (opts.sourceSpacing) {
    const { xy, z } = opts.sourceSpacing;
    if (!(xy > 0) || !(z > 0) || !Number.isFinite(xy) || !Number.isFinite(z)) {
      throw new CtclipError('DATA_ERROR', `${file}: metadata spacing must be positive, got XY ${xy}, Z ${z}`);
    }
    return [xy, xy, z];
  }
  return undefined;
}

/**
 * Spacing, orientation and resampled size of a volume from its header geometry, with the resampled-grid
 * limit enforced (DATA_ERROR naming the file, dim, pixdim and the limit). Pure; nothing volume-sized.
 */
export function planVolume(g: VolumeGeometry, opts: PreprocessOptions = {}): VolumePlan {
  const target = opts.spacing ?? DEFAULT_SPACING;
  checkVec('spacing', target);
  checkLimit('maxResampledVoxels', opts.maxResampledVoxels);
  const file = g.file;
  const warnings: string[] = [];
  const override = spacingOverrideOf(opts, file);
  let voxelSpacing: Vec3 = [...g.spacing];
  let spacingSource: VolumeMeta['spacingSource'] = 'nifti';
  if (override) {
    spacingSource = opts.voxelSpacing ? 'override' : 'metadata-csv';
    const what = opts.voxelSpacing ? 'the given spacing' : 'metadata CSV';
    const pix = g.pixdimSpacing;
    const bad = [0, 1, 2].filter((a) => !(Number.isFinite(pix[a]) && pix[a] > 0));
    if (bad.length) {
      warnings.push(
        `spacing: NIfTI ${bad.map((a) => `pixdim[${a + 1}] = ${pix[a]}`).join(', ')} is not a usable voxel size; ${what} [${override.join(', ')}] mm is used`,
      );
    } else {
      const off = [0, 1, 2].filter((a) => Math.abs(override[a] - pix[a]) > 0.01 * Math.max(override[a], pix[a]));
      if (off.length) {
        warnings.push(
          `spacing: ${what} [${override.join(', ')}] mm differs by > 1 % from the NIfTI pixdim [${pix.map((s) => +s.toFixed(6)).join(', ')}] mm ` +
            `(axes ${off.map((a) => 'ijk'[a]).join(', ')}); ${opts.voxelSpacing ? 'the given spacing' : 'the metadata CSV'} wins`,
        );
      }
    }
    voxelSpacing = override;
  }
  voxelSpacing.forEach((s, a) => {
    if (s < 0.1 || s > 10)
      warnings.push(`spacing: ${'ijk'[a]} spacing ${s} mm is implausible for CT (expected 0.1–10 mm)`);
  });
  const orientation = orientationPlan(g.affine, opts.reorient ?? 'none', file);
  const dims = orientation.order.map((v) => g.shape[v]) as Vec3;
  const sourceSpacing = orientation.order.map((v) => voxelSpacing[v]) as Vec3;
  const size = resampledSize(dims, sourceSpacing, target, file);
  const max = opts.maxResampledVoxels ?? DEFAULT_MAX_RESAMPLED_VOXELS;
  const n = size[0] * size[1] * size[2];
  if (n > max) {
    const fields =
      spacingSource === 'nifti'
        ? 'pixdim[1..3]'
        : spacingSource === 'override'
          ? 'the given spacing'
          : 'the metadata CSV spacing';
    throw new CtclipError(
      'DATA_ERROR',
      `${file}: NIfTI dim[1..3] ${g.shape.join('×')} at ${fields} ${voxelSpacing.map((x) => +x.toPrecision(6)).join(' × ')} mm resamples to ` +
        `${size.join('×')} = ${n.toLocaleString('en-US')} voxels at ${target.join(' × ')} mm (${formatBytes(n * 4)} as float32), ` +
        `over the limit of ${max.toLocaleString('en-US')} resampled voxels (maxResampledVoxels, CLI --max-resampled-voxels)`,
    );
  }
  return { voxelSpacing, spacingSource, orientation, dims, sourceSpacing, size, warnings };
}

/**
 * Reads a NIfTI file for `preprocessNifti`: the spacing override (if any) replaces pixdim, and the stored and
 * resampled grid limits are checked from the header before the voxel data are read or inflated.
 */
export async function readVolume(file: string, opts: PreprocessOptions = {}): Promise<NiftiVolume> {
  checkLimit('maxVoxels', opts.maxVoxels);
  return readNifti(file, {
    spacing: spacingOverrideOf(opts, file),
    maxVoxels: opts.maxVoxels ?? DEFAULT_MAX_VOXELS,
    check: (g) => void planVolume(g, opts),
  });
}

/**
 * Preprocesses an already-read NIfTI volume. With `consume`, the caller gives up `nifti.data`: the native op
 * writes the HU/clipped values into it instead of allocating another volume-sized buffer.
 */
export async function preprocessNifti(
  nifti: NiftiVolume,
  opts: PreprocessOptions = {},
  readSeconds = 0,
  consume = false,
): Promise<PreprocessedVolume> {
  const target = opts.spacing ?? DEFAULT_SPACING;
  const shape = opts.shape ?? DEFAULT_SHAPE;
  checkLimit('maxVoxels', opts.maxVoxels);
  const maxVoxels = opts.maxVoxels ?? DEFAULT_MAX_VOXELS;
  if (nifti.data.length > maxVoxels) {
    throw new CtclipError(
      'DATA_ERROR',
      `${nifti.file}: NIfTI dim[1..3] ${nifti.shape.join('×')} is ${nifti.data.length.toLocaleString('en-US')} voxels, over the limit of ${maxVoxels.toLocaleString('en-US')} voxels (maxVoxels, CLI --max-voxels)`,
    );
  }
  const window = opts.window ?? DEFAULT_WINDOW;
  const mode = opts.rescale ?? 'auto';
  const slope = opts.slope ?? 1;
  const intercept = opts.intercept ?? 0;
  checkVec('spacing', target);
  checkVec('shape', shape);
  if (!shape.every(Number.isInteger))
    throw new CtclipError('ARGUMENT_ERROR', `shape must be integers, got [${shape.join(', ')}]`);
  if (!(window[0] < window[1]))
    throw new CtclipError('ARGUMENT_ERROR', `window must be lo < hi, got [${window.join(', ')}]`);
  if (!Number.isFinite(slope) || !Number.isFinite(intercept)) {
    throw new CtclipError(
      'DATA_ERROR',
      `${nifti.file}: RescaleSlope/RescaleIntercept must be finite, got ${slope}/${intercept}`,
    );
  }
  const file = nifti.file;
  // Spacing per NIfTI voxel axis, orientation, resampled size (and its limit).
  const { spacingSource, orientation: orient, sourceSpacing, size, warnings } = planVolume(nifti, opts);

  if (mode === 'always' && slope === 1 && intercept === 0)
    warnings.push('rescale: always, but the metadata slope/intercept are 1/0 (no-op)');
  const t0 = performance.now();
  const {
    bytes,
    shape: outShape,
    stats,
  } = await preprocessVoxels(nifti.data, nifti.shape, {
    order: orient.order,
    flip: orient.flip,
    rescale: mode,
    slope,
    intercept,
    airLo: AIR_BAND[0],
    airHi: AIR_BAND[1],
    window,
    size,
    shape,
    divide: HU_DIVISOR,
    padValue: PAD_VALUE,
    dtype: 'float16',
    inPlace: consume,
  });
  const nativeSeconds = (performance.now() - t0) / 1000;

  const rescale = describeRescale(mode, slope, intercept, stats);
  if (stats.airMode === null) warnings.push('air: no voxel below −500 HU (no air in the volume? wrong rescale?)');
  else if (stats.airMode < AIR_BAND[0] || stats.airMode > AIR_BAND[1]) {
    warnings.push(
      `air: HU mode below −500 is ${stats.airMode} HU, expected ≈ −1000 (wrong rescale or not a CT in HU?)`,
    );
  }
  if (stats.nonAirFraction < 0.001)
    warnings.push(
      `empty: only ${(stats.nonAirFraction * 100).toFixed(3)} % of the output voxels are above air after crop/pad`,
    );

  return {
    volume: bytes,
    shape: outShape,
    meta: {
      file,
      datatype: nifti.header.datatype,
      storedShape: nifti.shape,
      niftiSpacing: nifti.pixdimSpacing,
      affineSource: nifti.affineSource,
      sourceSpacing,
      spacingSource,
      targetSpacing: [...target] as Vec3,
      resampledSize: stats.resampledSize,
      shape: outShape,
      window,
      storedRange: nifti.storedRange,
      valueRange: [stats.inputMin, stats.inputMax],
      sclApplied: nifti.sclApplied,
      rescale,
      airModeHu: stats.airMode,
      nonAirFraction: stats.nonAirFraction,
      orientation: orient,
      warnings,
      seconds: { read: readSeconds, native: nativeSeconds, nativeSteps: stats.seconds },
    },
  };
}

function describeRescale(
  mode: RescaleMode,
  slope: number,
  intercept: number,
  s: PreprocessVolumeStats,
): VolumeMeta['rescale'] {
  const base = { mode, slope, intercept, applied: s.rescaled };
  if (mode === 'never')
    return { ...base, reason: 'never: the data are used as stored (after NIfTI scl_slope/scl_inter)' };
  if (mode === 'always') return { ...base, reason: 'always: HU = RescaleSlope · value + RescaleIntercept' };
  const counts = { airVoxelsAsIs: s.airAsIs, airVoxelsRescaled: s.airRescaled };
  if (slope === 1 && intercept === 0)
    return { ...base, ...counts, reason: 'auto: slope/intercept are 1/0 (nothing to apply)' };
  return {
    ...base,
    ...counts,
    reason: s.rescaled
      ? `auto: applying slope/intercept puts more voxels in the air band [${AIR_BAND.join(', ')}] HU (${s.airRescaled} vs ${s.airAsIs} as stored): the data were raw`
      : `auto: the data as stored put at least as many voxels in the air band [${AIR_BAND.join(', ')}] HU (${s.airAsIs} vs ${s.airRescaled} rescaled): already HU`,
  };
}

/**
 * Reads and preprocesses one NIfTI file in memory: `{ volume: float16 Buffer (H, W, D), shape, meta }`.
 * This is the path `ctclip predict` will use for a single study.
 */
export async function preprocessVolumeFile(file: string, opts: PreprocessOptions = {}): Promise<PreprocessedVolume> {
  const t0 = performance.now();
  const nifti = await readVolume(file, opts);
  const read = (performance.now() - t0) / 1000;
  return preprocessNifti(nifti, opts, read, true);
}
