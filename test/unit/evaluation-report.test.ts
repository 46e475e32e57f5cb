/** report.html checked structurally (regex, no DOM): ROC paths per valid class, axes, labels, escaping, no NaN. */
import { expect } from 'chai';
import { renderReport } from '../../lib/results/report';
import { buildEvaluationResults, classRocCurves, type EvaluationInput } from '../../lib/results/results';
import { Rng } from '../../lib/rng';

const EVIL = 'A<b>&"c"';
const EVIL_ESCAPED = 'A&lt;b&gt;&amp;&quot;c&quot;';

function syntheticInput(n: number, seed: number): EvaluationInput {
  const rng = new Rng(seed);
  const classNames = [EVIL, 'Pleural effusion', 'never present', 'x,y'];
  const scores: number[][] = [];
  const labels: number[][] = [];
  const studyIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const y = [rng.nextFloat() < 0.4 ? 1 : 0, rng.nextFloat() < 0.3 ? 1 : 0, 0, i % 2];
    labels.push(y);
    scores.push(y.map((v) => Math.min(1, Math.max(0, 0.5 * rng.nextFloat() + 0.35 * v))));
    studyIds.push(`study<${i}>`);
  }
  return {
    studyIds,
    classNames,
    scores,
    labels,
    config: { experiment: { name: '<script>alert(1)</script>' } },
    checkpoint: { path: '/ckpt/"best".pt', step: 12 },
  };
}

function count(html: string, re: RegExp): number {
  return (html.match(re) ?? []).length;
}

describe('evaluation: report.html', function () {
  const input = syntheticInput(80, 5);

  for (const boot of [false, true]) {
    describe(boot ? 'with bootstrap' : 'without bootstrap', function () {
      const results = buildEvaluationResults({
        ...input,
        bootstrap: boot ? { nResamples: 40, seed: 1, level: 0.8 } : null,
      });
      const html = renderReport(results, classRocCurves(input, results));
      const valid = results.class_names.filter((c) => !Number.isNaN(results.metrics.per_class[c].auroc));

      it('is one self-contained HTML document (no scripts, links, external URLs or fonts)', function () {
        expect(html.startsWith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')).to.equal(true);
        expect(html.trimEnd().endsWith('</html>')).to.equal(true);
        expect(html).to.not.match(/<script|<link|<img|<iframe|@import|url\(|https?:|src=/i);
      });

      it('has exactly one ROC path per valid class, tagged with the class name', function () {
        expect(valid).to.have.length(3);
        expect(count(html, /<path class="roc-curve"/g)).to.equal(valid.length);
        expect(count(html, /<path /g)).to.equal(valid.length);
        for (const c of valid) {
          const attr = c.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
          expect(
            count(
              html,
              new RegExp(
                `<path class="roc-curve" data-class="${attr.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" d="M[^"]+"`,
                'g',
              ),
            ),
            c,
          ).to.equal(1);
        }
        expect(html).to.not.include('data-class="never present" d=');
      });

      it('every ROC panel has both axes, both axis labels and a distinguishable chance diagonal', function () {
        const panels = html.match(/<svg class="roc-panel".*?<\/svg>/gs) ?? [];
        expect(panels).to.have.length(valid.length);
        for (const p of panels) {
          expect(count(p, /<g class="axis axis-x"/g)).to.equal(1);
          expect(count(p, /<g class="axis axis-y"/g)).to.equal(1);
          expect(p).to.include('>False positive rate</text>');
          expect(p).to.include('>True positive rate</text>');
          expect(count(p, /<line class="roc-diagonal"[^>]*stroke-dasharray/g)).to.equal(1);
          // The curve starts at the ROC's (0, 0), the bottom-left corner of the plot, and ends at (1, 1).
          const d = /class="roc-curve"[^>]* d="([^"]+)"/.exec(p)![1];
          const diag = /<line class="roc-diagonal" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)"/.exec(p)!;
          expect(d.startsWith(`M${diag[1]} ${diag[2]} `)).to.equal(true);
          expect(d.endsWith(`L${diag[3]} ${diag[4]}`)).to.equal(true);
        }
      });

      it('never writes NaN or Infinity, and escapes user text everywhere', function () {
        expect(html).to.not.match(/NaN|Infinity/);
        expect(html).to.not.include(EVIL);
        expect(html).to.include(EVIL_ESCAPED);
        expect(html).to.not.include('<script>alert(1)</script>');
        expect(html).to.include('&lt;script&gt;alert(1)&lt;/script&gt;');
        expect(html).to.include('/ckpt/&quot;best&quot;.pt');
      });

      it('notes the excluded single-valued class', function () {
        expect(html).to.match(
          /<div class="note excluded-classes"><strong>1 class excluded as single-valued<\/strong>.*<span class="excluded-class">never present<\/span> \(no positives: 0 positive, 80 negative\)/s,
        );
        expect(html).to.include('excluded (no positives)</text>');
      });

      it('has AUROC bars for the valid classes and CI whiskers only when bootstrapped, with the level stated', function () {
        expect(count(html, /<rect class="auroc-bar"/g)).to.equal(valid.length);
        if (boot) {
          expect(count(html, /<line class="ci-whisker"/g)).to.equal(valid.length);
          expect(count(html, /<line class="ci-cap"/g)).to.equal(2 * valid.length);
          expect(html).to.include('<th>macro 80% CI</th>');
          expect(html).to.include('80% CI (level 0.8)');
          expect(html).to.not.include('95% CI');
        } else {
          expect(html).to.not.include('ci-whisker');
          expect(html).to.not.match(/\d% CI/);
          expect(html).to.include('No bootstrap confidence intervals were requested.');
        }
      });

      it('has the summary table with every macro/weighted metric and the checkpoint/config section', function () {
        expect(count(html, /<tr data-metric="/g)).to.equal(8);
        const row = /<tr data-metric="auroc"><td class="name">AUROC<\/td><td>([\d.]+)<\/td>/.exec(html)!;
        expect(Number(row[1])).to.be.closeTo(results.metrics.macro_auroc, 5e-5);
        expect(html).to.include('<dt>step</dt><dd>12</dd>');
        expect(html).to.match(/<pre class="config">\{\n {2}&quot;experiment&quot;/);
      });
    });
  }

  it('says so when no class has a ROC curve', function () {
    const results = buildEvaluationResults({
      studyIds: ['a', 'b'],
      classNames: ['k'],
      scores: [[0.1], [0.2]],
      labels: [[0], [0]],
    });
    const html = renderReport(
      results,
      classRocCurves({ scores: [[0.1], [0.2]], labels: [[0], [0]], classNames: ['k'] }, results),
    );
    expect(html).to.not.include('<path');
    expect(html).to.include('No class has both positive and negative labels');
    expect(html).to.not.match(/NaN|Infinity/);
  });
});
