/**
 * Zero-shot scoring, shared by training-time validation (lib/train/validate.ts), `node lib/inference.js` and
 * `ctclip predict` (the reference's zero-shot scoring, with its bugs fixed):
 *
 * - the prompt latents are computed ONCE per evaluation from the `validation.prompts` templates over the class
 *   names (`zeroShotPromptTexts`: [positive(c0), negative(c0), positive(c1), …]);
 * - each volume is encoded once (`encodeImage`, eval mode: no dropout, codebook untouched, no RNG consumed);
 * - P(present) per class is the softmax over each (present, absent) pair of scaled cosine similarities
 *   (`CTClip.zeroShot`, element 0 of the pair).
 *
 * Pure scoring: no metrics, no files. The caller computes metrics from `scores` / `labels`.
 */
import type { EvalLoader } from '../data/loader';
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import { textTensors, zeroShotPromptTexts, type CTClip } from '../model/ctclip';
import { readTensor } from '../tensor';
import type { Tokenizer } from '../text/tokenizer';
import { forEachVolumeBatch } from './loader';

export interface ZeroShotPrompts {
  positive: string;
  negative: string;
}

export interface ZeroShotSettings {
  /** `validation.prompts`. */
  prompts: ZeroShotPrompts;
  /** `model.text_encoder.max_length`. */
  maxLength: number;
}

export interface ZeroShotScores {
  /** One per scored sample, in loader order (bad samples skipped). */
  studyIds: string[];
  /** n rows of C P(present). */
  scores: Float64Array[];
  /** n rows of C labels as stored in the shards. */
  labels: Float64Array[];
}

/** The (2C, latent) prompt latents for `classNames` (caller disposes). Puts the model in eval mode. */
export async function encodePrompts(
  model: CTClip,
  tokenizer: Tokenizer,
  classNames: readonly string[],
  settings: ZeroShotSettings,
): Promise<TensorHandle> {
  if (classNames.length === 0) throw new CtclipError('ARGUMENT_ERROR', 'zero-shot: no class names');
  model.eval();
  const texts = zeroShotPromptTexts(classNames, settings.prompts);
  const enc = tokenizer.encodeBatch(texts, settings.maxLength);
  const { inputIds, attentionMask } = textTensors(enc);
  try {
    return await model.encodeText(inputIds, attentionMask);
  } finally {
    inputIds.dispose();
    attentionMask.dispose();
  }
}

/**
 * P(present), row-major n × C, for a batch of volumes ((n, H, W, D) float16 as the loader gives them, or any
 * shape `encodeImage` accepts) against prompt latents from `encodePrompts`. Does not dispose `volumes`.
 */
export async function scoreVolumes(
  model: CTClip,
  volumes: TensorHandle,
  promptLatents: TensorHandle,
  numClasses: number,
): Promise<Float32Array> {
  const image = await model.encodeImage(volumes);
  try {
    const { pPresent, logits } = await model.zeroShot(image, promptLatents);
    try {
      const p = readTensor(pPresent);
      const data = p.data as Float32Array;
      if (p.shape.length !== 2 || p.shape[1] !== numClasses) {
        throw new CtclipError(
          'SHAPE_ERROR',
          `zero-shot: P(present) has shape [${p.shape.join(', ')}], expected [n, ${numClasses}]`,
        );
      }
      return data;
    } finally {
      pPresent.dispose();
      logits.dispose();
    }
  } finally {
    image.dispose();
  }
}

export interface ZeroShotLoaderOptions {
  /** Called after each batch with (samples done, samples total for this rank). */
  onProgress?: (done: number, total: number) => void;
}

/** Scores every batch of `loader` (see the module comment). The model is left in eval mode. */
export async function zeroShotScores(
  model: CTClip,
  tokenizer: Tokenizer,
  loader: EvalLoader,
  classNames: readonly string[],
  settings: ZeroShotSettings,
  opts: ZeroShotLoaderOptions = {},
): Promise<ZeroShotScores> {
  const C = classNames.length;
  const promptLatents = await encodePrompts(model, tokenizer, classNames, settings);
  const out: ZeroShotScores = { studyIds: [], scores: [], labels: [] };
  const total = loader.mine.length;
  try {
    await forEachVolumeBatch(loader, async (batch, volumes) => {
      const n = batch.studyIds.length;
      const p = await scoreVolumes(model, volumes, promptLatents, C);
      if (batch.labels.length !== n * C) {
        throw new CtclipError(
          'DATA_ERROR',
          `zero-shot: the batch has ${batch.labels.length / Math.max(n, 1)} labels per sample, expected ${C} (one per class)`,
        );
      }
      for (let i = 0; i < n; i++) {
        out.studyIds.push(batch.studyIds[i]);
        out.scores.push(Float64Array.from(p.subarray(i * C, (i + 1) * C)));
        out.labels.push(Float64Array.from(batch.labels.subarray(i * C, (i + 1) * C)));
      }
      opts.onProgress?.(out.scores.length, total);
    });
  } finally {
    promptLatents.dispose();
  }
  return out;
}
