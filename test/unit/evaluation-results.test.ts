/** buildEvaluationResults: equals the metrics library, excluded classes, validation, strict JSON. */
import { expect } from 'chai';
import { bootstrapMetrics, evaluateMultiLabel, toStrictJsonValue } from '../../lib/metrics';
import { buildEvaluationResults, classRocCurves } from '../../lib/results/results';
import { resultsJson } from '../../lib/results/write';

const base = {
  studyIds: ['s1', 's2', 's3', 's4', 's5'],
  classNames: ['a', 'all one', 'none'],
  scores: [
    [0.9, 0.1, 0.2],
    [0.2, 0.5, 0.3],
    [0.6, 0.7, 0.1],
    [0.3, 0.2, 0.9],
    [0.8, 0.4, 0.5],
  ],
  labels: [
    [1, 1, 0],
    [0, 1, 0],
    [1, 1, 0],
    [0, 1, 0],
    [0, 1, 0],
  ],
};

describe('evaluation: results', function () {
  it("metrics and bootstrap are exactly the metrics library's results", function () {
    const r = buildEvaluationResults({
      ...base,
      threshold: 0.4,
      bootstrap: { nResamples: 25, seed: 9, level: 0.9, stratify: 'any_positive' },
    });
    expect(r.metrics).to.deep.equal(evaluateMultiLabel(base.scores, base.labels, base.classNames, { threshold: 0.4 }));
    expect(r.bootstrap).to.deep.equal(
      bootstrapMetrics(base.scores, base.labels, base.classNames, {
        nResamples: 25,
        seed: 9,
        level: 0.9,
        stratify: 'any_positive',
        threshold: 0.4,
      }),
    );
    expect(r.threshold).to.equal(0.4);
    expect(r.n_valid_classes).to.equal(1);
    expect(r.n_samples).to.equal(5);
    expect(r.n_classes).to.equal(3);
  });

  it('lists single-valued classes with the reason', function () {
    const r = buildEvaluationResults(base);
    expect(r.excluded_classes).to.deep.equal([
      { name: 'all one', reason: 'no negatives', support: 5, n_negative: 0 },
      { name: 'none', reason: 'no positives', support: 0, n_negative: 5 },
    ]);
    expect(r.bootstrap).to.equal(null);
    expect(classRocCurves(base, r).map((c) => c.name)).to.deep.equal(['a']);
  });

  it('records metadata: format, version, created, checkpoint (normalised), config, extra', function () {
    const created = new Date(Date.UTC(2025, 0, 2, 3, 4, 5));
    const sha = 'AB'.repeat(32);
    const r = buildEvaluationResults({
      ...base,
      created,
      checkpoint: { path: 'w.safetensors', sha256: sha },
      config: { x: [1, 2] },
      extra: { prompts: ['There is {p}.'] },
    });
    expect(r.format).to.equal('ctclip-evaluation');
    expect(r.format_version).to.equal(1);
    expect(r.created).to.equal('2025-01-02T03:04:05.000Z');
    expect(r.ctclip_version).to.equal(require('../../package.json').version);
    expect(r.checkpoint).to.deep.equal({ path: 'w.safetensors', step: null, sha256: sha.toLowerCase() });
    expect(r.config).to.deep.equal({ x: [1, 2] });
    expect(r.extra).to.deep.equal({ prompts: ['There is {p}.'] });
    expect(buildEvaluationResults(base).checkpoint).to.equal(null);
    expect(buildEvaluationResults(base).config).to.equal(null);
  });

  it('results.json is strict JSON: NaN → null, nothing else changed', function () {
    const r = buildEvaluationResults({ ...base, bootstrap: { nResamples: 10, seed: 1, level: 0.95 } });
    const text = resultsJson(r);
    expect(text).to.not.match(/NaN|Infinity/);
    expect(text.endsWith('}\n')).to.equal(true);
    const parsed = JSON.parse(text);
    expect(parsed.metrics.per_class.none.auroc).to.equal(null);
    expect(parsed.metrics.per_class.a.auroc).to.equal(r.metrics.per_class.a.auroc);
    expect(parsed).to.deep.equal(toStrictJsonValue(r));
    expect(parsed.bootstrap.level).to.equal(0.95);
  });

  it('rejects bad input with ARGUMENT_ERROR before computing anything', function () {
    expect(() => buildEvaluationResults({ ...base, studyIds: ['x'] }))
      .to.throw(/studyIds has 1 entries but scores has 5 rows/)
      .with.property('code', 'ARGUMENT_ERROR');
    expect(() => buildEvaluationResults({ ...base, studyIds: [1, 2, 3, 4, 5] as unknown as string[] })).to.throw(
      /studyIds\[0\] is number/,
    );
    expect(() => buildEvaluationResults({ ...base, checkpoint: { path: 'x', step: 1.5 } })).to.throw(
      /checkpoint.step is 1.5/,
    );
    expect(() => buildEvaluationResults({ ...base, checkpoint: { path: 'x', sha256: 'abc' } })).to.throw(
      /64 hex digits/,
    );
    expect(() => buildEvaluationResults({ ...base, scores: base.scores.map((r) => [r[0], NaN, r[2]]) }))
      .to.throw()
      .with.property('code', 'ARGUMENT_ERROR');
    expect(() => buildEvaluationResults({ ...base, labels: base.labels.map((r) => [r[0], 2, r[2]]) }))
      .to.throw()
      .with.property('code', 'ARGUMENT_ERROR');
  });
});
