/**
 * Weights & Biases, the honest way: ctclip has no wandb client. When `logging.use_wandb` is true it forces the
 * TensorBoard writer on and prints exactly how to upload the run with the wandb CLI (which imports TensorBoard
 * event files), instead of silently doing nothing (the reference's `use_tensorboard` only warned "not
 * implemented").
 */
import * as path from 'path';

export interface WandbLoggingConfig {
  use_tensorboard: boolean;
  use_wandb: boolean;
  wandb?: { project?: string | null; entity?: string | null };
}

export interface WandbPlan {
  /** Whether the TensorBoard writer must run (true when use_tensorboard or use_wandb). */
  useTensorboard: boolean;
  /** The lines to print at startup (and again at the end of training); empty when use_wandb is false. */
  lines: string[];
  /** The sync command, or null when use_wandb is false. */
  command: string | null;
}

/** Quotes a shell word when it needs it (POSIX single quotes). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The TensorBoard directory of a run. */
export function tensorboardDir(runDir: string): string {
  return path.join(runDir, 'tensorboard');
}

/** What to do about W&B for a run in `runDir` (see the module comment). */
export function wandbPlan(runDir: string, logging: WandbLoggingConfig): WandbPlan {
  if (!logging.use_wandb) return { useTensorboard: logging.use_tensorboard, lines: [], command: null };
  const words = ['wandb', 'sync', '--sync-tensorboard'];
  if (logging.wandb?.project) words.push('--project', logging.wandb.project);
  if (logging.wandb?.entity) words.push('--entity', logging.wandb.entity);
  words.push(tensorboardDir(runDir));
  const command = words.map(shellWord).join(' ');
  const lines = ['W&B: ctclip has no built-in wandb client; it writes TensorBoard event files that wandb imports.'];
  if (!logging.use_tensorboard) lines.push('W&B: logging.use_wandb is true, so TensorBoard logging is turned on.');
  lines.push('W&B: to upload this run (during or after training), run:', `    ${command}`);
  return { useTensorboard: true, lines, command };
}
