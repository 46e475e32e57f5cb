/** Multi-process helpers for the data-parallel tests: a free loopback port, and N ranks of a script started with the torchrun environment. */
import { spawn, type ChildProcess } from 'child_process';
import * as net from 'net';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RankRun {
  rank: number;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (or the signal name). */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** The torchrun environment of `rank` in a single-node job of `worldSize` at 127.0.0.1:`port`. */
export function torchrunEnv(rank: number, worldSize: number, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    RANK: String(rank),
    WORLD_SIZE: String(worldSize),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(worldSize),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    TORCHELASTIC_RESTART_COUNT: '0',
    ...extra,
  };
}

/** Starts `worldSize` node processes of `args` (a script and its arguments), rank r with torchrunEnv(r) + env(r). */
export function startRanks(args: string[], worldSize: number, port: number, env: (rank: number) => Record<string, string> = () => ({})): RankRun[] {
  const runs: RankRun[] = [];
  for (let rank = 0; rank < worldSize; rank++) {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...torchrunEnv(rank, worldSize, port), ...env(rank) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: RankRun = {
      rank,
      child,
      stdout: '',
      stderr: '',
      done: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 }))),
    };
    child.stdout!.on('data', (d) => (run.stdout += d.toString()));
    child.stderr!.on('data', (d) => (run.stderr += d.toString()));
    runs.push(run);
  }
  return runs;
}

/** The JSON after the first line starting with `tag ` in `text`, or null. */
export function taggedJson<T = Record<string, unknown>>(text: string, tag: string): T | null {
  const line = text.split('\n').find((l) => l.startsWith(`${tag} `));
  return line ? (JSON.parse(line.slice(tag.length + 1)) as T) : null;
}

/** Kills whatever is still running (test cleanup). */
export function killAll(runs: RankRun[]): void {
  for (const r of runs) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      try {
        r.child.kill('SIGCONT');
        r.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}
