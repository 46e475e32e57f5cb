/**
 * The run-directory lock: one trainer at a time writes into a run directory (`checkpoint.save_dir`). Two trainers
 * on one directory would delete each other's checkpoints in rotation, point `best.json` at the other run's model
 * and interleave `metrics.jsonl`; the second one must stop before it writes anything.
 *
 * The lock is the file `run.lock` in the run directory, created atomically with its content (written to a
 * temporary name, then hard-linked to `run.lock`, which fails when it exists; file systems without hard links:
 * an exclusive create). It records who holds it:
 *
 *     { "format": "ctclip-run-lock", "version": 1, "pid": 4242, "host": "node1", "startedAt": "…Z",
 *       "command": "node lib/train.js --config …", "nonce": "…", "bootId": "…", "processStart": "…",
 *       "pidNamespace": "pid:[…]", "slurmJobId": "…", "slurmRestartCount": 0 }
 *
 * A lock that exists is **stale** (taken over with a warning, no flag needed) when its holder provably no longer
 * runs:
 *  - same host, same boot and pid namespace (Linux), and the pid is gone, or is now another process (its start
 *    time differs from the recorded one);
 *  - same host, another boot (the machine restarted since);
 *  - the same SLURM job with a lower SLURM_RESTART_COUNT (a requeued job, possibly on another node).
 * Otherwise (a live process, or another host / pid namespace, where the pid cannot be checked) acquiring fails
 * with IO_ERROR naming the holder (pid, host, since, command) and how to proceed.
 *
 * Released by `release()` (the trainer at its end, the CLI on errors) and, as a last resort, synchronously on the
 * process's 'exit' event (a second SIGINT exits at once with process.exit). A SIGKILLed holder leaves its lock
 * behind; the next start on the same host takes it over. Release removes the file only while it is still ours
 * (same nonce).
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CtclipError } from '../errors';
import { isCode, processAlive } from './durable';

export const RUN_LOCK_FILE = 'run.lock';
export const RUN_LOCK_FORMAT = 'ctclip-run-lock';
/** A lock file larger than this is not ours (read with a bound: the run directory may hold anything). */
export const MAX_RUN_LOCK_BYTES = 64 * 1024;
const MAX_COMMAND_CHARS = 2000;

export interface RunLockInfo {
  format: typeof RUN_LOCK_FORMAT;
  version: 1;
  pid: number;
  host: string;
  /** ISO-8601 UTC time the lock was taken. */
  startedAt: string;
  /** The command line of the holder (truncated). */
  command: string;
  /** Random: tells this holder's lock from any later one. */
  nonce: string;
  /** Linux: /proc/sys/kernel/random/boot_id (a reboot makes every older lock of this host stale). */
  bootId?: string;
  /** Linux: the holder's start time in clock ticks since boot (/proc/PID/stat field 22): detects pid reuse. */
  processStart?: string;
  /** Linux: the holder's pid namespace (/proc/self/ns/pid): a pid is only checked inside the same namespace. */
  pidNamespace?: string;
  slurmJobId?: string;
  slurmRestartCount?: number;
}

/** What `inspectRunLock` found. */
export type RunLockState =
  | { state: 'free' }
  | { state: 'unreadable'; reason: string }
  | { state: 'stale'; holder: RunLockInfo; why: string }
  | { state: 'held'; holder: RunLockInfo; why: string };

export interface AcquireRunLockOptions {
  /** The holder's command line (default: this process's argv). */
  command?: string;
  /** Warnings (a taken-over stale lock); default: stderr as `warning: …`. */
  onWarn?: (message: string) => void;
  /** The environment (SLURM_JOB_ID, SLURM_RESTART_COUNT); default process.env. */
  env?: NodeJS.ProcessEnv;
}

function readTextBounded(file: string, max: number): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if (isCode(e, 'ENOENT')) return null;
    throw e;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > max) throw new CtclipError('IO_ERROR', `${file}: ${size} bytes, more than a run lock can be (${max})`);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Linux: a process's start time (clock ticks since boot), or undefined (no /proc, no such process). */
export function processStartTicks(pid: number): string | undefined {
  const stat = readOptional(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // "pid (comm) state ppid …": comm may contain spaces and parentheses; fields resume after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19]; // field 22 overall = index 19 after "pid (comm)"
}

function pidNamespace(): string | undefined {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

function slurmRestartCount(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.SLURM_RESTART_COUNT;
  return v !== undefined && /^\d+$/.test(v.trim()) ? Number(v) : undefined;
}

/** The lock content this process would write. */
export function ownRunLockInfo(opts: AcquireRunLockOptions = {}): RunLockInfo {
  const env = opts.env ?? process.env;
  const command = opts.command ?? [process.argv0 || 'node', ...process.argv.slice(1)].join(' ');
  const info: RunLockInfo = {
    format: RUN_LOCK_FORMAT,
    version: 1,
    pid: process.pid,
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    command: command.length > MAX_COMMAND_CHARS ? `${command.slice(0, MAX_COMMAND_CHARS)}…` : command,
    nonce: randomBytes(12).toString('hex'),
  };
  const bootId = readOptional('/proc/sys/kernel/random/boot_id');
  if (bootId) info.bootId = bootId;
  const start = processStartTicks(process.pid);
  if (start) info.processStart = start;
  const ns = pidNamespace();
  if (ns) info.pidNamespace = ns;
  if (env.SLURM_JOB_ID) info.slurmJobId = env.SLURM_JOB_ID;
  const rc = slurmRestartCount(env);
  if (rc !== undefined) info.slurmRestartCount = rc;
  return info;
}

/** Parses a lock file's text; null when it is not a ctclip run lock. */
export function parseRunLock(text: string): RunLockInfo | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const o = v as Partial<RunLockInfo> | null;
  if (!o || typeof o !== 'object' || o.format !== RUN_LOCK_FORMAT) return null;
  if (
    !Number.isSafeInteger(o.pid) ||
    (o.pid as number) <= 0 ||
    typeof o.host !== 'string' ||
    typeof o.nonce !== 'string'
  )
    return null;
  return {
    format: RUN_LOCK_FORMAT,
    version: 1,
    pid: o.pid as number,
    host: o.host,
    startedAt: typeof o.startedAt === 'string' ? o.startedAt : '?',
    command: typeof o.command === 'string' ? o.command : '?',
    nonce: o.nonce,
    ...(typeof o.bootId === 'string' ? { bootId: o.bootId } : {}),
    ...(typeof o.processStart === 'string' ? { processStart: o.processStart } : {}),
    ...(typeof o.pidNamespace === 'string' ? { pidNamespace: o.pidNamespace } : {}),
    ...(typeof o.slurmJobId === 'string' ? { slurmJobId: o.slurmJobId } : {}),
    ...(Number.isSafeInteger(o.slurmRestartCount) ? { slurmRestartCount: o.slurmRestartCount } : {}),
  };
}

/** Whether `holder` can still be running, seen from `self` (this process); see the module comment. */
export function judgeRunLock(
  holder: RunLockInfo,
  self: RunLockInfo,
  isAlive: (pid: number) => boolean = processAlive,
  startOf: (pid: number) => string | undefined = processStartTicks,
): { stale: boolean; why: string } {
  if (
    holder.slurmJobId !== undefined &&
    holder.slurmJobId === self.slurmJobId &&
    holder.slurmRestartCount !== undefined &&
    self.slurmRestartCount !== undefined &&
    holder.slurmRestartCount < self.slurmRestartCount
  ) {
    return {
      stale: true,
      why: `it belongs to SLURM job ${holder.slurmJobId} restart ${holder.slurmRestartCount}, and this is restart ${self.slurmRestartCount} of that job`,
    };
  }
  if (holder.host !== self.host)
    return {
      stale: false,
      why: `it is held on another host (${holder.host}), where this process cannot check the pid`,
    };
  if (holder.bootId && self.bootId && holder.bootId !== self.bootId)
    return { stale: true, why: 'this host has rebooted since it was taken' };
  if (holder.pidNamespace && self.pidNamespace && holder.pidNamespace !== self.pidNamespace) {
    return {
      stale: false,
      why: `it was taken in another pid namespace (${holder.pidNamespace}, e.g. another container), where this process cannot check the pid`,
    };
  }
  if (
    holder.pid === self.pid &&
    holder.nonce !== self.nonce &&
    holder.processStart !== undefined &&
    holder.processStart === self.processStart
  ) {
    return { stale: false, why: 'this process already holds it (a second trainer in one process)' };
  }
  if (!isAlive(holder.pid)) return { stale: true, why: `process ${holder.pid} is no longer running` };
  if (holder.processStart !== undefined) {
    const now = startOf(holder.pid);
    if (now !== undefined && now !== holder.processStart)
      return {
        stale: true,
        why: `pid ${holder.pid} now belongs to another process (the holder exited and the pid was reused)`,
      };
  }
  return { stale: false, why: `process ${holder.pid} is still running` };
}

/** The state of the lock of run directory `dir` as this process sees it (reads at most MAX_RUN_LOCK_BYTES). */
export function inspectRunLock(dir: string, self: RunLockInfo = ownRunLockInfo()): RunLockState {
  const file = path.join(dir, RUN_LOCK_FILE);
  let text: string | null;
  try {
    text = readTextBounded(file, MAX_RUN_LOCK_BYTES);
  } catch (e) {
    return { state: 'unreadable', reason: (e as Error).message };
  }
  if (text === null) return { state: 'free' };
  const holder = parseRunLock(text);
  if (!holder)
    return {
      state: 'unreadable',
      reason: `${file} is not a ctclip run lock (expected JSON with format '${RUN_LOCK_FORMAT}', pid, host)`,
    };
  const j = judgeRunLock(holder, self);
  return j.stale ? { state: 'stale', holder, why: j.why } : { state: 'held', holder, why: j.why };
}

function describeHolder(h: RunLockInfo): string {
  return `pid ${h.pid} on host ${h.host} since ${h.startedAt}${h.slurmJobId ? ` (SLURM job ${h.slurmJobId})` : ''}: ${h.command}`;
}

/** Creates `file` with `content` atomically, failing with EEXIST when it exists. */
function createExclusive(file: string, content: string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${RUN_LOCK_FILE}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(tmp, content, { flag: 'wx' });
  try {
    const fd = fs.openSync(tmp, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(tmp, file);
    } catch (e) {
      if (!isCode(e, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV')) throw e;
      // No hard links on this file system: an exclusive create (a reader may briefly see it empty).
      fs.writeFileSync(file, content, { flag: 'wx' });
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** A held run-directory lock (see the module comment). */
export class RunLock {
  private released = false;
  private readonly onExit: () => void;

  private constructor(
    readonly dir: string,
    readonly file: string,
    readonly info: RunLockInfo,
  ) {
    this.onExit = () => this.release();
    process.on('exit', this.onExit);
  }

  /**
   * Takes the lock of run directory `dir` (which must exist): IO_ERROR naming the holder when another live run
   * holds it; a stale lock is taken over with a warning.
   */
  static acquire(dir: string, opts: AcquireRunLockOptions = {}): RunLock {
    const root = path.resolve(dir);
    const file = path.join(root, RUN_LOCK_FILE);
    const warn = opts.onWarn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
    const self = ownRunLockInfo(opts);
    const content = `${JSON.stringify(self, null, 2)}\n`;
    const howTo =
      `Wait for that run to finish or stop it, or give this run another checkpoint.save_dir. If no trainer uses ${root} any more ` +
      `(e.g. its host crashed), delete ${file} and start again.`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        createExclusive(file, content);
        return new RunLock(root, file, self);
      } catch (e) {
        if (!isCode(e, 'EEXIST'))
          throw new CtclipError('IO_ERROR', `cannot create the run lock ${file}: ${(e as Error).message}`, {
            cause: e,
          });
      }
      const state = inspectRunLock(root, self);
      if (state.state === 'free') continue; // released meanwhile
      if (state.state === 'unreadable') {
        throw new CtclipError(
          'IO_ERROR',
          `run directory ${root} is locked by ${file}, which cannot be read as a run lock (${state.reason}). ${howTo}`,
        );
      }
      if (state.state === 'held') {
        throw new CtclipError(
          'IO_ERROR',
          `run directory ${root} is in use by another training run: ${file} is held by ${describeHolder(state.holder)} (${state.why}). ${howTo}`,
        );
      }
      // Stale: move it aside under a unique name (one mover wins), check that what moved is the stale lock judged
      // above (not a fresh lock someone created after taking it over), and delete it.
      const aside = path.join(root, `.${RUN_LOCK_FILE}.stale-${process.pid}-${randomBytes(4).toString('hex')}`);
      try {
        fs.renameSync(file, aside);
      } catch (e) {
        if (isCode(e, 'ENOENT')) continue;
        throw new CtclipError('IO_ERROR', `cannot take over the stale run lock ${file}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      const moved = parseRunLock(readTextBounded(aside, MAX_RUN_LOCK_BYTES) ?? '');
      if (!moved || moved.nonce !== state.holder.nonce) {
        // Someone else took it over first: put theirs back (unless yet another one exists) and look again.
        try {
          fs.linkSync(aside, file);
        } catch {
          // EEXIST: a newer lock is in place; theirs is lost either way
        }
        fs.rmSync(aside, { force: true });
        continue;
      }
      fs.rmSync(aside, { force: true });
      warn(`took over the stale run lock ${file} of ${describeHolder(state.holder)}: ${state.why}`);
    }
    throw new CtclipError(
      'IO_ERROR',
      `cannot take the run lock ${file}: other processes keep creating and removing it. ${howTo}`,
    );
  }

  /** Whether this lock is still held by this object. */
  get held(): boolean {
    return !this.released;
  }

  /** Removes the lock file if it is still ours (idempotent; synchronous, so it also runs in an 'exit' handler). */
  release(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener('exit', this.onExit);
    try {
      const text = readTextBounded(this.file, MAX_RUN_LOCK_BYTES);
      const current = text === null ? null : parseRunLock(text);
      if (current && current.nonce === this.info.nonce) fs.unlinkSync(this.file);
    } catch {
      // best effort: a lock left behind by a process that is gone is stale and gets taken over
    }
  }
}
