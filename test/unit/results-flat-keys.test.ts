/**
 * results.json carries the reference inference script's flat keys (macro_*, weighted_*, per_class, macro_*_ci_*)
 * at the top level: hand-computed values on a small case, the reference's key set and order, copies of the nested
 * values, intervals only when bootstrapped, null (not NaN) in the file for a single-valued class.
 */
import { expect } from 'chai';
import { buildEvaluationResults } from '../../lib/results/results';
import { resultsJson } from '../../lib/results/write';

// Class a: positives {0.9, 0.6}, negatives {0.2, 0.3, 0.8}. Class b: positives {0.5, 0.7, 0.2}, negatives
// {0.1, 0.4}. Class none: no positives (single-valued, NaN everywhere, left out of every average).
const input = {
  studyIds: ['s1', 's2', 's3', 's4', 's5'],
  classNames: ['a', 'b', 'none'],
  scores: [
    [0.9, 0.1, 0.3],
    [0.2, 0.5, 0.6],
    [0.6, 0.7, 0.1],
    [0.3, 0.2, 0.9],
    [0.8, 0.4, 0.5],
  ],
  labels: [
    [1, 0, 0],
    [0, 1, 0],
    [1, 1, 0],
    [0, 1, 0],
    [0, 0, 0],
  ],
  threshold: 0.5,
};

// By hand. AUROC: a 5/6 (0.9 beats 3 negatives, 0.6 beats 2), b 5/6. AUPRC (step-wise AP): a 1/2·1 + 1/2·2/3,
// b 1/3 + 1/3 + 1/3·3/4. F1 at the best threshold: a 0.8 (at 0.6: P 2/3, R 1), b 6/7 (at 0.2: P 3/4, R 1).
// At 0.5: a predicts {0.9, 0.8, 0.6} → P 2/3, R 1; b predicts {0.7, 0.5} → P 1, R 2/3. Supports 2 and 3.
// Tolerance 1e-8: the optimal F1 has the reference's epsilon in its denominator (F1_EPSILON).
const TOL = 1e-8;
const perClass = {
  a: { auroc: 5 / 6, auprc: 5 / 6, f1: 0.8, precision: 2 / 3, recall: 1 },
  b: { auroc: 5 / 6, auprc: 11 / 12, f1: 6 / 7, precision: 1, recall: 2 / 3 },
};
const METRICS = ['auroc', 'auprc', 'f1', 'precision', 'recall'] as const;
const macro = (m: (typeof METRICS)[number]): number => (perClass.a[m] + perClass.b[m]) / 2;
const weighted = (m: (typeof METRICS)[number]): number => (perClass.a[m] * 2 + perClass.b[m] * 3) / 5;

const NESTED_KEYS = [
  'format',
  'format_version',
  'created',
  'ctclip_version',
  'checkpoint',
  'config',
  'n_samples',
  'n_classes',
  'n_valid_classes',
  'class_names',
  'threshold',
  'excluded_classes',
  'metrics',
  'bootstrap',
  'extra',
];
const FLAT_KEYS = [...METRICS.map((m) => `macro_${m}`), ...METRICS.map((m) => `weighted_${m}`), 'per_class'];
const CI_KEYS = METRICS.flatMap((m) => ['lower', 'upper', 'width'].map((s) => `macro_${m}_ci_${s}`));

describe('results.json: the reference flat keys', function () {
  it('macro_*, weighted_* and per_class equal the hand-computed values and the nested ones', function () {
    const r = buildEvaluationResults(input) as unknown as Record<string, unknown> & {
      metrics: Record<string, unknown> & { per_class: Record<string, Record<string, number>> };
    };
    for (const m of METRICS) {
      expect(r[`macro_${m}`], `macro_${m}`).to.be.closeTo(macro(m), TOL);
      expect(r[`weighted_${m}`], `weighted_${m}`).to.be.closeTo(weighted(m), TOL);
      expect(r[`macro_${m}`]).to.equal(r.metrics[`macro_${m}`]);
      expect(r[`weighted_${m}`]).to.equal(r.metrics[`weighted_${m}`]);
    }
    const flatPerClass = r.per_class as Record<string, Record<string, number>>;
    expect(Object.keys(flatPerClass)).to.deep.equal(['a', 'b', 'none']);
    for (const c of ['a', 'b'] as const) {
      expect(Object.keys(flatPerClass[c])).to.deep.equal([...METRICS]);
      for (const m of METRICS) {
        expect(flatPerClass[c][m], `${c} ${m}`).to.be.closeTo(perClass[c][m], TOL);
        expect(flatPerClass[c][m]).to.equal(r.metrics.per_class[c][m]);
      }
    }
    for (const m of METRICS) expect(flatPerClass.none[m], `none ${m}`).to.be.NaN;
  });

  it("has exactly the reference's keys, in its order, after the nested form; no intervals without bootstrap", function () {
    const r = buildEvaluationResults(input);
    expect(Object.keys(r)).to.deep.equal([...NESTED_KEYS, ...FLAT_KEYS]);
  });

  it('with bootstrap: macro_<m>_ci_lower/upper/width equal the nested intervals, after per_class', function () {
    const r = buildEvaluationResults({ ...input, bootstrap: { nResamples: 40, seed: 3, level: 0.9 } });
    expect(Object.keys(r)).to.deep.equal([...NESTED_KEYS, ...FLAT_KEYS, ...CI_KEYS]);
    const flat = r as unknown as Record<string, number>;
    for (const m of METRICS) {
      const iv = r.bootstrap!.intervals[`macro_${m}`];
      expect(flat[`macro_${m}_ci_lower`]).to.equal(iv.lower);
      expect(flat[`macro_${m}_ci_upper`]).to.equal(iv.upper);
      expect(flat[`macro_${m}_ci_width`]).to.equal(iv.width);
      expect(iv.lower).to.be.at.most(iv.upper);
    }
  });

  it('the file writes null for the single-valued class and parses back to the same flat values', function () {
    const r = buildEvaluationResults(input);
    const json = JSON.parse(resultsJson(r));
    expect(json.per_class.none).to.deep.equal({ auroc: null, auprc: null, f1: null, precision: null, recall: null });
    expect(json.macro_auroc).to.equal(r.macro_auroc);
    expect(json.per_class.b).to.deep.equal(r.per_class.b);
  });
});
