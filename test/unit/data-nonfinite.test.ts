/**
 * The float16 NaN/±Inf scan the loaders run on every volume: every one of the 65536 bit patterns, in either half
 * of a 32-bit word, at every alignment of the buffer and of the range, against the IEEE-754 definition
 * (exponent bits all ones) computed independently per element.
 */
import { expect } from 'chai';
import { float16HasNonFinite, float16NonFiniteSummary } from '../../lib/data/float16';

const isNonFinite = (h: number): boolean => (h >> 10) % 32 === 31; // exponent field 0x1f

describe('data/float16: non-finite scan', () => {
  it('flags exactly the patterns with all exponent bits set (0x7c00, 0xfc00 and every NaN), in either half of a word', () => {
    const buf = Buffer.alloc(64);
    let flagged = 0;
    for (let h = 0; h < 65536; h++) {
      for (const slot of [0, 1, 6, 31]) {
        buf.fill(0x3c); // 0x3c3c: finite
        buf.writeUInt16LE(h, slot * 2);
        expect(float16HasNonFinite(buf), `0x${h.toString(16)} at element ${slot}`).to.equal(isNonFinite(h));
      }
      if (isNonFinite(h)) flagged++;
    }
    expect(flagged).to.equal(2 * 1024); // ±Inf and 2 × 1023 NaN patterns
    for (const h of [0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff]) expect(isNonFinite(h)).to.equal(true);
    for (const h of [0x7bff, 0xfbff, 0x0001, 0x8000, 0x3c00]) expect(isNonFinite(h)).to.equal(false);
  });

  it('honours the range and any buffer alignment; the summary counts NaN, +Inf and -Inf and finds the first', () => {
    const backing = Buffer.alloc(4096 + 8);
    for (const shift of [0, 1, 2, 3, 4, 6]) {
      const buf = backing.subarray(shift, shift + 4096);
      buf.fill(0);
      for (let k = 0; k < 2048; k++) buf.writeUInt16LE(k % 0x7c00, 2 * k); // all finite
      expect(float16HasNonFinite(buf), `shift ${shift}`).to.equal(false);
      buf.writeUInt16LE(0xfc00, 2 * 1001);
      expect(float16HasNonFinite(buf)).to.equal(true);
      expect(float16HasNonFinite(buf, 0, 2 * 1001)).to.equal(false);
      expect(float16HasNonFinite(buf, 2 * 1001, 2 * 1002)).to.equal(true);
      expect(float16HasNonFinite(buf, 2 * 1002, 4096)).to.equal(false);
      for (let start = 2 * 990; start <= 2 * 1001; start += 2)
        expect(float16HasNonFinite(buf, start, 2 * 1010)).to.equal(true);
      buf.writeUInt16LE(0x7e00, 2 * 5);
      buf.writeUInt16LE(0x7c00, 2 * 2047);
      expect(float16NonFiniteSummary(buf)).to.deep.equal({
        nan: 1,
        posInf: 1,
        negInf: 1,
        first: 5,
        firstValue: 'NaN (0x7e00)',
      });
      expect(float16NonFiniteSummary(buf, 2 * 6, 4096).first).to.equal(1001 - 6);
    }
    expect(() => float16HasNonFinite(Buffer.alloc(8), 1, 4)).to.throw(RangeError);
  });
});
