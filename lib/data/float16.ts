/**
 * IEEE-754 binary16 helpers. Node 20 has no Float16Array, and the shard volumes are raw little-endian
 * float16, so the synthetic-data writer and the tests need exact conversions.
 *
 * - `float32ToFloat16Bits` works on the JS number (a double) directly, so it rounds ONCE, to nearest with
 *   ties to even, including into the subnormal range and up to infinity. (Rounding to float32 first and then
 *   to float16 can double-round; for inputs that are already float32 values both give the same answer.)
 * - The bulk helpers work on typed arrays without allocating per element.
 */

const POW2_M24 = 2 ** -24;

/** Round-half-to-even of a non-negative double that is at most 2^31 (exact for the ranges used here). */
function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const r = q - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The float16 bit pattern (0..0xffff) nearest to `x`, ties to even. NaN → 0x7e00 (quiet NaN, sign kept),
 * ±Infinity and values that round past 65504 → ±Infinity (0x7c00 / 0xfc00), -0 → 0x8000.
 */
export function float32ToFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal range: value = k·2^-24, k in [0, 1024]; k = 1024 is the smallest normal (0x0400), which the
    // plain bit layout encodes correctly.
    return sign | roundHalfEven(a / POW2_M24);
  }
  let e = Math.floor(Math.log2(a));
  // log2 can be off by one next to powers of two; fix it exactly.
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  if (e > 15) return sign | 0x7c00;
  // a = m · 2^(e-10) with m in [1024, 2048); scaling by a power of two is exact in double.
  let m = roundHalfEven(a / 2 ** (e - 10));
  if (m === 2048) {
    m = 1024;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** The value of a float16 bit pattern, as a JS number (exactly representable in float32). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * POW2_M24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern → float16 bit pattern, round to nearest even (exact for every float32 input). */
function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let k = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    if (rem > half || (rem === half && k & 1)) k++;
    return sign | k;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and 0x7bff+1 becomes Infinity).
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** Converts float32 values to float16 bit patterns (round to nearest even) into `out` (allocated if absent). */
export function float32ArrayToFloat16(src: Float32Array | ArrayLike<number>, out?: Uint16Array): Uint16Array {
  const dst = out ?? new Uint16Array(src.length);
  if (dst.length < src.length) throw new RangeError(`float16 output holds ${dst.length} values, need ${src.length}`);
  if (src instanceof Float32Array) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]);
  } else {
    for (let i = 0; i < src.length; i++) {
      scratchF32[0] = src[i];
      dst[i] = f32BitsToF16Bits(scratchU32[0]);
    }
  }
  return dst;
}

let decodeTable: Float32Array | null = null;

/** Converts float16 bit patterns to float32 values through a 65536-entry table (built once, 256 KiB). */
export function float16ArrayToFloat32(src: Uint16Array, out?: Float32Array): Float32Array {
  if (!decodeTable) {
    decodeTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) decodeTable[h] = float16BitsToFloat32(h);
  }
  const dst = out ?? new Float32Array(src.length);
  if (dst.length < src.length) throw new RangeError(`float32 output holds ${dst.length} values, need ${src.length}`);
  const t = decodeTable;
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
  return dst;
}

/** A Uint16Array view of float16 data held in a Buffer (copies only if the Buffer is not 2-byte aligned). */
export function float16View(buf: Buffer | Uint8Array): Uint16Array {
  if (buf.byteLength % 2 !== 0)
    throw new RangeError(`float16 data must have an even byte length, got ${buf.byteLength}`);
  if (buf.byteOffset % 2 === 0) return new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2);
  return new Uint16Array(Uint8Array.prototype.slice.call(buf).buffer);
}

/** Exponent bits all ones in either half of a word, as bit 14 / bit 30 after the shift-mask-add below. */
const NF_MASK = 0x3e003e00;
const NF_ADD = 0x02000200;
const NF_TEST = 0x40004000;

/**
 * True when float16 data in `buf[start, end)` holds a NaN or ±Infinity (exponent bits all ones: 0x7c00/0xfc00
 * and every NaN pattern). `start` and `end` must be even. The bulk runs on 32-bit words, two halves at a time:
 * for a word w, `((w >>> 1) & 0x3e003e00) + 0x02000200` sets bit 14 (30) exactly when the low (high) half's
 * exponent is 0x1f, with no carry between the halves and no int32 overflow, so an OR over all words needs no
 * branch per element (≈ 16 ms for a 480×480×240 volume on the development VM).
 */
export function float16HasNonFinite(buf: Uint8Array, start = 0, end = buf.byteLength): boolean {
  if (start % 2 !== 0 || end % 2 !== 0 || start < 0 || end > buf.byteLength || start > end) {
    throw new RangeError(`float16 range [${start}, ${end}) of ${buf.byteLength} bytes must be even and in bounds`);
  }
  let pos = buf.byteOffset + start;
  const stop = buf.byteOffset + end;
  let acc = 0;
  if (pos % 2 !== 0) {
    // Odd absolute offset: no aligned view possible; byte-wise (only for unusual callers).
    for (let i = start + 1; i < end; i += 2) acc |= ((buf[i] & 0x7c) + 0x04) & 0x80;
    return acc !== 0;
  }
  const ab = buf.buffer;
  if (pos % 4 !== 0 && pos < stop) {
    const h = new Uint16Array(ab, pos, 1)[0];
    if ((h & 0x7c00) === 0x7c00) return true;
    pos += 2;
  }
  const words = Math.floor((stop - pos) / 4);
  if (words > 0) {
    const u = new Uint32Array(ab, pos, words);
    const n4 = words & ~3;
    let i = 0;
    for (; i < n4; i += 4) {
      acc |=
        (((u[i] >>> 1) & NF_MASK) + NF_ADD) |
        (((u[i + 1] >>> 1) & NF_MASK) + NF_ADD) |
        (((u[i + 2] >>> 1) & NF_MASK) + NF_ADD) |
        (((u[i + 3] >>> 1) & NF_MASK) + NF_ADD);
    }
    for (; i < words; i++) acc |= ((u[i] >>> 1) & NF_MASK) + NF_ADD;
    pos += words * 4;
  }
  if (pos < stop) {
    const h = new Uint16Array(ab, pos, 1)[0];
    if ((h & 0x7c00) === 0x7c00) return true;
  }
  return (acc & NF_TEST) !== 0;
}

/** Counts of NaN / +Inf / -Inf in float16 data and the first non-finite element (the slow path after a hit). */
export function float16NonFiniteSummary(
  buf: Uint8Array,
  start = 0,
  end = buf.byteLength,
): { nan: number; posInf: number; negInf: number; first: number; firstValue: string } {
  const out = { nan: 0, posInf: 0, negInf: 0, first: -1, firstValue: '' };
  for (let i = start, k = 0; i + 1 < end; i += 2, k++) {
    const h = buf[i] | (buf[i + 1] << 8);
    if ((h & 0x7c00) !== 0x7c00) continue;
    const what = h & 0x3ff ? 'NaN' : h & 0x8000 ? '-Infinity' : 'Infinity';
    if (what === 'NaN') out.nan++;
    else if (what === 'Infinity') out.posInf++;
    else out.negInf++;
    if (out.first < 0) {
      out.first = k;
      out.firstValue = `${what} (0x${h.toString(16).padStart(4, '0')})`;
    }
  }
  return out;
}
