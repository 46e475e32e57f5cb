/**
 * Orientation from the NIfTI affine (world = RAS+). By default ctclip does NOT reorient: H, W, D are the NIfTI
 * voxel axes i, j, k as stored (what the reference's WebDataset chain does and the published checkpoint saw).
 * `--reorient RAS|LPS` permutes/flips the voxel axes so that H, W, D run along world x, y, z in that sense.
 */
import { CtclipError } from '../errors';
import type { Affine } from './nifti';
import type { Vec3 } from './resample';

export type Reorient = 'none' | 'RAS' | 'LPS';

/** For each voxel axis: the world axis it runs along most (0 x, 1 y, 2 z) and the sign of that component. */
export function voxelAxesToWorld(affine: Affine, what = 'volume'): { world: Vec3; sign: Vec3 } {
  const world: number[] = [];
  const sign: number[] = [];
  for (let v = 0; v < 3; v++) {
    const col = [affine[0][v], affine[1][v], affine[2][v]];
    let w = 0;
    for (let k = 1; k < 3; k++) if (Math.abs(col[k]) > Math.abs(col[w])) w = k;
    if (!(Math.abs(col[w]) > 0))
      throw new CtclipError('DATA_ERROR', `${what}: affine column ${v} is zero; orientation undefined`);
    world.push(w);
    sign.push(col[w] > 0 ? 1 : -1);
  }
  if (new Set(world).size !== 3) {
    throw new CtclipError(
      'DATA_ERROR',
      `${what}: two voxel axes run along the same world axis (oblique affine); cannot reorient`,
    );
  }
  return { world: world as Vec3, sign: sign as Vec3 };
}

/** nibabel-style axis codes of the voxel axes, e.g. 'LAS' for diag(−1, 1, 1). */
export function axisCodes(affine: Affine, what?: string): string {
  const { world, sign } = voxelAxesToWorld(affine, what);
  return world.map((w, v) => (sign[v] > 0 ? 'RAS' : 'LPI')[w]).join('');
}

export interface OrientationPlan {
  reorient: Reorient;
  /** Output axis a (H, W, D) = NIfTI voxel axis order[a]. */
  order: Vec3;
  /** NIfTI voxel axes flipped. */
  flip: number[];
  /** Axis codes of the stored voxels and of the output (H, W, D). */
  inputCodes: string;
  outputCodes: string;
}

export function orientationPlan(affine: Affine, reorient: Reorient, what?: string): OrientationPlan {
  let inputCodes: string;
  try {
    inputCodes = axisCodes(affine, what);
  } catch (e) {
    if (reorient === 'none') inputCodes = '???';
    else throw e;
  }
  if (reorient === 'none') return { reorient, order: [0, 1, 2], flip: [], inputCodes, outputCodes: inputCodes };
  const { world, sign } = voxelAxesToWorld(affine, what);
  const order = [0, 0, 0] as Vec3;
  const flip: number[] = [];
  for (let v = 0; v < 3; v++) {
    const w = world[v];
    order[w] = v;
    const positive = reorient === 'RAS' ? true : w === 2; // LPS: x and y point to −, z to +
    if (sign[v] > 0 !== positive) flip.push(v);
  }
  return { reorient, order, flip, inputCodes, outputCodes: reorient };
}
