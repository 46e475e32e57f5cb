/**
 * Number and duration formatting for the console lines, matching Python's format specs exactly:
 *
 * - `formatFixed(x, d)` is Python `format(x, '.{d}f')` (loss `.4f`, epoch/time `.2f`);
 * - `formatExp(x, d)` is Python `format(x, '.{d}e')` (LR `.1e` → `1.2e-06`: the exponent has a sign and at
 *   least two digits);
 * - both round the EXACT binary value half-to-even as Python does. JavaScript's `toFixed`/`toExponential` break
 *   exact ties upward (`(1.25).toExponential(1)` is `1.3e+0`, Python's `1.2e+00`), so ties are detected exactly
 *   with BigInt arithmetic and corrected;
 * - NaN → `nan`, ±Infinity → `inf` / `-inf`, and -0 keeps its sign (`-0.0000`), as in Python.
 *
 * `formatDuration(seconds)` is the product's ETA/elapsed format (see its comment).
 */

/** The exact value of a finite double as `mantissa · 2^exponent` (mantissa a non-negative integer). */
function exactParts(x: number): { mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent: number;
  if (biased === 0) exponent = -1074;
  else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  return { mantissa, exponent };
}

/**
 * True when |x| · 10^scale lies exactly halfway between two integers (the only case where JavaScript's and
 * Python's rounding differ). `scale` may be negative.
 */
function isExactTie(x: number, scale: number): boolean {
  const { mantissa, exponent } = exactParts(x);
  if (mantissa === 0n) return false;
  let num = mantissa;
  let den = 1n;
  if (exponent >= 0) num <<= BigInt(exponent);
  else den <<= BigInt(-exponent);
  if (scale >= 0) num *= 10n ** BigInt(scale);
  else den *= 10n ** BigInt(-scale);
  const twice = 2n * num;
  return twice % den === 0n && (twice / den) % 2n === 1n;
}

function nonFinite(x: number): string | null {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return null;
}

/** Decrements the last digit of a digit string that ends in an odd digit (so never borrows). */
function decrementLastDigit(digits: string): string {
  const last = digits.charCodeAt(digits.length - 1) - 48;
  return digits.slice(0, -1) + String(last - 1);
}

/** Python `format(x, '.{digits}f')`. */
export function formatFixed(x: number, digits: number): string {
  const special = nonFinite(x);
  if (special !== null) return special;
  const negative = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  let text: string;
  if (a >= 1e21) {
    // toFixed switches to exponent notation here; write the exact integer (a double this large is an integer).
    const { mantissa, exponent } = exactParts(a);
    text = (mantissa << BigInt(exponent)).toString() + (digits > 0 ? `.${'0'.repeat(digits)}` : '');
  } else {
    text = a.toFixed(digits);
    if (isExactTie(a, digits)) {
      // JS picked the larger neighbour; Python the even one.
      const plain = text.replace('.', '');
      if ((plain.charCodeAt(plain.length - 1) - 48) % 2 === 1) {
        const lowered = decrementLastDigit(plain);
        text =
          digits > 0
            ? `${lowered.slice(0, lowered.length - digits)}.${lowered.slice(lowered.length - digits)}`
            : lowered;
      }
    }
  }
  return negative ? `-${text}` : text;
}

/** Python `format(x, '.{digits}e')`: e.g. formatExp(1.2e-6, 1) === '1.2e-06', formatExp(0, 1) === '0.0e+00'. */
export function formatExp(x: number, digits: number): string {
  const special = nonFinite(x);
  if (special !== null) return special;
  const negative = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  const [exponential, expText] = a.toExponential(digits).split('e');
  let mant = exponential;
  let exp = Number(expText);
  if (a !== 0 && isExactTie(a, digits - exp)) {
    const plain = mant.replace('.', '');
    if ((plain.charCodeAt(plain.length - 1) - 48) % 2 === 1) {
      const lowered = decrementLastDigit(plain);
      mant = digits > 0 ? `${lowered[0]}.${lowered.slice(1)}` : lowered;
    }
  }
  const sign = exp < 0 ? '-' : '+';
  exp = Math.abs(exp);
  return `${negative ? '-' : ''}${mant}e${sign}${String(exp).padStart(2, '0')}`;
}

/** The loss as printed on the progress line: `.4f`. */
export function formatLoss(loss: number): string {
  return formatFixed(loss, 4);
}

/** The LR as printed on the progress line: `.1e` (`1.2e-06`). */
export function formatLr(lr: number): string {
  return formatExp(lr, 1);
}

/**
 * The product's duration format for ETA and elapsed time. The value is truncated to whole seconds (as the
 * reference's `int()`), then written with its two largest units, the smaller one always present:
 *
 *   s < 60          → `12s`
 *   s < 3600        → `45m 12s`   (`1m 0s` at 60)
 *   s < 86400       → `20h 34m`   (`1h 0m` at 3600; seconds dropped)
 *   otherwise       → `3d 4h`     (`1d 0h` at 86400; minutes dropped)
 *
 * Negative values print `0s`; NaN/±Infinity print `--` (an unknown duration, never "NaN").
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Bytes as GiB (1024³, as the reference) with two decimals and the unit: `1.23 GB`. */
export function formatGiB(bytes: number): string {
  return `${formatFixed(bytes / 1024 ** 3, 2)} GB`;
}
