/**
 * The volume options predict and preprocess share (kept out of common.ts, which every command loads, so that the
 * other commands do not load the preprocessing modules).
 */
import { CtclipError } from '../errors';
import { DEFAULT_MAX_VOXELS } from '../preprocess/nifti';
import { DEFAULT_MAX_RESAMPLED_VOXELS } from '../preprocess/pipeline';
import { intOption } from './common';

/**
 * The options of the volume pipeline that both commands take: `--spacing`, `--window`, `--rescale`, `--reorient`
 * (parsed with common.ts's helpers) and the voxel limits (`voxelLimitOptions`).
 */
export const VOLUME_OPTIONS = {
  spacing: { type: 'string' },
  window: { type: 'string' },
  rescale: { type: 'string' },
  reorient: { type: 'string' },
  'max-voxels': { type: 'string' },
  'max-resampled-voxels': { type: 'string' },
} as const;

/**
 * `--max-voxels` and `--max-resampled-voxels` (the header-checked limits of a NIfTI volume before and after
 * resampling), each a positive integer that JavaScript holds exactly.
 */
export function voxelLimitOptions(values: { 'max-voxels'?: string; 'max-resampled-voxels'?: string }): {
  maxVoxels: number;
  maxResampledVoxels: number;
} {
  const limits = {
    maxVoxels: intOption('max-voxels', values['max-voxels'], DEFAULT_MAX_VOXELS),
    maxResampledVoxels: intOption('max-resampled-voxels', values['max-resampled-voxels'], DEFAULT_MAX_RESAMPLED_VOXELS),
  };
  for (const [flag, v] of [
    ['max-voxels', limits.maxVoxels],
    ['max-resampled-voxels', limits.maxResampledVoxels],
  ] as const) {
    if (!Number.isSafeInteger(v))
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `--${flag} must be an integer <= ${Number.MAX_SAFE_INTEGER}, got '${values[flag]}'`,
      );
  }
  return limits;
}
