/**
 * The canonical preprocessing on NIfTI files built in memory with known geometry: a sphere of known radius and
 * HU inside air. Values, position and size after resampling and crop/pad; gzip and plain files; the rescale
 * cases; the native resample against an independent trilinear (align_corners = false) implementation.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { float16ArrayToFloat32 } from '../../lib/data/float16';
import { writeNifti, type NiftiDatatype } from '../../lib/preprocess/nifti';
import { preprocessVolumeFile, type PreprocessOptions } from '../../lib/preprocess/pipeline';
import { cropPadPlan, preprocessVoxels, resampleVolume, type Vec3 } from '../../lib/preprocess/resample';
import { requireAddon } from '../helpers/native';

// Input: 48 × 40 × 24 voxels of 1 × 1 × 2 mm; sphere of radius 8 mm centred at (20, 22, 28) mm from the volume's
// first edge (NOT the centre, so position errors and axis swaps show), 40 HU in air of −1000 HU.
const DIMS: Vec3 = [48, 40, 24];
const SPACING: Vec3 = [1, 1, 2];
const CENTRE_MM = [20, 22, 28];
const RADIUS = 8;
const SPHERE_HU = 40;
// Target spacing 2 × 2 × 4 mm (exactly a 2×2×2 box average under align_corners = false): resampled
// 24 × 20 × 12; shape 20 × 26 × 12 crops H by 2 each side and pads W by 3 each side.
const TARGET: Vec3 = [2, 2, 4];
const SHAPE: Vec3 = [20, 26, 12];

function sphereHu(): { hu: Float32Array; inside: number } {
  const hu = new Float32Array(DIMS[0] * DIMS[1] * DIMS[2]).fill(-1000);
  let inside = 0;
  for (let k = 0; k < DIMS[2]; k++)
    for (let j = 0; j < DIMS[1]; j++)
      for (let i = 0; i < DIMS[0]; i++) {
        const p = [(i + 0.5) * SPACING[0], (j + 0.5) * SPACING[1], (k + 0.5) * SPACING[2]];
        const d2 = p.reduce((s, v, a) => s + (v - CENTRE_MM[a]) ** 2, 0);
        if (d2 <= RADIUS * RADIUS) {
          hu[i + DIMS[0] * (j + DIMS[1] * k)] = SPHERE_HU;
          inside++;
        }
      }
  return { hu, inside };
}

const { hu: HU, inside: INSIDE } = sphereHu();

/** Output value at (h, w, d) of a C-order (H, W, D) float32 array. */
const at = (v: Float32Array, s: Vec3, h: number, w: number, d: number): number => v[(h * s[1] + w) * s[2] + d];

function centroid(v: Float32Array, s: Vec3): { c: number[]; mass: number } {
  const c = [0, 0, 0];
  let mass = 0;
  for (let h = 0; h < s[0]; h++)
    for (let w = 0; w < s[1]; w++)
      for (let d = 0; d < s[2]; d++) {
        const m = at(v, s, h, w, d) + 1;
        mass += m;
        c[0] += m * h;
        c[1] += m * w;
        c[2] += m * d;
      }
  return { c: c.map((x) => x / mass), mass };
}

describe('preprocess: sphere phantom through the canonical pipeline', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-pre-sphere-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  function file(
    name: string,
    data: Float32Array,
    datatype: NiftiDatatype,
    extra: { gzip?: boolean; sclSlope?: number; sclInter?: number } = {},
  ): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, writeNifti({ data, shape: DIMS, datatype, spacing: SPACING, ...extra }));
    return p;
  }

  async function run(
    p: string,
    o: PreprocessOptions,
  ): Promise<{ v: Float32Array; meta: Awaited<ReturnType<typeof preprocessVolumeFile>>['meta'] }> {
    const r = await preprocessVolumeFile(p, { spacing: TARGET, shape: SHAPE, ...o });
    expect(r.shape).to.deep.equal(SHAPE);
    expect(r.volume.byteLength).to.equal(SHAPE[0] * SHAPE[1] * SHAPE[2] * 2);
    return {
      v: float16ArrayToFloat32(new Uint16Array(r.volume.buffer, r.volume.byteOffset, r.volume.byteLength / 2)),
      meta: r.meta,
    };
  }

  function expectSphere(v: Float32Array): void {
    // Sizes and crop/pad bookkeeping.
    const hPlan = cropPadPlan(24, SHAPE[0]);
    const wPlan = cropPadPlan(20, SHAPE[1]);
    expect(hPlan).to.deep.equal({ start: 2, keep: 20, before: 0, after: 0 });
    expect(wPlan).to.deep.equal({ start: 0, keep: 20, before: 3, after: 3 });
    // Padding is exactly −1 (W columns 0..2 and 23..25), and so is air.
    for (const w of [0, 2, 23, 25])
      for (let h = 0; h < SHAPE[0]; h++) for (let d = 0; d < SHAPE[2]; d++) expect(at(v, SHAPE, h, w, d)).to.equal(-1);
    expect(at(v, SHAPE, 0, 5, 0)).to.equal(-1);
    // Every value is in [−1, 0.04].
    let min = Infinity,
      max = -Infinity;
    for (const x of v) {
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    expect(min).to.equal(-1);
    expect(max).to.be.closeTo(0.04, 1e-4); // float16(0.04)
    // Centre of the sphere in output indices: physical c / target − 0.5, − crop start, + pad before.
    const expected = [
      CENTRE_MM[0] / TARGET[0] - 0.5 - hPlan.start,
      CENTRE_MM[1] / TARGET[1] - 0.5 + wPlan.before,
      CENTRE_MM[2] / TARGET[2] - 0.5,
    ];
    expect(expected).to.deep.equal([7.5, 13.5, 6.5]);
    // The voxels around the centre are fully inside the sphere (2×2×2 blocks of sphere voxels).
    expect(at(v, SHAPE, 7, 13, 6)).to.be.closeTo(0.04, 1e-4);
    expect(at(v, SHAPE, 8, 14, 7)).to.be.closeTo(0.04, 1e-4);
    const { c, mass } = centroid(v, SHAPE);
    c.forEach((x, a) => expect(x, `centroid axis ${a}`).to.be.closeTo(expected[a], 0.05));
    // Size: the 2×2×2 box average keeps the integral: Σ(v + 1) = inside voxels × 1.04 / 8.
    expect(mass).to.be.closeTo((INSIDE * (1 + SPHERE_HU / 1000)) / 8, 0.002 * mass);
    // ... and that is the sphere's volume within the voxelisation error (± 3 %).
    const volumeMm3 = (mass / 1.04) * TARGET[0] * TARGET[1] * TARGET[2];
    expect(volumeMm3).to.be.closeTo((4 / 3) * Math.PI * RADIUS ** 3, 0.03 * volumeMm3);
  }

  it('already-HU int16, plain .nii: values, position and size', async () => {
    const { v, meta } = await run(file('hu.nii', HU, 'int16'), { rescale: 'auto' });
    expectSphere(v);
    expect(meta.resampledSize).to.deep.equal([24, 20, 12]);
    expect(meta.rescale).to.include({ mode: 'auto', applied: false });
    expect(meta.airModeHu).to.equal(-990); // the 20-HU bin [−1000, −980)
    expect(meta.warnings).to.deep.equal([]);
    expect(meta.spacingSource).to.equal('nifti');
  });

  it('gzip gives the same bytes as plain', async () => {
    const a = await preprocessVolumeFile(file('g.nii', HU, 'float32'), { spacing: TARGET, shape: SHAPE });
    const b = await preprocessVolumeFile(file('g.nii.gz', HU, 'float32', { gzip: true }), {
      spacing: TARGET,
      shape: SHAPE,
    });
    expect(Buffer.compare(a.volume, b.volume)).to.equal(0);
    expectSphere(float16ArrayToFloat32(new Uint16Array(b.volume.buffer, b.volume.byteOffset, b.volume.byteLength / 2)));
  });

  it('already-HU data with a CSV intercept of −1024 is NOT rescaled again under auto (it would be under always)', async () => {
    const p = file('hu2.nii.gz', HU, 'int16', { gzip: true });
    const auto = await run(p, { rescale: 'auto', slope: 1, intercept: -1024 });
    expect(auto.meta.rescale.applied).to.equal(false);
    expect(auto.meta.rescale.airVoxelsAsIs).to.be.greaterThan(0);
    expect(auto.meta.rescale.airVoxelsRescaled).to.equal(INSIDE); // only the sphere (40 − 1024 HU) lands in the band
    expectSphere(auto.v);
    // The reference's double rescale, for contrast: sphere at 40 − 1024 HU, air clipped to −1.
    const always = await run(p, { rescale: 'always', slope: 1, intercept: -1024 });
    expect(always.meta.rescale.applied).to.equal(true);
    expect(at(always.v, SHAPE, 7, 13, 6)).to.be.closeTo(-0.984, 1e-3);
  });

  it('raw stored values + slope/intercept: applied under always and under auto; never keeps raw (and warns)', async () => {
    const raw = HU.map((x) => x + 1024); // DICOM-style stored values: air 24, sphere 1064
    const p = file('raw.nii.gz', raw, 'uint16', { gzip: true });
    for (const mode of ['always', 'auto'] as const) {
      const r = await run(p, { rescale: mode, slope: 1, intercept: -1024 });
      expect(r.meta.rescale.applied, mode).to.equal(true);
      expectSphere(r.v);
    }
    const never = await run(p, { rescale: 'never', slope: 1, intercept: -1024 });
    expect(never.meta.rescale.applied).to.equal(false);
    expect(at(never.v, SHAPE, 0, 5, 0)).to.be.closeTo(0.024, 1e-4);
    expect(never.meta.warnings.join()).to.match(/no voxel below −500 HU/);
    // A slope ≠ 1: stored = (HU + 1024) / 2 with slope 2.
    const half = file(
      'raw2.nii',
      raw.map((x) => x / 2),
      'float32',
    );
    expectSphere((await run(half, { rescale: 'auto', slope: 2, intercept: -1024 })).v);
  });

  it('NIfTI scl_slope/scl_inter is applied by the reader; auto then keeps the CSV intercept off', async () => {
    const raw = HU.map((x) => x + 1024);
    const p = file('scl.nii', raw, 'int16', { sclSlope: 1, sclInter: -1024 });
    const r = await run(p, { rescale: 'auto', slope: 1, intercept: -1024 });
    expect(r.meta.sclApplied).to.equal(true);
    expect(r.meta.rescale.applied).to.equal(false);
    expectSphere(r.v);
  });

  it('metadata spacing wins over pixdim and a > 1 % disagreement is a warning', async () => {
    const p = file('sp.nii', HU, 'int16');
    const same = await run(p, { sourceSpacing: { xy: 1.005, z: 2 } });
    expect(same.meta.spacingSource).to.equal('metadata-csv');
    expect(same.meta.warnings).to.deep.equal([]);
    const r = await preprocessVolumeFile(p, { spacing: TARGET, shape: SHAPE, sourceSpacing: { xy: 0.5, z: 2 } });
    expect(r.meta.resampledSize).to.deep.equal([12, 10, 12]); // int(48 · 0.5 / 2), int(40 · 0.5 / 2)
    expect(r.meta.warnings.join()).to.match(
      /metadata CSV \[0\.5, 0\.5, 2\] mm differs by > 1 % .* the metadata CSV wins/,
    );
  });

  it('flags a volume that is empty after crop', async () => {
    const air = new Float32Array(HU.length).fill(-1000);
    const r = await run(file('air.nii', air, 'int16'), {});
    expect(r.meta.warnings.join()).to.match(/empty: only 0\.000 %/);
  });

  it('reorient RAS flips a LAS volume along H', async () => {
    const p = path.join(dir, 'las.nii');
    fs.writeFileSync(
      p,
      writeNifti({
        data: HU,
        shape: DIMS,
        datatype: 'int16',
        spacing: SPACING,
        sform: [
          [-1, 0, 0, 0],
          [0, 1, 0, 0],
          [0, 0, 2, 0],
        ],
      }),
    );
    const none = await run(p, { reorient: 'none' });
    const ras = await run(p, { reorient: 'RAS' });
    expect(ras.meta.orientation).to.include({ inputCodes: 'LAS', outputCodes: 'RAS' });
    // The flipped sphere centre: H index from the other end (48 − 20 = 28 mm).
    const { c } = centroid(ras.v, SHAPE);
    expect(c[0]).to.be.closeTo(28 / 2 - 0.5 - 2, 0.05);
    expect(c[1]).to.be.closeTo(13.5, 0.05);
    expect(centroid(none.v, SHAPE).c[0]).to.be.closeTo(7.5, 0.05);
  });
});

/** torch's upsample_trilinear3d (align_corners = false, explicit size) per axis, in plain JS. */
function linearIndex(nIn: number, nOut: number, d: number): [number, number, number] {
  const scale = nIn / nOut;
  const src = Math.max((d + 0.5) * scale - 0.5, 0);
  const i0 = Math.floor(src);
  const i1 = Math.min(i0 + 1, nIn - 1);
  return [i0, i1, src - i0];
}

function trilinearRef(data: Float32Array, dims: Vec3, size: Vec3): Float64Array {
  const out = new Float64Array(size[0] * size[1] * size[2]);
  for (let k = 0; k < size[2]; k++) {
    const [k0, k1, lk] = linearIndex(dims[2], size[2], k);
    for (let j = 0; j < size[1]; j++) {
      const [j0, j1, lj] = linearIndex(dims[1], size[1], j);
      for (let i = 0; i < size[0]; i++) {
        const [i0, i1, li] = linearIndex(dims[0], size[0], i);
        const g = (a: number, b: number, c: number): number => data[a + dims[0] * (b + dims[1] * c)];
        const lerp = (x: number, y: number, t: number): number => x * (1 - t) + y * t;
        const c00 = lerp(g(i0, j0, k0), g(i1, j0, k0), li);
        const c10 = lerp(g(i0, j1, k0), g(i1, j1, k0), li);
        const c01 = lerp(g(i0, j0, k1), g(i1, j0, k1), li);
        const c11 = lerp(g(i0, j1, k1), g(i1, j1, k1), li);
        out[i + size[0] * (j + size[1] * k)] = lerp(lerp(c00, c10, lj), lerp(c01, c11, lj), lk);
      }
    }
  }
  return out;
}

describe('preprocess: native resample vs an independent trilinear', function () {
  before(function () {
    requireAddon(this);
  });

  it('matches for down- and up-sampling with non-integer factors, per NIfTI axis', async () => {
    const dims: Vec3 = [7, 5, 6];
    const data = new Float32Array(dims[0] * dims[1] * dims[2]).map((_, n) => Math.sin(n * 12.9898) * 437.5);
    for (const size of [
      [5, 9, 4],
      [7, 5, 6],
      [13, 3, 11],
    ] as Vec3[]) {
      const got = await resampleVolume(data, dims, size);
      const ref = trilinearRef(data, dims, size);
      expect(got.length).to.equal(ref.length);
      let worst = 0;
      for (let n = 0; n < ref.length; n++) worst = Math.max(worst, Math.abs(got[n] - ref[n]));
      expect(worst, `size ${size}`).to.be.lessThan(1e-3);
    }
  });

  it('the fused op equals resample → /1000 → crop/pad → float16 done step by step', async () => {
    const dims: Vec3 = [9, 8, 7];
    const data = new Float32Array(dims[0] * dims[1] * dims[2]).map((_, n) => -1000 + ((n * 37) % 2001));
    const size: Vec3 = [6, 11, 5];
    const shape: Vec3 = [8, 7, 5];
    const { bytes, stats } = await preprocessVoxels(data, dims, {
      window: [-500, 700],
      size,
      shape,
      divide: 1000,
      padValue: -1,
      dtype: 'float32',
    });
    const got = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    const clipped = data.map((x) => Math.min(Math.max(x, -500), 700));
    const res = trilinearRef(clipped, dims, size);
    const plans = [0, 1, 2].map((a) => cropPadPlan(size[a], shape[a]));
    expect(stats.resampledSize).to.deep.equal(size);
    for (let h = 0; h < shape[0]; h++)
      for (let w = 0; w < shape[1]; w++)
        for (let d = 0; d < shape[2]; d++) {
          const src = [h, w, d].map((x, a) => x - plans[a].before + plans[a].start);
          const inside = src.every((x, a) => x >= plans[a].start && x < plans[a].start + plans[a].keep);
          const want = inside ? res[src[0] + size[0] * (src[1] + size[1] * src[2])] / 1000 : -1;
          expect(got[(h * shape[1] + w) * shape[2] + d]).to.be.closeTo(want, 1e-6);
        }
  });
});
