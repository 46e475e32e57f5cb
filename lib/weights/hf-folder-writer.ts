/**
 * Writes a tiny Hugging Face-style BERT folder from our own CT-CLIP weights (pure TypeScript, no addon), so the
 * folder import is exercised without downloads: `config.json` (BertConfig fields inferred from the tensor shapes
 * plus the given head count), `vocab.txt` (copied or synthesised with the CXR-BERT special tokens first),
 * `model.safetensors` with `bert.`-prefixed keys and, optionally, `pytorch_model.bin` written by our torch.save
 * writer. Like a real CXR-BERT folder it can carry a stale `bert.embeddings.position_ids` and MLM/projection
 * heads (`cls.predictions.*`, `cls_projection_head.*`) that an import must ignore.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { readSafetensors, writeSafetensors, type SafetensorsDtype, type SafetensorsTensor } from '../io/safetensors';
import type { Dtype } from '../native';
import { writeTorchSave, type TorchSaveEntry } from './torch-save';

export interface HfFolderOptions {
  /** A CT-CLIP (text_transformer.*) or HF BERT (bert.*) safetensors file. */
  from: string;
  out: string;
  /** num_attention_heads (shapes cannot tell); default hidden_size / 64 when that divides, else 1. */
  heads?: number;
  /** A vocab.txt to copy; otherwise one is synthesised. */
  vocab?: string;
  /** Which weight files to write (default both). */
  formats?: Array<'safetensors' | 'bin'>;
  /** Add position_ids and deterministic MLM/projection heads, as a CXR-BERT folder has (default true). */
  withExtras?: boolean;
  dropout?: number;
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
  const heads = opts.heads ?? (hidden % 64 === 0 ? hidden / 64 : 1);
  if (!Number.isInteger(heads) || heads <= 0 || hidden % heads !== 0) {
    throw new CtclipError('ARGUMENT_ERROR', `--heads must divide hidden_size ${hidden}, got ${heads}`);
  }
  // Order the BERT keys as BertModel does (file order of a Python-written safetensors is sorted otherwise).
  bert.sort((a, b) => bertOrder(a[0]) - bertOrder(b[0]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

  const withExtras = opts.withExtras ?? true;
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
  const config = {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: vocabSize,
    hidden_size: hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    intermediate_size: intermediate,
    hidden_act: 'gelu',
    hidden_dropout_prob: opts.dropout ?? 0.25,
    attention_probs_dropout_prob: opts.dropout ?? 0.25,
    max_position_embeddings: maxPos,
    type_vocab_size: typeVocab,
    initializer_range: 0.02,
    layer_norm_eps: 1e-12,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
  };
  const configPath = path.join(opts.out, 'config.json');
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n');
  written.push(configPath);
  const vocabPath = path.join(opts.out, 'vocab.txt');
  if (opts.vocab) fs.copyFileSync(opts.vocab, vocabPath);
  else {
    const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
    const lines = Array.from({ length: vocabSize }, (_, i) => special[i] ?? `tok${i}`);
    fs.writeFileSync(vocabPath, lines.join('\n') + '\n');
  }
  written.push(vocabPath);
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
