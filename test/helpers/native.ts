/** Native-test helpers: skip a suite when the addon is not built (unit-only runs), force GC. */
import { addonAvailable } from '../../lib/native';

export function requireAddon(ctx: Mocha.Context): void {
  if (!addonAvailable()) ctx.skip();
}

/** Runs a full GC (mocha is started with --expose-gc) and lets finalizers and queued releases run. */
export async function collectGarbage(rounds = 3): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run mocha with --expose-gc (see .mocharc.json)');
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}
