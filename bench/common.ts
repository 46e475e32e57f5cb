/** Helpers the benchmarks share: deterministic inputs and median timing (medians come from lib/metrics). */
import * as net from 'net';
import { median } from '../lib/metrics/percentile';
import { tensorFromBuffer, type TensorHandle } from '../lib/tensor';

export { median };

/** n floats uniform in [-1, 1) from a fixed LCG: identical inputs in every run, no RNG state involved. */
export function uniformArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** A float32 tensor of the given shape filled by `uniformArray`. */
export function uniformTensor(shape: number[], seed: number): TensorHandle {
  return tensorFromBuffer(
    uniformArray(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    'float32',
    shape,
  );
}

/** Median wall time in ms of `iters` runs of `fn` after `warmup` untimed runs. */
export async function timeIt(warmup: number, iters: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

/** A TCP port that was free a moment ago on 127.0.0.1 (rendezvous ports for multi-process runs). */
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

/**
 * The command line of a child bench: `--name value` per entry, in order; `true` gives a bare `--name` and `false`
 * leaves the flag out.
 */
export function cliFlags(flags: Record<string, string | number | boolean>): string[] {
  return Object.entries(flags).flatMap(([name, v]) =>
    v === false ? [] : v === true ? [`--${name}`] : [`--${name}`, String(v)],
  );
}

/** The parseArgs options every model step bench takes (bench/ctvit.ts, bench/ctclip.ts). */
export const STEP_BENCH_OPTIONS = {
  batch: { type: 'string' },
  frames: { type: 'string' },
  threads: { type: 'string' },
  warmup: { type: 'string' },
  iters: { type: 'string' },
  matmul: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

/** The numeric step-bench options, undefined where not given (the bench's default applies). */
export function stepBenchNumbers(values: {
  batch?: string;
  frames?: string;
  threads?: string;
  warmup?: string;
  iters?: string;
  matmul?: string;
}): { batch?: number; frames?: number; threads?: number; warmup?: number; iters?: number; matmulN?: number } {
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  return {
    batch: num(values.batch),
    frames: num(values.frames),
    threads: num(values.threads),
    warmup: num(values.warmup),
    iters: num(values.iters),
    matmulN: num(values.matmul),
  };
}

/**
 * Runs a bench's `main` when its file is the entry point. A failure prints its code first (OUT_OF_MEMORY,
 * DEVICE_UNAVAILABLE, …: scripts/gpu-check.sh greps it), then the message, and exits 1.
 */
export function runBenchMain(mod: NodeJS.Module, main: () => Promise<void>): void {
  if (require.main !== mod) return;
  main().catch((e: unknown) => {
    const code = (e as { code?: unknown })?.code;
    console.error(e instanceof Error ? `${typeof code === 'string' ? `${code}: ` : ''}${e.message}` : e);
    process.exit(1);
  });
}
