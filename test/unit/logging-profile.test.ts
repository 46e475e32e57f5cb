import { expect } from 'chai';
import { ProfileTimer } from '../../lib/logging/profile';

describe('logging/ProfileTimer', () => {
  it('averages every phase and the total over the same bounded window', () => {
    const p = new ProfileTimer({ window: 4 });
    // 6 steps; the window keeps the last 4 (steps 3..6)
    for (let s = 1; s <= 6; s++) {
      p.add('data', s); // 3,4,5,6 → mean 4.5
      p.add('forward_spatial', 10);
      p.add('forward_spatial', 10); // sums within a step → 20
      if (s % 2 === 0) p.add('backward', 40); // steps 4, 6 → mean 20
      p.add('custom_phase', 1);
      p.endStep(100);
    }
    expect(p.steps).to.equal(4);
    const m = p.means();
    expect(m.totalMs).to.equal(100);
    expect(m.phases).to.deep.equal([
      { name: 'data', ms: 4.5 },
      { name: 'forward_spatial', ms: 20 },
      { name: 'backward', ms: 20 },
      { name: 'custom_phase', ms: 1 },
    ]);
    expect(p.report()).to.deep.equal([
      'Timing (mean over the last 4 steps):',
      '  data                  4.50 ms    4.5%',
      '  forward_spatial      20.00 ms   20.0%',
      '  backward             20.00 ms   20.0%',
      '  custom_phase          1.00 ms    1.0%',
      '  other                54.50 ms   54.5%',
      '  total               100.00 ms  100.0%',
    ]);
  });

  it('is bounded: a long run keeps only window-sized buffers and the means of the last window', () => {
    const p = new ProfileTimer({ window: 3 });
    for (let s = 1; s <= 10000; s++) {
      p.add('data', s);
      p.endStep(s * 2);
    }
    const m = p.means();
    expect(m.phases[0].ms).to.equal((9998 + 9999 + 10000) / 3);
    expect(m.totalMs).to.equal(((9998 + 9999 + 10000) * 2) / 3);
  });

  it('phases absent in a step count as 0; due() follows profile_timing; errors', async () => {
    const p = new ProfileTimer({ window: 2 });
    expect(p.report()).to.deep.equal(['Timing: no steps recorded yet']);
    p.add('optimizer', 10);
    p.endStep(10);
    p.endStep(10);
    expect(p.means().phases).to.deep.equal([{ name: 'optimizer', ms: 5 }]);
    await p.time('data', () => undefined);
    expect(ProfileTimer.due(100, true)).to.equal(true);
    expect(ProfileTimer.due(50, true)).to.equal(false);
    expect(ProfileTimer.due(20, 10)).to.equal(true);
    expect(ProfileTimer.due(20, false)).to.equal(false);
    expect(() => p.add('x', -1)).to.throw(/>= 0/);
    expect(() => p.endStep(NaN)).to.throw(/finite/);
    expect(() => new ProfileTimer({ window: 0 })).to.throw(/window/);
  });
});
