/**
 * Zero-shot validation during training (the reference's, with its bugs fixed): the prompt latents are computed
 * once per evaluation from the `validation.prompts` templates over the class names ("{p} is present." /
 * "{p} is not present."), every volume of the fixed seeded `eval_samples` subset is encoded once, and
 * P(present) per class is the softmax over each (present, absent) pair of scaled cosine similarities. Metrics
 * come from `evaluateMultiLabel` (reference key names), with bootstrap intervals when `validation.use_bootstrap`.
 *
 * The model is put in eval mode (no dropout, codebook untouched, no RNG consumed) and left in eval mode; the
 * caller switches back to training.
 */
import type { Config } from '../config/schema';
import type { EvalLoader } from '../data/loader';
import { bootstrapMetrics, flattenBootstrap, type BootstrapResult } from '../metrics/bootstrap';
import { evaluateMultiLabel, type MultiLabelMetrics } from '../metrics/aggregate';
import { zeroShotScores } from '../zeroshot/zero-shot';
import type { CTClip } from '../model/ctclip';
import type { Tokenizer } from '../text/tokenizer';
import type { ProcessGroup } from '../dist/group';
import { CtclipError } from '../errors';

export interface ValidationOutcome {
  /** Samples actually evaluated. */
  numSamples: number;
  /** The full metrics (per_class included). */
  metrics: MultiLabelMetrics;
  /** Flat numeric metrics for logs and best tracking: macro_/weighted_ of `validation.metrics` (+ CI keys). */
  logged: Record<string, number>;
  /** Per-class AUROC by class name. */
  perClassAuroc: Record<string, number>;
  bootstrap: BootstrapResult | null;
  seconds: number;
}

export interface ValidateOptions {
  /** Called after each batch with (samples done, samples total). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Data parallel: the loader holds this rank's share; the scores are gathered to rank 0 in the subset's order
   * (each study once) and only rank 0 computes metrics — the others get null.
   */
  group?: ProcessGroup | null;
}

/** Runs zero-shot validation; see the module comment. */
export async function runValidation(
  model: CTClip,
  tokenizer: Tokenizer,
  loader: EvalLoader,
  classNames: readonly string[],
  cfg: Config,
  opts: ValidateOptions = {},
): Promise<ValidationOutcome | null> {
  const t0 = performance.now();
  const local = await zeroShotScores(
    model,
    tokenizer,
    loader,
    classNames,
    { prompts: cfg.validation.prompts, maxLength: cfg.model.text_encoder.max_length },
    { onProgress: opts.onProgress },
  );
  let { scores, labels } = local;
  if (opts.group && opts.group.worldSize > 1) {
    const gathered = await gatherScores(opts.group, loader, classNames.length, local);
    if (!gathered) return null;
    ({ scores, labels } = gathered);
  }
  const v = cfg.validation;
  const metrics = evaluateMultiLabel(scores, labels, classNames, { threshold: v.threshold });
  const logged: Record<string, number> = {};
  const m = metrics as unknown as Record<string, number>;
  for (const kind of ['macro', 'weighted'])
    for (const name of v.metrics) logged[`${kind}_${name}`] = m[`${kind}_${name}`];
  let bootstrap: BootstrapResult | null = null;
  if (v.use_bootstrap) {
    bootstrap = bootstrapMetrics(scores, labels, classNames, {
      nResamples: v.n_bootstrap,
      seed: cfg.experiment.seed,
      level: v.bootstrap_level,
      threshold: v.threshold,
    });
    const flat = flattenBootstrap(bootstrap);
    for (const [k, x] of Object.entries(flat)) {
      if (v.metrics.some((name) => k.startsWith(`macro_${name}_ci`) || k.startsWith(`weighted_${name}_ci`)))
        logged[k] = x;
    }
  }
  const perClassAuroc: Record<string, number> = {};
  for (const [name, r] of Object.entries(metrics.per_class)) perClassAuroc[name] = r.auroc;
  return {
    numSamples: scores.length,
    metrics,
    logged,
    perClassAuroc,
    bootstrap,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Rows [position in the chosen subset, C scores, C labels] from every rank, ordered by position with each
 * position once; null on ranks other than 0.
 */
async function gatherScores(
  group: ProcessGroup,
  loader: EvalLoader,
  C: number,
  mine: { scores: Float64Array[]; labels: Float64Array[]; studyIds: string[] },
): Promise<{ scores: Float64Array[]; labels: Float64Array[] } | null> {
  const position = new Map<string, number>();
  loader.chosenStudyIds().forEach((id, k) => {
    if (!position.has(id)) position.set(id, k);
  });
  const width = 1 + 2 * C;
  const rows = new Float64Array(mine.studyIds.length * width);
  mine.studyIds.forEach((id, i) => {
    const k = position.get(id);
    if (k === undefined) throw new CtclipError('DATA_ERROR', `validation: study ${id} is not in the chosen subset`);
    rows[i * width] = k;
    rows.set(mine.scores[i], i * width + 1);
    rows.set(mine.labels[i], i * width + 1 + C);
  });
  const { data } = await group.gatherRows(rows, width);
  if (group.rank !== 0) return null;
  const n = data.length / width;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => data[a * width] - data[b * width]);
  const scores: Float64Array[] = [];
  const labels: Float64Array[] = [];
  let last = -1;
  for (const i of order) {
    const k = data[i * width];
    if (k === last) continue; // a study is scored by exactly one rank; never count it twice
    last = k;
    scores.push(data.slice(i * width + 1, i * width + 1 + C));
    labels.push(data.slice(i * width + 1 + C, (i + 1) * width));
  }
  return { scores, labels };
}
