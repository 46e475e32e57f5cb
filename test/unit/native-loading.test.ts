import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkBuildInfo } from '../../lib/native';
import { repoRoot } from '../helpers/fixtures';

describe('native loading: actionable errors', function () {
  const base = { torchLibraryPath: '/usr/lib/libtorch_cpu.so.1.13', compiledTorchLibDir: '/opt/libtorch/lib' };

  it('accepts the same major.minor (patch levels are ABI-compatible)', function () {
    expect(() =>
      checkBuildInfo({ ...base, compiledTorchVersion: '1.13.0', runtimeTorchVersion: '1.13.1' }, 'x.node'),
    ).not.to.throw();
    expect(() =>
      checkBuildInfo({ ...base, compiledTorchVersion: '2.13.0', runtimeTorchVersion: '' }, 'x.node'),
    ).not.to.throw();
  });

  it('refuses a build whose runtime libtorch differs, naming both versions and the fix', function () {
    expect(() =>
      checkBuildInfo({ ...base, compiledTorchVersion: '2.13.0', runtimeTorchVersion: '1.13.1' }, '/b/ctclip.node'),
    )
      .to.throw(
        /\/b\/ctclip\.node was compiled against libtorch 2\.13\.0 but runs with libtorch 1\.13\.1 \(\/usr\/lib\/libtorch_cpu\.so\.1\.13\).*--clean.*\/opt\/libtorch\/lib/,
      )
      .with.property('code', 'ADDON_MISMATCH');
  });

  function loadIn(addonPath: string) {
    return spawnSync(
      process.execPath,
      [
        '-e',
        "try { require('./lib/native').loadAddon(); console.log('loaded') } catch (e) { console.log(e.code + ': ' + e.message) }",
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, CTCLIP_ADDON: addonPath },
        encoding: 'utf8',
      },
    );
  }

  it('explains how to build when the addon is missing', function () {
    const r = loadIn('/nonexistent/ctclip.node');
    expect(r.stdout).to.match(
      /^ADDON_MISSING: the ctclip native addon is not built \(looked for \/nonexistent\/ctclip\.node\)\. Build it with `npm run build:native` after providing libtorch/,
    );
    expect(r.stdout).to.contain('apt-get install libtorch-dev libgloo-dev libopenblas0-pthread');
  });

  it('reports a file that is not a loadable addon without crashing', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-addon-'));
    const fake = path.join(dir, 'ctclip.node');
    fs.writeFileSync(fake, 'not an ELF file');
    try {
      const r = loadIn(fake);
      expect(r.status).to.equal(0);
      expect(r.stdout).to.match(/^ADDON_(MISSING|MISMATCH): cannot load the ctclip native addon .*ctclip\.node/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
