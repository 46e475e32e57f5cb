/**
 * Helpers for the checkpoint tests: temp dirs, a log collector, deterministic part contents, byte surgery.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import type { LogFn } from '../../lib/checkpoint';

export function makeCkptDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ctclip-ckpt-${tag}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export interface LogCollector {
  log: LogFn;
  lines: Array<{ message: string; level: 'info' | 'warn' }>;
  infos(): string[];
  warnings(): string[];
  clear(): void;
}

export function collectLog(): LogCollector {
  const lines: LogCollector['lines'] = [];
  return {
    lines,
    log: (message, level) => {
      lines.push({ message, level });
    },
    infos: () => lines.filter((l) => l.level === 'info').map((l) => l.message),
    warnings: () => lines.filter((l) => l.level === 'warn').map((l) => l.message),
    clear: () => {
      lines.length = 0;
    },
  };
}

/** Deterministic bytes standing in for a weights file of `step` (byte k = (step·31 + k·7) mod 251). */
export function fakeWeights(step: number, n = 4096): Buffer {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = (step * 31 + k * 7) % 251;
  return b;
}

/** The parts a trainer-like caller would pass (weights written by a "native" writer that creates the file). */
export function sampleParts(step: number): Record<string, (tmpPath: string) => unknown> {
  return {
    'model.safetensors': (p: string) => fs.writeFileSync(p, fakeWeights(step)),
    'optimizer.safetensors': () => fakeWeights(step + 1000, 1024),
    'schedule.json': () => ({ step, lr: 1e-5 }),
  };
}

/** Flips the bits of one byte of a file in place. */
export function flipByte(file: string, offset: number): void {
  const b = fs.readFileSync(file);
  b[offset] ^= 0xff;
  fs.writeFileSync(file, b);
}

/** The pid of a process that has exited (and been reaped): certainly not alive. */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  if (typeof r.pid !== 'number') throw new Error('could not spawn node');
  return r.pid;
}

/** Entries of `dir` sorted, without pointer files. */
export function entries(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}
