/**
 * "World" tests run the real tools ctclip meets (torchrun, torch.save, transformers, tensorboard, wandb) from a
 * Python environment with torch 2.x. That environment is `$CTCLIP_PYTHON`, or the venv .ci/run creates at
 * .cache/torch2-venv. Without it (or without a module a test needs) the test skips with the reason; with
 * CTCLIP_WORLD_STRICT=1 (set by .ci/run once the venv and its packages are installed) a missing piece fails.
 */
import { spawnSync, type SpawnSyncOptions } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const REPO = path.resolve(__dirname, '..', '..');

/** The Python interpreter of the world tests, or null when there is none. */
export function worldPython(): string | null {
  const env = process.env.CTCLIP_PYTHON;
  if (env) return env;
  const venv = path.join(REPO, '.cache', 'torch2-venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : null;
}

const importable = new Map<string, boolean>();

function canImport(py: string, mod: string): boolean {
  const key = `${py}\0${mod}`;
  if (!importable.has(key)) {
    const r = spawnSync(py, ['-c', `import ${mod}`], { stdio: 'ignore', timeout: 120_000 });
    importable.set(key, r.status === 0);
  }
  return importable.get(key)!;
}

/**
 * Modules that .ci/run could not install from the package index, as `module: pip's reason` lines
 * (CTCLIP_WORLD_UNAVAILABLE): their tests skip with that reason even in strict mode.
 */
function unavailable(mod: string): string | null {
  for (const line of (process.env.CTCLIP_WORLD_UNAVAILABLE ?? '').split('\n'))
    if (line.startsWith(`${mod}:`)) return line;
  return null;
}

function missing(ctx: Mocha.Context, why: string, mod?: string): never {
  const excused = mod !== undefined ? unavailable(mod) : null;
  if (excused) {
    process.stderr.write(`      skipped: ${excused}\n`);
    ctx.skip();
  }
  if (process.env.CTCLIP_WORLD_STRICT === '1') throw new Error(`world test prerequisite missing: ${why}`);
  ctx.skip();
}

/** The world Python when it can import every one of `modules`; otherwise skips (strict mode: fails). */
export function requirePython(ctx: Mocha.Context, modules: string[] = ['torch']): string {
  const py = worldPython();
  if (!py) missing(ctx, 'no Python environment: set CTCLIP_PYTHON or let .ci/run create .cache/torch2-venv');
  for (const m of modules) if (!canImport(py, m)) missing(ctx, `${py} cannot import ${m} (pip install ${m})`, m);
  return py;
}

/** The `bin/` folder of the world Python (torchrun, tensorboard and wandb's scripts live there). */
export function pythonBin(py: string): string {
  return path.dirname(py);
}

/** Runs `python -c script args…`; throws with its stderr when it fails. Returns stdout. */
export function runPython(py: string, script: string, args: string[] = [], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(py, ['-c', script, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 600_000,
    ...opts,
  });
  if (r.status !== 0) {
    throw new Error(`python failed (status ${r.status}, signal ${r.signal}):\n${String(r.stderr).slice(-4000)}`);
  }
  return String(r.stdout);
}
