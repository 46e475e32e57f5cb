/**
 * Bootstrap intervals: determinism (same seed ⇒ same intervals), ordering, skip counting, the three
 * resampling schemes, the level in the output and printout, and frequentist coverage on a simulated population
 * whose true AUROC is known (binormal, equal variances: AUROC = Φ(d/√2)).
 */
import { expect } from 'chai';
import { CtclipError } from '../../lib/errors';
import { Rng } from '../../lib/rng';
import {
  AGGREGATE_KEYS,
  bootstrapMetrics,
  ciLabel,
  flattenBootstrap,
  formatBootstrapSummary,
  toStrictJson,
} from '../../lib/metrics';

/** Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: ample for a coverage test). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** n × C synthetic predictions: class c positive with prevalence prev[c], scores rounded to 3 decimals (ties). */
function synthetic(
  seed: number,
  n: number,
  prevalences: number[],
): { scores: number[][]; labels: number[][]; classes: string[] } {
  const rng = Rng.derive(seed, 'metrics-bootstrap-test');
  const scores: number[][] = [];
  const labels: number[][] = [];
  for (let i = 0; i < n; i++) {
    const s: number[] = [];
    const l: number[] = [];
    for (const p of prevalences) {
      const y = rng.nextFloat() < p ? 1 : 0;
      l.push(y);
      s.push(Math.round(1000 / (1 + Math.exp(-(rng.normal() + 1.2 * y - 0.6)))) / 1000);
    }
    scores.push(s);
    labels.push(l);
  }
  return { scores, labels, classes: prevalences.map((_, c) => `class${c}`) };
}

describe('metrics: bootstrap confidence intervals', function () {
  const data = synthetic(1, 150, [0.3, 0.1, 0.5, 0.02]);

  it('is deterministic: same seed ⇒ same intervals; another seed ⇒ different ones', function () {
    const a = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 200, seed: 5 });
    const b = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 200, seed: 5 });
    const c = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 200, seed: 6 });
    expect(toStrictJson(a)).to.equal(toStrictJson(b));
    expect(a.intervals.macro_auroc.lower).to.not.equal(c.intervals.macro_auroc.lower);
    expect(a.seed).to.equal(5);
    expect(a.rng).to.match(/not bit-compatible with numpy/);
  });

  it('draws from a caller-provided Rng (advancing it) and then reports seed null', function () {
    const rng = new Rng(9);
    const before = rng.getState();
    const r = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 20, rng });
    expect(r.seed).to.equal(null);
    expect(rng.getState()).to.not.deep.equal(before);
  });

  it('gives lower ≤ upper, the full-data estimate and n_valid + n_skipped = nResamples everywhere', function () {
    const r = bootstrapMetrics(data.scores, data.labels, data.classes, {
      nResamples: 300,
      seed: 1,
      perClassMetrics: ['auroc', 'auprc'],
    });
    expect(r.n_resamples).to.equal(300);
    expect(r.level).to.equal(0.95);
    expect(r.percentiles).to.deep.equal([2.5, 97.5]);
    for (const key of AGGREGATE_KEYS) {
      const iv = r.intervals[key];
      expect(iv.lower, key).to.be.at.most(iv.upper);
      expect(iv.width).to.equal(iv.upper - iv.lower);
      expect(iv.n_valid + iv.n_skipped).to.equal(300);
      expect(iv.mean).to.be.within(iv.lower - 0.2, iv.upper + 0.2);
      expect(Number.isFinite(iv.estimate)).to.equal(true);
    }
    for (const name of data.classes) {
      expect(Object.keys(r.per_class[name])).to.deep.equal(['auroc', 'auprc']);
      const iv = r.per_class[name].auroc!;
      expect(iv.lower).to.be.at.most(iv.upper);
      expect(iv.n_valid + iv.n_skipped).to.equal(300);
    }
  });

  it('skips and counts resamples where a rare class is undefined; per-class stratification never skips', function () {
    // 40 samples, exactly one positive for "rare": it is missing from ≈ (39/40)^40 ≈ 36 % of plain resamples.
    const scores = Array.from({ length: 40 }, (_, i) => [i / 40, ((i * 7) % 40) / 40]);
    const labels = Array.from({ length: 40 }, (_, i) => [i === 30 ? 1 : 0, i % 2]);
    const plain = bootstrapMetrics(scores, labels, ['rare', 'common'], { nResamples: 500, seed: 3 });
    const rare = plain.per_class.rare.auroc!;
    expect(rare.n_skipped).to.be.within(120, 250);
    expect(rare.n_valid + rare.n_skipped).to.equal(500);
    // The macro still exists when "common" is valid: it is skipped only when both classes are undefined.
    expect(plain.intervals.macro_auroc.n_skipped).to.equal(0);
    const strat = bootstrapMetrics(scores, labels, ['rare', 'common'], {
      nResamples: 500,
      seed: 3,
      stratify: 'per_class',
    });
    expect(strat.per_class.rare.auroc!.n_skipped).to.equal(0);
    // With its only positive always drawn, the rare class's AUROC is its rank among the resampled negatives.
    expect(strat.per_class.rare.auroc!.upper).to.be.at.most(1);
    const rows = bootstrapMetrics(scores, labels, ['rare', 'common'], {
      nResamples: 500,
      seed: 3,
      stratify: 'any_positive',
    });
    expect(rows.stratify).to.equal('any_positive');
    expect(rows.intervals.macro_auroc.n_valid).to.equal(500);
  });

  it('keeps every undefined value out: an all-single-valued input gives NaN intervals with n_valid 0', function () {
    const r = bootstrapMetrics([[0.1], [0.9], [0.4]], [[0], [0], [0]], ['none'], { nResamples: 50, seed: 1 });
    expect(Number.isNaN(r.intervals.macro_auroc.lower)).to.equal(true);
    expect(r.intervals.macro_auroc.n_valid).to.equal(0);
    expect(r.intervals.macro_auroc.n_skipped).to.equal(50);
    expect(JSON.parse(toStrictJson(r)).intervals.macro_auroc.lower).to.equal(null);
  });

  it('uses the requested level: percentiles, narrower intervals, and the printout says so', function () {
    const wide = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 400, seed: 2, level: 0.99 });
    const narrow = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 400, seed: 2, level: 0.8 });
    expect(narrow.percentiles).to.deep.equal([10, 90]);
    expect(wide.percentiles).to.deep.equal([0.5, 99.5]);
    expect(narrow.intervals.macro_auroc.width).to.be.lessThan(wide.intervals.macro_auroc.width);
    const text = formatBootstrapSummary(narrow);
    expect(text).to.contain('80% CI');
    expect(text).to.not.contain('95% CI');
    expect(text).to.match(/macro_auroc\s+\d\.\d{4}\s+80% CI \[/);
    expect(ciLabel(0.95)).to.equal('95% CI');
    expect(ciLabel(0.999)).to.equal('99.9% CI');
  });

  it("flattens to the reference's *_ci_lower/_ci_upper/_ci_width keys, with the level", function () {
    const r = bootstrapMetrics(data.scores, data.labels, data.classes, { nResamples: 30, seed: 2, level: 0.9 });
    const flat = flattenBootstrap(r);
    expect(flat.macro_auroc_ci_lower).to.equal(r.intervals.macro_auroc.lower);
    expect(flat.weighted_auprc_ci_upper).to.equal(r.intervals.weighted_auprc.upper);
    expect(flat.macro_f1_ci_width).to.equal(r.intervals.macro_f1.width);
    expect(flat.bootstrap_level).to.equal(0.9);
  });

  it('rejects bad options with ARGUMENT_ERROR', function () {
    const bad = [
      { level: 1 },
      { level: 0 },
      { nResamples: 0 },
      { nResamples: 2.5 },
      { seed: -1 },
      { stratify: 'rows' },
      { perClassMetrics: ['bogus'] },
    ];
    for (const opts of bad) {
      expect(() => bootstrapMetrics(data.scores, data.labels, data.classes, opts as never), JSON.stringify(opts))
        .to.throw(CtclipError)
        .with.property('code', 'ARGUMENT_ERROR');
    }
  });

  it('90 % intervals cover the true AUROC of a simulated binormal population in ≈ 90 % of repetitions', function () {
    this.timeout(30000);
    const d = 1.0;
    const trueAuroc = normalCdf(d / Math.SQRT2); // 0.7602…
    const nPos = 60;
    const nNeg = 90;
    const repetitions = 200;
    const rng = Rng.derive(7, 'coverage-population');
    let covered = 0;
    const started = Date.now();
    for (let rep = 0; rep < repetitions; rep++) {
      const scores: number[][] = [];
      const labels: number[][] = [];
      for (let i = 0; i < nPos; i++) {
        scores.push([d + rng.normal()]);
        labels.push([1]);
      }
      for (let i = 0; i < nNeg; i++) {
        scores.push([rng.normal()]);
        labels.push([0]);
      }
      const r = bootstrapMetrics(scores, labels, ['x'], { nResamples: 400, seed: rep, level: 0.9 });
      const iv = r.per_class.x.auroc!;
      if (iv.lower <= trueAuroc && trueAuroc <= iv.upper) covered++;
    }
    const coverage = covered / repetitions;
    console.log(
      `      coverage of the 90% interval: ${(100 * coverage).toFixed(1)}% over ${repetitions} repetitions (${Date.now() - started} ms)`,
    );
    expect(coverage).to.be.within(0.8, 0.97);
  });

  it('runs a 3000 × 18 evaluation with 1000 resamples in a few seconds', function () {
    this.timeout(60000);
    const big = synthetic(
      11,
      3000,
      Array.from({ length: 18 }, (_, c) => 0.03 + 0.02 * c),
    );
    const started = Date.now();
    const r = bootstrapMetrics(big.scores, big.labels, big.classes, { nResamples: 1000, seed: 42 });
    const ms = Date.now() - started;
    console.log(`      3000 × 18, 1000 resamples: ${ms} ms`);
    expect(r.intervals.macro_auroc.n_valid).to.equal(1000);
    expect(ms).to.be.lessThan(15000); // generous for slow CI machines; ≈ 1.5 s on a laptop-class core
  });
});
