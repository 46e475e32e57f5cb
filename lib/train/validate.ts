/**
 * Zero-shot validation during training (pipeline-spec §5.1, with its fixes): the prompt latents are computed
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
import { zeroShotScores } from '../eval/zero-shot';
import type { CTClip } from '../model/ctclip';
import type { Tokenizer } from '../text/tokenizer';

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
}

/** Runs zero-shot validation; see the module comment. */
export async function runValidation(
  model: CTClip,
  tokenizer: Tokenizer,
  loader: EvalLoader,
  classNames: readonly string[],
  cfg: Config,
  opts: ValidateOptions = {},
): Promise<ValidationOutcome> {
  const t0 = performance.now();
  const { scores, labels } = await zeroShotScores(
    model,
    tokenizer,
    loader,
    classNames,
    { prompts: cfg.validation.prompts, maxLength: cfg.model.text_encoder.max_length },
    { onProgress: opts.onProgress },
  );
  const v = cfg.validation;
  const metrics = evaluateMultiLabel(scores, labels, classNames, { threshold: v.threshold });
  const logged: Record<string, number> = {};
  const m = metrics as unknown as Record<string, number>;
  for (const kind of ['macro', 'weighted']) for (const name of v.metrics) logged[`${kind}_${name}`] = m[`${kind}_${name}`];
  let bootstrap: BootstrapResult | null = null;
  if (v.use_bootstrap) {
    bootstrap = bootstrapMetrics(scores, labels, classNames, { nResamples: v.n_bootstrap, seed: cfg.experiment.seed, level: v.bootstrap_level, threshold: v.threshold });
    const flat = flattenBootstrap(bootstrap);
    for (const [k, x] of Object.entries(flat)) {
      if (v.metrics.some((name) => k.startsWith(`macro_${name}_ci`) || k.startsWith(`weighted_${name}_ci`))) logged[k] = x;
    }
  }
  const perClassAuroc: Record<string, number> = {};
  for (const [name, r] of Object.entries(metrics.per_class)) perClassAuroc[name] = r.auroc;
  return { numSamples: scores.length, metrics, logged, perClassAuroc, bootstrap, seconds: (performance.now() - t0) / 1000 };
}
