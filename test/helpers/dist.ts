/** Multi-process helpers for the data-parallel tests: a free loopback port, and N ranks of a script started with the torchrun environment. */
import { spawn, type ChildProcess } from 'child_process';
import { resolveLaunchOptions, torchrunEnv } from '../../lib/commands/launch';

export { freePort } from '../../bench/common';

export interface RankRun {
  rank: number;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (or the signal name). */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/**
 * Starts `worldSize` node processes of `args` (a script and its arguments) on one node at 127.0.0.1:`port`, rank r
 * with the launcher's torchrun environment (lib/commands/launch.ts torchrunEnv) + env(r).
 */
export function startRanks(
  args: string[],
  worldSize: number,
  port: number,
  env: (rank: number) => Record<string, string> = () => ({}),
): RankRun[] {
  const runs: RankRun[] = [];
  const job = resolveLaunchOptions({ nprocPerNode: worldSize, masterPort: port, script: args[0] }, false);
  for (let rank = 0; rank < worldSize; rank++) {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...torchrunEnv(job, rank, 0), ...env(rank) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: RankRun = {
      rank,
      child,
      stdout: '',
      stderr: '',
      done: new Promise((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 })),
      ),
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
