/**
 * Rotation plan (pure): which complete checkpoints to delete, derived from the directory listing alone.
 * Kept: the newest `keepLastN` by step (0 = keep all), the newest one in any case, and every protected name
 * (the best, the one just saved). Everything else is deleted, oldest first.
 */
export interface RotationEntry {
  name: string;
  step: number;
}

export interface RotationPlan {
  keep: string[];
  delete: string[];
}

export function planRotation(
  checkpoints: readonly RotationEntry[],
  keepLastN: number,
  protect: Iterable<string | null | undefined> = [],
): RotationPlan {
  if (!Number.isInteger(keepLastN) || keepLastN < 0)
    throw new RangeError(`keepLastN must be an integer >= 0, got ${keepLastN}`);
  const newestFirst = [...checkpoints].sort((a, b) => b.step - a.step);
  if (keepLastN === 0) return { keep: newestFirst.map((c) => c.name), delete: [] };
  const keep = new Set<string>();
  for (const p of protect) if (p) keep.add(p);
  newestFirst.slice(0, Math.max(1, keepLastN)).forEach((c) => keep.add(c.name));
  return {
    keep: newestFirst.filter((c) => keep.has(c.name)).map((c) => c.name),
    delete: newestFirst
      .filter((c) => !keep.has(c.name))
      .reverse()
      .map((c) => c.name),
  };
}
