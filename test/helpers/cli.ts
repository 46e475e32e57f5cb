/** The command-line entry points (`node lib/cli.js`, `node lib/train.js`, …) as child processes, run to their end. */
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'child_process';
import * as path from 'path';
import { repoRoot } from './fixtures';

export interface EntryOptions {
  /** The working directory (default: the repository root). */
  cwd?: string;
  /** Variables added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Milliseconds until the child is killed (default: none). */
  timeout?: number;
}

/** `node lib/<entry> args` (entry: cli.js, train.js, …), its output as text. */
export function runEntry(entry: string, args: string[], opts: EntryOptions = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [path.join(repoRoot, 'lib', entry), ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeout,
  });
}

/** `ctclip args`. */
export function runCtclip(args: string[], opts: EntryOptions = {}): SpawnSyncReturns<string> {
  return runEntry('cli.js', args, opts);
}

/** `ctclip synth`: `samples` samples of 8×8×4 in two shards (seed 3) into `out`, which must succeed; the shard pattern. */
export function synthShards(out: string, samples: number): string {
  const r = runCtclip([
    'synth',
    '--out',
    out,
    '--samples',
    String(samples),
    '--shape',
    '8,8,4',
    '--shards',
    '2',
    '--seed',
    '3',
    '--quiet',
  ]);
  expect(r.status, r.stderr).to.equal(0);
  return path.join(out, 'shard-{000000..000001}.tar');
}
