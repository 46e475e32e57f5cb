/**
 * Fixture G (../shared/fixtures/metrics/metrics_cases.json, produced by scikit-learn 1.9.1): every per-class
 * metric, the fixed-threshold counts, f1_threshold, n_pr_points and every macro/weighted aggregate must
 * match to atol 1e-9 (the fixture tolerance, docs/reference.md; a float64 re-implementation reaches ~1e-15).
 */
import { expect } from 'chai';
import { evaluateMultiLabel, toStrictJson } from '../../lib/metrics';
import { CLASS_METRICS } from '../helpers/expected-names';
import { fixturesAvailable, readFixtureJson } from '../helpers/fixtures';

interface FixtureClass {
  support: number;
  counts_at_threshold: { tp: number; fp: number; tn: number; fn: number };
  [metric: string]: unknown;
}

interface FixtureCase {
  name: string;
  n: number;
  n_classes: number;
  threshold: number;
  classes: string[];
  labels: number[][];
  scores: number[][];
  per_class: Record<string, FixtureClass>;
  macro: Record<string, number | null>;
  weighted: Record<string, number | null>;
}

interface FixtureFile {
  sklearn_version: string;
  nan_encoding: string;
  cases: FixtureCase[];
}

const ATOL = 1e-9;
// Fixture G has no f1_at_threshold (it is derived from the counts, which are compared exactly).
const PER_CLASS_NUMBERS = CLASS_METRICS.filter((m) => m !== 'f1_at_threshold');

describe('metrics: fixture G (scikit-learn)', function () {
  let fixture: FixtureFile;
  let maxAbsDiff = 0;

  before(function () {
    if (!fixturesAvailable()) this.skip();
    fixture = readFixtureJson<FixtureFile>('metrics', 'metrics_cases.json');
  });

  after(function () {
    if (fixture) console.log(`      fixture G: max |Δ| = ${maxAbsDiff.toExponential(2)} (atol ${ATOL})`);
  });

  /** null in the fixture is NaN here; everything else within ATOL. */
  function expectClose(actual: number, expected: number | null | undefined, what: string): void {
    if (expected === null || expected === undefined) {
      expect(Number.isNaN(actual), `${what}: expected NaN (null), got ${actual}`).to.equal(true);
      return;
    }
    expect(Number.isFinite(actual), `${what}: expected ${expected}, got ${actual}`).to.equal(true);
    const diff = Math.abs(actual - expected);
    maxAbsDiff = Math.max(maxAbsDiff, diff);
    expect(diff, `${what}: ${actual} vs ${expected}`).to.be.at.most(ATOL);
  }

  it('has the documented layout', function () {
    expect(fixture.nan_encoding).to.equal('null');
    expect(fixture.cases.map((c) => c.n)).to.deep.equal([5, 12, 40, 100, 250, 400, 4]);
  });

  it('matches every per-class metric, count and aggregate of every case', function () {
    for (const c of fixture.cases) {
      const r = evaluateMultiLabel(c.scores, c.labels, c.classes, { threshold: c.threshold });
      expect(r.n_samples).to.equal(c.n);
      expect(r.n_classes).to.equal(c.n_classes);
      let expectedValid = 0;
      for (const name of c.classes) {
        const exp = c.per_class[name];
        const got = r.per_class[name];
        const where = `${c.name} / ${name}`;
        expect(got.support, `${where} support`).to.equal(exp.support);
        expect(got.counts_at_threshold, `${where} counts`).to.deep.equal(exp.counts_at_threshold);
        for (const m of PER_CLASS_NUMBERS) {
          // n_pr_points is only present for valid classes.
          if (m === 'n_pr_points' && !(m in exp)) continue;
          expectClose((got as unknown as Record<string, number>)[m], exp[m] as number | null, `${where} ${m}`);
        }
        if (exp.auroc !== null) expectedValid++;
      }
      for (const [key, v] of Object.entries(c.macro))
        expectClose((r as unknown as Record<string, number>)[key], v, `${c.name} ${key}`);
      for (const [key, v] of Object.entries(c.weighted))
        expectClose((r as unknown as Record<string, number>)[key], v, `${c.name} ${key}`);
      expect(r.n_valid_classes, `${c.name} n_valid_classes`).to.equal(expectedValid);
    }
  });

  it('writes the all-single-valued case with null aggregates and no valid class', function () {
    const c = fixture.cases.find((x) => x.name === 'n4_all_single_valued')!;
    const r = evaluateMultiLabel(c.scores, c.labels, c.classes);
    expect(r.n_valid_classes).to.equal(0);
    const parsed = JSON.parse(toStrictJson(r)) as Record<string, unknown>;
    for (const key of Object.keys(c.macro)) expect(parsed[key], key).to.equal(null);
    for (const key of Object.keys(c.weighted)) expect(parsed[key], key).to.equal(null);
    expect((parsed.per_class as Record<string, Record<string, unknown>>)[c.classes[0]].auroc).to.equal(null);
  });
});
