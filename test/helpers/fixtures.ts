/**
 * Where the golden fixtures live: `$CTCLIP_FIXTURES`, else `../shared/fixtures` next to the checkout.
 * Tests that need fixtures call `fixturePath(...)`; `fixturesAvailable()` lets a suite skip cleanly on a clone
 * that has no `../shared` (the repo itself must work without it; CI has it).
 */
import * as fs from 'fs';
import * as path from 'path';

export const repoRoot = path.resolve(__dirname, '..', '..');

export function fixturesDir(): string {
  return process.env.CTCLIP_FIXTURES
    ? path.resolve(process.env.CTCLIP_FIXTURES)
    : path.resolve(repoRoot, '..', 'shared', 'fixtures');
}

export function fixturePath(...parts: string[]): string {
  return path.join(fixturesDir(), ...parts);
}

/** Whether the fixtures are present. In CI (CI=true) they must be: a missing set fails instead of skipping. */
export function fixturesAvailable(): boolean {
  const ok = fs.existsSync(path.join(fixturesDir(), 'README.md'));
  if (!ok && process.env.CI === 'true')
    throw new Error(
      `golden fixtures not found at ${fixturesDir()} (set CTCLIP_FIXTURES); CI must run the fixture tests`,
    );
  return ok;
}

export function readFixtureJson<T = unknown>(...parts: string[]): T {
  return JSON.parse(fs.readFileSync(fixturePath(...parts), 'utf8')) as T;
}
