/**
 * Process-wide native runtime settings. libtorch defaults to 1 intra-op thread on this kind of machine, so
 * ctclip always sets the count explicitly: the config's `training.threads` / `--threads`, else the CPU count.
 */
import * as os from 'os';
import { CtclipError } from './errors';
import { loadAddon } from './native';

/** The thread count to use: explicit value, else `CTCLIP_THREADS`, else the number of CPUs. */
export function resolveThreads(requested?: number | null): number {
  if (requested !== undefined && requested !== null) return requested;
  const env = process.env.CTCLIP_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1)
      throw new CtclipError('ARGUMENT_ERROR', `CTCLIP_THREADS must be an integer >= 1, got '${env}'`);
    return n;
  }
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Sets libtorch's intra-op threads (and inter-op, once per process); returns the count now in effect. */
export function configureThreads(requested?: number | null): number {
  const n = resolveThreads(requested);
  if (!Number.isInteger(n) || n < 1)
    throw new CtclipError('ARGUMENT_ERROR', `threads must be an integer >= 1, got ${n}`);
  return loadAddon().setNumThreads(n, n);
}
