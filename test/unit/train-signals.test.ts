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

  it("during start-up exits at once with the signal's code; after startupDone() it stops after the step again", function () {
    const lines: string[] = [];
    const exits: number[] = [];
    const s = new StopSignals((l) => lines.push(l)).duringStartup((code) => exits.push(code));
    s.trigger('SIGTERM');
    expect(exits).to.deep.equal([143]);
    expect(lines[0]).to.equal(
      'SIGTERM received during start-up (before the first step): nothing to save; exiting (exit 143).',
    );
    expect(s.stopRequested, 'not recorded as a stop request: the process is gone').to.equal(false);
    s.trigger('SIGINT');
    expect(exits).to.deep.equal([143, 130]);
    s.startupDone();
    s.trigger('SIGINT');
    expect(exits).to.deep.equal([143, 130]);
    expect(s.stopRequested).to.equal(true);
    expect(s.exitCode).to.equal(130);
  });

  it('during start-up, by default, ends the process with 143 for SIGTERM', function () {
    const lib = path.join(__dirname, '..', '..', 'lib', 'train', 'signals.js');
    const script = `const { StopSignals } = require(${JSON.stringify(lib)}); new StopSignals().duringStartup().trigger('SIGTERM'); console.log('not reached');`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).to.equal(143);
    expect(r.stdout).to.not.include('not reached');
  });
});
