/**
 * Weights & Biases for a training run (`logging.use_wandb`), decided once at the start on rank 0:
 *
 * - **Live**, when the Python interpreter (`$CTCLIP_WANDB_PYTHON`, default `python3`) imports the official `wandb`
 *   package: a sidecar process (lib/logging/wandb-sidecar.ts) runs `wandb.init` with `logging.wandb.project /
 *   entity / group / job_type / name / mode` (`$WANDB_MODE` wins over `mode`, as in wandb itself), the resolved
 *   config, and `dir` = the run folder; the trainer's `train/…` / `val/…` scalars go to `run.log(…, step)`, the
 *   best checkpoint's metric to the summary. The W&B run id is kept in `<run_dir>/wandb_run.json`, so `--resume`
 *   continues the same W&B run (`resume="allow"`).
 * - **Fallback**, when it cannot (no wandb there, or the client stops mid-run): the TensorBoard events, which
 *   `use_wandb` always turns on, and the `wandb sync --sync-tensorboard` command that uploads them, printed at the
 *   start (or when the client stops) and at the end. Training never fails because of W&B.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { writeFileAtomicSync } from '../io/atomic';
import { probeWandb, WandbSidecar, type WandbSidecarOptions } from './wandb-sidecar';

export interface WandbLoggingConfig {
  use_tensorboard: boolean;
  use_wandb: boolean;
  wandb?: {
    project?: string | null;
    entity?: string | null;
    mode?: string;
    name?: string | null;
    group?: string | null;
    job_type?: string | null;
    python?: string | null;
  };
}

export interface WandbPlan {
  /** Whether the TensorBoard writer must run (true when use_tensorboard or use_wandb). */
  useTensorboard: boolean;
  /** The fallback's lines (how to upload the TensorBoard events); empty when use_wandb is false. */
  lines: string[];
  /** The sync command, or null when use_wandb is false. */
  command: string | null;
}

/** The file in the run folder that keeps the W&B run id for `--resume`. */
export const WANDB_RUN_FILE = 'wandb_run.json';

/** The environment variable naming the Python interpreter of the W&B sidecar. */
export const WANDB_PYTHON_ENV = 'CTCLIP_WANDB_PYTHON';

/** Quotes a shell word when it needs it (POSIX single quotes). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The TensorBoard directory of a run. */
export function tensorboardDir(runDir: string): string {
  return path.join(runDir, 'tensorboard');
}

/** The fallback for a run in `runDir`: TensorBoard on and the sync command (see the module comment). */
export function wandbPlan(runDir: string, logging: WandbLoggingConfig): WandbPlan {
  if (!logging.use_wandb) return { useTensorboard: logging.use_tensorboard, lines: [], command: null };
  const words = ['wandb', 'sync', '--sync-tensorboard'];
  if (logging.wandb?.project) words.push('--project', logging.wandb.project);
  if (logging.wandb?.entity) words.push('--entity', logging.wandb.entity);
  words.push(tensorboardDir(runDir));
  const command = words.map(shellWord).join(' ');
  const lines = ['W&B: the TensorBoard event files of this run can be uploaded with wandb.'];
  if (!logging.use_tensorboard) lines.push('W&B: logging.use_wandb is true, so TensorBoard logging is turned on.');
  lines.push('W&B: to upload this run (during or after training), run:', `    ${command}`);
  return { useTensorboard: true, lines, command };
}

/**
 * The W&B run id of a run folder: on a resume, the one `<runDir>/wandb_run.json` keeps (when there is one);
 * otherwise a new one, written there. DATA_ERROR naming the file when it is not what ctclip wrote.
 */
export function wandbRunId(runDir: string, resume: boolean): string {
  const file = path.join(runDir, WANDB_RUN_FILE);
  if (resume && fs.existsSync(file)) {
    let id: unknown;
    try {
      id = (JSON.parse(fs.readFileSync(file, 'utf8')) as { id?: unknown }).id;
    } catch (e) {
      throw new CtclipError('DATA_ERROR', `${file}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id))
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: "id" must be a W&B run id (1-64 letters, digits, '_' or '-'), got ${JSON.stringify(id)}`,
      );
    return id;
  }
  // W&B's own ids: 8 characters of [a-z0-9].
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const id = [...randomBytes(8)].map((b) => alphabet[b % alphabet.length]).join('');
  writeFileAtomicSync(file, `${JSON.stringify({ id }, null, 2)}\n`);
  return id;
}

export interface WandbSession {
  /** The live client, or null (fallback). */
  sidecar: WandbSidecar | null;
  /**
   * Lines for the end of training: the live run's id, or the fallback's sync command (this array is updated in
   * place when the client stops mid-run).
   */
  endLines: string[];
}

export interface StartWandbOptions {
  /** The run continues a checkpoint: reuse the run id kept in the run folder. */
  resume: boolean;
  /** The resolved config, uploaded as the W&B run config. */
  config: unknown;
  /** `experiment.name`: the run name when `logging.wandb.name` is null. */
  experimentName: string;
  /** Where the start and warning lines go. */
  log: (...lines: string[]) => void;
  /** The interpreter (default `logging.wandb.python`, `$CTCLIP_WANDB_PYTHON`, else `python3`). */
  python?: string;
  /** Passed to the sidecar (tests). */
  sidecar?: Pick<WandbSidecarOptions, 'maxPendingBytes' | 'finishTimeoutMs'>;
}

/** Rank 0, `use_wandb`: starts live logging when wandb is importable, else logs the fallback (module comment). */
export function startWandb(runDir: string, logging: WandbLoggingConfig, opts: StartWandbOptions): WandbSession {
  const plan = wandbPlan(runDir, logging);
  const wb = logging.wandb ?? {};
  const mode = process.env.WANDB_MODE || wb.mode || 'offline';
  if (mode === 'disabled') {
    opts.log(
      `W&B: mode ${mode} (${process.env.WANDB_MODE ? '$WANDB_MODE' : 'logging.wandb.mode'}): nothing is sent to W&B.`,
    );
    return { sidecar: null, endLines: [] };
  }
  const python = opts.python ?? (wb.python || process.env[WANDB_PYTHON_ENV] || 'python3');
  const probe = probeWandb(python);
  if (!probe.ok) {
    const lines = [`W&B: no live logging: ${probe.reason}.`, ...plan.lines];
    opts.log(...lines);
    return { sidecar: null, endLines: plan.lines.slice() };
  }
  const id = wandbRunId(runDir, opts.resume);
  const project = wb.project || 'ctclip';
  const endLines = [`W&B: run ${id} (project ${project}, mode ${mode}) was logged live with wandb ${probe.version}.`];
  opts.log(
    `W&B: logging live with wandb ${probe.version} (${python}): project ${project}, run id ${id}${opts.resume ? ' (resumed)' : ''}, mode ${mode}.`,
  );
  const sidecar = WandbSidecar.start(
    python,
    {
      project,
      entity: wb.entity ?? null,
      group: wb.group ?? null,
      job_type: wb.job_type ?? null,
      name: wb.name ?? opts.experimentName,
      mode,
      dir: runDir,
      id,
      resume: opts.resume ? 'allow' : null,
      config: opts.config,
    },
    {
      ...opts.sidecar,
      warn: (...lines) => {
        opts.log(...lines);
        if (sidecar.stopped) endLines.splice(0, endLines.length, ...plan.lines);
      },
      fallback: plan.lines,
      onReady: (ready) => opts.log(`W&B: run ${ready.id} started: ${ready.url ?? path.dirname(ready.dir)}`),
    },
  );
  return { sidecar, endLines };
}
