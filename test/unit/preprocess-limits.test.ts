/**
 * Hostile NIfTI files (docs/limits.md, "NIfTI volumes"): real `.nii.gz` files on disk whose header declares a
 * huge grid, that carry a gigabyte of bytes after the voxel data, whose pixdim is 0 / NaN / ±Inf, or that are
 * not regular files. The header is checked before anything volume-sized is read, allocated or inflated; memory
 * is asserted as the growth of this process's peak RSS, far below what reading the file would cost.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  DEFAULT_MAX_VOXELS,
  niftiGeometry,
  parseNifti,
  parseNiftiHeader,
  readNifti,
  writeNifti,
} from '../../lib/preprocess/nifti';
import { DEFAULT_MAX_RESAMPLED_VOXELS, planVolume, readVolume } from '../../lib/preprocess/pipeline';
import { writeGzipWithZeros, writeNiftiBomb } from '../helpers/nifti-bombs';
import { rejection } from '../helpers/errors';

/** Peak RSS of this process in MiB (monotonic: growth across a call bounds what the call allocated). */
const peakMiB = (): number => process.resourceUsage().maxRSS / 1024;

describe('preprocess limits: hostile NIfTI files', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-nifti-limits-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('grid size from the header (before inflating or resampling)', () => {
    it('refuses a 2 MB .nii.gz declaring 1024³ int16 voxels, naming the file, dim and limit, without inflating it', async () => {
      const file = path.join(dir, 'bomb1024.nii.gz');
      const size = writeNiftiBomb(file, [1024, 1024, 1024]);
      expect(size).to.be.below(3 * 2 ** 20); // a complete, valid 2 GiB volume, ~2 MB on disk
      const before = peakMiB();
      const e = await rejection(readNifti(file));
      expect(e.code).to.equal('DATA_ERROR');
      expect(e.message)
        .to.contain(file)
        .and.contain('dim[1..3]')
        .and.contain('1024×1024×1024')
        .and.contain('536,870,912 voxels');
      // Reading it would take ≥ 6 GiB (2 GiB inflated + 4 GiB float32).
      expect(peakMiB() - before).to.be.below(200);
      // The in-memory reader checks the header the same way.
      const e2 = (() => {
        try {
          parseNifti(fs.readFileSync(file), 'mem.nii.gz');
        } catch (err) {
          return err as Error;
        }
        return null;
      })();
      expect(e2?.message).to.contain('mem.nii.gz: NIfTI dim[1..3]: 1024×1024×1024');
      expect(peakMiB() - before).to.be.below(200);
    });

    it('maxVoxels is configurable: a 512³ volume passes the default and fails a lower cap before its 256 MiB are inflated', async () => {
      const file = path.join(dir, 'bomb512.nii.gz');
      writeNiftiBomb(file, [512, 512, 512]);
      const before = peakMiB();
      const e = await rejection(readNifti(file, { maxVoxels: 2 ** 24 }));
      expect(e.message).to.match(
        /bomb512\.nii\.gz: NIfTI dim\[1\.\.3\]: 512×512×512 is 134,217,728 voxels .* over the limit of 16,777,216 voxels/,
      );
      expect(peakMiB() - before).to.be.below(100);
    });

    it('the defaults admit a CT-RATE volume (512×512×1000 int16 at 0.7×0.7×1 mm) with margin', () => {
      const head = writeNifti({
        data: [0],
        shape: [1, 1, 1],
        datatype: 'int16',
        spacing: [0.7, 0.7, 1],
        patch: [
          [42, 'i16', 512],
          [44, 'i16', 512],
          [46, 'i16', 1000],
        ],
      });
      const g = niftiGeometry(parseNiftiHeader(head, 'ct.nii.gz'), 'ct.nii.gz');
      expect(g.voxels).to.equal(262_144_000);
      expect(g.voxels * 2).to.be.at.most(DEFAULT_MAX_VOXELS);
      const plan = planVolume(g, { spacing: [0.75, 0.75, 1.5] });
      expect(plan.size).to.deep.equal([477, 477, 666]);
      expect(plan.size[0] * plan.size[1] * plan.size[2] * 3).to.be.below(DEFAULT_MAX_RESAMPLED_VOXELS);
    });

    it('refuses a resampled grid over the limit (the cube of the spacing ratio) from the header, naming dim, pixdim and limit', async () => {
      // 100³ voxels at 10 mm → 1333×1333×666 at 0.75×0.75×1.5 mm: 1.18 G voxels (4.4 GiB as float32).
      const file = path.join(dir, 'coarse.nii.gz');
      fs.writeFileSync(
        file,
        writeNifti({
          data: new Float32Array(100 * 100 * 100),
          shape: [100, 100, 100],
          datatype: 'int16',
          spacing: [10, 10, 10],
          gzip: true,
        }),
      );
      const before = peakMiB();
      const e = await rejection(readVolume(file, { spacing: [0.75, 0.75, 1.5] }));
      expect(e.code).to.equal('DATA_ERROR');
      expect(e.message).to.contain(
        `${file}: NIfTI dim[1..3] 100×100×100 at pixdim[1..3] 10 × 10 × 10 mm resamples to 1333×1333×666`,
      );
      expect(e.message).to.contain('over the limit of 536,870,912 resampled voxels');
      // A lower cap is honoured too (the grid 133×133×66 at 7.5 mm × 7.5 mm × 15 mm).
      const e2 = await rejection(readVolume(file, { spacing: [7.5, 7.5, 15], maxResampledVoxels: 1000 }));
      expect(e2.message).to.contain('resamples to 133×133×66').and.contain('over the limit of 1,000 resampled voxels');
      expect(peakMiB() - before).to.be.below(100);
      expect((await readVolume(file, { spacing: [7.5, 7.5, 15] })).shape).to.deep.equal([100, 100, 100]);
    });
  });

  it('refuses a vox_offset that would skip more than 64 MiB of extensions, naming the field', () => {
    const b = writeNifti({ data: [0], shape: [1, 1, 1], datatype: 'int16', patch: [[108, 'f32', 2 ** 30]] });
    expect(() => parseNifti(b, 'ext.nii')).to.throw(
      /ext\.nii: NIfTI vox_offset: 1073741824 leaves 1024\.0 MiB of extensions .* over the limit/,
    );
  });

  describe('bytes after the voxel data are never inflated', () => {
    it('reads an 8³ volume followed by 1 GiB of zeros in bounded memory, streaming and in memory', async () => {
      const vals = Array.from({ length: 512 }, (_, i) => i - 256);
      const file = path.join(dir, 'trailing.nii.gz');
      writeGzipWithZeros(file, writeNifti({ data: vals, shape: [8, 8, 8], datatype: 'int16' }), 2 ** 30);
      const before = peakMiB();
      const v = await readNifti(file);
      expect(Array.from(v.data)).to.deep.equal(vals);
      const m = parseNifti(fs.readFileSync(file), 'mem.nii.gz');
      expect(Array.from(m.data)).to.deep.equal(vals);
      // Inflating the tail would take ≥ 1 GiB.
      expect(peakMiB() - before).to.be.below(100);
    });

    it('still refuses a gzip cut short inside the voxel data', async () => {
      const full = writeNifti({ data: new Array(4096).fill(7), shape: [16, 16, 16], datatype: 'int16', gzip: true });
      const file = path.join(dir, 'cut.nii.gz');
      fs.writeFileSync(file, full.subarray(0, full.length - 20));
      const e = await rejection(readNifti(file));
      expect(e.message).to.match(/cut\.nii\.gz: NIfTI (gzip: cannot decompress|data: .*truncated)/);
    });
  });

  describe('pixdim must be a usable voxel size unless the spacing is given', () => {
    const base = {
      data: new Array(8 * 8 * 4).fill(-1000),
      shape: [8, 8, 4] as [number, number, number],
      datatype: 'int16' as const,
    };
    const cases: [string, number, number, string][] = [
      ['0', 3, 0, '0'],
      ['NaN', 1, NaN, 'NaN'],
      ['+Inf', 2, Infinity, 'Infinity'],
      ['-Inf', 3, -Infinity, '-Infinity'],
    ];
    for (const [name, axis, value, shown] of cases) {
      it(`pixdim[${axis}] = ${name}: an error naming the field and value; an explicit spacing overrides it`, async () => {
        const file = path.join(dir, `pixdim-${name}.nii.gz`);
        fs.writeFileSync(
          file,
          writeNifti({ ...base, spacing: [0.8, 0.8, 1.5], patch: [[76 + 4 * axis, 'f32', value]], gzip: true }),
        );
        const e = await rejection(readNifti(file));
        expect(e.code).to.equal('DATA_ERROR');
        expect(e.message)
          .to.contain(`${file}: NIfTI pixdim[${axis}]: ${shown} is not a usable voxel size`)
          .and.contain('--source-spacing');
        expect(() => parseNifti(fs.readFileSync(file), 'm.nii')).to.throw(`m.nii: NIfTI pixdim[${axis}]: ${shown}`);
        // Override: the reader's spacing, predict --source-spacing (voxelSpacing), or the metadata CSV.
        const v = await readNifti(file, { spacing: [0.8, 0.8, 1.5] });
        expect(v.spacing).to.deep.equal([0.8, 0.8, 1.5]);
        expect(v.affine[axis - 1][axis - 1]).to.equal([0.8, 0.8, 1.5][axis - 1]);
        const byFlag = await readVolume(file, { voxelSpacing: [0.8, 0.8, 1.5], spacing: [1.6, 1.6, 3] });
        const plan = planVolume(byFlag, { voxelSpacing: [0.8, 0.8, 1.5], spacing: [1.6, 1.6, 3] });
        expect(plan.spacingSource).to.equal('override');
        expect(plan.size).to.deep.equal([4, 4, 2]);
        expect(plan.warnings.join('\n')).to.contain(`pixdim[${axis}] = `).and.contain('is not a usable voxel size');
        const byCsv = await readVolume(file, { sourceSpacing: { xy: 0.8, z: 1.5 } });
        expect(byCsv.spacing).to.deep.equal([0.8, 0.8, 1.5]);
      });
    }

    it('a finite but absurd pixdim (1e30 m) is caught by the resampled-grid limit, from the header', async () => {
      const file = path.join(dir, 'metres.nii');
      fs.writeFileSync(file, writeNifti({ ...base, spacing: [1e30, 0.0008, 0.0015], spatialUnits: 1 }));
      const e = await rejection(readVolume(file));
      expect(e.message)
        .to.contain(`${file}: NIfTI dim[1..3] 8×8×4 at pixdim[1..3]`)
        .and.contain('over the limit of 536,870,912 resampled voxels');
    });
  });

  describe('only regular files are opened', () => {
    it('refuses a FIFO at once (never waits for a writer) and a character device', async function () {
      const fifo = path.join(dir, 'pipe.nii.gz');
      if (spawnSync('mkfifo', [fifo]).status !== 0) this.skip();
      const e = await rejection(readNifti(fifo));
      expect(e.message).to.contain(`NIfTI file '${fifo}' is a FIFO (named pipe), not a regular file`);
      const z = await rejection(readNifti('/dev/zero'));
      expect(z.message).to.contain("NIfTI file '/dev/zero' is a character device, not a regular file");
    });
  });

  it('a gzip member that is valid but holds fewer than 348 bytes is a header error', async () => {
    const file = path.join(dir, 'tiny.nii.gz');
    fs.writeFileSync(file, zlib.gzipSync(Buffer.alloc(100)));
    const e = await rejection(readNifti(file));
    expect(e.message).to.contain('tiny.nii.gz: NIfTI header');
  });
});
