/** Native-test helpers: skip a suite when the addon is not built (unit-only runs), force GC. */
import { addonAvailable, loadAddon } from '../../lib/native';

/** Skips the suite when the addon is not built; in CI (CI=true) a missing addon is a failure, never a skip. */
export function requireAddon(ctx: Mocha.Context): void {
  if (addonAvailable()) return;
  if (process.env.CI === 'true') throw new Error('the native addon is not built, but CI must run the native tests');
  ctx.skip();
}

/** `requireAddon`, then skips the suite when the build lacks c10d Gloo; in CI a build without Gloo is a failure. */
export function requireGloo(ctx: Mocha.Context): void {
  requireAddon(ctx);
  if (loadAddon().distBackends().gloo) return;
  if (process.env.CI === 'true') throw new Error('CI builds must have c10d Gloo');
  ctx.skip();
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
