/**
 * `per_class.csv`: one row per class, in class order.
 *
 * Columns: `class`, `auroc`, `auprc`, `f1` (max over the PR curve), `f1_threshold`, `precision`, `recall`,
 * `specificity`, `accuracy`, `f1_at_threshold` (those five at the fixed `threshold`), `support` (positives),
 * `n_negative`, `tp`, `fp`, `tn`, `fn` (counts at the threshold), `youden_threshold`/`youden_j` only if computed,
 * then, when bootstrapped, `<metric>_ci_lower`, `<metric>_ci_upper` for each per-class bootstrapped metric
 * (AUROC by default). NaN (single-valued classes, or no defined resample) is an EMPTY cell.
 */
import { AGGREGATED_METRICS, type AggregatedMetric } from '../metrics';
import { type CsvCell, formatCsv } from '../io/csv';
import type { EvaluationResults } from './results';

/**
 * The metric columns, in order: the aggregated metrics in AGGREGATED_METRICS order, with
 * `f1_threshold`, the threshold of the maximal F1, right after `f1`.
 */
export const PER_CLASS_METRIC_COLUMNS: ReadonlyArray<AggregatedMetric | 'f1_threshold'> = AGGREGATED_METRICS.flatMap(
  (m) => (m === 'f1' ? [m, 'f1_threshold' as const] : [m]),
);

/** Per-class metrics that have bootstrap intervals in these results, in AGGREGATED_METRICS order of appearance. */
export function bootstrappedClassMetrics(results: EvaluationResults): AggregatedMetric[] {
  if (!results.bootstrap) return [];
  const found: AggregatedMetric[] = [];
  for (const entry of Object.values(results.bootstrap.per_class)) {
    for (const m of Object.keys(entry) as AggregatedMetric[]) if (!found.includes(m)) found.push(m);
  }
  return found;
}

/** Header and rows of per_class.csv (numbers unformatted). */
export function perClassTable(results: EvaluationResults): CsvCell[][] {
  const pcs = results.class_names.map((n) => results.metrics.per_class[n]);
  const youden = pcs.some((p) => p.youden_threshold !== undefined);
  const ciMetrics = bootstrappedClassMetrics(results);
  const header: string[] = ['class', ...PER_CLASS_METRIC_COLUMNS, 'support', 'n_negative', 'tp', 'fp', 'tn', 'fn'];
  if (youden) header.push('youden_threshold', 'youden_j');
  for (const m of ciMetrics) header.push(`${m}_ci_lower`, `${m}_ci_upper`);
  const rows: CsvCell[][] = [header];
  results.class_names.forEach((name, k) => {
    const p = pcs[k];
    const row: CsvCell[] = [name, ...PER_CLASS_METRIC_COLUMNS.map((m) => p[m]), p.support, p.n_negative];
    const cnt = p.counts_at_threshold;
    row.push(cnt.tp, cnt.fp, cnt.tn, cnt.fn);
    if (youden) row.push(p.youden_threshold ?? NaN, p.youden_j ?? NaN);
    for (const m of ciMetrics) {
      const iv = results.bootstrap?.per_class[name]?.[m];
      row.push(iv ? iv.lower : NaN, iv ? iv.upper : NaN);
    }
    rows.push(row);
  });
  return rows;
}

/** The text of per_class.csv. */
export function perClassCsv(results: EvaluationResults): string {
  return formatCsv(perClassTable(results));
}
