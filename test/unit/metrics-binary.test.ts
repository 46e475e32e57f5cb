/**
 * Per-class metrics and the multi-label aggregates: hand-computed values (scikit-learn's documented examples),
 * brute-force O(n²) cross-checks on random tied data, edge cases (single-valued classes, n = 1, all-equal
 * scores, a score exactly at the threshold) and input validation.
 */
import { expect } from 'chai';
import { CtclipError } from '../../lib/errors';
import { Rng } from '../../lib/rng';
import {
  BinaryMetrics,
  F1_EPSILON,
  averagePrecisionScore,
  binaryMetrics,
  evaluateMultiLabel,
  evaluateSorted,
  precisionRecallCurve,
  rocAucScore,
  rocCurve,
  sortClass,
} from '../../lib/metrics';
import { AGGREGATED, CLASS_METRICS } from '../helpers/expected-names';

function expectArgumentError(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(CtclipError);
    expect((e as CtclipError).code).to.equal('ARGUMENT_ERROR');
    expect((e as Error).message).to.match(pattern);
    return;
  }
  expect.fail('expected an ARGUMENT_ERROR');
}

/** Mann–Whitney U / (P·N) with ties counted 1/2, by brute force over all pairs. */
function bruteAuroc(s: number[], y: number[]): number {
  let u = 0;
  let pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j] !== 0) continue;
      pairs++;
      if (s[i] > s[j]) u += 1;
      else if (s[i] === s[j]) u += 0.5;
    }
  }
  return u / pairs;
}

/** The PR-curve points by brute force: for every distinct threshold t, counts of s ≥ t. */
function brutePrPoints(s: number[], y: number[]): Array<{ t: number; p: number; r: number }> {
  const P = y.reduce((a, b) => a + b, 0);
  const thresholds = [...new Set(s)].sort((a, b) => b - a);
  return thresholds.map((t) => {
    let tp = 0;
    let fp = 0;
    s.forEach((v, i) => {
      if (v >= t) {
        if (y[i] === 1) tp++;
        else fp++;
      }
    });
    return { t, p: tp / (tp + fp), r: tp / P };
  });
}

function bruteAp(s: number[], y: number[]): number {
  let prev = 0;
  let ap = 0;
  for (const { p, r } of brutePrPoints(s, y)) {
    ap += (r - prev) * p;
    prev = r;
  }
  return ap;
}

function bruteMaxF1(s: number[], y: number[]): number {
  let best = 0; // the final point (P = 1, R = 0)
  for (const { p, r } of brutePrPoints(s, y)) best = Math.max(best, (2 * p * r) / (p + r + F1_EPSILON));
  return best;
}

function randomTiedClass(rng: Rng, n: number, decimals: number): { s: number[]; y: number[] } {
  const y: number[] = [];
  const s: number[] = [];
  const scale = 10 ** decimals;
  for (let i = 0; i < n; i++) {
    const label = rng.nextFloat() < 0.3 ? 1 : 0;
    y.push(label);
    s.push(Math.round((rng.nextFloat() * 0.7 + 0.3 * label) * scale) / scale);
  }
  if (!y.includes(1)) y[0] = 1;
  if (!y.includes(0)) y[n - 1] = 0;
  return { s, y };
}

describe('metrics: binary (per class)', function () {
  // scikit-learn's documented example: roc_auc_score = 0.75, average_precision_score = 0.8333…
  const s = [0.1, 0.4, 0.35, 0.8];
  const y = [0, 0, 1, 1];

  it("reproduces scikit-learn's documented AUROC and AP example", function () {
    expect(rocAucScore(s, y)).to.equal(0.75);
    expect(averagePrecisionScore(s, y)).to.be.closeTo(0.8333333333333333, 1e-15);
  });

  it('computes max F1, its threshold and the fixed-threshold metrics by hand', function () {
    const m = binaryMetrics(s, y);
    // PR points (t: P, R): 0.8: 1, .5 | 0.4: .5, .5 | 0.35: 2/3, 1 | 0.1: .5, 1. The max is at 0.35.
    expect(m.f1).to.equal((2 * (2 / 3) * 1) / (2 / 3 + 1 + F1_EPSILON));
    expect(m.f1_threshold).to.equal(0.35);
    expect(m.n_pr_points).to.equal(5);
    // At 0.5 only 0.8 is positive: TP 1, FP 0, TN 2, FN 1.
    expect(m.counts_at_threshold).to.deep.equal({ tp: 1, fp: 0, tn: 2, fn: 1 });
    expect(m.precision).to.equal(1);
    expect(m.recall).to.equal(0.5);
    expect(m.specificity).to.equal(1);
    expect(m.accuracy).to.equal(0.75);
    expect(m.f1_at_threshold).to.equal(2 / 3);
    expect(m.support).to.equal(2);
    expect(m.n_negative).to.equal(2);
    expect(m.youden_threshold).to.equal(undefined);
  });

  it('reports the Youden threshold (first maximiser in ROC order) on request', function () {
    const m = binaryMetrics(s, y, { youden: true });
    // J = TPR − FPR: 0.8 → .5, 0.4 → 0, 0.35 → .5, 0.1 → 0; the highest of the tied maxima wins.
    expect(m.youden_j).to.equal(0.5);
    expect(m.youden_threshold).to.equal(0.8);
  });

  it('counts a score exactly at the threshold as positive', function () {
    const m = binaryMetrics([0.5, 0.2, 0.5], [1, 0, 0], { threshold: 0.5 });
    expect(m.counts_at_threshold).to.deep.equal({ tp: 1, fp: 1, tn: 1, fn: 0 });
    const m2 = binaryMetrics([0.5, 0.2, 0.5], [1, 0, 0], { threshold: 0.6 });
    expect(m2.counts_at_threshold).to.deep.equal({ tp: 0, fp: 0, tn: 2, fn: 1 });
    expect(m2.precision).to.equal(0); // 0/0 → 0 (reference convention)
    expect(m2.f1_at_threshold).to.equal(0);
  });

  it('treats tied scores as one ROC/PR point (average ranks)', function () {
    // One positive and one negative tied at 0.5, one negative below: AUROC = (0.5 + 1) / 2.
    const m = binaryMetrics([0.5, 0.5, 0.1], [1, 0, 0]);
    expect(m.auroc).to.equal(0.75);
    expect(m.auprc).to.equal(0.5);
    expect(m.n_pr_points).to.equal(3);
  });

  it('gives AUROC 0.5, AP = prevalence and two PR points when every score is equal', function () {
    const m = binaryMetrics([0.3, 0.3, 0.3, 0.3, 0.3], [1, 0, 0, 1, 0]);
    expect(m.auroc).to.equal(0.5);
    expect(m.auprc).to.equal(0.4);
    expect(m.n_pr_points).to.equal(2);
    expect(m.f1).to.equal((2 * 0.4 * 1) / (0.4 + 1 + F1_EPSILON));
    expect(m.f1_threshold).to.equal(0.3);
  });

  it('makes every metric NaN for single-valued labels and n = 1, but still reports the counts', function () {
    for (const [scores, labels] of [
      [
        [0.9, 0.1, 0.5],
        [0, 0, 0],
      ],
      [
        [0.9, 0.1, 0.5],
        [1, 1, 1],
      ],
      [[0.7], [1]],
      [[0.2], [0]],
    ] as Array<[number[], number[]]>) {
      const m = binaryMetrics(scores, labels, { youden: true });
      for (const k of CLASS_METRICS) expect(Number.isNaN(m[k]), `${k} for ${JSON.stringify(labels)}`).to.equal(true);
      expect(Number.isNaN(m.youden_threshold)).to.equal(true);
      const tpfn = m.counts_at_threshold.tp + m.counts_at_threshold.fn;
      expect(tpfn).to.equal(labels.filter((v) => v === 1).length);
      expect(tpfn + m.counts_at_threshold.fp + m.counts_at_threshold.tn).to.equal(labels.length);
    }
  });

  it('handles the smallest valid class (n = 2)', function () {
    expect(binaryMetrics([0.9, 0.1], [1, 0]).auroc).to.equal(1);
    expect(binaryMetrics([0.1, 0.9], [1, 0]).auroc).to.equal(0);
    expect(binaryMetrics([0.1, 0.9], [1, 0]).auprc).to.equal(0.5);
  });

  it('agrees with brute-force Mann–Whitney, AP and max-F1 on random heavily tied data', function () {
    const rng = Rng.derive(1, 'metrics-binary-test');
    for (let trial = 0; trial < 150; trial++) {
      const n = 2 + rng.int(80);
      const { s: sc, y: lab } = randomTiedClass(rng, n, 1 + rng.int(3));
      const m = binaryMetrics(sc, lab);
      expect(m.auroc).to.be.closeTo(bruteAuroc(sc, lab), 1e-12);
      expect(m.auprc).to.be.closeTo(bruteAp(sc, lab), 1e-12);
      expect(m.f1).to.be.closeTo(bruteMaxF1(sc, lab), 1e-12);
      expect(m.n_pr_points).to.equal(new Set(sc).size + 1);
    }
  });

  it('is invariant under monotone transforms and antisymmetric under score negation', function () {
    const rng = Rng.derive(2, 'metrics-binary-test');
    const { s: sc, y: lab } = randomTiedClass(rng, 60, 2);
    const base = binaryMetrics(sc, lab);
    const transformed = binaryMetrics(
      sc.map((v) => Math.exp(3 * v) - 7),
      lab,
    );
    expect(transformed.auroc).to.equal(base.auroc);
    expect(transformed.auprc).to.equal(base.auprc);
    expect(transformed.f1).to.equal(base.f1);
    expect(
      binaryMetrics(
        sc.map((v) => -v),
        lab,
      ).auroc,
    ).to.be.closeTo(1 - base.auroc, 1e-15);
  });

  it('evaluates integer weights exactly like the data with rows repeated (the bootstrap relies on it)', function () {
    const rng = Rng.derive(3, 'metrics-binary-test');
    for (let trial = 0; trial < 100; trial++) {
      const n = 1 + rng.int(40);
      const { s: sc, y: lab } = randomTiedClass(rng, Math.max(n, 2), 1 + rng.int(2));
      const weights = new Float64Array(sc.length);
      const repS: number[] = [];
      const repY: number[] = [];
      for (let i = 0; i < sc.length; i++) {
        weights[i] = rng.int(4); // 0..3 copies; some tie groups vanish entirely
        for (let k = 0; k < weights[i]; k++) {
          repS.push(sc[i]);
          repY.push(lab[i]);
        }
      }
      if (repS.length === 0) continue;
      const viaWeights = evaluateSorted(sortClass(Float64Array.from(sc), Uint8Array.from(lab)), weights, 0.5);
      const viaRepeat = binaryMetrics(repS, repY);
      for (const k of CLASS_METRICS) {
        const a = viaWeights[k];
        const b = viaRepeat[k];
        if (Number.isNaN(b)) expect(Number.isNaN(a), k).to.equal(true);
        else expect(a, `${k} trial ${trial}`).to.be.closeTo(b, 1e-12);
      }
      expect(viaWeights.counts_at_threshold).to.deep.equal(viaRepeat.counts_at_threshold);
    }
  });

  it("builds scikit-learn's documented roc_curve and precision_recall_curve", function () {
    const roc = rocCurve(s, y);
    expect(Array.from(roc.fpr)).to.deep.equal([0, 0, 0.5, 0.5, 1]);
    expect(Array.from(roc.tpr)).to.deep.equal([0, 0.5, 0.5, 1, 1]);
    expect(Array.from(roc.thresholds)).to.deep.equal([Infinity, 0.8, 0.4, 0.35, 0.1]);
    const pr = precisionRecallCurve(s, y);
    expect(Array.from(pr.precision)).to.deep.equal([0.5, 2 / 3, 0.5, 1, 1]);
    expect(Array.from(pr.recall)).to.deep.equal([1, 1, 0.5, 0.5, 0]);
    expect(Array.from(pr.thresholds)).to.deep.equal([0.1, 0.35, 0.4, 0.8]);
  });

  it('rejects bad inputs with ARGUMENT_ERROR naming the problem', function () {
    expectArgumentError(() => binaryMetrics([0.1, 0.2], [1]), /length 1 but scores has 2/);
    expectArgumentError(() => binaryMetrics([0.1, 0.2], [1, 2]), /labels\[1\] is 2; expected 0 or 1/);
    expectArgumentError(() => binaryMetrics([0.1, NaN], [1, 0]), /scores\[1\] is NaN; expected a finite number/);
    expectArgumentError(() => binaryMetrics([], []), /at least one sample/);
    expectArgumentError(() => binaryMetrics([0.1], [1], { threshold: NaN }), /threshold is NaN/);
  });
});

describe('metrics: multi-label evaluation and aggregates', function () {
  const classes = ['a', 'b', 'allZero', 'allOne'];
  // 6 samples, a row each (one digit per class); a: 2 positives, b: 3 positives, allZero: none, allOne: all.
  const labels = ['1101', '1001', '0101', '0101', '0001', '0001'].map((row) => [...row].map(Number));
  const scores = [
    [0.9, 0.6, 0.1, 0.9],
    [0.4, 0.7, 0.2, 0.8],
    [0.5, 0.2, 0.3, 0.7],
    [0.1, 0.8, 0.4, 0.6],
    [0.3, 0.1, 0.5, 0.5],
    [0.2, 0.3, 0.6, 0.4],
  ];

  it('aggregates over valid classes only, weighting by the number of positives', function () {
    const r = evaluateMultiLabel(scores, labels, classes);
    const column = (c: number): BinaryMetrics =>
      binaryMetrics(
        scores.map((row) => row[c]),
        labels.map((row) => row[c]),
      );
    const a = column(0);
    const b = column(1);
    expect(r.n_valid_classes).to.equal(2);
    expect(r.n_classes).to.equal(4);
    expect(r.n_samples).to.equal(6);
    expect(r.threshold).to.equal(0.5);
    for (const m of AGGREGATED) {
      expect(r[`macro_${m}`], m).to.be.closeTo((a[m] + b[m]) / 2, 1e-15);
      // allOne has support 6 but NaN metrics: excluded from the weighted average.
      expect(r[`weighted_${m}`], m).to.be.closeTo((2 * a[m] + 3 * b[m]) / 5, 1e-15);
    }
    expect(Number.isNaN(r.per_class.allZero.auroc)).to.equal(true);
    expect(Number.isNaN(r.per_class.allOne.auroc)).to.equal(true);
    expect(r.per_class.allOne.support).to.equal(6);
    expect(Object.keys(r.per_class)).to.deep.equal(classes);
  });

  it('uses the reference key order: macro_*, weighted_*, then per_class', function () {
    const keys = Object.keys(evaluateMultiLabel(scores, labels, classes));
    expect(keys.slice(0, 5)).to.deep.equal([
      'macro_auroc',
      'macro_auprc',
      'macro_f1',
      'macro_precision',
      'macro_recall',
    ]);
    expect(keys.indexOf('weighted_auroc')).to.be.greaterThan(keys.indexOf('macro_f1_at_threshold'));
    expect(keys[keys.length - 1]).to.equal('per_class');
  });

  it('accepts Float64Array rows and passes the threshold and Youden options through', function () {
    const r = evaluateMultiLabel(
      scores.map((row) => Float64Array.from(row)),
      labels.map((row) => Uint8Array.from(row)),
      classes,
      { threshold: 0.35, youden: true },
    );
    expect(r.threshold).to.equal(0.35);
    expect(r.per_class.a.counts_at_threshold).to.deep.equal({ tp: 2, fp: 1, tn: 3, fn: 0 });
    expect(r.per_class.a.youden_threshold).to.be.a('number');
  });

  it('gives NaN aggregates when n = 1', function () {
    const r = evaluateMultiLabel([[0.3, 0.6]], [[1, 0]], ['x', 'y']);
    expect(r.n_valid_classes).to.equal(0);
    expect(Number.isNaN(r.macro_auroc)).to.equal(true);
    expect(Number.isNaN(r.weighted_auroc)).to.equal(true);
  });

  it('rejects mismatched shapes, non-binary labels and non-finite scores, naming row and class', function () {
    expectArgumentError(
      () => evaluateMultiLabel(scores, labels.slice(1), classes),
      /labels has 5 rows but scores has 6/,
    );
    expectArgumentError(
      () => evaluateMultiLabel(scores, labels, ['a', 'b', 'c']),
      /scores row 0 has 4 columns; expected 3/,
    );
    const badLabels = labels.map((row) => row.slice());
    badLabels[2][1] = 0.5;
    expectArgumentError(
      () => evaluateMultiLabel(scores, badLabels, classes),
      /labels\[2\] for class "b" is 0.5; expected 0 or 1/,
    );
    const badScores = scores.map((row) => row.slice());
    badScores[4][3] = NaN;
    expectArgumentError(() => evaluateMultiLabel(badScores, labels, classes), /scores\[4\] for class "allOne" is NaN/);
    badScores[4][3] = Infinity;
    expectArgumentError(() => evaluateMultiLabel(badScores, labels, classes), /is Infinity; expected a finite number/);
    expectArgumentError(() => evaluateMultiLabel([], [], classes), /at least one row/);
    expectArgumentError(() => evaluateMultiLabel(scores, labels, ['a', 'a', 'b', 'c']), /duplicate class name "a"/);
  });
});
