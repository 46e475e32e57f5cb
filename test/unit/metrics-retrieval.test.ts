/**
 * Retrieval metrics on volume × report similarity matrices: hand-computed ranks, the tie policies, both
 * input layouts, and validation.
 */
import { expect } from 'chai';
import { CtclipError } from '../../lib/errors';
import { retrievalMetrics, retrievalRanks, summarizeRanks } from '../../lib/metrics';

describe('metrics: retrieval', function () {
  it('gives perfect scores for a diagonal-dominant matrix', function () {
    const n = 7;
    const sim = Array.from({ length: n }, (_, i) =>
      Array.from({ length: n }, (_, j) => (i === j ? 1 : -0.1 * ((i + j) % 3))),
    );
    const r = retrievalMetrics(sim);
    for (const dir of [r.image_to_text, r.text_to_image]) {
      expect(dir).to.deep.equal({ r1: 1, r5: 1, r10: 1, r50: 1, mean_rank: 1, median_rank: 1 });
    }
    expect(r.n).to.equal(7);
  });

  it('ranks by hand in both directions', function () {
    // rows = volumes, columns = reports
    const sim = [
      [0.9, 0.1, 0.2], // volume 0: its report ranks 1st
      [0.8, 0.5, 0.6], // volume 1: report 1 (0.5) is beaten by 0.8 and 0.6 → rank 3
      [0.3, 0.4, 0.35], // volume 2: 0.35 beaten by 0.4 → rank 2
    ];
    const ranks = retrievalRanks(sim);
    expect(Array.from(ranks.imageToText)).to.deep.equal([1, 3, 2]);
    // column 0: 0.9 best → 1; column 1: 0.5 vs 0.1, 0.4 → 1; column 2: 0.35 vs 0.2, 0.6 → 2
    expect(Array.from(ranks.textToImage)).to.deep.equal([1, 1, 2]);
    const r = retrievalMetrics(Float64Array.from(sim.flat()), 3);
    expect(r.image_to_text.r1).to.equal(1 / 3);
    expect(r.image_to_text.r5).to.equal(1);
    expect(r.image_to_text.mean_rank).to.equal(2);
    expect(r.image_to_text.median_rank).to.equal(2);
    expect(r.text_to_image.r1).to.equal(2 / 3);
    expect(r.text_to_image.mean_rank).to.equal(4 / 3);
  });

  it('resolves ties pessimistically by default (a constant matrix ranks n, not 1)', function () {
    const n = 4;
    const flat = new Float64Array(n * n).fill(0.25);
    expect(retrievalMetrics(flat, n).image_to_text.mean_rank).to.equal(4);
    expect(retrievalMetrics(flat, n).image_to_text.r1).to.equal(0);
    expect(retrievalMetrics(flat, n, { ties: 'optimistic' }).image_to_text.r1).to.equal(1);
    expect(retrievalMetrics(flat, n, { ties: 'average' }).text_to_image.mean_rank).to.equal(2.5);
  });

  it('summarises ranks: recall@k and numpy median (even count → mean of the middle two)', function () {
    const s = summarizeRanks([1, 6, 11, 60]);
    expect(s).to.deep.equal({ r1: 0.25, r5: 0.25, r10: 0.5, r50: 0.75, mean_rank: 19.5, median_rank: 8.5 });
  });

  it('rejects non-square input and NaN with ARGUMENT_ERROR', function () {
    expect(() => retrievalMetrics(new Float64Array(6))).to.throw(CtclipError, /expected n·n/);
    expect(() => retrievalMetrics(new Float64Array(9), 2)).to.throw(CtclipError, /expected n·n/);
    expect(() => retrievalMetrics([[1, 2], [3]])).to.throw(CtclipError, /row 1 has 1 columns; expected 2/);
    expect(() =>
      retrievalMetrics([
        [1, NaN],
        [3, 4],
      ]),
    ).to.throw(CtclipError, /similarity\[0\]\[1\] is NaN/);
    expect(() => retrievalMetrics([[1]], undefined, { ties: 'random' as never })).to.throw(CtclipError, /ties/);
  });
});
