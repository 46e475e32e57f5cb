/**
 * Best-checkpoint rule (pure). A checkpoint can become best only through a finite value of the configured
 * metric in its own `meta.metrics`; a save without that metric (a save-only step), null, NaN or ±Infinity never
 * becomes best (the reference let a save-only checkpoint become best after a resume).
 * Improvement is strict: a tie keeps the earlier best.
 */
export type BestMode = 'max' | 'min';

/** The finite value of `metric` in a checkpoint's meta, else null. */
export function metricValue(meta: unknown, metric: string): number | null {
  if (typeof meta !== 'object' || meta === null) return null;
  const metrics = (meta as { metrics?: unknown }).metrics;
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) return null;
  if (!Object.prototype.hasOwnProperty.call(metrics, metric)) return null;
  const v = (metrics as Record<string, unknown>)[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** True when `candidate` strictly improves on `current` (null current: any finite candidate improves). */
export function improves(candidate: number | null, current: number | null, mode: BestMode): boolean {
  if (candidate === null || !Number.isFinite(candidate)) return false;
  if (current === null) return true;
  return mode === 'max' ? candidate > current : candidate < current;
}

/**
 * The best of a series in step order, as the save-by-save rule would have chosen it: the first strict
 * improvement wins, so among equal values the lowest step is kept. Null when no entry has a value.
 */
export function pickBest<T extends { step: number; value: number | null }>(
  entries: readonly T[],
  mode: BestMode,
): T | null {
  let best: T | null = null;
  for (const e of [...entries].sort((a, b) => a.step - b.step)) {
    if (improves(e.value, best === null ? null : best.value, mode)) best = e;
  }
  return best;
}

/** `0.9123` with four decimals, as the console lines print metrics. */
export function formatMetric(v: number): string {
  return v.toFixed(4);
}
