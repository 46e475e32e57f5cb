/**
 * Hostile NIfTI files for the limit tests: a real `.nii.gz` whose header declares a huge grid (or is followed by
 * a long run of bytes after the voxel data) but whose compressed size is tiny. The zeros are written as repeated
 * gzip members (a `.gz` may hold several; gunzip concatenates them), so making a 2 GiB bomb costs one 64 MiB
 * deflate and a few MB of disk.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { writeNifti, type WriteNiftiOptions } from '../../lib/preprocess/nifti';

const MEMBER_BYTES = 64 * 2 ** 20;
const members = new Map<number, Buffer>();

/** One gzip member holding `n` zero bytes (cached). */
function zeroMember(n: number): Buffer {
  let m = members.get(n);
  if (!m) {
    m = zlib.gzipSync(Buffer.alloc(n), { level: 9 });
    members.set(n, m);
  }
  return m;
}

/** Writes gzip(head) followed by `zeroBytes` zero bytes (as gzip members) to `file`; returns the file size. */
export function writeGzipWithZeros(file: string, head: Buffer, zeroBytes: number): number {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, zlib.gzipSync(head, { level: 1 }));
    let left = zeroBytes;
    while (left > 0) {
      const n = Math.min(left, MEMBER_BYTES);
      fs.writeSync(fd, zeroMember(n));
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}

/**
 * A `.nii.gz` whose header declares `shape` (int16 unless given) with all-zero voxels: a complete, valid file
 * of shape[0]·shape[1]·shape[2]·2 voxel bytes that is only ~1/1000 of that on disk.
 */
export function writeNiftiBomb(
  file: string,
  shape: [number, number, number],
  extra: Partial<WriteNiftiOptions> = {},
): number {
  const head = writeNifti({
    data: [0],
    shape: [1, 1, 1],
    datatype: 'int16',
    ...extra,
    patch: [[42, 'i16', shape[0]], [44, 'i16', shape[1]], [46, 'i16', shape[2]], ...(extra.patch ?? [])],
  });
  const voxOffset = extra.voxOffset ?? 352;
  const bytes = shape[0] * shape[1] * shape[2] * 2;
  return writeGzipWithZeros(file, head.subarray(0, voxOffset), bytes);
}

/** The bytes of an int16 NIfTI volume of air (−1000 HU) with the given grid and voxel size (gzipped by default). */
export function airNifti(shape: [number, number, number], spacing: [number, number, number], gzip = true): Buffer {
  return writeNifti({
    data: new Array(shape[0] * shape[1] * shape[2]).fill(-1000),
    shape,
    datatype: 'int16',
    spacing,
    gzip,
  });
}

/** Writes `airNifti(shape, spacing)` to `file` (a .nii.gz). */
export function writeAirVolume(file: string, shape: [number, number, number], spacing: [number, number, number]): void {
  fs.writeFileSync(file, airNifti(shape, spacing));
}
