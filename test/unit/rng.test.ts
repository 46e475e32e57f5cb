import { expect } from 'chai';
import { Rng } from '../../lib/rng';

describe('rng: seeded xoshiro128**', function () {
  it('matches an independent xoshiro128** implementation from the state [1, 2, 3, 4]', function () {
    const r = Rng.fromState([1, 2, 3, 4]);
    // values computed with a separate Python implementation of the published algorithm
    expect([0, 1, 2, 3, 4, 5].map(() => r.nextUint32())).to.deep.equal([
      11520, 0, 5927040, 70819200, 2031721883, 1637235492,
    ]);
  });

  it('is deterministic per seed, differs across seeds and uses seeds above 2^32', function () {
    const a = new Rng(2025);
    const b = new Rng(2025);
    const xs = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).to.deep.equal(xs);
    expect(new Rng(2026).nextUint32()).to.not.equal(new Rng(2025).nextUint32());
    expect(new Rng(2 ** 40 + 7).nextUint32()).to.not.equal(new Rng(7).nextUint32());
    expect(() => new Rng(-1)).to.throw(RangeError);
    expect(() => new Rng(1.5)).to.throw(RangeError);
  });

  it('derives independent, reproducible streams from (seed, labels)', function () {
    const s1 = Rng.derive(7, 'data-order', 0).permutation(50);
    expect(Array.from(Rng.derive(7, 'data-order', 0).permutation(50))).to.deep.equal(Array.from(s1));
    expect(Array.from(Rng.derive(7, 'data-order', 1).permutation(50))).to.not.deep.equal(Array.from(s1));
    expect(Rng.derive(7, 'bootstrap').nextUint32()).to.not.equal(Rng.derive(7, 'data-order').nextUint32());
    expect(Rng.derive(7, 'a', 'b').nextUint32()).to.not.equal(Rng.derive(7, 'ab').nextUint32());
  });

  it('saves and restores its exact state (checkpoints)', function () {
    const r = new Rng(11);
    for (let i = 0; i < 13; i++) r.nextUint32();
    const state = r.getState();
    const expected = Array.from({ length: 20 }, () => r.nextUint32());
    const restored = Rng.fromState(JSON.parse(JSON.stringify(state)));
    expect(Array.from({ length: 20 }, () => restored.nextUint32())).to.deep.equal(expected);
    expect(() => Rng.fromState([1, 2, 3] as never)).to.throw(/four uint32 words/);
  });

  it('draws floats in [0, 1), unbiased integers and valid permutations', function () {
    const r = new Rng(3);
    const counts = new Array(6).fill(0);
    let sum = 0;
    const n = 60000;
    for (let i = 0; i < n; i++) {
      const f = r.nextFloat();
      expect(f).to.be.at.least(0).and.below(1);
      sum += f;
      counts[r.int(6)]++;
    }
    expect(sum / n).to.be.closeTo(0.5, 0.01);
    for (const c of counts) expect(c).to.be.closeTo(n / 6, 5 * Math.sqrt(n / 6)); // within 5 sigma
    const p = Array.from(r.permutation(1000)).sort((a, b) => a - b);
    expect(p).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i));
    expect(() => r.int(0)).to.throw(RangeError);
    let m = 0;
    let m2 = 0;
    for (let i = 0; i < 20000; i++) {
      const z = r.normal();
      m += z;
      m2 += z * z;
    }
    expect(m / 20000).to.be.closeTo(0, 0.04);
    expect(m2 / 20000).to.be.closeTo(1, 0.05);
  });
});

describe('package: public API', function () {
  it('resolves the package root through its exports to lib/index', function () {
    const api = require('ctclip') as typeof import('../../lib/index');
    expect(api.loadConfig).to.be.a('function');
    expect(api.planRun).to.be.a('function');
    expect(api.Tokenizer).to.be.a('function');
    expect(api.metrics.evaluateMultiLabel).to.be.a('function');
    expect(api.data.cleanReport('a "b" (c)\nNot given.')).to.equal('a b c\n');
    expect(require.resolve('ctclip')).to.match(/lib[\\/]index\.js$/);
  });
});
