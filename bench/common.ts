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
