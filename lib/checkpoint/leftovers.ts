/**
 * Leftovers of interrupted writes: `.tmp-…` folders (a save that never reached its rename), `.old-…` folders
 * (the previous copy of a step being re-saved, moved aside), `.del-…` folders (a rotation delete) and pointer
 * temp files. They are recognised by name (see names.ts) and handled before every save and when a writable
 * manager is constructed.
 *
 * Age/ownership rule: a leftover is touched only when its writer cannot still be working on it:
 *  - its pid (from the name) is this process and no save of this process is using it, or
 *  - no process with that pid exists on this host, or
 *  - nothing in it changed for `staleAfterMs` (default 1 h): covers pids reused by unrelated processes and
 *    writers on another host of a shared file system.
 * Otherwise it is left alone (another live process is writing there; only rank 0 should ever save).
 *
 * `.old-X` whose `X` is missing (a crash between moving the old copy aside and renaming the new one in) is
 * renamed back to `X`; every other leftover is removed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { fsyncDirSync, isCode, newestMtimeSync, processAlive } from './durable';
import { parseLeftoverName, type LeftoverName } from './names';

export const DEFAULT_STALE_AFTER_MS = 60 * 60 * 1000;

/** Temp paths in use by saves of this process (never cleaned, whatever their pid). */
export const ACTIVE_TEMP_PATHS = new Set<string>();

export type LeftoverAction = 'keep' | 'remove' | 'restore';

export interface LeftoverContext {
  now: number;
  ownPid: number;
  staleAfterMs: number;
  isAlive: (pid: number) => boolean;
}

/** Decision for one leftover (pure). */
export function leftoverAction(
  leftover: LeftoverName,
  state: { newestMtimeMs: number; targetExists: boolean; activeHere: boolean },
  ctx: LeftoverContext,
): LeftoverAction {
  if (state.activeHere) return 'keep';
  const abandoned =
    leftover.pid === ctx.ownPid || !ctx.isAlive(leftover.pid) || ctx.now - state.newestMtimeMs >= ctx.staleAfterMs;
  if (!abandoned) return 'keep';
  if (leftover.kind === 'old' && !state.targetExists) return 'restore';
  return 'remove';
}

export interface CleanupReport {
  removed: string[];
  restored: string[];
  kept: string[];
}

/** Applies `leftoverAction` to every leftover in `dir` (synchronous: used from the constructor too). */
export function cleanupLeftoversSync(
  dir: string,
  opts: { staleAfterMs?: number; now?: number; log?: (m: string, level: 'info' | 'warn') => void } = {},
): CleanupReport {
  const report: CleanupReport = { removed: [], restored: [], kept: [] };
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    if (isCode(e, 'ENOENT')) return report;
    throw new CtclipError('IO_ERROR', `cannot read checkpoint dir ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const ctx: LeftoverContext = {
    now: opts.now ?? Date.now(),
    ownPid: process.pid,
    staleAfterMs: opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
    isAlive: processAlive,
  };
  // Restores first (so that a restored folder is not mistaken for missing by a later decision), then removals.
  const parsed = entries
    .map((e) => ({ entry: e, leftover: parseLeftoverName(e) }))
    .filter((x): x is { entry: string; leftover: LeftoverName } => x.leftover !== null)
    .sort(
      (a, b) =>
        (a.leftover.kind === 'old' ? 0 : 1) - (b.leftover.kind === 'old' ? 0 : 1) || a.entry.localeCompare(b.entry),
    );
  let changed = false;
  for (const { entry, leftover } of parsed) {
    const full = path.join(dir, entry);
    const action = leftoverAction(
      leftover,
      {
        newestMtimeMs: newestMtimeSync(full),
        targetExists: fs.existsSync(path.join(dir, leftover.target)),
        activeHere: ACTIVE_TEMP_PATHS.has(full),
      },
      ctx,
    );
    if (action === 'keep') {
      report.kept.push(full);
    } else if (action === 'restore') {
      fs.renameSync(full, path.join(dir, leftover.target));
      changed = true;
      report.restored.push(full);
      opts.log?.(
        `Restored ${path.join(dir, leftover.target)} from ${full} (a re-save of that step was interrupted)`,
        'warn',
      );
    } else {
      fs.rmSync(full, { recursive: true, force: true });
      changed = true;
      report.removed.push(full);
      if (leftover.kind !== 'del') opts.log?.(`Removed leftover of an interrupted checkpoint write: ${full}`, 'info');
    }
  }
  if (changed) fsyncDirSync(dir);
  return report;
}
