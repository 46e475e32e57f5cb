import { expect } from 'chai';
import {
  float16ArrayToFloat32,
  float16BitsToFloat32,
  float32ArrayToFloat16,
  float32ToFloat16Bits,
} from '../../lib/data/float16';
import { Rng } from '../../lib/rng';

describe('data/float16', () => {
  const cases: Array<[number, number, string]> = [
    [1, 0x3c00, 'one'],
    [-1, 0xbc00, 'minus one'],
    [0, 0x0000, 'zero'],
    [-0, 0x8000, 'negative zero'],
    [0.5, 0x3800, 'half'],
    [2, 0x4000, 'two'],
    [65504, 0x7bff, 'max finite'],
    [65519, 0x7bff, 'just below the overflow tie'],
    [65520, 0x7c00, 'tie between 65504 and 65536 rounds to even (infinity)'],
    [1e6, 0x7c00, 'overflow'],
    [-1e6, 0xfc00, 'negative overflow'],
    [Infinity, 0x7c00, '+inf'],
    [-Infinity, 0xfc00, '-inf'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even (zero)'],
    [3 * 2 ** -26, 0x0001, 'above the tie rounds up'],
    [1.5 * 2 ** -24, 0x0002, 'subnormal tie 1.5 → 2 (even)'],
    [2.5 * 2 ** -24, 0x0002, 'subnormal tie 2.5 → 2 (even)'],
    [1 + 2 ** -11, 0x3c00, 'tie between 1 and 1+2^-10 → 1 (even mantissa)'],
    [1 + 3 * 2 ** -11, 0x3c02, 'tie between 0x3c01 and 0x3c02 → 0x3c02 (even)'],
    [1 + 2 ** -11 + 2 ** -30, 0x3c01, 'just above a tie rounds up (no double rounding)'],
    [
      2047 * 2 ** -11 + 2 ** -12,
      0x3c00,
      'mantissa carry: (2047.5)·2^-11 ties between 0x3bff and 1.0 → 0x3c00 (even, exponent bumps)',
    ],
    [2 - 2 ** -11, 0x4000, 'tie 2 - 2^-11 between 0x3fff and 0x4000 → 0x4000 (even, exponent bumps)'],
    [0.1, 0x2e66, '0.1'],
    [1 / 3, 0x3555, '1/3'],
    [-0.85, 0xbacd, '-0.85 (lung)'],
  ];

  for (const [x, bits, what] of cases) {
    it(`encodes ${what}: ${x} → 0x${bits.toString(16).padStart(4, '0')}`, () => {
      expect(float32ToFloat16Bits(x)).to.equal(bits);
    });
  }

  it('encodes NaN as a quiet NaN and decodes it as NaN', () => {
    expect(float32ToFloat16Bits(NaN)).to.equal(0x7e00);
    expect(Number.isNaN(float16BitsToFloat32(0x7e00))).to.equal(true);
  });

  it('decodes hand-computed patterns', () => {
    expect(float16BitsToFloat32(0x3c00)).to.equal(1);
    expect(float16BitsToFloat32(0xbc00)).to.equal(-1);
    expect(float16BitsToFloat32(0x7bff)).to.equal(65504);
    expect(float16BitsToFloat32(0x0001)).to.equal(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).to.equal(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x0400)).to.equal(2 ** -14);
    expect(float16BitsToFloat32(0x3555)).to.equal(0.333251953125);
    expect(float16BitsToFloat32(0x7c00)).to.equal(Infinity);
    expect(float16BitsToFloat32(0xfc00)).to.equal(-Infinity);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).to.equal(true);
  });

  it('round-trips every non-NaN float16 pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >>> 10) & 0x1f;
      if (exp === 0x1f && h & 0x3ff) continue;
      expect(float32ToFloat16Bits(float16BitsToFloat32(h))).to.equal(h);
    }
  });

  it('bulk float32 → float16 matches the scalar path on random float32 values of all magnitudes', () => {
    const rng = new Rng(7);
    const n = 20000;
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = (rng.nextFloat() * 2 - 1) * 2 ** (rng.int(50) - 30);
    const bulk = float32ArrayToFloat16(src);
    for (let i = 0; i < n; i++) expect(bulk[i], `value ${src[i]}`).to.equal(float32ToFloat16Bits(src[i]));
    const plain = float32ArrayToFloat16(Array.from(src));
    expect(Array.from(plain)).to.deep.equal(Array.from(bulk));
  });

  it('bulk float16 → float32 decodes through the table', () => {
    const src = new Uint16Array([0x3c00, 0xbc00, 0x7bff, 0x0001, 0x0000]);
    expect(Array.from(float16ArrayToFloat32(src))).to.deep.equal([1, -1, 65504, 2 ** -24, 0]);
  });
});
