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
 */
import * as fs from 'fs';
import * as path from 'path';
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
    throw new CtclipError('IO_ERROR', `checkpoint.save_dir ${dirs.root}: cannot create the run directory: ${(e as Error).message}`, { cause: e });
  }
  if (!fs.statSync(dirs.root).isDirectory()) throw new CtclipError('IO_ERROR', `checkpoint.save_dir ${dirs.root} is not a directory`);
  return dirs;
}

