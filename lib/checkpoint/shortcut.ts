/**
 * `--checkpoint RUN_DIR:best` / `RUN_DIR:latest`, shared by every command that loads a trained model (infer,
 * embed, predict): the shortcut resolves through the run's checkpoint manager, read-only.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { CheckpointManager } from './manager';
import { BEST_POINTER, LATEST_POINTER } from './names';
import { readPointer, type PointerRead } from './pointer';

const SHORTCUT_RE = /^(.+):(best|latest)$/;

function describePointer(name: string, read: PointerRead): string {
  if (read.state === 'missing') return `no ${name}`;
  if (read.state === 'invalid') return `an unusable ${name} (${read.reason})`;
  return `${name} → ${read.pointer.checkpoint}`;
}

/**
 * `--checkpoint RUN_DIR:best` / `RUN_DIR:latest`: the checkpoint folder the run's checkpoint manager resolves
 * (`best`: the best pointer's checkpoint; `latest`: the newest complete one, as `--resume latest`), verified. Any
 * other value, and a path that exists as typed (a folder may contain a colon), is returned unchanged. A run
 * without that checkpoint is an ARGUMENT_ERROR naming the run and what it holds.
 */
export async function resolveCheckpointArg(
  arg: string,
  onWarn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): Promise<{ path: string; shortcut: 'best' | 'latest' | null }> {
  const m = SHORTCUT_RE.exec(arg);
  if (!m || fs.existsSync(arg)) return { path: arg, shortcut: null };
  const which = m[2] as 'best' | 'latest';
  const runDir = path.resolve(m[1]);
  let isDir = false;
  try {
    isDir = fs.statSync(runDir).isDirectory();
  } catch {
    /* reported below */
  }
  if (!isDir)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--checkpoint ${arg}: ${runDir} is not a folder; RUN_DIR:${which} names a run directory (checkpoint.save_dir)`,
    );
  // The best pointer's own metric and mode: a run that tracked a 'min' metric must not be re-judged as 'max' when
  // the manager has to re-derive the best (a dangling pointer).
  const bestPointer = await readPointer(runDir, BEST_POINTER);
  const tracked = bestPointer.state === 'ok' ? bestPointer.pointer : null;
  const manager = new CheckpointManager({
    dir: runDir,
    keepLastN: 0,
    readOnly: true,
    bestMetric: tracked?.metric ?? null,
    bestMode: tracked?.mode ?? 'max',
    onLog: (message, level) => {
      if (level === 'warn') onWarn(message);
    },
  });
  const found = await manager.resolve(which);
  if (found) return { path: found.path, shortcut: which };
  const listed = await manager.list();
  const has = [
    describePointer(BEST_POINTER, bestPointer),
    describePointer(LATEST_POINTER, await readPointer(runDir, LATEST_POINTER)),
    listed.length
      ? `checkpoints ${listed.map((c) => (c.complete ? c.name : `${c.name} (${c.problem ?? 'incomplete'})`)).join(', ')}`
      : 'no checkpoint folders (ckpt-step*)',
  ];
  const hint =
    which === 'best'
      ? `a best checkpoint is recorded when training validates with checkpoint.save_best; ${listed.some((c) => c.complete) ? `use ${m[1]}:latest or a checkpoint folder` : 'is it a run directory?'}`
      : 'is it a run directory (checkpoint.save_dir)?';
  throw new CtclipError(
    'ARGUMENT_ERROR',
    `--checkpoint ${arg}: the run ${runDir} has no ${which} checkpoint; it has ${has.join(', ')} (${hint})`,
  );
}
