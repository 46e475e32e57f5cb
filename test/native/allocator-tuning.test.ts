/**
 * The glibc malloc settings the addon applies when it loads (native/core/allocator_tuning.h): on by default, off
 * with CTCLIP_MALLOC_TUNING=0, and the user's own malloc environment wins. Each case is a fresh process, since the
 * settings are applied once per process.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';

const NATIVE = path.join(__dirname, '..', '..', 'lib', 'native.js');

/** This process's environment without the variables the settings depend on (the test runner may have set them). */
function userEnvWithoutMalloc(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^MALLOC_|^CTCLIP_MALLOC_TUNING$|^GLIBC_TUNABLES$/.test(k)) delete env[k];
  }
  return env;
}

function tuningWith(env: Record<string, string>): string {
  const r = spawnSync(
    process.execPath,
    ['-e', `process.stdout.write(require(${JSON.stringify(NATIVE)}).loadAddon().buildInfo().allocatorTuning)`],
    { encoding: 'utf8', env: { ...userEnvWithoutMalloc(), ...env } },
  );
  expect(r.status, r.stderr).to.equal(0);
  return r.stdout;
}

describe('native: malloc settings at load', function () {
  this.timeout(60000);
  before(function () {
    if (process.platform !== 'linux') this.skip();
  });

  it('fixes the thresholds and stops new arenas by default', function () {
    expect(tuningWith({})).to.equal('mmap threshold 32 MiB, trim threshold 512 MiB, no new arenas');
  });

  it('changes nothing with CTCLIP_MALLOC_TUNING=0', function () {
    expect(tuningWith({ CTCLIP_MALLOC_TUNING: '0' })).to.equal('off (CTCLIP_MALLOC_TUNING=0)');
  });

  it("leaves the user's own malloc environment in charge", function () {
    expect(tuningWith({ MALLOC_ARENA_MAX: '1' })).to.equal(
      'mmap threshold 32 MiB, trim threshold 512 MiB, MALLOC_ARENA_MAX=1',
    );
    expect(tuningWith({ MALLOC_TRIM_THRESHOLD_: '1048576' })).to.equal(
      'thresholds as set in the environment, no new arenas',
    );
    expect(tuningWith({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })).to.equal(
      'off (GLIBC_TUNABLES sets glibc.malloc)',
    );
  });
});
