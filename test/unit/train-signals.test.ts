import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { StopSignals } from '../../lib/train/signals';

describe('StopSignals', function () {
  it('takes the same signal twice within a second as one delivery (SLURM + launcher), and keeps stopping', function () {
    const lines: string[] = [];
    const s = new StopSignals((l) => lines.push(l));
    s.trigger('SIGTERM');
    s.trigger('SIGTERM'); // would process.exit(143) — and end this test run — if taken as a second request
    expect(s.stopRequested).to.equal(true);
    expect(s.exitCode).to.equal(143);
    expect(lines[1]).to.match(/received twice within 1000 ms .* treated as one/);
  });

  it('exits at once on a second request (a different signal, or the same one later)', function () {
    const lib = path.join(__dirname, '..', '..', 'lib', 'train', 'signals.js');
    const script = `const { StopSignals } = require(${JSON.stringify(lib)}); const s = new StopSignals(); s.trigger('SIGINT'); s.trigger('SIGTERM'); console.log('not reached');`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).to.equal(130);
    expect(r.stdout).to.not.include('not reached');
    expect(r.stderr).to.match(/SIGTERM received again: exiting immediately \(exit 130\)/);
  });
});
