/**
 * The one model factory: run config → tokenizer + CTClip. Training (lib/train/trainer.ts), the evaluation
 * commands (infer / embed / predict through `loadInferenceModel`) and the library API (`createModel`) all build
 * their model here, and resolve the vocabulary file and the class names the same way.
 */
import * as path from 'path';
import type { Config } from '../config/schema';
import { classNamesFromLabelsCsv, type ShardIndex } from '../data/shard-index';
import { CtclipError } from '../errors';
import { folderVocabFile } from '../text/folder-vocab';
import { Tokenizer } from '../text/tokenizer';
import { modelConfigFromConfig } from './config';
import { CTClip } from './ctclip';

/**
 * The tokenizer's vocabulary file: model.text_encoder.vocab, else <model.text_encoder.path>/vocab.txt, or the
 * folder's tokenizer.json when it has no vocab.txt (a transformers 5 save).
 */
export function vocabFile(cfg: Config): string {
  const te = cfg.model.text_encoder;
  if (te.vocab) return te.vocab;
  if (te.path) return folderVocabFile(te.path) ?? path.join(te.path, 'vocab.txt');
  throw new CtclipError(
    'CONFIG_ERROR',
    'model.text_encoder.vocab (a vocab.txt) or model.text_encoder.path (a Hugging Face BERT folder) must be set',
  );
}

/**
 * Class names: data.class_names, else the labels_valid CSV header, else the shard index's. `indexName` names that
 * index in the error when there are none ('shards' for infer, 'validation shards' for training).
 */
export function resolveClassNames(cfg: Config, index: ShardIndex | null, indexName = 'shards'): string[] {
  if (cfg.data.class_names) return [...cfg.data.class_names];
  if (cfg.data.labels_valid) return classNamesFromLabelsCsv(cfg.data.labels_valid);
  if (index?.classNames) return [...index.classNames];
  throw new CtclipError(
    'CONFIG_ERROR',
    `no class names: set data.labels_valid (a labels CSV) or data.class_names, or index the ${indexName} with --labels-csv`,
  );
}

/** The WordPiece tokenizer the config names (`vocabFile`, `model.text_encoder.do_lower_case`). */
export function tokenizerFromConfig(cfg: Config): Tokenizer {
  return Tokenizer.fromVocabFile(vocabFile(cfg), { doLowerCase: cfg.model.text_encoder.do_lower_case });
}

/** Options of `buildModel`. */
export interface BuildModelOptions {
  /** The tokenizer (default: `tokenizerFromConfig(cfg)`). */
  tokenizer?: Tokenizer;
  /** The native generators' seed (default: the one `modelConfigFromConfig` derives from `experiment.seed`). */
  seed?: number;
}

/**
 * A freshly initialised CT-CLIP on the CPU from a validated run config, with the tokenizer whose vocabulary sizes
 * its text embeddings. CONFIG_ERROR when the config names no vocabulary and none is passed.
 */
export function buildModel(cfg: Config, opts: BuildModelOptions = {}): { model: CTClip; tokenizer: Tokenizer } {
  const tokenizer = opts.tokenizer ?? tokenizerFromConfig(cfg);
  const modelConfig = modelConfigFromConfig(cfg, tokenizer.vocabSize);
  if (opts.seed !== undefined) modelConfig.seed = opts.seed;
  return { model: CTClip.create(modelConfig), tokenizer };
}
