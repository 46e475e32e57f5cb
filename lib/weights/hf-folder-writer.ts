/**
 * Writes a Hugging Face BERT folder from the text tower of our CT-CLIP weights (pure TypeScript, no addon):
 * `config.json` (BertConfig: the sizes from the tensor shapes, the head count, dropouts, LayerNorm epsilon from
 * the caller, which reads them from the run's config: shapes cannot tell heads, and a wrong head count loads
 * without error and computes another model), `vocab.txt` (the run's vocabulary, vocab.txt or tokenizer.json,
 * written as vocab.txt), `tokenizer_config.json` (BertTokenizer, do_lower_case, model_max_length),
 * `model.safetensors` with `bert.`-prefixed keys and, optionally, `pytorch_model.bin` written by our torch.save
 * writer. transformers' `BertModel.from_pretrained` + `BertTokenizer.from_pretrained` on the folder compute the
 * ids and the [CLS] hidden state ctclip computes. With `withExtras` the folder also carries, like a real CXR-BERT
 * folder, a stale `bert.embeddings.position_ids` and MLM/projection heads (`cls.predictions.*`,
 * `cls_projection_head.*`) that an import must ignore (the import tests use that).
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { readSafetensors, writeSafetensors, type SafetensorsDtype, type SafetensorsTensor } from '../io/safetensors';
import type { Dtype } from '../native';
import { Tokenizer } from '../text/tokenizer';
import { writeTorchSave, type TorchSaveEntry } from './torch-save';

export interface HfFolderOptions {
  /** A CT-CLIP (text_transformer.*) or HF BERT (bert.*) safetensors file. */
  from: string;
  out: string;
  /** num_attention_heads (the shapes cannot tell it); must divide hidden_size. */
  heads: number;
  /**
   * The tokenizer's vocabulary (vocab.txt, or a tokenizer.json), written as vocab.txt; 'synthetic' writes
   * [PAD] [UNK] [CLS] [SEP] [MASK] tok5 tok6 … instead (for import tests only: no real text maps to those ids).
   */
  vocab: string | 'synthetic';
  /** BertTokenizer's do_lower_case (tokenizer_config.json; default true). */
  doLowerCase?: boolean;
  /** tokenizer_config.json's model_max_length (default max_position_embeddings). */
  maxLength?: number;
  /** hidden_dropout_prob (default 0.1, BertConfig's). */
  hiddenDropout?: number;
  /** attention_probs_dropout_prob (default 0.1, BertConfig's). */
  attentionDropout?: number;
  /** layer_norm_eps (default 1e-12). */
  layerNormEps?: number;
  /** Which weight files to write (default both). */
  formats?: Array<'safetensors' | 'bin'>;
  /**
   * Add position_ids and deterministic made-up MLM/projection heads, as a CXR-BERT folder has (default false: they
   * exist for import tests, and no trained head is behind them).
   */
  withExtras?: boolean;
}

const DTYPE_OF: Partial<Record<SafetensorsDtype, Dtype>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};

function bytesOf(t: SafetensorsTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** The synthetic vocabulary's first tokens (the BERT specials, where a real vocabulary has them too). */
const SYNTHETIC_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/** Deterministic small float32 values (no RNG state involved: a fixed formula). */
function pattern(n: number, salt: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(0.02 * Math.sin(0.37 * i + salt));
  return a;
}

/** Writes the folder; returns the files written. */
export async function writeHfBertFolder(opts: HfFolderOptions): Promise<string[]> {
  const src = await readSafetensors(opts.from);
  const bert: Array<[string, SafetensorsTensor]> = [];
  for (const [name, t] of src.tensors) {
    let rest: string | null = null;
    if (name.startsWith('text_transformer.')) rest = name.slice('text_transformer.'.length);
    else if (name.startsWith('bert.')) rest = name.slice('bert.'.length);
    if (rest === null || rest.startsWith('embeddings.position_ids') || !/^(embeddings|encoder|pooler)\./.test(rest))
      continue;
    bert.push([`bert.${rest}`, t]);
  }
  const get = (k: string): SafetensorsTensor => {
    const e = bert.find(([n]) => n === k);
    if (!e)
      throw new CtclipError(
        'DATA_ERROR',
        `${opts.from}: no text-encoder tensor '${k}' (as text_transformer.* or bert.*)`,
      );
    return e[1];
  };
  const word = get('bert.embeddings.word_embeddings.weight');
  const [vocabSize, hidden] = word.shape;
  const layers = new Set(
    bert.map(([n]) => /^bert\.encoder\.layer\.(\d+)\./.exec(n)?.[1]).filter((x) => x !== undefined),
  ).size;
  const intermediate = get('bert.encoder.layer.0.intermediate.dense.weight').shape[0];
  const maxPos = get('bert.embeddings.position_embeddings.weight').shape[0];
  const typeVocab = get('bert.embeddings.token_type_embeddings.weight').shape[0];
  const heads = opts.heads;
  if (!Number.isInteger(heads) || heads <= 0 || hidden % heads !== 0) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `the head count must be a positive divisor of hidden_size ${hidden} (${opts.from}), got ${heads}`,
    );
  }
  const tokens =
    opts.vocab === 'synthetic'
      ? Array.from({ length: vocabSize }, (_, i) => SYNTHETIC_SPECIALS[i] ?? `tok${i}`)
      : Tokenizer.readVocabTokens(opts.vocab);
  if (tokens.length > vocabSize) {
    throw new CtclipError(
      'DATA_ERROR',
      `${opts.vocab}: ${tokens.length} tokens but the word embedding of ${opts.from} has ${vocabSize} rows: not the vocabulary these weights were trained with`,
    );
  }
  const padId = tokens.indexOf('[PAD]');
  const eps = opts.layerNormEps ?? 1e-12;
  const hiddenDropout = opts.hiddenDropout ?? 0.1;
  const attentionDropout = opts.attentionDropout ?? 0.1;
  for (const [name, p] of [
    ['hidden dropout', hiddenDropout],
    ['attention dropout', attentionDropout],
  ] as const) {
    if (!(p >= 0 && p < 1)) throw new CtclipError('ARGUMENT_ERROR', `the ${name} must be in [0, 1), got ${p}`);
  }
  // Order the BERT keys as BertModel does (file order of a Python-written safetensors is sorted otherwise).
  bert.sort((a, b) => bertOrder(a[0]) - bertOrder(b[0]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

  const withExtras = opts.withExtras ?? false;
  const tensors: Array<[string, SafetensorsTensor]> = [];
  if (withExtras) {
    const ids = new BigInt64Array(maxPos);
    for (let i = 0; i < maxPos; i++) ids[i] = BigInt(i);
    tensors.push(['bert.embeddings.position_ids', { dtype: 'I64', shape: [1, maxPos], data: ids }]);
  }
  tensors.push(...bert);
  if (withExtras) {
    const add = (name: string, shape: number[], salt: number): void => {
      tensors.push([
        name,
        {
          dtype: 'F32',
          shape,
          data: pattern(
            shape.reduce((a, b) => a * b, 1),
            salt,
          ),
        },
      ]);
    };
    add('cls.predictions.bias', [vocabSize], 1);
    add('cls.predictions.transform.dense.weight', [hidden, hidden], 2);
    add('cls.predictions.transform.dense.bias', [hidden], 3);
    add('cls.predictions.transform.LayerNorm.weight', [hidden], 4);
    add('cls.predictions.transform.LayerNorm.bias', [hidden], 5);
    add('cls.predictions.decoder.weight', [vocabSize, hidden], 6);
    add('cls_projection_head.dense_to_hidden.weight', [hidden, hidden], 7);
    add('cls_projection_head.dense_to_hidden.bias', [hidden], 8);
  }

  fs.mkdirSync(opts.out, { recursive: true });
  const written: string[] = [];
  const writeJson = (name: string, value: object): void => {
    const f = path.join(opts.out, name);
    fs.writeFileSync(f, JSON.stringify(value, null, 2) + '\n');
    written.push(f);
  };
  writeJson('config.json', {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: vocabSize,
    hidden_size: hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    intermediate_size: intermediate,
    hidden_act: 'gelu',
    hidden_dropout_prob: hiddenDropout,
    attention_probs_dropout_prob: attentionDropout,
    max_position_embeddings: maxPos,
    type_vocab_size: typeVocab,
    initializer_range: 0.02,
    layer_norm_eps: eps,
    pad_token_id: padId < 0 ? 0 : padId,
    position_embedding_type: 'absolute',
  });
  const vocabPath = path.join(opts.out, 'vocab.txt');
  fs.writeFileSync(vocabPath, tokens.join('\n') + '\n');
  written.push(vocabPath);
  writeJson('tokenizer_config.json', {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: opts.doLowerCase ?? true,
    model_max_length: opts.maxLength ?? maxPos,
    unk_token: '[UNK]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    cls_token: '[CLS]',
    mask_token: '[MASK]',
  });
  const formats = opts.formats ?? ['safetensors', 'bin'];
  if (formats.includes('safetensors')) {
    const f = path.join(opts.out, 'model.safetensors');
    await writeSafetensors(f, tensors, { format: 'pt' });
    written.push(f);
  }
  if (formats.includes('bin')) {
    const f = path.join(opts.out, 'pytorch_model.bin');
    const entries: TorchSaveEntry[] = tensors.map(([name, t]) => {
      const dtype = DTYPE_OF[t.dtype];
      if (!dtype)
        throw new CtclipError(
          'DATA_ERROR',
          `${opts.from}: '${name}' has dtype ${t.dtype}, which torch.save output does not support here`,
        );
      return { name, dtype, shape: t.shape, data: bytesOf(t) };
    });
    writeTorchSave(f, entries, { archiveName: 'pytorch_model' });
    written.push(f);
  }
  return written;
}

/** Sort rank of a `bert.*` key in BertModel's state_dict order. */
function bertOrder(key: string): number {
  const emb = ['word_embeddings', 'position_embeddings', 'token_type_embeddings', 'LayerNorm.weight', 'LayerNorm.bias'];
  const layer = [
    'attention.self.query.weight',
    'attention.self.query.bias',
    'attention.self.key.weight',
    'attention.self.key.bias',
    'attention.self.value.weight',
    'attention.self.value.bias',
    'attention.output.dense.weight',
    'attention.output.dense.bias',
    'attention.output.LayerNorm.weight',
    'attention.output.LayerNorm.bias',
    'intermediate.dense.weight',
    'intermediate.dense.bias',
    'output.dense.weight',
    'output.dense.bias',
    'output.LayerNorm.weight',
    'output.LayerNorm.bias',
  ];
  if (key.startsWith('bert.embeddings.')) {
    const i = emb.findIndex((e) => key.slice('bert.embeddings.'.length).startsWith(e));
    return i < 0 ? 99 : i;
  }
  const m = /^bert\.encoder\.layer\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const j = layer.indexOf(m[2]);
    return 100 + Number(m[1]) * 100 + (j < 0 ? 99 : j);
  }
  if (key === 'bert.pooler.dense.weight') return 1e9;
  if (key === 'bert.pooler.dense.bias') return 1e9 + 1;
  return 2e9;
}
