/**
 * The trainer's end of the W&B sidecar (lib/logging/wandb_sidecar.py, protocol in docs/logging.md): a Python
 * process running the official `wandb` client, fed JSON lines over its stdin. Training never waits for it and
 * never fails because of it:
 *
 * - writes go to the pipe without blocking; when more than `maxPendingBytes` are queued (the client is stuck),
 *   records are dropped and counted;
 * - a sidecar that cannot start, answers an error, or exits before `finish()` is a warning, given once through
 *   `warn` with what to do instead (the sync hint); later records are dropped;
 * - it runs in its own session (a terminal's Ctrl-C reaches only the trainer, which saves a checkpoint and then
 *   ends the run) and ignores SIGINT/SIGTERM; the end of the pipe (the trainer finished or died) finishes the run;
 * - until `finish()` the sidecar never keeps the trainer's process alive (a trainer that ends without finishing it,
 *   e.g. after an error, exits; the end of the pipe then finishes the run); after `finish()` the process waits for
 *   the client to upload and exit, at most `finishTimeoutMs`, then leaves it to finish on its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as path from 'path';

/** The sidecar script, shipped next to this module. */
export const WANDB_SIDECAR_SCRIPT = path.join(__dirname, 'wandb_sidecar.py');

/** Keyword arguments of `wandb.init` (null: wandb's default). */
export interface WandbInitArgs {
  project: string;
  entity: string | null;
  group: string | null;
  job_type: string | null;
  name: string | null;
  mode: string;
  dir: string;
  id: string;
  /** 'allow' on a resume (continue the run `id` when it exists); null for a new run. */
  resume: 'allow' | null;
  config: unknown;
}

export type WandbProbe = { ok: true; version: string } | { ok: false; reason: string };

/** Whether `python` can import wandb (decided within `timeoutMs`): its version, or why not. */
export function probeWandb(python: string, timeoutMs = 60_000): WandbProbe {
  const r = spawnSync(python, [WANDB_SIDECAR_SCRIPT, '--probe'], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) {
    const e = r.error as NodeJS.ErrnoException;
    const why = e.code === 'ETIMEDOUT' ? `no answer within ${timeoutMs / 1000} s` : e.message;
    return { ok: false, reason: `${python}: ${why}` };
  }
  if (r.status === 0) {
    try {
      const version = (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { version?: unknown }).version;
      if (typeof version === 'string') return { ok: true, version };
    } catch {
      // fall through: an unexpected answer
    }
  }
  const detail = (r.stderr || r.stdout).trim().split('\n').pop() || `exit status ${r.status}`;
  return { ok: false, reason: `${python} cannot import wandb (${detail})` };
}

export interface WandbSidecarOptions {
  /** Where warnings go (once each): the trainer's log. */
  warn: (...lines: string[]) => void;
  /** Lines appended to the failure warning: what to do instead (the sync hint). */
  fallback?: string[];
  /** Called with the sidecar's `ready` answer (run id, its folder, URL, wandb version). */
  onReady?: (ready: WandbReady) => void;
  /** Records queued beyond this many bytes are dropped (default 16 MiB). */
  maxPendingBytes?: number;
  /** How long the trainer's process waits for the client after `finish()` (default 300 s). */
  finishTimeoutMs?: number;
}

export interface WandbReady {
  id: string;
  dir: string;
  url: string | null;
  version: string;
}

export class WandbSidecar {
  private child: ChildProcess | null;
  private failed = false;
  private finished = false;
  private dropped = 0;
  private readonly maxPending: number;

  private constructor(
    child: ChildProcess,
    private readonly opts: WandbSidecarOptions,
  ) {
    this.child = child;
    this.maxPending = opts.maxPendingBytes ?? 16 << 20;
  }

  /** Starts `python wandb_sidecar.py` and sends the init line (errors arrive later, as one warning). */
  static start(python: string, init: WandbInitArgs, opts: WandbSidecarOptions): WandbSidecar {
    const child = spawn(python, ['-u', WANDB_SIDECAR_SCRIPT], {
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    const sidecar = new WandbSidecar(child, opts);
    // Unreferenced until finish(): see the module comment. The pipes are sockets, which can be unreferenced too.
    child.unref();
    for (const pipe of [child.stdin, child.stdout]) (pipe as unknown as { unref?: () => void }).unref?.();
    child.on('error', (e) => sidecar.fail(`cannot run ${python}: ${e.message}`));
    child.stdin!.on('error', (e) => sidecar.fail(`its input pipe failed: ${e.message}`));
    child.on('exit', (code, signal) => {
      const how = signal ? `signal ${signal}` : `status ${code}`;
      if (!sidecar.finished) sidecar.fail(`it exited (${how})`);
      else if (code !== 0 && !sidecar.failed) opts.warn(`W&B: the wandb client exited with ${how} while finishing.`);
      sidecar.child = null;
    });
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) sidecar.answer(line);
    });
    sidecar.send({ type: 'init', init });
    return sidecar;
  }

  /** The sidecar's process id (undefined when it could not be started). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the sidecar stopped (records are dropped from then on). */
  get stopped(): boolean {
    return this.failed;
  }

  /** `run.log(data, step=step)`. */
  log(step: number, data: Record<string, number>): void {
    this.send({ type: 'log', step, data });
  }

  /** `run.summary.update(data)`. */
  summary(data: Record<string, unknown>): void {
    this.send({ type: 'summary', data });
  }

  /** `run.finish(exit_code=…)` and the end of the pipe; the process then waits for the client (bounded). */
  finish(exitCode: number): void {
    if (this.finished) return;
    this.send({ type: 'finish', exit_code: exitCode });
    this.finished = true;
    const child = this.child;
    if (!child) return;
    child.ref();
    child.stdin!.end();
    if (this.dropped > 0)
      this.opts.warn(`W&B: ${this.dropped} record(s) were dropped while the wandb client was not keeping up.`);
    const timeoutMs = this.opts.finishTimeoutMs ?? 300_000;
    const timer = setTimeout(() => {
      this.opts.warn(
        `W&B: the wandb client (pid ${child.pid}) is still finishing after ${timeoutMs / 1000} s; it goes on in the background.`,
      );
      child.stdout!.destroy();
      child.unref();
    }, timeoutMs);
    timer.unref();
    child.on('exit', () => clearTimeout(timer));
  }

  private send(msg: Record<string, unknown>): void {
    const child = this.child;
    if (this.failed || this.finished || !child || !child.stdin!.writable) return;
    if (child.stdin!.writableLength > this.maxPending) {
      this.dropped++;
      return;
    }
    child.stdin!.write(`${JSON.stringify(msg)}\n`);
  }

  private answer(line: string): void {
    let msg: { type?: string; message?: string } & Partial<WandbReady>;
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return; // not ours
    }
    if (msg.type === 'ready') this.opts.onReady?.(msg as WandbReady);
    else if (msg.type === 'error') this.fail(`wandb.init failed: ${msg.message}`);
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.opts.warn(`W&B: live logging stopped: ${reason.replace(/\.+$/, '')}.`, ...(this.opts.fallback ?? []));
    const child = this.child;
    if (child && !this.finished) {
      child.stdin!.destroy();
      child.stdout!.destroy();
    }
  }
}
