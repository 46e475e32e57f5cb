/**
 * The console summary of an evaluation, in the reference's style:
 *
 *   Evaluation: 1000 samples, 18 classes (17 valid), threshold 0.5
 *   Macro AUROC: 0.7312  95% CI [0.7011, 0.7598]
 *   Macro AUPRC: 0.3120  95% CI [0.2801, 0.3455]
 *   Macro F1: 0.4012  95% CI [0.3790, 0.4250]
 *   ---
 *   Weighted AUROC: 0.7250  95% CI [0.6950, 0.7533]
 *   Weighted AUPRC: …
 *   Weighted F1: …
 *   n_valid_classes: 17/18 (excluded, single-valued: Mosaic attenuation pattern (no positives))
 *   Bootstrap: 1000 resamples, 95% CI (percentile), seed 42, stratify none
 *
 * The CI text uses the level actually used (`ciLabel`), and only appears when the results were bootstrapped.
 * Undefined values print as "n/a". A star can mark the model-selection metric, as the trainer's printout does.
 */
import { AggregatedMetric, BootstrapInterval, ciLabel } from '../metrics';
import type { MacroKey, WeightedKey } from '../metrics';
import type { EvaluationResults } from './results';

/** Display names of the aggregated metrics. */
export const METRIC_LABELS: Readonly<Record<AggregatedMetric, string>> = {
  auroc: 'AUROC',
  auprc: 'AUPRC',
  f1: 'F1',
  precision: 'Precision',
  recall: 'Recall',
  specificity: 'Specificity',
  accuracy: 'Accuracy',
  f1_at_threshold: 'F1@threshold',
};

export interface SummaryOptions {
  /** Metrics to print, macro then weighted (default auroc, auprc, f1, the reference's validation lines). */
  metrics?: readonly AggregatedMetric[];
  /** Decimals (default 4). */
  digits?: number;
  /** Key to mark with " ⭐" (e.g. 'weighted_auroc', the checkpoint.best_metric). */
  star?: MacroKey | WeightedKey | null;
  /** Also print one line per class (AUROC, its CI if any; excluded classes say why). Default false. */
  perClass?: boolean;
}

/** `0.7312`, or `n/a` for NaN. */
export function formatValue(v: number, digits = 4): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

/** `95% CI [0.7011, 0.7598]` for an interval at `level`. */
export function formatInterval(iv: Pick<BootstrapInterval, 'lower' | 'upper'>, level: number, digits = 4): string {
  return `${ciLabel(level)} [${formatValue(iv.lower, digits)}, ${formatValue(iv.upper, digits)}]`;
}

/** The summary lines (no trailing newlines). */
export function formatEvaluationSummary(results: EvaluationResults, opts: SummaryOptions = {}): string[] {
  const metrics = opts.metrics ?? ['auroc', 'auprc', 'f1'];
  const digits = opts.digits ?? 4;
  const boot = results.bootstrap;
  const lines: string[] = [
    `Evaluation: ${results.n_samples} samples, ${results.n_classes} classes (${results.n_valid_classes} valid), threshold ${results.threshold}`,
  ];
  const line = (kind: 'macro' | 'weighted') => {
    for (const m of metrics) {
      const key = `${kind}_${m}` as MacroKey | WeightedKey;
      let text = `${kind === 'macro' ? 'Macro' : 'Weighted'} ${METRIC_LABELS[m]}: ${formatValue(results.metrics[key], digits)}`;
      if (opts.star === key) text += ' ⭐';
      const iv = boot?.intervals[key];
      if (boot && iv) text += `  ${formatInterval(iv, boot.level, digits)}`;
      lines.push(text);
    }
  };
  line('macro');
  lines.push('---');
  line('weighted');
  let valid = `n_valid_classes: ${results.n_valid_classes}/${results.n_classes}`;
  if (results.excluded_classes.length > 0) {
    valid += ` (excluded, single-valued: ${results.excluded_classes.map((e) => `${e.name} (${e.reason})`).join(', ')})`;
  }
  lines.push(valid);
  if (boot) {
    lines.push(
      `Bootstrap: ${boot.n_resamples} resamples, ${ciLabel(boot.level)} (percentile), seed ${boot.seed ?? 'caller rng'}, stratify ${boot.stratify}`,
    );
  }
  if (opts.perClass) {
    const width = Math.min(40, Math.max(0, ...results.class_names.map((n) => n.length)));
    for (const name of results.class_names) {
      const ex = results.excluded_classes.find((e) => e.name === name);
      if (ex) {
        lines.push(`  ${name.padEnd(width)}  excluded (${ex.reason})`);
        continue;
      }
      const pc = results.metrics.per_class[name];
      let text = `  ${name.padEnd(width)}  AUROC ${formatValue(pc.auroc, digits)}`;
      const iv = boot?.per_class[name]?.auroc;
      if (boot && iv) text += `  ${formatInterval(iv, boot.level, digits)}`;
      text += `  (support ${pc.support})`;
      lines.push(text);
    }
  }
  return lines;
}
