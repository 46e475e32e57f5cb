/**
 * The WordPiece vocabulary of a Hugging Face `tokenizer.json` (the `tokenizers` library's format). transformers 5
 * saves a BERT tokenizer as tokenizer.json + tokenizer_config.json only, without the vocab.txt older versions
 * wrote, so a folder saved by `save_pretrained` there has its vocabulary only in `model.vocab` (token → id).
 *
 * Only what `Tokenizer` implements is accepted, so that the ids match what transformers computes from the same
 * file: a `WordPiece` model with the `##` continuation prefix and `[UNK]`, the `BertNormalizer` (clean text,
 * CJK spacing, lower-casing with accents stripped together or neither) and the `BertPreTokenizer`, and no added
 * tokens beyond the five BERT specials. Anything else is a DATA_ERROR naming the file, the field and the value.
 */
import * as fs from 'fs';
import { CtclipError } from '../errors';

/** What a tokenizer.json determines for `Tokenizer`. */
export interface TokenizerJsonVocab {
  /** The tokens, index = id (ids 0..n-1 without gaps). */
  tokens: string[];
  /** The normalizer's `lowercase` (accents are stripped with it). */
  doLowerCase: boolean;
  /** The model's `max_input_chars_per_word` (100 when absent). */
  maxInputCharsPerWord: number;
}

/** Added tokens `Tokenizer` splits out of raw text as specials (the others it does not implement). */
const BERT_SPECIALS = new Set(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);

/** A tokenizer.json is a few MiB at most (a 30k WordPiece vocabulary is under 1 MiB); more is not one. */
export const MAX_TOKENIZER_JSON_BYTES = 64 * 1024 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

/** Reads the WordPiece vocabulary (and the normalizer's case handling) of `file`; see the module comment. */
export function readTokenizerJsonVocab(file: string): TokenizerJsonVocab {
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_TOKENIZER_JSON_BYTES)
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: ${size} bytes, over the ${MAX_TOKENIZER_JSON_BYTES}-byte limit of a tokenizer.json`,
      );
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CtclipError) throw e;
    throw new CtclipError('IO_ERROR', `cannot read tokenizer file ${file}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CtclipError('DATA_ERROR', `${file}: not JSON: ${(e as Error).message}`, { cause: e });
  }
  const bad = (field: string, value: unknown, want: string): never => {
    throw new CtclipError('DATA_ERROR', `${file}: '${field}' is ${JSON.stringify(value)}; ${want}`);
  };
  if (!isObject(raw)) bad('(top level)', Array.isArray(raw) ? 'an array' : raw, 'expected a JSON object');
  const root = raw as Record<string, unknown>;
  const model = root.model;
  if (!isObject(model)) return bad('model', model, 'expected an object with a WordPiece vocabulary');
  if (model.type !== 'WordPiece')
    bad(
      'model.type',
      model.type,
      "only 'WordPiece' (BERT) tokenizers are supported, as ctclip's tokenizer is WordPiece",
    );
  const prefix = model.continuing_subword_prefix ?? '##';
  if (prefix !== '##') bad('model.continuing_subword_prefix', prefix, "expected '##'");
  const unk = model.unk_token ?? '[UNK]';
  if (unk !== '[UNK]') bad('model.unk_token', unk, "expected '[UNK]'");
  const maxChars = model.max_input_chars_per_word ?? 100;
  if (typeof maxChars !== 'number' || !Number.isInteger(maxChars) || maxChars < 1)
    bad('model.max_input_chars_per_word', maxChars, 'expected a positive integer');

  const vocab = model.vocab;
  if (!isObject(vocab)) return bad('model.vocab', vocab, 'expected an object of token → id');
  const entries = Object.entries(vocab);
  if (entries.length === 0) bad('model.vocab', {}, 'expected at least one token');
  const tokens: Array<string | undefined> = new Array<string | undefined>(entries.length);
  for (const [token, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      bad(`model.vocab[${JSON.stringify(token)}]`, id, 'expected a non-negative integer id');
    if ((id as number) >= entries.length)
      bad(
        `model.vocab[${JSON.stringify(token)}]`,
        id,
        `ids must be 0..${entries.length - 1} without gaps (${entries.length} tokens), so id ${String(id)} leaves a gap`,
      );
    const prev = tokens[id as number];
    if (prev !== undefined)
      bad(`model.vocab[${JSON.stringify(token)}]`, id, `id ${String(id)} is also the id of ${JSON.stringify(prev)}`);
    tokens[id as number] = token;
  }
  // n distinct ids in [0, n) cover every id: no gap is possible past the checks above.

  const normalizer = root.normalizer;
  if (!isObject(normalizer) || normalizer.type !== 'BertNormalizer')
    bad(
      'normalizer.type',
      isObject(normalizer) ? normalizer.type : normalizer,
      "expected 'BertNormalizer' (the BERT text clean-up and lower-casing ctclip implements)",
    );
  const norm = normalizer as Record<string, unknown>;
  const lowercase = norm.lowercase ?? true;
  if (typeof lowercase !== 'boolean') bad('normalizer.lowercase', lowercase, 'expected true or false');
  const stripAccents = norm.strip_accents ?? null;
  // null = follow lowercase (as BertNormalizer does); ctclip strips accents exactly when it lower-cases.
  if (stripAccents !== null && stripAccents !== lowercase)
    bad('normalizer.strip_accents', stripAccents, `expected null or ${String(lowercase)} (the same as 'lowercase')`);
  for (const key of ['clean_text', 'handle_chinese_chars']) {
    const v = norm[key] ?? true;
    if (v !== true) bad(`normalizer.${key}`, v, 'expected true (as BertTokenizer does)');
  }
  const pre = root.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'BertPreTokenizer')
    bad('pre_tokenizer.type', isObject(pre) ? pre.type : pre, "expected 'BertPreTokenizer'");

  const added = root.added_tokens ?? [];
  if (!Array.isArray(added)) bad('added_tokens', added, 'expected an array');
  for (const a of added as unknown[]) {
    const content = isObject(a) ? a.content : undefined;
    const id = isObject(a) ? a.id : undefined;
    if (typeof content !== 'string' || !BERT_SPECIALS.has(content))
      bad(
        'added_tokens',
        content,
        'only the BERT special tokens [PAD] [UNK] [CLS] [SEP] [MASK] are supported as added tokens',
      );
    if (vocab[content as string] !== id)
      bad(
        `added_tokens ${content as string}`,
        id,
        `expected its id in model.vocab, ${JSON.stringify(vocab[content as string] ?? null)}`,
      );
  }
  return { tokens: tokens as string[], doLowerCase: lowercase as boolean, maxInputCharsPerWord: maxChars as number };
}
