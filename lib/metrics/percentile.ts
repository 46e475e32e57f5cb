/**
 * Percentiles exactly as numpy's default `np.percentile(a, q)` (method "linear", Hyndman & Fan type 7),
 * including numpy's two-sided lerp, so that intervals computed from the same resampled values agree with the
 * reference to the last bit.
 */
import { CtclipError } from '../errors';

/**
 * The q-th percentile (0 ≤ q ≤ 100) of values ALREADY SORTED ascending (no NaN). `length` limits the prefix
 * that is used (the bootstrap keeps its valid values in the front of a preallocated buffer). NaN if empty.
 */
export function percentileSorted(sorted: ArrayLike<number>, q: number, length = sorted.length): number {
  if (!(q >= 0 && q <= 100)) throw new CtclipError('ARGUMENT_ERROR', `percentile q is ${q}; expected 0 ≤ q ≤ 100`);
  const n = length;
  if (n === 0) return NaN;
  const quantile = q / 100; // np.true_divide(q, 100)
  const virtualIndex = (n - 1) * quantile;
  if (virtualIndex >= n - 1) return sorted[n - 1];
  if (virtualIndex < 0) return sorted[0];
  const prev = Math.floor(virtualIndex);
  const gamma = virtualIndex - prev;
  const a = sorted[prev];
  const b = sorted[prev + 1];
  const diff = b - a;
  // numpy._lerp: a + d·t, but b − d·(1 − t) when t ≥ 0.5 (keeps the result monotone and exact at t = 1).
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/** `np.percentile(values, q)` for unsorted values; throws ARGUMENT_ERROR on NaN. NaN if empty. */
export function percentile(values: ArrayLike<number>, q: number): number {
  const copy = Float64Array.from(values);
  for (let i = 0; i < copy.length; i++) {
    if (Number.isNaN(copy[i]))
      throw new CtclipError('ARGUMENT_ERROR', `percentile: values[${i}] is NaN; expected numbers`);
  }
  copy.sort();
  return percentileSorted(copy, q);
}

/** `np.median`: the 50th percentile with linear interpolation. NaN if empty. */
export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

/**
 * The two percentiles of a central interval at confidence `level` (0 < level < 1): 100·(1 − level)/2 and
 * 100·(1 + level)/2, rounded to 12 significant digits so that 0.95 gives exactly [2.5, 97.5] like the
 * reference's literal (the raw float arithmetic gives 2.5000000000000022).
 */
export function intervalPercentiles(level: number): [number, number] {
  if (typeof level !== 'number' || !(level > 0 && level < 1)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `confidence level is ${String(level)}; expected a number strictly between 0 and 1 (e.g. 0.95)`,
    );
  }
  const lo = Number((50 * (1 - level)).toPrecision(12));
  const hi = Number((50 * (1 + level)).toPrecision(12));
  return [lo, hi];
}
