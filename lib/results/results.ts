/**
 * The evaluation result: everything `results.json` holds, computed from scores and labels (pure, no I/O).
 *
 * `metrics` is exactly `evaluateMultiLabel(scores, labels, classNames, {threshold})` (reference key names:
 * `macro_*`, `weighted_*`, `n_valid_classes`, `per_class`), and `bootstrap` exactly `bootstrapMetrics(...)` with
 * the same threshold, so that the file can be checked against the metrics library directly. Classes whose labels
 * are single-valued have NaN metrics (null in the file) and are listed in `excluded_classes` with the reason.
 * The reference inference script's flat keys (`macro_auroc`, …, `per_class`, `macro_auroc_ci_lower`, …) follow at
 * the top level, copied from those two (flat-keys.ts).
 */
import { CtclipError } from '../errors';
import {
  AggregatedMetric,
  BootstrapOptions,
  BootstrapResult,
  DEFAULT_THRESHOLD,
  MultiLabelMetrics,
  StratifyMode,
  bootstrapMetrics,
  evaluateMultiLabel,
  rocCurve,
} from '../metrics';
import type { MatrixInput } from '../metrics';
import { referenceFlatKeys, type ReferenceFlatKeys } from './flat-keys';

/** `results.json`'s `format` tag and version (bumped on incompatible changes). */
export const RESULTS_FORMAT = 'ctclip-evaluation';
export const RESULTS_FORMAT_VERSION = 1;

/** The checkpoint the scores came from. */
export interface CheckpointInfo {
  path: string;
  step?: number | null;
  sha256?: string | null;
}

/** Bootstrap request: passed to `bootstrapMetrics` together with the evaluation's threshold. */
export interface EvaluationBootstrapOptions {
  nResamples: number;
  seed: number;
  /** Confidence level in (0, 1), e.g. 0.95. */
  level: number;
  stratify?: StratifyMode;
  /** Per-class metrics that get intervals (default ['auroc']). */
  perClassMetrics?: readonly AggregatedMetric[];
  /** Progress callback (e.g. a progress bar); not recorded. */
  onProgress?: BootstrapOptions['onProgress'];
}

/** What the inference command hands over. */
export interface EvaluationInput {
  /** One id per row (row order of scores and labels). */
  studyIds: readonly string[];
  classNames: readonly string[];
  /** n × C, P(present) per study and class (finite). */
  scores: MatrixInput;
  /** n × C, 0/1. */
  labels: MatrixInput;
  /** The resolved config (any JSON-able value); written as strict JSON. */
  config?: unknown;
  checkpoint?: CheckpointInfo | null;
  /** Fixed decision threshold (default 0.5). */
  threshold?: number;
  /** Bootstrap CIs, or null/undefined for none. */
  bootstrap?: EvaluationBootstrapOptions | null;
  /** Anything else to record verbatim under `extra` (e.g. timings, prompts, the command line). */
  extra?: Record<string, unknown>;
  /** Creation time to record (default: now). */
  created?: Date;
}

/** Why a class has no metrics. */
export interface ExcludedClass {
  name: string;
  reason: 'no positives' | 'no negatives';
  support: number;
  n_negative: number;
}

/**
 * The content of `results.json` (before strict-JSON encoding: NaN stays NaN here): our nested form, then the
 * reference's flat keys (`ReferenceFlatKeys`, last in the file).
 */
export interface EvaluationResults extends ReferenceFlatKeys {
  format: typeof RESULTS_FORMAT;
  format_version: number;
  /** ISO 8601, UTC. */
  created: string;
  ctclip_version: string;
  checkpoint: { path: string; step: number | null; sha256: string | null } | null;
  config: unknown;
  n_samples: number;
  n_classes: number;
  n_valid_classes: number;
  class_names: string[];
  threshold: number;
  /** Single-valued classes, excluded from every aggregate. */
  excluded_classes: ExcludedClass[];
  /** `evaluateMultiLabel`'s result. */
  metrics: MultiLabelMetrics;
  /** `bootstrapMetrics`'s result (its `level` is the confidence level used), or null when not requested. */
  bootstrap: BootstrapResult | null;
  extra: Record<string, unknown>;
}

/** One class's ROC curve, for the report (not stored in results.json: recompute from predictions.csv). */
export interface ClassRocCurve {
  name: string;
  auroc: number;
  fpr: Float64Array;
  tpr: Float64Array;
}

/** The version in package.json. */
export function ctclipVersion(): string {
  return (require('../../package.json') as { version: string }).version;
}

function checkStudyIds(studyIds: readonly string[], n: number): void {
  if (!Array.isArray(studyIds)) throw new CtclipError('ARGUMENT_ERROR', 'studyIds: expected an array of strings');
  if (studyIds.length !== n)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `studyIds has ${studyIds.length} entries but scores has ${n} rows; expected one id per row`,
    );
  studyIds.forEach((id, i) => {
    if (typeof id !== 'string')
      throw new CtclipError('ARGUMENT_ERROR', `studyIds[${i}] is ${typeof id}; expected a string`);
  });
}

function checkCheckpoint(cp: CheckpointInfo | null | undefined): EvaluationResults['checkpoint'] {
  if (cp === null || cp === undefined) return null;
  if (typeof cp.path !== 'string') throw new CtclipError('ARGUMENT_ERROR', 'checkpoint.path: expected a string');
  const step = cp.step ?? null;
  if (step !== null && !Number.isSafeInteger(step))
    throw new CtclipError('ARGUMENT_ERROR', `checkpoint.step is ${String(step)}; expected an integer`);
  const sha = cp.sha256 ?? null;
  if (sha !== null && !/^[0-9a-f]{64}$/i.test(sha))
    throw new CtclipError('ARGUMENT_ERROR', `checkpoint.sha256 is ${JSON.stringify(sha)}; expected 64 hex digits`);
  return { path: cp.path, step, sha256: sha === null ? null : sha.toLowerCase() };
}

/** Computes the full result (metrics, optional bootstrap, metadata). Throws ARGUMENT_ERROR on bad input. */
export function buildEvaluationResults(input: EvaluationInput): EvaluationResults {
  const threshold = input.threshold ?? DEFAULT_THRESHOLD;
  const metrics = evaluateMultiLabel(input.scores, input.labels, input.classNames, { threshold });
  checkStudyIds(input.studyIds, metrics.n_samples);
  const checkpoint = checkCheckpoint(input.checkpoint);
  let bootstrap: BootstrapResult | null = null;
  if (input.bootstrap) {
    const b = input.bootstrap;
    bootstrap = bootstrapMetrics(input.scores, input.labels, input.classNames, {
      nResamples: b.nResamples,
      seed: b.seed,
      level: b.level,
      stratify: b.stratify,
      perClassMetrics: b.perClassMetrics,
      onProgress: b.onProgress,
      threshold,
    });
  }
  const excluded: ExcludedClass[] = [];
  for (const name of input.classNames) {
    const pc = metrics.per_class[name];
    if (Number.isNaN(pc.auroc)) {
      excluded.push({
        name,
        reason: pc.support === 0 ? 'no positives' : 'no negatives',
        support: pc.support,
        n_negative: pc.n_negative,
      });
    }
  }
  return {
    format: RESULTS_FORMAT,
    format_version: RESULTS_FORMAT_VERSION,
    created: (input.created ?? new Date()).toISOString(),
    ctclip_version: ctclipVersion(),
    checkpoint,
    config: input.config === undefined ? null : input.config,
    n_samples: metrics.n_samples,
    n_classes: metrics.n_classes,
    n_valid_classes: metrics.n_valid_classes,
    class_names: input.classNames.slice(),
    threshold,
    excluded_classes: excluded,
    metrics,
    bootstrap,
    extra: input.extra ?? {},
    ...referenceFlatKeys(metrics, bootstrap),
  };
}

/** ROC curves of the valid classes (single-valued classes have none), in class order. */
export function classRocCurves(
  input: Pick<EvaluationInput, 'scores' | 'labels' | 'classNames'>,
  results: EvaluationResults,
): ClassRocCurve[] {
  const curves: ClassRocCurve[] = [];
  const n = results.n_samples;
  input.classNames.forEach((name, c) => {
    const auroc = results.metrics.per_class[name].auroc;
    if (Number.isNaN(auroc)) return;
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = input.scores[i][c];
      y[i] = input.labels[i][c];
    }
    const roc = rocCurve(s, y);
    curves.push({ name, auroc, fpr: roc.fpr, tpr: roc.tpr });
  });
  return curves;
}
