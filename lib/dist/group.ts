/**
 * A c10d process group from TypeScript (native/dist/group.h): rendezvous from the launcher's environment
 * (lib/dist/env.ts), collectives with the configured timeout, and the few host-side helpers the trainer needs
 * (gathering validation scores to rank 0, agreeing on a decision). Every collective runs on a libuv worker thread;
 * a dead or stuck rank turns into a DIST_ERROR / DIST_TIMEOUT naming the ranks that stopped answering.
 */
import { CtclipError } from '../errors';
import { addonLoaded, loadAddon, type DistGroupHandle, type TensorHandle } from '../native';
import { readTensor, tensorFromBuffer } from '../tensor';
import type { DistEnv } from './env';

export type DistBackend = 'gloo' | 'nccl';

export interface ProcessGroupOptions {
  /** 'auto' = NCCL when the model runs on CUDA and NCCL is built in, else Gloo. */
  backend?: DistBackend | 'auto';
  /** Every collective's timeout (distributed.timeout_minutes). */
  timeoutMs?: number;
  /** Whether the model's tensors live on CUDA (chooses NCCL under 'auto'). */
  cuda?: boolean;
  /** How often a rank still waiting to join says so on stderr (default: JOIN_PROGRESS_MS, at most a quarter of the timeout). */
  progressMs?: number;
}

/** A rank still waiting for the others after this long says so, and again every as long (never a silent wait). */
export const JOIN_PROGRESS_MS = 30_000;

/** The store a rank of `env` meets the others through, for messages. */
export function rendezvousDescription(env: DistEnv): string {
  const where = `${env.masterAddr}:${env.masterPort}`;
  return env.useAgentStore ? `torchrun's agent store at ${where}` : `rank 0's rendezvous store at ${where}`;
}

/** Which c10d backends the built addon has. */
export function distBackends(): { gloo: boolean; nccl: boolean } {
  return loadAddon().distBackends();
}

export function resolveBackend(requested: DistBackend | 'auto', cuda: boolean, have = distBackends()): DistBackend {
  if (requested === 'auto') {
    if (cuda && have.nccl) return 'nccl';
    if (have.gloo) return 'gloo';
    throw new CtclipError(
      'DIST_ERROR',
      'this build of the addon has no c10d backend (its libtorch was built without Gloo)',
    );
  }
  if (!have[requested])
    throw new CtclipError(
      'CONFIG_ERROR',
      `distributed.backend: '${requested}' is not built into this addon's libtorch (available: ${
        Object.entries(have)
          .filter(([, v]) => v)
          .map(([k]) => k)
          .join(', ') || 'none'
      })`,
    );
  if (requested === 'nccl' && !cuda)
    throw new CtclipError(
      'CONFIG_ERROR',
      "distributed.backend: 'nccl' needs the model on CUDA; use 'gloo' (or 'auto') on CPU",
    );
  return requested;
}

export class ProcessGroup {
  private constructor(
    readonly handle: DistGroupHandle,
    readonly env: DistEnv,
    readonly backend: DistBackend,
    readonly timeoutMs: number,
  ) {}

  get rank(): number {
    return this.env.rank;
  }
  get worldSize(): number {
    return this.env.worldSize;
  }
  get isMain(): boolean {
    return this.env.rank === 0;
  }

  /**
   * Where the rendezvous store this rank hosts listens (rank 0 without an agent store): MASTER_ADDR:MASTER_PORT,
   * or '*:PORT' (every interface) for a multi-node job whose MASTER_ADDR is a host name; null on the other ranks.
   */
  get storeAddress(): string | null {
    return this.handle.storeAddress ?? null;
  }

  /** Joins the job described by `env` (blocks until every rank has joined, up to the timeout). */
  static async init(env: DistEnv, opts: ProcessGroupOptions = {}): Promise<ProcessGroup> {
    const timeoutMs = opts.timeoutMs ?? 30 * 60 * 1000;
    if (!(timeoutMs > 0))
      throw new CtclipError('CONFIG_ERROR', `distributed.timeout_minutes must be > 0, got ${timeoutMs / 60000}`);
    const backend = resolveBackend(opts.backend ?? 'auto', opts.cuda ?? false);
    const joining = loadAddon().distInit({
      rank: env.rank,
      worldSize: env.worldSize,
      localRank: env.localRank,
      localWorldSize: env.localWorldSize,
      masterAddr: env.masterAddr,
      masterPort: env.masterPort,
      useAgentStore: env.useAgentStore,
      restartCount: env.restartCount,
      timeoutMs: Math.round(timeoutMs),
      backend,
    });
    const started = Date.now();
    const progress = setInterval(
      () => {
        process.stderr.write(
          `rank ${env.rank}/${env.worldSize}: still waiting to join the job through ${rendezvousDescription(env)} after ${Math.round((Date.now() - started) / 1000)} s; every rank must start with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT (gives up after ${timeoutMs / 60000} min, distributed.timeout_minutes)\n`,
        );
      },
      opts.progressMs ?? Math.min(JOIN_PROGRESS_MS, timeoutMs / 4),
    );
    progress.unref();
    try {
      return new ProcessGroup(await joining, env, backend, timeoutMs);
    } finally {
      clearInterval(progress);
    }
  }

  /** In place: each tensor becomes the sum over ranks. */
  allReduceSum(tensors: TensorHandle[]): Promise<void> {
    return loadAddon().distAllReduce(this.handle, tensors);
  }

  /** Concatenation over ranks along dim 0 (same shape on every rank). */
  allGather(tensor: TensorHandle): Promise<TensorHandle> {
    return loadAddon().distAllGather(this.handle, tensor);
  }

  broadcast(tensors: TensorHandle[], root = 0): Promise<void> {
    return loadAddon().distBroadcast(this.handle, tensors, root);
  }

  barrier(what?: string): Promise<void> {
    return loadAddon().distBarrier(this.handle, what);
  }

  /** Element-wise sums of a small float64 vector over ranks (decisions, counters). */
  async sumFloat64(values: readonly number[]): Promise<Float64Array> {
    const t = tensorFromBuffer(Float64Array.from(values), 'float64', [values.length]);
    await this.allReduceSum([t]);
    return new Float64Array(readTensor(t).data as Float64Array);
  }

  /** Every rank's rows (row width `width`, any count per rank) concatenated in rank order. */
  async gatherRows(rows: Float64Array, width: number): Promise<{ data: Float64Array; counts: number[] }> {
    if (width < 1 || rows.length % width !== 0)
      throw new CtclipError('ARGUMENT_ERROR', `gatherRows: ${rows.length} values are not rows of ${width}`);
    const n = rows.length / width;
    const counts = Array.from(
      await this.sumFloat64(Array.from({ length: this.worldSize }, (_, r) => (r === this.rank ? n : 0))),
      (x) => Math.round(x),
    );
    const max = Math.max(1, ...counts);
    const padded = new Float64Array(max * width);
    padded.set(rows);
    const all = readTensor(await this.allGather(tensorFromBuffer(padded, 'float64', [max, width])))
      .data as Float64Array;
    const out = new Float64Array(counts.reduce((a, b) => a + b, 0) * width);
    let o = 0;
    for (let r = 0; r < this.worldSize; r++) {
      out.set(all.subarray(r * max * width, (r * max + counts[r]) * width), o);
      o += counts[r] * width;
    }
    return { data: out, counts };
  }

  /** Leaves the group (stops the heartbeat, closes connections). */
  shutdown(): void {
    loadAddon().distShutdown(this.handle);
  }
}

/**
 * Ends the process with `code` at once, even while a rendezvous blocks one of libuv's worker threads (process.exit
 * joins those threads first, which can take up to distributed.timeout_minutes). The 'exit' listeners run first
 * (they release the run lock).
 */
export function exitNow(code: number): never {
  process.exitCode = code;
  process.emit('exit', code);
  if (addonLoaded()) loadAddon().distExitNow(code);
  process.exit(code);
}
