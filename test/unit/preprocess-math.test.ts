/** Crop/pad and resample-size index math (hand-checked) and orientation from affines. */
import { expect } from 'chai';
import { cropPadPlan, resampledSize } from '../../lib/preprocess/resample';
import { axisCodes, orientationPlan } from '../../lib/preprocess/orientation';

describe('preprocess: index math', () => {
  it('centre crop: start = (n − t)//2, keep t', () => {
    expect(cropPadPlan(10, 4)).to.deep.equal({ start: 3, keep: 4, before: 0, after: 0 });
    expect(cropPadPlan(11, 4)).to.deep.equal({ start: 3, keep: 4, before: 0, after: 0 }); // 7//2 = 3
    expect(cropPadPlan(512, 480)).to.deep.equal({ start: 16, keep: 480, before: 0, after: 0 });
  });

  it('centre pad: before = (t − n)//2, after the rest, nothing cropped', () => {
    expect(cropPadPlan(4, 10)).to.deep.equal({ start: 0, keep: 4, before: 3, after: 3 });
    expect(cropPadPlan(5, 10)).to.deep.equal({ start: 0, keep: 5, before: 2, after: 3 }); // odd: the extra voxel goes after
    expect(cropPadPlan(200, 240)).to.deep.equal({ start: 0, keep: 200, before: 20, after: 20 });
    expect(cropPadPlan(7, 7)).to.deep.equal({ start: 0, keep: 7, before: 0, after: 0 });
  });

  it('new size per axis = int(n · current / target), evaluated as (n · current) / target', () => {
    expect(resampledSize([512, 512, 300], [0.7, 0.7, 1], [0.75, 0.75, 1.5])).to.deep.equal([477, 477, 200]);
    // 300·1.0/1.5 = 200 exactly (300·(1.0/1.5) would give 199.99999999999997 → 199).
    expect(resampledSize([300, 300, 300], [1, 1, 1], [1.5, 1.5, 1.5])).to.deep.equal([200, 200, 200]);
    expect(resampledSize([256, 256, 108], [0.9570312, 0.9570312, 1.5], [3, 3, 4])).to.deep.equal([81, 81, 40]);
    expect(() => resampledSize([2, 8, 8], [1, 1, 1], [3, 1, 1], 'v.nii')).to.throw(/v\.nii: axis 0 of 2 voxels/);
  });
});

describe('preprocess: orientation', () => {
  const diag = (x: number, y: number, z: number): number[][] => [
    [x, 0, 0, 0],
    [0, y, 0, 0],
    [0, 0, z, 0],
    [0, 0, 0, 1],
  ];

  it('axis codes like nibabel', () => {
    expect(axisCodes(diag(1, 1, 1))).to.equal('RAS');
    expect(axisCodes(diag(-0.957, 0.957, 1.5))).to.equal('LAS');
    expect(axisCodes(diag(-1, -1, 1))).to.equal('LPS');
    // i along world y, j along world −x, k along −z.
    expect(
      axisCodes([
        [0, -1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, -2, 0],
        [0, 0, 0, 1],
      ]),
    ).to.equal('ALI');
  });

  it('none keeps i, j, k as stored', () => {
    expect(orientationPlan(diag(-1, 1, 1), 'none')).to.include({
      reorient: 'none',
      inputCodes: 'LAS',
      outputCodes: 'LAS',
    });
    expect(orientationPlan(diag(-1, 1, 1), 'none').order).to.deep.equal([0, 1, 2]);
  });

  it('RAS and LPS: flips and permutations', () => {
    const las = orientationPlan(diag(-1, 1, 1), 'RAS');
    expect(las.order).to.deep.equal([0, 1, 2]);
    expect(las.flip).to.deep.equal([0]);
    const lps = orientationPlan(diag(-1, 1, 1), 'LPS');
    expect(lps.flip).to.deep.equal([1]);
    const ali = [
      [0, -1, 0, 0],
      [1, 0, 0, 0],
      [0, 0, -2, 0],
      [0, 0, 0, 1],
    ];
    const p = orientationPlan(ali, 'RAS');
    expect(p.order).to.deep.equal([1, 0, 2]); // H = world x = voxel j, W = world y = voxel i
    expect(p.flip).to.deep.equal([1, 2]); // j runs to −x, k to −z
    expect(orientationPlan(ali, 'LPS').flip).to.deep.equal([0, 2]); // i runs to +y (A) and k to −z (I): flip both
  });

  it('refuses an affine with two axes along one world axis', () => {
    expect(() =>
      orientationPlan(
        [
          [1, 1, 0, 0],
          [0, 0.1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
        'RAS',
        'o.nii',
      ),
    ).to.throw(/o\.nii: two voxel axes/);
  });
});
