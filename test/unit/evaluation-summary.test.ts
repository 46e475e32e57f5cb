/** The console summary: reference line format, CI text at the level used, n_valid_classes. */
import { expect } from 'chai';
import { buildEvaluationResults, type EvaluationInput } from '../../lib/results/results';
import { formatEvaluationSummary, formatInterval, formatValue } from '../../lib/results/summary';

// Class "a": positives {0.9, 0.6}, negatives {0.7, 0.1}: pairs (0.9>0.7, 0.9>0.1, 0.6<0.7, 0.6>0.1) → AUROC 3/4.
// Class "b": positive {0.8}, negatives {0.2, 0.4, 0.3} → AUROC 1.  Class "c": all 0 → excluded.
const input: EvaluationInput = {
  studyIds: ['1', '2', '3', '4'],
  classNames: ['a', 'b', 'c'],
  scores: [
    [0.9, 0.8, 0.1],
    [0.6, 0.2, 0.2],
    [0.7, 0.4, 0.3],
    [0.1, 0.3, 0.4],
  ],
  labels: [
    [1, 1, 0],
    [1, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ],
};

describe('evaluation: console summary', function () {
  it('prints the reference lines with hand-computed macro and weighted AUROC, then n_valid_classes', function () {
    const lines = formatEvaluationSummary(buildEvaluationResults(input));
    expect(lines[0]).to.equal('Evaluation: 4 samples, 3 classes (2 valid), threshold 0.5');
    // macro = (0.75 + 1)/2 = 0.875; weighted by positives (2, 1) = (1.5 + 1)/3 = 0.8333.
    expect(lines[1]).to.equal('Macro AUROC: 0.8750');
    expect(lines[2]).to.match(/^Macro AUPRC: 0\.\d{4}$/);
    expect(lines[3]).to.match(/^Macro F1: 0\.\d{4}$/);
    expect(lines[4]).to.equal('---');
    expect(lines[5]).to.equal('Weighted AUROC: 0.8333');
    expect(lines[6]).to.match(/^Weighted AUPRC: /);
    expect(lines[7]).to.match(/^Weighted F1: /);
    expect(lines[8]).to.equal('n_valid_classes: 2/3 (excluded, single-valued: c (no positives))');
    expect(lines).to.have.length(9);
    expect(lines.join('\n')).to.not.include('CI');
  });

  it('adds the CI text at the level used and a bootstrap line', function () {
    const results = buildEvaluationResults({ ...input, bootstrap: { nResamples: 50, seed: 7, level: 0.9 } });
    const lines = formatEvaluationSummary(results);
    const iv = results.bootstrap!.intervals.macro_auroc;
    expect(lines[1]).to.equal(`Macro AUROC: 0.8750  90% CI [${iv.lower.toFixed(4)}, ${iv.upper.toFixed(4)}]`);
    for (const l of lines.filter((x) => /^(Macro|Weighted) /.test(x)))
      expect(l).to.match(/ {2}90% CI \[(\d\.\d{4}|n\/a), (\d\.\d{4}|n\/a)\]$/);
    expect(lines.join('\n')).to.not.include('95%');
    expect(lines[lines.length - 1]).to.equal('Bootstrap: 50 resamples, 90% CI (percentile), seed 7, stratify none');
  });

  it('options: other metrics, digits, the star, per-class lines', function () {
    const results = buildEvaluationResults({ ...input, bootstrap: { nResamples: 30, seed: 1, level: 0.95 } });
    const lines = formatEvaluationSummary(results, {
      metrics: ['auroc', 'precision'],
      digits: 2,
      star: 'weighted_auroc',
      perClass: true,
    });
    expect(lines[1]).to.match(/^Macro AUROC: 0\.88 {2}95% CI \[/);
    expect(lines[2]).to.match(/^Macro Precision: /);
    expect(lines[4]).to.match(/^Weighted AUROC: 0\.83 ⭐ {2}95% CI/);
    expect(lines).to.include('  c  excluded (no positives)');
    expect(lines.find((l) => l.startsWith('  a '))).to.match(
      /^ {2}a {2}AUROC 0\.75 {2}95% CI \[.*\] {2}\(support 2\)$/,
    );
  });

  it('formats NaN as n/a', function () {
    expect(formatValue(NaN)).to.equal('n/a');
    expect(formatValue(0.123456)).to.equal('0.1235');
    expect(formatInterval({ lower: NaN, upper: 0.5 }, 0.999)).to.equal('99.9% CI [n/a, 0.5000]');
  });
});
