/**
 * Names that several tests expect the pipeline's outputs to carry (metric keys, TensorBoard tags, files), written
 * out here once as the tests' own spec. Never build them from lib's lists: a test that compares lib with itself
 * cannot fail.
 */
import type { AggregatedMetric, BinaryMetrics } from '../../lib/metrics';

/** A per-class metric: a key of `BinaryMetrics` with a number value. */
type ClassMetric = { [K in keyof BinaryMetrics]-?: BinaryMetrics[K] extends number ? K : never }[keyof BinaryMetrics];

/** Space-separated names as a list (the compact form of a spec). */
function names<T extends string>(spec: string): readonly T[] {
  return spec.split(' ') as T[];
}

/** The metrics of one class (`binaryMetrics`), the counts and the optional Youden keys aside, in order. */
export const CLASS_METRICS = names<ClassMetric>(
  'auroc auprc f1 f1_threshold n_pr_points precision recall specificity accuracy f1_at_threshold',
);

/** The per-class metrics that get `macro_` and `weighted_` aggregates, in the reference's order. */
export const AGGREGATED = names<AggregatedMetric>(
  'auroc auprc f1 precision recall specificity accuracy f1_at_threshold',
);

/** The TensorBoard scalars a training run logs at every logged step. */
export const TRAIN_SCALAR_TAGS = names(
  'train/loss train/lr train/grad_norm train/temperature train/step_time train/data_time train/samples_per_s train/skipped_steps',
);

/** What `ctclip make-hf-folder` writes, sorted. */
export const HF_FOLDER_FILES = names('config.json model.safetensors pytorch_model.bin tokenizer_config.json vocab.txt');

/** The first five tokens of a BERT vocabulary (ids 0–4, as in CXR-BERT's). */
export const BERT_SPECIAL_TOKENS = names('[PAD] [UNK] [CLS] [SEP] [MASK]');
