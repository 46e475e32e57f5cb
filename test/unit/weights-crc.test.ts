/**
 * CRC-32 of zip entries: every `.pt` entry (storages included) is checked on read, so the JS fallback used on a Node
 * without `zlib.crc32` must give the same values as zlib (check value, chaining, every tail length).
 */
import { expect } from 'chai';
import * as zlib from 'zlib';
import { crc32, crc32Fallback } from '../../lib/weights/zip';

describe('weights: CRC-32 (zip entries)', () => {
  it('the standard check value: CRC-32("123456789") = 0xcbf43926, by both implementations', () => {
    const b = new TextEncoder().encode('123456789');
    expect(crc32(b)).to.equal(0xcbf43926);
    expect(crc32Fallback(b)).to.equal(0xcbf43926);
    expect(crc32Fallback(new Uint8Array(0))).to.equal(0);
  });

  it('the slicing-by-8 fallback equals the bitwise definition for every length 0..40 and chains like zlib', () => {
    // The bitwise definition (reflected polynomial 0xedb88320), independent of both implementations.
    const bitwise = (d: Uint8Array, crc = 0): number => {
      let c = (crc ^ 0xffffffff) >>> 0;
      for (const byte of d) {
        c ^= byte;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    const data = new Uint8Array(4099).map((_, i) => (i * 2654435761) >>> 24);
    for (let n = 0; n <= 40; n++) {
      const d = data.subarray(3, 3 + n);
      expect(crc32Fallback(d), `length ${n}`).to.equal(bitwise(d));
      expect(crc32Fallback(d, 0x12345678), `length ${n}, chained`).to.equal(bitwise(d, 0x12345678));
    }
    expect(crc32Fallback(data.subarray(1000), crc32Fallback(data.subarray(0, 1000)))).to.equal(bitwise(data));
    const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
    if (native) expect(crc32Fallback(data)).to.equal(native(data) >>> 0);
  });
});
