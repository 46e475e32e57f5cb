/**
 * The reference inference script's flat result keys, carried at the top level of `results.json` next to our nested
 * `metrics` / `bootstrap` so that scripts written against the reference's output read ours unchanged:
 *
 * - `macro_<m>` and `weighted_<m>` for the five metrics the reference's inference evaluates (auroc, auprc, f1,
 *   precision, recall, in that order);
 * - `per_class: {<class>: {auroc, auprc, f1, precision, recall}}`;
 * - with bootstrap only: `macro_<m>_ci_lower`, `macro_<m>_ci_upper`, `macro_<m>_ci_width` (the reference
 *   bootstraps macro metrics only).
 *
 * Every value is a copy of the nested one (same definitions: `f1` is the oracle-threshold F1, precision and recall
 * are at the fixed threshold), never a second computation. NaN is `null` in the file, where the reference's
 * Python wrote the non-standard `NaN`.
 */
import type { BootstrapResult } from '../metrics/bootstrap';
import { flattenBootstrap } from '../metrics/bootstrap';
import type { MultiLabelMetrics } from '../metrics/aggregate';

/** The metrics the reference's inference evaluates, in its order. */
export const REFERENCE_FLAT_METRICS = ['auroc', 'auprc', 'f1', 'precision', 'recall'] as const;

export type ReferenceFlatMetric = (typeof REFERENCE_FLAT_METRICS)[number];

/** The reference's interval key suffixes, in its order. */
const CI_SUFFIXES = ['ci_lower', 'ci_upper', 'ci_width'] as const;

type CiKey = `macro_${ReferenceFlatMetric}_${(typeof CI_SUFFIXES)[number]}`;

/** The flat keys (NaN stays NaN here; the file writes null). The CI keys exist only when bootstrapped. */
export type ReferenceFlatKeys = Record<`macro_${ReferenceFlatMetric}` | `weighted_${ReferenceFlatMetric}`, number> & {
  per_class: Record<string, Record<ReferenceFlatMetric, number>>;
} & Partial<Record<CiKey, number>>;

/** The flat keys of an evaluation, in the reference's key order (macro, weighted, per_class, intervals). */
export function referenceFlatKeys(metrics: MultiLabelMetrics, bootstrap: BootstrapResult | null): ReferenceFlatKeys {
  const out: Record<string, unknown> = {};
  for (const kind of ['macro', 'weighted'] as const)
    for (const m of REFERENCE_FLAT_METRICS) out[`${kind}_${m}`] = metrics[`${kind}_${m}`];
  const perClass: Record<string, Record<ReferenceFlatMetric, number>> = {};
  for (const [name, pc] of Object.entries(metrics.per_class)) {
    const row = {} as Record<ReferenceFlatMetric, number>;
    for (const m of REFERENCE_FLAT_METRICS) row[m] = pc[m];
    perClass[name] = row;
  }
  out.per_class = perClass;
  if (bootstrap) {
    // flattenBootstrap owns the `<key>_ci_*` naming; only the reference's subset is carried.
    const flat = flattenBootstrap(bootstrap);
    for (const m of REFERENCE_FLAT_METRICS)
      for (const suffix of CI_SUFFIXES) out[`macro_${m}_${suffix}`] = flat[`macro_${m}_${suffix}`];
  }
  return out as ReferenceFlatKeys;
}
