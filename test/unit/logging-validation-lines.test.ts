import { expect } from 'chai';
import * as validation from '../../lib/logging/validation-lines';

const T = new Date(2025, 0, 31, 14, 5, 9); // local time, as the lines are

describe('logging/validation lines', () => {
  it('header: 80-char rules around "Running Validation (Step N, Epoch E)" with E .2f', () => {
    const lines = validation.validationHeaderLines(3687, 0.49993);
    expect(lines).to.deep.equal(['='.repeat(80), 'Running Validation (Step 3687, Epoch 0.50)', '='.repeat(80)]);
    expect(validation.VALIDATION_RULE).to.have.length(80);
    expect(validation.parseValidationHeader(lines[1])).to.deep.equal({ step: 3687, epoch: 0.5 });
    expect(validation.parseValidationHeader('Running Validation (Step x, Epoch 1.00)')).to.equal(null);
    expect(validation.parseValidationHeader(validation.VALIDATION_RULE)).to.equal(null);
  });

  it('metrics line: timestamp, .4f numbers, nan, nested dicts skipped, key order kept', () => {
    const line = validation.formatValidationLine(
      3687,
      {
        macro_auroc: 0.73124,
        macro_auprc: 0.31195,
        per_class: { Emphysema: { auroc: 0.9 } },
        weighted_auroc: NaN,
        n_valid_classes: 17,
        curve: [1, 2],
        note: 'ok',
        flag: true,
        missing: null,
      },
      T,
    );
    expect(line).to.equal(
      '[2025-01-31 14:05:09] Step 3687 - val | macro_auroc: 0.7312, macro_auprc: 0.3120, weighted_auroc: nan, n_valid_classes: 17.0000, note: ok, flag: True, missing: None',
    );
    expect(validation.formatMetricsLine(5, {}, { prefix: 'train', time: T })).to.equal(
      '[2025-01-31 14:05:09] Step 5 - train | ',
    );
  });

  it('format → parse round trip gives the values rounded to 4 decimals, in order', () => {
    const metrics: Record<string, number> = {
      macro_auroc: 0.712345678,
      macro_auprc: 0.2,
      macro_f1: NaN,
      weighted_auroc: 0.99999,
      weighted_auprc: Infinity,
      loss: -1.23456,
    };
    const parsed = validation.parseValidationLine(validation.formatValidationLine(42, metrics, T));
    expect(parsed).to.not.equal(null);
    expect(parsed!.step).to.equal(42);
    expect(parsed!.timestamp).to.equal('2025-01-31 14:05:09');
    expect(Object.keys(parsed!.metrics)).to.deep.equal(Object.keys(metrics));
    expect(parsed!.metrics).to.deep.equal({
      macro_auroc: 0.7123,
      macro_auprc: 0.2,
      macro_f1: NaN,
      weighted_auroc: 1,
      weighted_auprc: Infinity,
      loss: -1.2346,
    });
  });

  it('parses lines as the reference prints them and rejects other lines', () => {
    const ref =
      '[2024-11-02 03:14:15] Step 14750 - val | macro_auroc: 0.7012, macro_auprc: 0.2871, weighted_auroc: 0.7355';
    expect(validation.parseValidationLine(ref)).to.deep.equal({
      timestamp: '2024-11-02 03:14:15',
      step: 14750,
      prefix: 'val',
      metrics: { macro_auroc: 0.7012, macro_auprc: 0.2871, weighted_auroc: 0.7355 },
    });
    expect(validation.parseValidationLine(`${ref}\n`)).to.not.equal(null);
    expect(validation.parseValidationLine('[2024-11-02 03:14:15] Step 1 - train | loss: 0.5000')).to.equal(null);
    expect(validation.parseMetricsLine('[2024-11-02 03:14:15] Step 1 - train | loss: 0.5000')!.metrics).to.deep.equal({
      loss: 0.5,
    });
    expect(validation.parseValidationLine('Step 5234/147500 (Epoch 0.71) | Loss: 0.1234')).to.equal(null);
    expect(validation.parseValidationLine('[2024-11-02 03:14:15] Step 1 - val | garbage')).to.equal(null);
    const withText = validation.parseValidationLine(validation.formatValidationLine(1, { note: 'a, b', x: 1 }, T));
    expect(withText!.metrics).to.deep.equal({ note: 'a, b', x: 1 });
  });

  it('results summary: reference order with the star on the selection metric', () => {
    const lines = validation.formatValidationResults(
      100,
      200,
      {
        macro_auroc: 0.7,
        macro_auprc: 0.3,
        macro_f1: 0.4,
        weighted_auroc: 0.75,
        weighted_auprc: 0.35,
        weighted_f1: 0.45,
      },
      'weighted_auroc',
    );
    expect(lines).to.deep.equal([
      'Validation Results (Step 100, 200 samples)',
      'Macro AUROC: 0.7000',
      'Macro AUPRC: 0.3000',
      'Macro F1: 0.4000',
      '---',
      'Weighted AUROC: 0.7500 ⭐',
      'Weighted AUPRC: 0.3500',
      'Weighted F1: 0.4500',
    ]);
  });
});
