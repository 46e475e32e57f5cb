/**
 * `node lib/launch.js [launcher options] WORKER_SCRIPT [worker args…]` (also `ctclip launch …`): a torchrun-style
 * launcher. It starts `--nproc_per_node` copies of WORKER_SCRIPT (run with this node binary, `process.execPath`)
 * on this node, gives each the torchrun environment, prefixes their output with `[rank N] `, and supervises them:
 *
 *   - every worker exits 0 → the launcher exits 0;
 *   - a worker exits non-zero or is killed by a signal (no user interrupt) → the others get SIGTERM, then SIGKILL
 *     after the grace period (10 s); if restarts remain, ALL workers start again with TORCHELASTIC_RESTART_COUNT
 *     incremented and `--resume latest` appended to the worker args (unless they already contain --resume);
 *     when `--max_restarts` restarts are used up the launcher exits 1;
 *   - SIGINT / SIGTERM to the launcher → the same signal is forwarded to every worker once (the trainer saves a
 *     checkpoint and exits 130 / 143), the launcher waits for them and does not restart; a second signal SIGKILLs
 *     the workers. Workers run in their own process group, so a terminal's Ctrl-C reaches them only through the
 *     launcher (exactly once).
 *
 * Exit codes:
 *   0    every worker exited 0
 *   1    a worker failed and no restarts were left (or the launcher could not start the workers)
 *   2    bad launcher arguments (nothing was started)
 *   130  interrupted by SIGINT (forwarded to the workers, no restart)
 *   143  interrupted by SIGTERM (forwarded to the workers, no restart)
 *
 * Environment of every worker (torchrun's names): RANK = node_rank·nproc_per_node + LOCAL_RANK,
 * WORLD_SIZE = nnodes·nproc_per_node, LOCAL_RANK, LOCAL_WORLD_SIZE = nproc_per_node, GROUP_RANK = node_rank,
 * GROUP_WORLD_SIZE = nnodes, ROLE_NAME = default, ROLE_RANK = RANK, ROLE_WORLD_SIZE = WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_MAX_RESTARTS, TORCHELASTIC_RUN_ID. Not
 * TORCHELASTIC_USE_AGENT_STORE: this launcher hosts no store (rank 0 does, listening on MASTER_ADDR for a
 * single-node job; docs/distributed.md "Network exposure"), so an inherited value is removed.
 * CTCLIP_THREADS = max(1, ⌊CPUs / nproc_per_node⌋) unless CTCLIP_THREADS or OMP_NUM_THREADS (a positive integer)
 * is already set (then that value is used).
 *
 * Multi-node: one launcher per node with the same --nnodes, --master_addr, --master_port and its own --node_rank.
 * Restarts are per node (there is no rendezvous between launchers): a failure on one node makes the other nodes'
 * ranks fail within `distributed.timeout_minutes`, and then they restart too.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parseCommandArgs, runCommand } from './common';
import { DEFAULT_MASTER_PORT } from '../dist/env';
import { CtclipError } from '../errors';

export const USAGE = `usage: ctclip launch [--nproc_per_node N] [--nnodes M --node_rank R --master_addr A --master_port P]
                     [--max_restarts K] [--monitor_interval S] [--grace_period S] [--run_id ID]
                     WORKER_SCRIPT [worker args ...]
       (also: node lib/launch.js ...; options stop at WORKER_SCRIPT or at '--')

  --nproc_per_node N    workers on this node (default 1; e.g. the GPU count)
  --nnodes M            nodes taking part (default 1)
  --node_rank R         this node's index, 0 <= R < M (default 0)
  --master_addr A       address of the node that runs rank 0 (default 127.0.0.1)
  --master_port P       free TCP port there for rank 0's rendezvous store, 1..65535 (default ${DEFAULT_MASTER_PORT})
  --max_restarts K      restart all workers of this node up to K times after a failure (default 0),
                        with --resume latest appended to the worker args
  --monitor_interval S  seconds between checks of the workers' state (default 0.1)
  --grace_period S      seconds between SIGTERM and SIGKILL when stopping workers after a failure (default 10)
  --run_id ID           TORCHELASTIC_RUN_ID (default 'none', as torchrun)

  WORKER_SCRIPT runs with this node binary, e.g. lib/train.js --config configs/base_config.yaml.
  Each worker gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, ROLE_RANK, ROLE_WORLD_SIZE,
  MASTER_ADDR, MASTER_PORT, TORCHELASTIC_RESTART_COUNT/MAX_RESTARTS/RUN_ID and CTCLIP_THREADS
  (CPUs / nproc_per_node unless CTCLIP_THREADS or OMP_NUM_THREADS is set); its output is prefixed '[rank N] '.

exit codes: 0 all workers succeeded · 1 a worker failed and no restarts were left · 2 bad arguments
            130 SIGINT (forwarded to the workers once, no restart) · 143 SIGTERM (likewise)`;

/** Exit codes of the launcher (see the module comment). */
export const LAUNCH_EXIT = { ok: EXIT_OK, failed: EXIT_FAILURE, usage: EXIT_USAGE, SIGINT: 130, SIGTERM: 143 } as const;

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** What the launcher runs, after parsing and validation. */
export interface LaunchOptions {
  /** Workers on this node (>= 1). */
  nprocPerNode: number;
  /** Nodes taking part (>= 1; default 1). */
  nnodes?: number;
  /** This node's index in [0, nnodes) (default 0). */
  nodeRank?: number;
  /** Address of rank 0's node (default 127.0.0.1). */
  masterAddr?: string;
  /** Port of rank 0's c10d store, 1..65535 (default `DEFAULT_MASTER_PORT`, 29500). */
  masterPort?: number;
  /** Restarts of all workers after a failure (default 0). */
  maxRestarts?: number;
  /** Seconds between state checks (default 0.1). */
  monitorInterval?: number;
  /** Seconds between SIGTERM and SIGKILL when stopping the others after a failure (default 10). */
  gracePeriod?: number;
  /** TORCHELASTIC_RUN_ID (default 'none'). */
  runId?: string;
  /** The worker script, run with `process.execPath`. */
  script: string;
  /** Its arguments. */
  args?: string[];
}

export type ResolvedLaunchOptions = Required<LaunchOptions>;

/** How `launch` ended. */
export interface LaunchResult {
  /** The launcher's exit code (0, 1, 130 or 143). */
  exitCode: number;
  /** 'success': all workers exited 0; 'failed': restarts used up; 'interrupted': SIGINT/SIGTERM received. */
  outcome: 'success' | 'failed' | 'interrupted';
  /** Restarts performed (0 when the first attempt decided). */
  restarts: number;
  /** The interrupt received, when outcome is 'interrupted'. */
  signal: InterruptSignal | null;
  /** The first failure of each failed attempt, in order. */
  failures: WorkerFailure[];
}

/** A worker that exited non-zero or was killed by a signal. */
export interface WorkerFailure {
  /** The attempt (TORCHELASTIC_RESTART_COUNT) it belonged to. */
  attempt: number;
  rank: number;
  localRank: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** Where the launcher writes: worker output (prefixed) and its own messages (stderr, '[launch] …'). */
export interface LaunchIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface LaunchRuntimeOptions extends Partial<LaunchIo> {
  /** Install SIGINT/SIGTERM handlers on this process (default true); `Launcher.interrupt` works either way. */
  handleSignals?: boolean;
  /** The environment the workers inherit (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** CPUs on this node (default os.availableParallelism()). */
  cpus?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Pure parts: argument parsing, environment, exit codes
// ---------------------------------------------------------------------------------------------------------------

const VALUE_OPTIONS = [
  'nproc_per_node',
  'nnodes',
  'node_rank',
  'master_addr',
  'master_port',
  'max_restarts',
  'monitor_interval',
  'grace_period',
  'run_id',
] as const;

/** Splits argv into the launcher's own options and the worker command: options stop at the first positional or '--'. */
export function splitLaunchArgv(argv: string[]): {
  launcherArgs: string[];
  script: string | null;
  scriptArgs: string[];
} {
  const valueNames = new Set<string>(VALUE_OPTIONS.flatMap((n) => [n, n.replace(/_/g, '-')]));
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === '--') {
      return { launcherArgs: argv.slice(0, i), script: argv[i + 1] ?? null, scriptArgs: argv.slice(i + 2) };
    }
    if (!a.startsWith('-') || a === '-') break;
    const name = a.replace(/^--?/, '');
    i += !name.includes('=') && valueNames.has(name) ? 2 : 1;
  }
  if (i >= argv.length) return { launcherArgs: argv.slice(0, Math.min(i, argv.length)), script: null, scriptArgs: [] };
  return { launcherArgs: argv.slice(0, i), script: argv[i], scriptArgs: argv.slice(i + 1) };
}

function integer(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (text === undefined) return fallback;
  const t = text.trim();
  if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`;
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be ${range}, got '${text}'`);
  }
  return Number(t);
}

function seconds(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v <= 0)
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be a number of seconds > 0, got '${text}'`);
  return v;
}

/**
 * Validates and completes launch options (defaults as torchrun's); ARGUMENT_ERROR naming the option otherwise.
 * `checkScript` (default true) requires the worker script to exist.
 */
export function resolveLaunchOptions(o: LaunchOptions, checkScript = true): ResolvedLaunchOptions {
  const str = (v: number | undefined): string | undefined => (v === undefined ? undefined : String(v));
  const nprocPerNode = integer('nproc_per_node', str(o.nprocPerNode), NaN, 1);
  if (Number.isNaN(nprocPerNode)) throw new CtclipError('ARGUMENT_ERROR', '--nproc_per_node is required');
  const nnodes = integer('nnodes', str(o.nnodes), 1, 1);
  const nodeRank = integer('node_rank', str(o.nodeRank), 0, 0);
  if (nodeRank >= nnodes)
    throw new CtclipError('ARGUMENT_ERROR', `--node_rank must be < --nnodes (${nnodes}), got ${nodeRank}`);
  const masterPort = integer('master_port', str(o.masterPort), DEFAULT_MASTER_PORT, 1, 65535);
  const maxRestarts = integer('max_restarts', str(o.maxRestarts), 0, 0);
  const monitorInterval = seconds('monitor_interval', str(o.monitorInterval), 0.1);
  const gracePeriod = seconds('grace_period', str(o.gracePeriod), 10);
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  if (!masterAddr.trim()) throw new CtclipError('ARGUMENT_ERROR', '--master_addr must not be empty');
  const runId = o.runId ?? 'none';
  if (!o.script) throw new CtclipError('ARGUMENT_ERROR', 'missing the worker script (e.g. lib/train.js --config FILE)');
  if (checkScript && !fs.existsSync(o.script))
    throw new CtclipError('ARGUMENT_ERROR', `worker script '${o.script}' does not exist`);
  if (checkScript && fs.statSync(o.script).isDirectory())
    throw new CtclipError('ARGUMENT_ERROR', `worker script '${o.script}' is a folder, expected a .js file`);
  return {
    nprocPerNode,
    nnodes,
    nodeRank,
    masterAddr,
    masterPort,
    maxRestarts,
    monitorInterval,
    gracePeriod,
    runId,
    script: o.script,
    args: [...(o.args ?? [])],
  };
}

/** Parses the command line (`ctclip launch …`) into resolved options, or `{ help: true }` for --help. */
export function parseLaunchArgs(argv: string[], checkScript = true): ResolvedLaunchOptions | { help: true } {
  const { launcherArgs, script, scriptArgs } = splitLaunchArgv(argv);
  // accept torchrun's dash spellings too (--nproc-per-node)
  const normalised = launcherArgs.map((a) =>
    a.startsWith('--') ? `--${a.slice(2).replace(/^[^=]*/, (n) => n.replace(/-/g, '_'))}` : a,
  );
  const { values, positionals } = parseCommandArgs(
    normalised,
    Object.fromEntries(VALUE_OPTIONS.map((n) => [n, { type: 'string' as const }])) as Record<
      (typeof VALUE_OPTIONS)[number],
      { type: 'string' }
    >,
  );
  if (values.help) return { help: true };
  if (positionals.length) throw new CtclipError('ARGUMENT_ERROR', `unexpected argument '${positionals[0]}'`);
  const intText = (name: (typeof VALUE_OPTIONS)[number], fallback: number, min: number, max?: number): number =>
    integer(name, values[name], fallback, min, max);
  return resolveLaunchOptions(
    {
      nprocPerNode: intText('nproc_per_node', 1, 1),
      nnodes: intText('nnodes', 1, 1),
      nodeRank: intText('node_rank', 0, 0),
      masterAddr: values.master_addr,
      masterPort: intText('master_port', DEFAULT_MASTER_PORT, 1, 65535),
      maxRestarts: intText('max_restarts', 0, 0),
      monitorInterval: seconds('monitor_interval', values.monitor_interval, 0.1),
      gracePeriod: seconds('grace_period', values.grace_period, 10),
      runId: values.run_id,
      script: script ?? '',
      args: scriptArgs,
    },
    checkScript,
  );
}

/** The threads each worker should use, and the line that explains the choice. */
export function threadsChoice(
  env: NodeJS.ProcessEnv,
  cpus: number,
  nprocPerNode: number,
): { value: string; message: string } {
  if (env.CTCLIP_THREADS !== undefined && env.CTCLIP_THREADS !== '') {
    return {
      value: env.CTCLIP_THREADS,
      message: `CTCLIP_THREADS=${env.CTCLIP_THREADS} per worker (from the environment)`,
    };
  }
  if (env.OMP_NUM_THREADS !== undefined && /^\s*[1-9]\d*\s*$/.test(env.OMP_NUM_THREADS)) {
    return {
      value: env.OMP_NUM_THREADS.trim(),
      message: `CTCLIP_THREADS=${env.OMP_NUM_THREADS} per worker (from OMP_NUM_THREADS)`,
    };
  }
  const n = Math.max(1, Math.floor(cpus / nprocPerNode));
  return {
    value: String(n),
    message: `CTCLIP_THREADS=${n} per worker (${cpus} CPUs / ${nprocPerNode} workers; set CTCLIP_THREADS to override)`,
  };
}

/** The torchrun variables of one worker (no inherited environment). */
export function torchrunEnv(o: ResolvedLaunchOptions, localRank: number, restartCount: number): Record<string, string> {
  const rank = o.nodeRank * o.nprocPerNode + localRank;
  const world = o.nnodes * o.nprocPerNode;
  return {
    RANK: String(rank),
    WORLD_SIZE: String(world),
    LOCAL_RANK: String(localRank),
    LOCAL_WORLD_SIZE: String(o.nprocPerNode),
    GROUP_RANK: String(o.nodeRank),
    GROUP_WORLD_SIZE: String(o.nnodes),
    ROLE_NAME: 'default',
    ROLE_RANK: String(rank),
    ROLE_WORLD_SIZE: String(world),
    MASTER_ADDR: o.masterAddr,
    MASTER_PORT: String(o.masterPort),
    TORCHELASTIC_RESTART_COUNT: String(restartCount),
    TORCHELASTIC_MAX_RESTARTS: String(o.maxRestarts),
    TORCHELASTIC_RUN_ID: o.runId,
  };
}

/**
 * The full environment of one worker: the inherited one, the torchrun variables, CTCLIP_THREADS and, unless the
 * user set it, MALLOC_ARENA_MAX=1 (glibc reads it at process start: one malloc arena instead of one per thread that
 * runs a step; see native/core/allocator_tuning.h — peak RSS of the `mid` step 630 → 367 MiB).
 */
export function workerEnv(
  base: NodeJS.ProcessEnv,
  o: ResolvedLaunchOptions,
  localRank: number,
  restartCount: number,
  threads: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    MALLOC_ARENA_MAX: '1',
    ...base,
    ...torchrunEnv(o, localRank, restartCount),
    CTCLIP_THREADS: threads,
  };
  delete env.TORCHELASTIC_USE_AGENT_STORE;
  return env;
}

/** The worker args of attempt `restartCount`: from the first restart on, `--resume latest` is appended unless --resume is there. */
export function workerArgs(args: string[], restartCount: number): string[] {
  if (restartCount === 0 || args.some((a) => a === '--resume' || a.startsWith('--resume='))) return [...args];
  return [...args, '--resume', 'latest'];
}

/** The launcher's exit code for an outcome. */
export function launchExitCode(outcome: LaunchResult['outcome'], signal: InterruptSignal | null = null): number {
  if (outcome === 'success') return LAUNCH_EXIT.ok;
  if (outcome === 'interrupted') return signal === 'SIGTERM' ? LAUNCH_EXIT.SIGTERM : LAUNCH_EXIT.SIGINT;
  return LAUNCH_EXIT.failed;
}

/** 'exit code 3' / 'killed by SIGKILL'. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

/** Whether a worker's exit is a failure (non-zero or killed by a signal). */
export function isFailure(code: number | null, signal: NodeJS.Signals | null): boolean {
  return signal !== null || code !== 0;
}

/** Prefixes every complete line with `prefix`; a partial line waits for its newline or for flush(). */
export class LinePrefixer {
  private pending = '';
  constructor(private readonly prefix: string) {}

  /** The prefixed complete lines of `chunk` (plus what was pending), '' when none is complete yet. */
  push(chunk: string): string {
    const text = this.pending + chunk;
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      this.pending = text;
      return '';
    }
    this.pending = text.slice(end + 1);
    return text
      .slice(0, end)
      .split('\n')
      .map((l) => `${this.prefix}${l}\n`)
      .join('');
  }

  /** The pending partial line, prefixed and terminated, or ''. */
  flush(): string {
    if (!this.pending) return '';
    const out = `${this.prefix}${this.pending}\n`;
    this.pending = '';
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The supervisor
// ---------------------------------------------------------------------------------------------------------------

interface Worker {
  rank: number;
  localRank: number;
  child: ChildProcess;
  exited: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  closed: Promise<void>;
}

/** Runs and supervises one node's workers; `launch(opts)` is `new Launcher(opts).run()`. */
export class Launcher {
  readonly options: ResolvedLaunchOptions;
  private readonly io: LaunchIo;
  private readonly env: NodeJS.ProcessEnv;
  private readonly cpus: number;
  private readonly handleSignals: boolean;
  private workers: Worker[] = [];
  private exitOrder: Worker[] = [];
  private interrupted: InterruptSignal | null = null;
  private interruptCount = 0;
  private wake: (() => void) | null = null;

  constructor(opts: LaunchOptions, runtime: LaunchRuntimeOptions = {}) {
    this.options = resolveLaunchOptions(opts);
    this.io = { stdout: runtime.stdout ?? process.stdout, stderr: runtime.stderr ?? process.stderr };
    this.env = runtime.env ?? process.env;
    this.cpus =
      runtime.cpus ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
    this.handleSignals = runtime.handleSignals ?? true;
  }

  private log(line: string): void {
    this.io.stderr.write(`[launch] ${line}\n`);
  }

  /** Same as the launcher receiving `sig`: the first forwards it to the workers, a second SIGKILLs them. */
  interrupt(sig: InterruptSignal): void {
    this.interruptCount++;
    if (this.interruptCount === 1) {
      this.interrupted = sig;
      const live = this.live();
      this.log(
        `${sig} received: forwarding it to ${live.length} worker(s) and waiting for them to save and exit (no restart; send it again to kill them)`,
      );
      for (const w of live) this.signal(w, sig);
    } else {
      this.log(`${sig} received again: killing the workers (SIGKILL)`);
      for (const w of this.live()) this.signal(w, 'SIGKILL');
    }
    this.wake?.();
  }

  /** Starts the workers and supervises them until success, failure without restarts left, or an interrupt. */
  async run(): Promise<LaunchResult> {
    const o = this.options;
    const threads = threadsChoice(this.env, this.cpus, o.nprocPerNode);
    const world = o.nnodes * o.nprocPerNode;
    this.log(
      `${o.nprocPerNode} worker(s) on node ${o.nodeRank}/${o.nnodes} (ranks ${o.nodeRank * o.nprocPerNode}..${(o.nodeRank + 1) * o.nprocPerNode - 1} of ${world}), ` +
        `master ${o.masterAddr}:${o.masterPort}, max restarts ${o.maxRestarts}; ${threads.message}`,
    );
    const handlers: Array<[InterruptSignal, () => void]> = [];
    const killAll = (): void => {
      for (const w of this.live()) this.signal(w, 'SIGKILL');
    };
    if (this.handleSignals) {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        const h = (): void => this.interrupt(sig);
        handlers.push([sig, h]);
        process.on(sig, h);
      }
    }
    process.on('exit', killAll);
    const failures: WorkerFailure[] = [];
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.interrupted) return this.result('interrupted', attempt > 0 ? attempt - 1 : 0, failures);
        this.start(attempt, threads.value);
        const failure = await this.monitor(attempt);
        if (this.interrupted) {
          await this.stopAll(null);
          return this.result('interrupted', attempt, failures);
        }
        if (!failure) {
          this.log(`all ${o.nprocPerNode} worker(s) exited 0${attempt ? ` (after ${attempt} restart(s))` : ''}`);
          return this.result('success', attempt, failures);
        }
        failures.push(failure);
        const what = `worker rank ${failure.rank} (local rank ${failure.localRank}) ${describeExit(failure.exitCode, failure.signal)} on attempt ${attempt}`;
        const remaining = this.live().length;
        this.log(`${what}; stopping the other ${remaining} worker(s) (SIGTERM, SIGKILL after ${o.gracePeriod} s)`);
        await this.stopAll('SIGTERM');
        if (this.interrupted) return this.result('interrupted', attempt, failures);
        if (attempt >= o.maxRestarts) {
          this.log(`${what}; no restarts left (--max_restarts ${o.maxRestarts}): giving up, exit 1`);
          return this.result('failed', attempt, failures);
        }
        const resumeNote = workerArgs(o.args, 1).length > o.args.length ? ' with --resume latest' : '';
        this.log(
          `restart ${attempt + 1}/${o.maxRestarts}: starting all ${o.nprocPerNode} worker(s) again${resumeNote} (TORCHELASTIC_RESTART_COUNT=${attempt + 1}) after ${what}`,
        );
      }
    } finally {
      for (const [sig, h] of handlers) process.removeListener(sig, h);
      process.removeListener('exit', killAll);
    }
  }

  private result(outcome: LaunchResult['outcome'], restarts: number, failures: WorkerFailure[]): LaunchResult {
    const signal = outcome === 'interrupted' ? this.interrupted : null;
    const exitCode = launchExitCode(outcome, signal);
    if (outcome === 'interrupted') this.log(`interrupted by ${signal}: workers stopped, exit ${exitCode}`);
    return { exitCode, outcome, restarts, signal, failures };
  }

  private live(): Worker[] {
    return this.workers.filter((w) => !w.exited);
  }

  private signal(w: Worker, sig: NodeJS.Signals): void {
    if (w.exited || w.child.pid === undefined) return;
    try {
      w.child.kill(sig);
    } catch {
      // already gone
    }
  }

  private start(attempt: number, threads: string): void {
    const o = this.options;
    const args = workerArgs(o.args, attempt);
    this.workers = [];
    this.exitOrder = [];
    for (let local = 0; local < o.nprocPerNode; local++) {
      const env = workerEnv(this.env, o, local, attempt, threads);
      const rank = Number(env.RANK);
      // own process group: a terminal's Ctrl-C reaches the workers only through the launcher, exactly once
      const child = spawn(process.execPath, [o.script, ...args], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const w: Worker = {
        rank,
        localRank: local,
        child,
        exited: false,
        code: null,
        signal: null,
        closed: Promise.resolve(),
      };
      const prefix = `[rank ${rank}] `;
      const streams: Array<[NodeJS.ReadableStream, NodeJS.WritableStream]> = [
        [child.stdout!, this.io.stdout],
        [child.stderr!, this.io.stderr],
      ];
      const ended = streams.map(
        ([from, to]) =>
          new Promise<void>((resolve) => {
            const p = new LinePrefixer(prefix);
            from.setEncoding('utf8');
            from.on('data', (chunk: string) => {
              const out = p.push(chunk);
              if (out) to.write(out);
            });
            from.on('end', () => {
              const rest = p.flush();
              if (rest) to.write(rest);
              resolve();
            });
            from.on('error', () => resolve());
          }),
      );
      w.closed = new Promise<void>((resolve) => {
        child.on('error', (e) => {
          this.log(`rank ${rank}: could not start '${process.execPath} ${o.script}': ${e.message}`);
          if (w.exited) return;
          w.exited = true;
          w.code = 1;
          this.exitOrder.push(w);
          this.wake?.();
          resolve();
        });
        child.on('exit', (code, signal) => {
          w.exited = true;
          w.code = code;
          w.signal = signal;
          this.exitOrder.push(w);
          this.wake?.();
          // its output is complete when both pipes end; a grandchild still holding them must not stall the launcher
          const cap = setTimeout(resolve, 5000);
          void Promise.all(ended).then(() => {
            clearTimeout(cap);
            resolve();
          });
        });
      });
      this.workers.push(w);
    }
    this.log(
      `attempt ${attempt}: started ranks ${this.workers.map((w) => `${w.rank} (pid ${w.child.pid})`).join(', ')}: ${[o.script, ...args].join(' ')}`,
    );
  }

  /** Waits until all workers exited 0 (null), one failed (its failure), or an interrupt arrived (null). */
  private async monitor(attempt: number): Promise<WorkerFailure | null> {
    for (;;) {
      if (this.interrupted) return null;
      // the first worker (in exit order) that failed decides
      const failed = this.exitOrder.find((w) => isFailure(w.code, w.signal));
      if (failed)
        return {
          attempt,
          rank: failed.rank,
          localRank: failed.localRank,
          exitCode: failed.code,
          signal: failed.signal,
        };
      if (this.exitOrder.length === this.workers.length) {
        await Promise.all(this.workers.map((w) => w.closed)); // all output written
        return null;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, this.options.monitorInterval * 1000);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
      this.wake = null;
    }
  }

  /** Sends `sig` (unless null) to the live workers, SIGKILLs them after the grace period, waits for all to close. */
  private async stopAll(sig: NodeJS.Signals | null): Promise<void> {
    if (sig) for (const w of this.live()) this.signal(w, sig);
    const all = Promise.all(this.workers.map((w) => w.closed));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.gracePeriod * 1000);
    });
    // after an interrupt the workers save a checkpoint first: no grace timeout (a second signal SIGKILLs them)
    const r = sig
      ? await Promise.race([all.then(() => 'done' as const), graceOver])
      : await all.then(() => 'done' as const);
    clearTimeout(timer);
    if (r === 'timeout') {
      const left = this.live();
      if (left.length) this.log(`grace period over: SIGKILL to rank(s) ${left.map((w) => w.rank).join(', ')}`);
      for (const w of left) this.signal(w, 'SIGKILL');
      await all;
    }
  }
}

/**
 * Launches `opts.nprocPerNode` workers of `opts.script` on this node with the torchrun environment and supervises
 * them (restarts on failure, signal forwarding); resolves with the outcome and the launcher's exit code.
 * Throws ARGUMENT_ERROR for invalid options (nothing is started).
 *
 * @example
 *   const r = await launch({ nprocPerNode: 2, script: 'lib/train.js', args: ['--config', 'cfg.yaml'], maxRestarts: 3 });
 *   process.exitCode = r.exitCode;
 */
export function launch(opts: LaunchOptions, runtime: LaunchRuntimeOptions = {}): Promise<LaunchResult> {
  return new Launcher(opts, runtime).run();
}

export async function run(argv: string[]): Promise<number> {
  return runCommand('launch', USAGE, async () => {
    const parsed = parseLaunchArgs(argv);
    if ('help' in parsed) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const r = await launch(parsed);
    return r.exitCode;
  });
}
