/** NIfTI-1 reader/writer: every supported datatype, both byte orders, scl_slope/scl_inter, gzip, affines, errors. */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  NIFTI_DATATYPES,
  isGzip,
  parseNifti,
  parseNiftiHeader,
  qformAffine,
  readNifti,
  writeNifti,
  type NiftiDatatype,
  type WriteNiftiOptions,
} from '../../lib/preprocess/nifti';

const SHAPE: [number, number, number] = [3, 4, 5];
const N = 60;

/** Values that fit every type: 0..59 minus an offset for signed types. */
function valuesFor(dt: NiftiDatatype): number[] {
  const signed = dt.startsWith('int') || dt.startsWith('float');
  return Array.from({ length: N }, (_, k) => (signed ? k - 30 : k) * (dt.startsWith('float') ? 1.5 : 1));
}

describe('preprocess: NIfTI reader/writer', () => {
  for (const dt of Object.keys(NIFTI_DATATYPES) as NiftiDatatype[]) {
    for (const le of [true, false]) {
      for (const gz of [false, true]) {
        it(`round-trips ${dt} ${le ? 'little' : 'big'}-endian${gz ? ' gzip' : ''}`, () => {
          const vals = valuesFor(dt);
          const buf = writeNifti({
            data: vals,
            shape: SHAPE,
            datatype: dt,
            spacing: [0.7, 0.8, 1.25],
            littleEndian: le,
            gzip: gz,
          });
          expect(isGzip(buf)).to.equal(gz);
          const v = parseNifti(buf, 'mem.nii');
          expect(v.header.littleEndian).to.equal(le);
          expect(v.header.datatype).to.equal(dt);
          expect(v.shape).to.deep.equal(SHAPE);
          expect(v.spacing[0]).to.be.closeTo(0.7, 1e-6);
          expect(v.spacing[2]).to.be.closeTo(1.25, 1e-6);
          expect(Array.from(v.data)).to.deep.equal(vals);
          expect(v.storedRange).to.equal(null);
          expect(v.sclApplied).to.equal(false);
        });
      }
    }
  }

  it('keeps NIfTI index order (i fastest): value at (i, j, k) is data[i + ni·(j + nj·k)]', () => {
    const vals = Array.from({ length: N }, (_, n) => {
      const i = n % 3,
        j = Math.floor(n / 3) % 4,
        k = Math.floor(n / 12);
      return 100 * i + 10 * j + k;
    });
    const v = parseNifti(writeNifti({ data: vals, shape: SHAPE, datatype: 'int16' }));
    expect(v.data[2 + 3 * (1 + 4 * 4)]).to.equal(214);
  });

  it('applies scl_slope/scl_inter; slope 0 means identity', () => {
    const vals = valuesFor('int16');
    const scaled = parseNifti(
      writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', sclSlope: 2, sclInter: -1024 }),
    );
    expect(scaled.sclApplied).to.equal(true);
    expect(Array.from(scaled.data)).to.deep.equal(vals.map((x) => 2 * x - 1024));
    expect(scaled.storedRange).to.deep.equal([-30, 29]);
    const zero = parseNifti(writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', sclSlope: 0, sclInter: 5 }));
    expect(zero.sclApplied).to.equal(false);
    expect(Array.from(zero.data)).to.deep.equal(vals);
    const nan = parseNifti(writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', sclSlope: NaN }));
    expect(Array.from(nan.data)).to.deep.equal(vals);
    // A big-endian file with a fractional slope.
    const be = parseNifti(
      writeNifti({
        data: valuesFor('uint16'),
        shape: SHAPE,
        datatype: 'uint16',
        sclSlope: 0.5,
        sclInter: 1,
        littleEndian: false,
      }),
    );
    expect(be.data[10]).to.equal(6);
  });

  it('honours vox_offset beyond 352 and misaligned data offsets', () => {
    for (const off of [400, 353]) {
      const vals = valuesFor('float32');
      const v = parseNifti(writeNifti({ data: vals, shape: SHAPE, datatype: 'float32', voxOffset: off }));
      expect(v.header.voxOffset).to.equal(off);
      expect(Array.from(v.data)).to.deep.equal(vals);
    }
  });

  it('picks sform over qform over pixdim, and computes the qform from the quaternion', () => {
    const vals = valuesFor('int16');
    const sform = [
      [-0.7, 0, 0, 10],
      [0, 0.8, 0, -20],
      [0, 0, 1.25, 30],
    ];
    // The same int16 volume at 0.7 × 0.8 × 1.25 mm with the given orientation fields, written and parsed back.
    const withOrientation = (fields: Pick<WriteNiftiOptions, 'sform' | 'qform'>) =>
      parseNifti(writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', spacing: [0.7, 0.8, 1.25], ...fields }));
    const v = withOrientation({ sform, qform: { b: 0, c: 0, d: 1, offset: [1, 2, 3] } });
    expect(v.affineSource).to.equal('sform');
    expect(v.affine[0][0]).to.be.closeTo(-0.7, 1e-6);
    expect(v.affine[2][3]).to.be.closeTo(30, 1e-6);
    // Quaternion (0, 0, 1) = 180° about z: x → −x, y → −y.
    expect(v.qform![0][0]).to.be.closeTo(-0.7, 1e-6);
    expect(v.qform![1][1]).to.be.closeTo(-0.8, 1e-6);
    expect(v.qform![2][2]).to.be.closeTo(1.25, 1e-6);
    expect(v.qform![0][3]).to.equal(1);
    const q = withOrientation({ qform: { b: 0, c: 0, d: 0, offset: [0, 0, 0], qfac: -1 } });
    expect(q.affineSource).to.equal('qform');
    expect(q.affine[2][2]).to.be.closeTo(-1.25, 1e-6); // qfac −1 flips k
    const p = withOrientation({});
    expect(p.affineSource).to.equal('pixdim');
    expect(p.affine[1][1]).to.be.closeTo(0.8, 1e-6);
    // Identity quaternion with 90° about z: (b, c, d) = (0, 0, sin 45°).
    const s = Math.SQRT1_2;
    const r = qformAffine([0, 0, s, 0, 0, 0], [1, 1, 1, 1]);
    expect(r[0][1]).to.be.closeTo(-1, 1e-9);
    expect(r[1][0]).to.be.closeTo(1, 1e-9);
  });

  it('converts metre and micron spatial units to mm', () => {
    const vals = valuesFor('int16');
    const m = parseNifti(
      writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', spacing: [0.0007, 0.0007, 0.0015], spatialUnits: 1 }),
    );
    expect(m.spacing[0]).to.be.closeTo(0.7, 1e-6);
    expect(m.spacing[2]).to.be.closeTo(1.5, 1e-6);
  });

  it('reads .nii and .nii.gz files from disk (async, gzip detected by magic)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-nifti-'));
    try {
      const vals = valuesFor('int16');
      fs.writeFileSync(path.join(dir, 'a.nii'), writeNifti({ data: vals, shape: SHAPE, datatype: 'int16' }));
      fs.writeFileSync(
        path.join(dir, 'a.nii.gz'),
        writeNifti({ data: vals, shape: SHAPE, datatype: 'int16', gzip: true }),
      );
      for (const f of ['a.nii', 'a.nii.gz']) {
        const v = await readNifti(path.join(dir, f));
        expect(Array.from(v.data)).to.deep.equal(vals);
        expect(v.file).to.equal(path.join(dir, f));
      }
      let err: Error | undefined;
      await readNifti(path.join(dir, 'missing.nii.gz')).catch((e: Error) => (err = e));
      expect(err?.message).to.contain('missing.nii.gz');
      expect((err as { code?: string }).code).to.equal('IO_ERROR');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('errors name the file and field', () => {
    const base = { data: valuesFor('int16'), shape: SHAPE, datatype: 'int16' as const };
    const cases: [string, () => Buffer, RegExp][] = [
      [
        'rgb24',
        () => writeNifti({ ...base, patch: [[70, 'i16', 128]] }),
        /f\.nii: NIfTI datatype: rgb24 \(code 128\) is not supported/,
      ],
      ['rgba32', () => writeNifti({ ...base, patch: [[70, 'i16', 2304]] }), /datatype: rgba32/],
      ['unknown datatype', () => writeNifti({ ...base, patch: [[70, 'i16', 3]] }), /datatype: unknown datatype code 3/],
      ['bad sizeof_hdr', () => writeNifti({ ...base, patch: [[0, 'i32', 123]] }), /sizeof_hdr: expected 348/],
      ['NIfTI-2', () => writeNifti({ ...base, patch: [[0, 'i32', 540]] }), /NIfTI-2/],
      ['truncated', () => writeNifti(base).subarray(0, 400), /f\.nii: NIfTI data: .*truncated/],
      ['short header', () => Buffer.alloc(100), /header: file is 100 bytes/],
      [
        '4-D',
        () =>
          writeNifti({
            ...base,
            patch: [
              [40, 'i16', 4],
              [48, 'i16', 2],
            ],
          }),
        /dim\[4\]: is 2/,
      ],
      [
        'bitpix mismatch',
        () => writeNifti({ ...base, patch: [[72, 'i16', 8]] }),
        /bitpix: 8 does not match datatype int16/,
      ],
      [
        'vox_offset',
        () => writeNifti({ ...base, patch: [[108, 'f32', 100]] }),
        /vox_offset: must be an integer >= 348/,
      ],
      ['bad gzip', () => Buffer.concat([zlib.gzipSync(writeNifti(base)).subarray(0, 50)]), /gzip: cannot decompress/],
    ];
    for (const [name, make, re] of cases) {
      it(name, () => {
        expect(() => parseNifti(make(), 'f.nii')).to.throw(re);
      });
    }
    it("refuses a two-file 'ni1' header", () => {
      const b = writeNifti(base);
      b.write('ni1\0', 344, 'latin1');
      expect(() => parseNiftiHeader(b, 'x.hdr')).to.throw(/x\.hdr: NIfTI magic: 'ni1' is a two-file/);
    });
  });
});
