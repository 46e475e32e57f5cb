import { expect } from 'chai';
import { EpochSampler, evalSubset, type DataPosition } from '../../lib/data/sampler';
import { Rng } from '../../lib/rng';
import { hasCode } from '../../lib/errors';

function runEpoch(
  s: EpochSampler,
  start: DataPosition,
): { indices: number[]; positions: number[]; batches: number; last: DataPosition } {
  const n = s.remainingMicroBatches(start);
  const indices: number[] = [];
  const positions: number[] = [];
  let last = start;
  for (let j = 0; j < n; j++) {
    const p = s.microBatch(start, j);
    indices.push(...p.indices);
    positions.push(...p.positions);
    last = p.next;
  }
  return { indices, positions, batches: n, last };
}

describe('data/sampler', () => {
  const N = 103;
  const geo = { numSamples: N, batchSize: 4, gradAccumSteps: 2, seed: 11 };

  it('W=2: each rank gets exactly S·A·B samples, the union never repeats and is the first L of the permutation', () => {
    const r0 = new EpochSampler({ ...geo, worldSize: 2, rank: 0 });
    const r1 = new EpochSampler({ ...geo, worldSize: 2, rank: 1 });
    const S = r0.geometry.stepsPerEpoch; // floor(103 / 16) = 6
    expect(S).to.equal(6);
    const a = runEpoch(r0, { epoch: 0, globalSamplePosition: 0 });
    const b = runEpoch(r1, { epoch: 0, globalSamplePosition: 0 });
    expect(a.batches).to.equal(S * 2);
    expect(b.batches).to.equal(S * 2);
    expect(a.indices).to.have.length(S * 2 * 4);
    expect(b.indices).to.have.length(S * 2 * 4);
    const union = [...a.indices, ...b.indices];
    expect(new Set(union).size).to.equal(union.length);
    expect(union.length).to.equal(r0.usedPerEpoch);
    const perm = Array.from(Rng.derive(11, 'data-order', 0).permutation(N));
    expect(new Set(union)).to.deep.equal(new Set(perm.slice(0, r0.usedPerEpoch)));
    expect(r0.geometry.droppedPerEpoch).to.equal(N - 96);
    expect(a.last).to.deep.equal({ epoch: 1, globalSamplePosition: 0 });
  });

  it('lays out global positions as p = (j·W + r)·B + i', () => {
    const s = new EpochSampler({ ...geo, worldSize: 3, rank: 2 });
    const p = s.microBatch({ epoch: 0, globalSamplePosition: 0 }, 5);
    expect(p.positions).to.deep.equal([5 * 12 + 8, 5 * 12 + 9, 5 * 12 + 10, 5 * 12 + 11]);
    expect(p.next).to.deep.equal({ epoch: 0, globalSamplePosition: 6 * 12 });
  });

  it('different epochs give different orders; the same seed gives the same order', () => {
    const s = new EpochSampler({ ...geo, worldSize: 1 });
    const t = new EpochSampler({ ...geo, worldSize: 1 });
    const e0 = runEpoch(s, { epoch: 0, globalSamplePosition: 0 }).indices;
    const e1 = runEpoch(s, { epoch: 1, globalSamplePosition: 0 }).indices;
    expect(e0).to.not.deep.equal(e1);
    expect(runEpoch(t, { epoch: 0, globalSamplePosition: 0 }).indices).to.deep.equal(e0);
    const other = new EpochSampler({ ...geo, worldSize: 1, seed: 12 });
    expect(runEpoch(other, { epoch: 0, globalSamplePosition: 0 }).indices).to.not.deep.equal(e0);
  });

  it('resume from a mid-epoch position continues exactly (same geometry)', () => {
    const s = new EpochSampler({ ...geo, worldSize: 2, rank: 1 });
    const start = { epoch: 3, globalSamplePosition: 0 };
    const full = runEpoch(s, start);
    const k = 5;
    const mid = s.microBatch(start, k - 1).next;
    expect(mid).to.deep.equal({ epoch: 3, globalSamplePosition: k * 8 });
    const resumed = new EpochSampler({ ...geo, worldSize: 2, rank: 1 });
    const head = full.indices.slice(0, k * 4);
    expect([...head, ...runEpoch(resumed, mid).indices]).to.deep.equal(full.indices);
  });

  it('resume with another world size and batch size never repeats a sample in the epoch', () => {
    const start = { epoch: 2, globalSamplePosition: 0 };
    const before: number[] = [];
    let P = 0;
    for (const r of [0, 1]) {
      const s = new EpochSampler({ ...geo, worldSize: 2, rank: r });
      for (let j = 0; j < 3; j++) {
        const p = s.microBatch(start, j);
        before.push(...p.indices);
        P = p.next.globalSamplePosition;
      }
    }
    expect(P).to.equal(24);
    const after: number[] = [];
    const counts: number[] = [];
    for (const r of [0, 1, 2]) {
      const s = new EpochSampler({ numSamples: N, batchSize: 3, gradAccumSteps: 1, seed: 11, worldSize: 3, rank: r });
      const e = runEpoch(s, { epoch: 2, globalSamplePosition: P });
      expect(Math.min(...e.positions)).to.be.at.least(P);
      after.push(...e.indices);
      counts.push(e.batches);
    }
    expect(new Set(counts).size).to.equal(1); // every rank yields the same number of batches
    expect(counts[0]).to.equal(Math.floor((11 * 9 - 24) / 9)); // L' = floor(103/9)·9 = 99
    const all = [...before, ...after];
    expect(new Set(all).size).to.equal(all.length);
  });

  it('a position at or past the end of the trained part yields nothing; bad positions are refused', () => {
    const s = new EpochSampler({ ...geo, worldSize: 1 });
    expect(s.remainingMicroBatches({ epoch: 0, globalSamplePosition: s.usedPerEpoch })).to.equal(0);
    expect(s.remainingMicroBatches({ epoch: 0, globalSamplePosition: N })).to.equal(0);
    for (const bad of [
      { epoch: -1, globalSamplePosition: 0 },
      { epoch: 0, globalSamplePosition: N + 1 },
      { epoch: 0, globalSamplePosition: 1.5 },
    ]) {
      try {
        s.remainingMicroBatches(bad);
        expect.fail('should throw');
      } catch (e) {
        expect(hasCode(e, 'ARGUMENT_ERROR')).to.equal(true);
      }
    }
  });

  it('replacement candidates: remainder shares are disjoint between ranks, then the next positions', () => {
    const W = 2;
    const r0 = new EpochSampler({ ...geo, worldSize: W, rank: 0 });
    const r1 = new EpochSampler({ ...geo, worldSize: W, rank: 1 });
    const L = r0.usedPerEpoch; // 96, remainder 7
    const c0 = [...r0.replacementCandidates(10)];
    const c1 = [...r1.replacementCandidates(13)];
    const rem0 = c0.filter((q) => q >= L);
    const rem1 = c1.filter((q) => q >= L);
    expect(rem0.length + rem1.length).to.equal(N - L);
    expect(rem0.filter((q) => rem1.includes(q))).to.deep.equal([]);
    expect(rem0.every((q) => (q - L) % W === 0)).to.equal(true);
    expect(c0.slice(rem0.length, rem0.length + 3)).to.deep.equal([11, 12, 13]);
    expect([...r0.replacementCandidates(10)]).to.deep.equal(c0); // deterministic
  });

  it('evalSubset: all for null, a fixed seeded sorted subset otherwise', () => {
    expect(evalSubset(5, null, 1)).to.deep.equal([0, 1, 2, 3, 4]);
    const a = evalSubset(100, 10, 42);
    expect(a).to.have.length(10);
    expect(a).to.deep.equal([...a].sort((x, y) => x - y));
    expect(evalSubset(100, 10, 42)).to.deep.equal(a);
    expect(evalSubset(100, 10, 43)).to.not.deep.equal(a);
    expect(a).to.not.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
