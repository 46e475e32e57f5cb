/**
 * Typed wrapper of the native `preprocessVolume` op (native/napi/volume_ops.cc) plus the pure index math it
 * implements, so tests can check the native result against hand-computed expectations.
 *
 * Axis convention: NIfTI voxels are stored i fastest, so a Float32Array of ni·nj·nk values is, in C order, a
 * (nk, nj, ni) tensor. `preprocessVoxels` takes the NIfTI dims [ni, nj, nk] and an output axis order given as
 * NIfTI voxel axes (default [0, 1, 2] = (H, W, D) = (i, j, k) as stored) and hands the native op the matching
 * C-order permutation; the result is C-order in the output axes.
 */
import { CtclipError } from '../errors';
import { loadAddon, type PreprocessVolumeOptions, type PreprocessVolumeStats } from '../native';
import { readTensor, tensorFromBuffer } from '../tensor';

export type { PreprocessVolumeStats };

export type Vec3 = [number, number, number];

/** Centre crop/pad of one axis of length n to t (docs/preprocess.md, step 5). */
export interface CropPad {
  /** First kept source index. */
  start: number;
  /** Number of kept voxels: min(t, n). */
  keep: number;
  /** Pad voxels before / after (value −1). */
  before: number;
  after: number;
}

/** start = max((n − t)//2, 0), keep = min(t, n), before = (t − keep)//2, after = t − keep − before. */
export function cropPadPlan(n: number, t: number): CropPad {
  const start = Math.max(Math.floor((n - t) / 2), 0);
  const keep = Math.min(t, n);
  const before = Math.floor((t - keep) / 2);
  return { start, keep, before, after: t - keep - before };
}

/**
 * New size per axis = int(n · current / target), evaluated left to right as the reference's Python does
 * ((n · current) / target, then truncation). Throws DATA_ERROR when an axis would vanish.
 */
export function resampledSize(
  dims: readonly number[],
  current: readonly number[],
  target: readonly number[],
  what = 'volume',
): Vec3 {
  return [0, 1, 2].map((a) => {
    const s = Math.trunc((dims[a] * current[a]) / target[a]);
    if (!(s >= 1)) {
      throw new CtclipError(
        'DATA_ERROR',
        `${what}: axis ${a} of ${dims[a]} voxels at ${current[a]} mm resamples to ${s} voxels at ${target[a]} mm`,
      );
    }
    return s;
  }) as Vec3;
}

export interface VoxelOpOptions extends Omit<PreprocessVolumeOptions, 'axes' | 'flip' | 'size' | 'shape'> {
  /** Output axis a = NIfTI voxel axis order[a] (default [0, 1, 2]). */
  order?: Vec3;
  /** NIfTI voxel axes to flip (reorientation). */
  flip?: number[];
  /** Resampled size per OUTPUT axis (default: unchanged). */
  size?: Vec3;
  /** Crop/pad target per OUTPUT axis (default: the resampled size). */
  shape?: Vec3;
}

/** NIfTI voxel axis v is C-order tensor axis 2 − v of the (nk, nj, ni) view. */
const cAxis = (v: number): number => 2 - v;

/**
 * Runs the native op on NIfTI-ordered voxels. Returns the raw output bytes (float16 bits or float32) in C order
 * over the output axes, the output shape, and the native statistics.
 */
export async function preprocessVoxels(
  data: Float32Array,
  dims: Vec3,
  opts: VoxelOpOptions,
): Promise<{ bytes: Buffer; shape: Vec3; stats: PreprocessVolumeStats }> {
  const order = opts.order ?? [0, 1, 2];
  if ([...order].sort().join() !== '0,1,2')
    throw new CtclipError('ARGUMENT_ERROR', `order must be a permutation of 0, 1, 2, got [${order.join(', ')}]`);
  const input = tensorFromBuffer(data, 'float32', [dims[2], dims[1], dims[0]]);
  const { order: _o, flip, ...rest } = opts;
  void _o;
  const { volume, stats } = await loadAddon().preprocessVolume(input, {
    ...rest,
    axes: order.map(cAxis) as Vec3,
    flip: (flip ?? []).map(cAxis),
  });
  input.dispose();
  const out = readTensor(volume);
  volume.dispose();
  const bytes = Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  return { bytes, shape: out.shape as Vec3, stats };
}

/**
 * Plain trilinear resampling (libtorch interpolate, align_corners false, fp32) of a NIfTI-ordered float32
 * volume to `size` (per NIfTI axis); returns NIfTI-ordered float32 voxels.
 */
export async function resampleVolume(data: Float32Array, dims: Vec3, size: Vec3): Promise<Float32Array> {
  // Output order (k, j, i) over NIfTI axes gives back the i-fastest layout.
  const { bytes } = await preprocessVoxels(data, dims, {
    order: [2, 1, 0],
    size: [size[2], size[1], size[0]],
    dtype: 'float32',
  });
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}
