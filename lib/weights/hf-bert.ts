/**
 * A local Hugging Face BERT folder (e.g. microsoft/BiomedVLP-CXR-BERT-specialized, downloaded beforehand):
 * `config.json` → the text-encoder fields of our config (`model.text_encoder.*`), `vocab.txt` (or, as
 * transformers 5 saves it, the WordPiece vocabulary of `tokenizer.json`) → the tokenizer,
 * `model.safetensors` or `pytorch_model.bin` (or their sharded `*.index.json` forms) → the text tower's weights
 * under our names (`bert.X` / `X` → `text_transformer.X`). `position_ids` is dropped, MLM / projection heads
 * (`cls.*`, `cls_projection_head.*`) are ignored, everything else that does not map is reported.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import { loadWeightsFile } from './load';
import type { ImportedWeights } from './import-torch';
import { bertReferenceKeys } from './reference-keys';
import { enforceStrict, type ShapeMismatch, type WeightsReport } from './layout';
import { tensorInfo } from '../tensor';
import { FOLDER_VOCAB_FILES, folderVocabFile } from '../text/folder-vocab';
import { Tokenizer } from '../text/tokenizer';

/** The `model.text_encoder` fields a BERT config.json determines (names as in our zod schema). */
export interface HfTextEncoderConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  layer_norm_eps: number;
}

export interface HfBertImport {
  textEncoderConfig: HfTextEncoderConfig;
  /** type_vocab_size (2 for every BERT CT-CLIP uses; our key list needs it). */
  typeVocabSize: number;
  /** The folder's vocabulary: vocab.txt, else tokenizer.json (transformers 5); null when it has neither. */
  vocabPath: string | null;
  /** The weights file(s) read. */
  weightsFiles: string[];
  names: string[];
  tensors: TensorHandle[];
  report: WeightsReport;
}

const INT_FIELDS = [
  'vocab_size',
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'intermediate_size',
  'max_position_embeddings',
] as const;
const PROB_FIELDS = ['hidden_dropout_prob', 'attention_probs_dropout_prob'] as const;

/** Parses config.json into our text-encoder fields; DATA_ERROR naming the file and key for anything we cannot run. */
export function parseHfBertConfig(file: string): {
  config: HfTextEncoderConfig;
  typeVocabSize: number;
  notes: string[];
} {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ? 'IO_ERROR' : 'DATA_ERROR';
    throw new CtclipError(code, `${file}: cannot read the BERT config: ${(e as Error).message}`, { cause: e });
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new CtclipError('DATA_ERROR', `${file}: config.json is not a JSON object`);
  const c = raw as Record<string, unknown>;
  const bad = (key: string, want: string): never => {
    throw new CtclipError('DATA_ERROR', `${file}: '${key}' must be ${want}, got ${JSON.stringify(c[key])}`);
  };
  const notes: string[] = [];
  const out: Record<string, number> = {};
  for (const k of INT_FIELDS) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(k, 'a positive integer');
    out[k] = v as number;
  }
  for (const k of PROB_FIELDS) {
    const v = c[k] ?? 0.1;
    if (typeof v !== 'number' || v < 0 || v >= 1) bad(k, 'a probability in [0, 1)');
    if (c[k] === undefined) notes.push(`${k} absent: BertConfig's default 0.1 used`);
    out[k] = v as number;
  }
  const eps = c.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) bad('layer_norm_eps', 'a positive number');
  out.layer_norm_eps = eps as number;
  if (out.hidden_size % out.num_attention_heads !== 0)
    bad('num_attention_heads', `a divisor of hidden_size ${out.hidden_size}`);
  const act = c.hidden_act ?? 'gelu';
  if (act !== 'gelu') bad('hidden_act', "'gelu' (exact erf GELU, the only activation our BERT implements)");
  const pos = c.position_embedding_type ?? 'absolute';
  if (pos !== 'absolute') bad('position_embedding_type', "'absolute'");
  const tv = c.type_vocab_size ?? 2;
  if (typeof tv !== 'number' || !Number.isInteger(tv) || tv <= 0) bad('type_vocab_size', 'a positive integer');
  if (c.model_type !== undefined && c.model_type !== 'bert' && c.model_type !== 'cxr-bert') {
    notes.push(
      `model_type '${String(c.model_type)}' is not 'bert' or 'cxr-bert'; loaded as a BERT because the keys match`,
    );
  }
  return { config: out as unknown as HfTextEncoderConfig, typeVocabSize: tv as number, notes };
}

/** The weights file(s) of a folder, safetensors first; sharded checkpoints through their index. */
function weightsFiles(dir: string): string[] {
  for (const [single, index] of [
    ['model.safetensors', 'model.safetensors.index.json'],
    ['pytorch_model.bin', 'pytorch_model.bin.index.json'],
  ]) {
    if (fs.existsSync(path.join(dir, single))) return [path.join(dir, single)];
    const indexFile = path.join(dir, index);
    if (fs.existsSync(indexFile)) {
      let map: unknown;
      try {
        map = (JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map?: unknown }).weight_map;
      } catch (e) {
        throw new CtclipError('DATA_ERROR', `${indexFile}: cannot parse: ${(e as Error).message}`, { cause: e });
      }
      if (!map || typeof map !== 'object') throw new CtclipError('DATA_ERROR', `${indexFile}: no 'weight_map' object`);
      const shards = [...new Set(Object.values(map as Record<string, string>))];
      for (const s of shards) {
        if (typeof s !== 'string' || s.includes('/') || s.includes('\\'))
          throw new CtclipError('DATA_ERROR', `${indexFile}: bad shard name ${JSON.stringify(s)}`);
      }
      return shards.map((s) => path.join(dir, s));
    }
  }
  throw new CtclipError(
    'IO_ERROR',
    `${dir}: no model.safetensors or pytorch_model.bin (nor a sharded index) in the Hugging Face folder`,
  );
}

/**
 * Imports a local HF BERT folder. `strict` refuses unexpected keys, missing forward-relevant keys (the pooler is
 * not one: CXR-BERT has none) and shape mismatches against the key list config.json implies.
 */
export async function importHfBertFolder(dir: string, opts: { strict?: boolean } = {}): Promise<HfBertImport> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CtclipError('IO_ERROR', `${dir}: not a folder`);
  const { config, typeVocabSize, notes } = parseHfBertConfig(path.join(dir, 'config.json'));
  // The weights do not need the vocabulary; the tokenizer does, and model.text_encoder.vocab may give it instead.
  const vocabPath = folderVocabFile(dir);
  if (vocabPath === null) {
    notes.push(
      `no ${FOLDER_VOCAB_FILES.join(' or ')} in the folder: the tokenizer's vocabulary must come from elsewhere (model.text_encoder.vocab)`,
    );
  } else {
    const vocabSize = Tokenizer.readVocabTokens(vocabPath).length;
    if (vocabSize > config.vocab_size) {
      throw new CtclipError(
        'DATA_ERROR',
        `${vocabPath}: ${vocabSize} tokens but config.json vocab_size is ${config.vocab_size}`,
      );
    }
    if (vocabSize !== config.vocab_size)
      notes.push(
        `${path.basename(vocabPath)} has ${vocabSize} tokens, config.json vocab_size ${config.vocab_size} (embedding rows beyond the vocabulary are unused)`,
      );
  }
  const expected = bertReferenceKeys({ ...config, type_vocab_size: typeVocabSize });
  const files = weightsFiles(dir);
  const parts: ImportedWeights[] = [];
  try {
    // Only the keys config.json implies are loaded (at their shapes); the rest is reported from each shard.
    for (const f of files) parts.push(await loadWeightsFile(f, { expect: 'bert', expected }));
  } catch (e) {
    parts.forEach((p) => p.tensors.forEach((t) => t.dispose()));
    throw e;
  }
  // Merge shards, then check against the key list config.json implies.
  // BertModel order (a Python-written safetensors header is sorted by name), unknown keys last in file order.
  const order = new Map(expected.map((e, i) => [e.key, i]));
  const pairs = parts
    .flatMap((p) => p.names.map((n, i) => ({ n, t: p.tensors[i] })))
    .map((x, i) => ({ ...x, rank: order.get(x.n) ?? expected.length + i }))
    .sort((a, b) => a.rank - b.rank);
  const names = pairs.map((x) => x.n);
  const tensors = pairs.map((x) => x.t);
  const first = parts[0].report;
  const have = new Set(names);
  const expectedSet = new Set(expected.map((e) => e.key));
  // Keys a shard holds but that were not loaded: unexpected ones, and expected ones at another shape (a mismatch,
  // not missing).
  const shapeMismatches: ShapeMismatch[] = parts.flatMap((p) => p.report.shapeMismatches);
  const unexpected = parts.flatMap((p) => p.report.unexpected);
  const mismatched = new Set(shapeMismatches.map((m) => m.key));
  const missingAll = expected.filter((e) => !have.has(e.key) && !mismatched.has(e.key)).map((e) => e.key);
  const missingUnused = missingAll.filter((k) => k.startsWith('text_transformer.pooler.'));
  const missing = missingAll.filter((k) => !k.startsWith('text_transformer.pooler.'));
  const expectedByKey = new Map(expected.map((e) => [e.key, e]));
  for (let i = 0; i < names.length; i++) {
    const e = expectedByKey.get(names[i]);
    if (!e) continue;
    const got = tensorInfo(tensors[i]).shape;
    if (got.length !== e.shape.length || got.some((s, j) => s !== e.shape[j]))
      shapeMismatches.push({ key: names[i], expected: e.shape, got });
  }
  if (missingUnused.length)
    notes.push(
      `no pooler in the folder (${missingUnused.join(', ')}): CT-CLIP uses the [CLS] hidden state, never the pooler`,
    );
  const report: WeightsReport = {
    file: dir,
    format: 'hf-folder',
    layout: 'hf-bert',
    layoutDescription: `Hugging Face BERT folder (${files.map((f) => path.basename(f)).join(', ')})`,
    wrapper: null,
    otherEntries: {},
    locations: [...new Set(parts.flatMap((p) => p.report.locations))],
    kept: names.length,
    renamed: parts.flatMap((p) => p.report.renamed),
    dropped: parts.flatMap((p) => p.report.dropped),
    missing,
    missingUnused,
    unexpected: [...unexpected, ...names.filter((n) => !expectedSet.has(n))],
    shapeMismatches,
    notes: [
      ...notes,
      ...first.notes.filter(
        (n) =>
          !n.startsWith('no expected key list') && !/expected keys absent that the forward pass never reads/.test(n),
      ),
    ],
  };
  if (opts.strict) {
    try {
      enforceStrict(dir, report);
    } catch (e) {
      tensors.forEach((t) => t.dispose());
      throw e;
    }
  }
  return { textEncoderConfig: config, typeVocabSize, vocabPath, weightsFiles: files, names, tensors, report };
}
