/**
 * `report.html`: one self-contained page (inline CSS and SVG; no scripts, no fonts, no links, nothing fetched),
 * readable on screen and printable. Sections:
 *
 * 1. header: creation time, ctclip version, samples, classes (valid/total), threshold;
 * 2. summary table: macro and weighted value of every aggregated metric, with the CI (level stated) when
 *    bootstrapped, and the bootstrap settings;
 * 3. per-class AUROC bars with CI whiskers (when CIs exist);
 * 4. ROC curves, one small panel per valid class;
 * 5. a note listing the classes excluded as single-valued, with the reason;
 * 6. per-class table;
 * 7. checkpoint (path, step, sha256) and the config (strict JSON) plus `extra`.
 *
 * All text comes through the escaping builder in svg.ts. NaN prints as "n/a".
 */
import { AGGREGATED_METRICS, ciLabel, toStrictJson } from '../metrics';
import type { MacroKey, WeightedKey } from '../metrics';
import { AurocBarRow, aurocBars, rocPanels } from '../report/charts';
import { PER_CLASS_METRIC_COLUMNS } from './per-class';
import type { ClassRocCurve, EvaluationResults } from './results';
import { METRIC_LABELS, formatValue } from './summary';
import { Child, Markup, el, fragment, raw } from '../report/svg';

const STYLE = `
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1a1a1a; margin: 24px auto; max-width: 1100px; padding: 0 16px; line-height: 1.4; }
h1 { font-size: 1.5em; margin: 0 0 4px; }
h2 { font-size: 1.15em; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta { color: #555; margin: 0 0 8px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f4f6f8; }
td.name, th.name { text-align: left; overflow-wrap: anywhere; max-width: 320px; }
tr.excluded td { color: #888; font-style: italic; }
.note { background: #fff8e1; border: 1px solid #f0d98c; padding: 6px 10px; font-size: 13px; }
.roc-grid { display: flex; flex-wrap: wrap; gap: 8px; }
.roc-grid figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 8px; font-size: 12px; max-height: 420px; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; }
dl.kv dt { font-weight: bold; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; font-family: ui-monospace, Menlo, Consolas, monospace; }
@media print {
  body { margin: 0; max-width: none; }
  pre { max-height: none; overflow: visible; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, svg.auroc-bars { break-inside: avoid; page-break-inside: avoid; }
}
`;

function num(v: number, digits = 4): string {
  return formatValue(v, digits);
}

function summaryTable(results: EvaluationResults): Markup {
  const boot = results.bootstrap;
  const label = boot ? ciLabel(boot.level) : null;
  const header = el(
    'tr',
    null,
    el('th', { class: 'name' }, 'metric'),
    el('th', null, 'macro'),
    label ? el('th', null, `macro ${label}`) : null,
    el('th', null, 'weighted'),
    label ? el('th', null, `weighted ${label}`) : null,
  );
  const rows = AGGREGATED_METRICS.map((m) => {
    const mk = `macro_${m}` as MacroKey;
    const wk = `weighted_${m}` as WeightedKey;
    const ci = (k: MacroKey | WeightedKey) => {
      const iv = boot?.intervals[k];
      return iv ? `[${num(iv.lower)}, ${num(iv.upper)}]` : 'n/a';
    };
    return el(
      'tr',
      { 'data-metric': m },
      el(
        'td',
        { class: 'name' },
        METRIC_LABELS[m] +
          (m === 'f1'
            ? ' (max over PR curve)'
            : ['precision', 'recall', 'specificity', 'accuracy', 'f1_at_threshold'].includes(m)
              ? ` (at ${results.threshold})`
              : ''),
      ),
      el('td', null, num(results.metrics[mk])),
      label ? el('td', null, ci(mk)) : null,
      el('td', null, num(results.metrics[wk])),
      label ? el('td', null, ci(wk)) : null,
    );
  });
  return el('table', { class: 'summary' }, el('thead', null, header), el('tbody', null, rows));
}

function bootstrapNote(results: EvaluationResults): Markup {
  const boot = results.bootstrap;
  if (!boot) return el('p', { class: 'meta' }, 'No bootstrap confidence intervals were requested.');
  return el(
    'p',
    { class: 'meta' },
    `Confidence intervals: ${ciLabel(boot.level)} (level ${boot.level}), percentile bootstrap (percentiles ${boot.percentiles[0]} and ${boot.percentiles[1]}, numpy linear interpolation), ` +
      `${boot.n_resamples} resamples, seed ${boot.seed ?? 'caller rng'}, stratify ${boot.stratify}. Generator: ${boot.rng}. ` +
      'Weighted = weighted by the number of positives per class.',
  );
}

function excludedNote(results: EvaluationResults): Markup | null {
  if (results.excluded_classes.length === 0) return null;
  return el(
    'div',
    { class: 'note excluded-classes' },
    el(
      'strong',
      null,
      `${results.excluded_classes.length} class${results.excluded_classes.length === 1 ? '' : 'es'} excluded as single-valued`,
    ),
    ' (every label the same, so AUROC and the other metrics are undefined; they are left out of every macro and weighted average and have no ROC curve): ',
    results.excluded_classes.map((e, i) => [
      i > 0 ? ', ' : null,
      el('span', { class: 'excluded-class' }, e.name),
      ` (${e.reason}: ${e.support} positive, ${e.n_negative} negative)`,
    ]),
    '.',
  );
}

function perClassTableHtml(results: EvaluationResults): Markup {
  const boot = results.bootstrap;
  const label = boot ? ciLabel(boot.level) : null;
  const cols = PER_CLASS_METRIC_COLUMNS;
  const header = el(
    'tr',
    null,
    el('th', { class: 'name' }, 'class'),
    cols.map((c) => [el('th', null, c), c === 'auroc' && label ? el('th', null, `AUROC ${label}`) : null]),
    el('th', null, 'support'),
    el('th', null, 'negatives'),
  );
  const rows = results.class_names.map((name) => {
    const p = results.metrics.per_class[name];
    const iv = boot?.per_class[name]?.auroc;
    const excluded = Number.isNaN(p.auroc);
    return el(
      'tr',
      { class: excluded ? 'excluded' : null },
      el('td', { class: 'name' }, name),
      cols.map((c) => [
        el('td', null, num(p[c])),
        c === 'auroc' && label ? el('td', null, iv ? `[${num(iv.lower)}, ${num(iv.upper)}]` : 'n/a') : null,
      ]),
      el('td', null, String(p.support)),
      el('td', null, String(p.n_negative)),
    );
  });
  return el('table', { class: 'per-class' }, el('thead', null, header), el('tbody', null, rows));
}

function provenance(results: EvaluationResults): Markup {
  const cp = results.checkpoint;
  const items: Child[] = [];
  const kv = (k: string, v: string) => items.push(el('dt', null, k), el('dd', null, v));
  if (cp) {
    kv('checkpoint', cp.path);
    kv('step', cp.step === null ? 'n/a' : String(cp.step));
    kv('sha256', cp.sha256 ?? 'n/a');
  } else {
    kv('checkpoint', 'n/a');
  }
  kv('created', results.created);
  kv('ctclip version', results.ctclip_version);
  const config = results.config === null || results.config === undefined ? null : toStrictJson(results.config, 2);
  const extra = Object.keys(results.extra).length > 0 ? toStrictJson(results.extra, 2) : null;
  return fragment(
    el('dl', { class: 'kv' }, items),
    el('h3', null, 'Config'),
    config === null ? el('p', { class: 'meta' }, 'No config recorded.') : el('pre', { class: 'config' }, config),
    extra === null ? null : [el('h3', null, 'Extra'), el('pre', { class: 'extra' }, extra)],
  );
}

/** The whole report page. `curves` are the valid classes' ROC curves (see `classRocCurves`). */
export function renderReport(
  results: EvaluationResults,
  curves: readonly ClassRocCurve[],
  opts: { title?: string } = {},
): string {
  const title = opts.title ?? 'ctclip evaluation report';
  const boot = results.bootstrap;
  const label = boot ? ciLabel(boot.level) : undefined;
  const bars: AurocBarRow[] = results.class_names.map((name) => {
    const p = results.metrics.per_class[name];
    const iv = boot?.per_class[name]?.auroc;
    const ex = results.excluded_classes.find((e) => e.name === name);
    return {
      name,
      auroc: p.auroc,
      lower: iv?.lower,
      upper: iv?.upper,
      note: ex ? `excluded (${ex.reason})` : undefined,
    };
  });
  const cp = results.checkpoint;
  const body = el(
    'body',
    null,
    el('h1', null, title),
    el(
      'p',
      { class: 'meta' },
      `${results.n_samples} samples · ${results.n_classes} classes (${results.n_valid_classes} valid) · threshold ${results.threshold} · ` +
        `created ${results.created} · ctclip ${results.ctclip_version}` +
        (cp ? ` · checkpoint ${cp.path}${cp.step !== null ? ` (step ${cp.step})` : ''}` : ''),
    ),
    el('h2', null, 'Summary'),
    summaryTable(results),
    bootstrapNote(results),
    excludedNote(results),
    el('h2', null, 'Per-class AUROC'),
    aurocBars(bars, { ciLabel: label }),
    el('h2', null, 'ROC curves'),
    curves.length === 0
      ? el('p', { class: 'meta' }, 'No class has both positive and negative labels, so there is no ROC curve.')
      : el(
          'div',
          { class: 'roc-grid' },
          rocPanels(curves).map((svg) => el('figure', null, svg)),
        ),
    el('h2', null, 'Per-class metrics'),
    perClassTableHtml(results),
    el('h2', null, 'Checkpoint and config'),
    provenance(results),
  );
  const head = el(
    'head',
    null,
    el('meta', { charset: 'utf-8' }),
    el('meta', { name: 'viewport', content: 'width=device-width, initial-scale=1' }),
    el('title', null, title),
    el('style', null, raw(STYLE)),
  );
  return `<!DOCTYPE html>\n${el('html', { lang: 'en' }, head, body).html}\n`;
}
