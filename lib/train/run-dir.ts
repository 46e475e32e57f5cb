/**
 * The run directory of a training run: `checkpoint.save_dir`. Everything a run writes lives there, so that
 * `ctclip report RUN_DIR` and `--resume latest` find it:
 *
 *     <save_dir>/
 *       ckpt-step00000040/ …     checkpoints (lib/checkpoint; their own layout, docs/checkpoints.md)
 *       latest.json, best.json   checkpoint pointers
 *       metrics.jsonl            one JSON object per event (train / val / checkpoint / best / resume / end)
 *       tensorboard/             TensorBoard event files (logging.use_tensorboard, or use_wandb)
 *       config.yaml              the fully merged configuration of the latest start (also in every checkpoint)
 *       eval_subset.json         the study ids of the fixed validation subset
 *       report.html              the run report, written at the end (or by `ctclip report RUN_DIR`)
 *       run.lock                 held while a trainer runs here (lib/checkpoint/run-lock.ts; rank 0 only)
 */
import * as fs from 'fs';
import * as path from 'path';
import { RunLock, type AcquireRunLockOptions } from '../checkpoint/run-lock';
import type { ProcessGroup } from '../dist/group';
import { CtclipError } from '../errors';
import { METRICS_FILE } from '../logging/jsonl';
import { REPORT_FILE } from '../logging/run-report';
import { tensorboardDir } from '../logging/wandb';

export interface RunDir {
  root: string;
  checkpoints: string;
  metrics: string;
  tensorboard: string;
  config: string;
  evalSubset: string;
  report: string;
}

export function runDirPaths(saveDir: string): RunDir {
  const root = path.resolve(saveDir);
  return {
    root,
    checkpoints: root,
    metrics: path.join(root, METRICS_FILE),
    tensorboard: tensorboardDir(root),
    config: path.join(root, 'config.yaml'),
    evalSubset: path.join(root, 'eval_subset.json'),
    report: path.join(root, REPORT_FILE),
  };
}

/** Creates the run directory (IO_ERROR naming it when that is impossible, e.g. a file is in the way). */
export function ensureRunDir(saveDir: string): RunDir {
  const dirs = runDirPaths(saveDir);
  try {
    fs.mkdirSync(dirs.root, { recursive: true });
  } catch (e) {
    throw new CtclipError(
      'IO_ERROR',
      `checkpoint.save_dir ${dirs.root}: cannot create the run directory: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!fs.statSync(dirs.root).isDirectory())
    throw new CtclipError('IO_ERROR', `checkpoint.save_dir ${dirs.root} is not a directory`);
  return dirs;
}

/**
 * Creates the run directory and takes its lock (rank 0 only; the other ranks of a group never write there).
 * Distributed: every rank learns whether rank 0 got the lock (one small all-reduce), so that all of them stop at
 * once, rank 0 with the holder's description and the others naming rank 0, instead of timing out later.
 */
export async function lockRunDir(
  saveDir: string,
  group: ProcessGroup | null,
  opts: AcquireRunLockOptions = {},
): Promise<RunLock | null> {
  const rank = group?.rank ?? 0;
  let lock: RunLock | null = null;
  let failure: unknown = null;
  if (rank === 0) {
    try {
      lock = RunLock.acquire(ensureRunDir(saveDir).root, opts);
    } catch (e) {
      failure = e;
    }
  }
  if (group) {
    let failed = 0;
    try {
      [failed] = await group.sumFloat64([failure ? 1 : 0]);
    } catch (e) {
      lock?.release();
      throw failure ?? e;
    }
    if (failed > 0 && rank !== 0) {
      throw new CtclipError(
        'IO_ERROR',
        `rank 0 could not lock the run directory ${path.resolve(saveDir)} (see rank 0's error): this rank stops too`,
      );
    }
  }
  if (failure) throw failure;
  return lock;
}
