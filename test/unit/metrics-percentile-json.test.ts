/**
 * numpy-exact percentiles (expected values printed by numpy 2.4 `np.percentile`, default method "linear")
 * and the strict JSON writer (NaN/Infinity → null, typed arrays → arrays).
 */
import { expect } from 'chai';
import { CtclipError } from '../../lib/errors';
import {
  intervalPercentiles,
  median,
  percentile,
  percentileSorted,
  toStrictJson,
  toStrictJsonValue,
} from '../../lib/metrics';

describe('metrics: percentiles (numpy linear)', function () {
  it('matches np.percentile bit for bit', function () {
    const v = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.4];
    const qs = [0, 2.5, 5, 25, 50, 75, 95, 97.5, 100];
    const numpy = [0.1, 0.115, 0.13, 0.25, 0.4, 0.6, 0.8399999999999999, 0.8699999999999999, 0.9];
    expect(qs.map((q) => percentile(v, q))).to.deep.equal(numpy);
    expect([2.5, 50, 97.5].map((q) => percentile([1, 2], q))).to.deep.equal([1.025, 1.5, 1.975]);
    const u = [0.7312, 0.7011, 0.7598, 0.7433, 0.7209, 0.7, 0.76, 0.7355, 0.715, 0.7488];
    expect([2.5, 97.5, 10, 90].map((q) => percentile(u, q))).to.deep.equal([
      0.7002474999999999, 0.759955, 0.70099, 0.75982,
    ]);
  });

  it('handles one value, empty input, medians and prefixes', function () {
    expect(percentile([5], 2.5)).to.equal(5);
    expect(Number.isNaN(percentile([], 50))).to.equal(true);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(percentileSorted(Float64Array.from([1, 2, 3, 100]), 100, 3)).to.equal(3);
  });

  it('rejects q outside [0, 100] and NaN values', function () {
    expect(() => percentile([1, 2], 101)).to.throw(CtclipError, /0 ≤ q ≤ 100/);
    expect(() => percentile([1, NaN], 50)).to.throw(CtclipError, /values\[1\] is NaN/);
  });

  it('turns a confidence level into the two percentiles (0.95 → exactly 2.5 and 97.5)', function () {
    expect(intervalPercentiles(0.95)).to.deep.equal([2.5, 97.5]);
    expect(intervalPercentiles(0.9)).to.deep.equal([5, 95]);
    expect(intervalPercentiles(0.99)).to.deep.equal([0.5, 99.5]);
    expect(() => intervalPercentiles(95)).to.throw(CtclipError, /strictly between 0 and 1/);
  });
});

describe('metrics: strict JSON', function () {
  it('writes NaN and ±Infinity as null everywhere, and typed arrays as arrays', function () {
    const text = toStrictJson({
      a: NaN,
      b: [1, Infinity, -Infinity],
      c: { d: 0.5 },
      e: Float64Array.from([1, NaN]),
      f: Uint8Array.from([3]),
    });
    expect(text).to.equal('{"a":null,"b":[1,null,null],"c":{"d":0.5},"e":[1,null],"f":[3]}');
    expect(toStrictJson(NaN)).to.equal('null');
    expect(toStrictJson({ x: 1 }, 2)).to.equal('{\n  "x": 1\n}');
    expect(toStrictJsonValue({ x: NaN, y: [2] })).to.deep.equal({ x: null, y: [2] });
  });
});
