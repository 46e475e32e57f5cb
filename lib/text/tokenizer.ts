/**
 * WordPiece tokenizer equivalent to Hugging Face `BertTokenizer(vocab.txt, do_lower_case=True)` called as
 * `tokenizer(text, padding='max_length', truncation=True, max_length=L)`:
 *
 *   1. exact, case-sensitive special-token literals (`[CLS]`, `[SEP]`, …) in the raw text stay special tokens;
 *   2. the rest goes through the basic tokenizer (`basic-tokenizer.ts`);
 *   3. each basic token is split greedily, longest-match-first, into WordPieces (`##` continuations); a token
 *      over 100 code points, or one with any unmatched stretch, becomes a single `[UNK]`;
 *   4. `[CLS]` + the first L − 2 pieces + `[SEP]`, padded with `[PAD]`; attention mask 1 on real tokens.
 *
 * The tokenizer does no report cleaning (quotes, "___" placeholders, …): that belongs to the data loader.
 */
import * as fs from 'fs';
import { CtclipError } from '../errors';
import { basicTokensOfWord, cleanAndSpaceCjk, whitespaceWords } from './basic-tokenizer';
import { readTokenizerJsonVocab } from './tokenizer-json';

/** Options shared by the constructors. */
export interface TokenizerOptions {
  /** Lower-case and strip accents (HF `do_lower_case`). Default true, as CT-CLIP uses. */
  doLowerCase?: boolean;
  /** Words longer than this many code points become `[UNK]` (HF `max_input_chars_per_word`). Default 100. */
  maxInputCharsPerWord?: number;
  /** Upper bound on the word → ids cache used by `encode`/`encodeBatch`. Default 100 000 entries. */
  cacheSize?: number;
}

/** One encoded text. */
export interface Encoding {
  /** `maxLength` token ids: [CLS] … [SEP] then [PAD]s. */
  inputIds: Int32Array;
  /** 1 on real tokens (including [CLS]/[SEP]), 0 on padding. */
  attentionMask: Int32Array;
}

/** A batch encoded for the native side: int64, row-major `[batchSize, maxLength]`. */
export interface BatchEncoding {
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  batchSize: number;
  maxLength: number;
}

/** The special tokens BERT vocabularies carry; [PAD] [UNK] [CLS] [SEP] are required, [MASK] is optional. */
const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
const REQUIRED_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'] as const;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Code-point length, computed cheaply for the (usual) strings without surrogate pairs. */
function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** A vocabulary path naming a Hugging Face tokenizer.json rather than a vocab.txt. */
function isTokenizerJson(path: string): boolean {
  return path.toLowerCase().endsWith('.json');
}

/** WordPiece tokenizer over a BERT `vocab.txt` (one token per line; the id is the 0-based line number). */
export class Tokenizer {
  /** Number of ids (lines of vocab.txt): the size the embedding table needs. */
  readonly vocabSize: number;
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  /** Id of `[MASK]`, or -1 when the vocabulary has none. */
  readonly maskId: number;
  readonly doLowerCase: boolean;

  private readonly vocab: Map<string, number>;
  private readonly idToToken: string[];
  private readonly maxInputCharsPerWord: number;
  /** Splits raw text on special-token literals; its capture group keeps them. */
  private readonly specialSplitRe: RegExp;
  private readonly specialIds: Map<string, number>;
  /** Whitespace word → its WordPiece ids. Reports repeat words a lot, so this makes batches cheap. */
  private readonly wordCache = new Map<string, Int32Array>();
  private readonly cacheSize: number;

  private constructor(tokens: string[], opts: TokenizerOptions = {}) {
    this.doLowerCase = opts.doLowerCase ?? true;
    this.maxInputCharsPerWord = opts.maxInputCharsPerWord ?? 100;
    this.cacheSize = Math.max(0, opts.cacheSize ?? 100_000);
    this.idToToken = tokens.slice();
    this.vocabSize = tokens.length;
    this.vocab = new Map();
    // Python's `vocab[token] = index` loop: on a duplicate line the later id wins.
    tokens.forEach((t, i) => this.vocab.set(t, i));
    const missing = REQUIRED_SPECIALS.filter((s) => !this.vocab.has(s));
    if (missing.length > 0) {
      throw new CtclipError('DATA_ERROR', `vocabulary lacks required special token(s) ${missing.join(', ')}`);
    }
    this.padId = this.vocab.get('[PAD]')!;
    this.unkId = this.vocab.get('[UNK]')!;
    this.clsId = this.vocab.get('[CLS]')!;
    this.sepId = this.vocab.get('[SEP]')!;
    this.maskId = this.vocab.get('[MASK]') ?? -1;
    // HF always treats all five as special tokens; one missing from the vocabulary encodes as [UNK].
    this.specialIds = new Map(SPECIAL_TOKENS.map((s) => [s, this.vocab.get(s) ?? this.unkId]));
    this.specialSplitRe = new RegExp(`(${SPECIAL_TOKENS.map(escapeRegExp).join('|')})`);
  }

  /**
   * Reads a `vocab.txt`. Lines are split on \n, \r\n or \r (Python's universal newlines); a final newline does
   * not add an entry. Throws `IO_ERROR` (naming the path) when the file is missing, unreadable or empty. A path
   * ending in `.json` is a Hugging Face `tokenizer.json` instead (`fromTokenizerJson`).
   */
  static fromVocabFile(path: string, opts?: TokenizerOptions): Tokenizer {
    if (isTokenizerJson(path)) return Tokenizer.fromTokenizerJson(path, opts);
    return new Tokenizer(Tokenizer.readVocabTokens(path), opts);
  }

  /**
   * The tokens of a vocabulary file (index = id) as `fromVocabFile` reads them, vocab.txt or tokenizer.json,
   * without building a tokenizer (the special tokens are not required here).
   */
  static readVocabTokens(path: string): string[] {
    if (isTokenizerJson(path)) return readTokenizerJsonVocab(path).tokens;
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot read vocabulary file ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) throw new CtclipError('IO_ERROR', `vocabulary file ${path} is empty`);
    return lines;
  }

  /**
   * Reads the WordPiece vocabulary of a Hugging Face `tokenizer.json` (what transformers 5 saves instead of
   * vocab.txt; lib/text/tokenizer-json.ts says what is accepted). The file's normalizer decides lower-casing: a
   * `doLowerCase` option that contradicts it is a DATA_ERROR, since the ids would then differ from transformers'.
   */
  static fromTokenizerJson(path: string, opts: TokenizerOptions = {}): Tokenizer {
    const v = readTokenizerJsonVocab(path);
    if (opts.doLowerCase !== undefined && opts.doLowerCase !== v.doLowerCase) {
      throw new CtclipError(
        'DATA_ERROR',
        `${path}: 'normalizer.lowercase' is ${v.doLowerCase} but the tokenizer was asked for do_lower_case ${opts.doLowerCase} (model.text_encoder.do_lower_case); make them agree`,
      );
    }
    return new Tokenizer(v.tokens, {
      ...opts,
      doLowerCase: v.doLowerCase,
      maxInputCharsPerWord: opts.maxInputCharsPerWord ?? v.maxInputCharsPerWord,
    });
  }

  /** Builds a tokenizer from an in-memory token list (index = id). */
  static fromVocab(tokens: string[], opts?: TokenizerOptions): Tokenizer {
    if (tokens.length === 0) throw new CtclipError('ARGUMENT_ERROR', 'vocabulary is empty');
    return new Tokenizer(tokens, opts);
  }

  /** Id of a token, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  /** Token of an id (throws `ARGUMENT_ERROR` when out of range). */
  idToTokenString(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.idToToken.length) {
      throw new CtclipError('ARGUMENT_ERROR', `token id ${id} is outside [0, ${this.idToToken.length})`);
    }
    return this.idToToken[id];
  }

  /**
   * The WordPiece strings of `text`, without [CLS]/[SEP], truncation or padding (HF `tokenize`). Useful for
   * debugging; `encode` gives the same pieces as ids.
   */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const seg of this.segments(text)) {
      if (seg.special !== undefined) {
        out.push(seg.special);
        continue;
      }
      for (const word of whitespaceWords(cleanAndSpaceCjk(seg.text))) {
        for (const bt of basicTokensOfWord(word, this.doLowerCase)) this.wordPiece(bt, out);
      }
    }
    return out;
  }

  /** Encodes one text to `maxLength` ids and mask (int32; see `encodeBatch` for the int64 batch form). */
  encode(text: string, maxLength: number): Encoding {
    this.checkMaxLength(maxLength);
    const inputIds = new Int32Array(maxLength);
    const attentionMask = new Int32Array(maxLength);
    const n = this.fillRow(text, maxLength, (i, id) => {
      inputIds[i] = id;
    });
    if (this.padId !== 0) inputIds.fill(this.padId, n);
    attentionMask.fill(1, 0, n);
    return { inputIds, attentionMask };
  }

  /**
   * Encodes a batch into int64 row-major `[texts.length, maxLength]` arrays, ready to become libtorch tensors.
   */
  encodeBatch(texts: string[], maxLength: number): BatchEncoding {
    this.checkMaxLength(maxLength);
    const batchSize = texts.length;
    const inputIds = new BigInt64Array(batchSize * maxLength);
    const attentionMask = new BigInt64Array(batchSize * maxLength);
    // BigInt conversion per element is the slow part; ids repeat, so convert through a small table.
    const big: bigint[] = [];
    const toBig = (id: number): bigint => big[id] ?? (big[id] = BigInt(id));
    const padBig = BigInt(this.padId);
    for (let b = 0; b < batchSize; b++) {
      const row = b * maxLength;
      const n = this.fillRow(texts[b], maxLength, (i, id) => {
        inputIds[row + i] = toBig(id);
      });
      if (this.padId !== 0) inputIds.fill(padBig, row + n, row + maxLength);
      attentionMask.fill(1n, row, row + n);
    }
    return { inputIds, attentionMask, batchSize, maxLength };
  }

  /** Number of cached words (for tests and diagnostics). */
  get cachedWords(): number {
    return this.wordCache.size;
  }

  private checkMaxLength(maxLength: number): void {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `maxLength must be an integer ≥ 2 (room for [CLS] and [SEP]), got ${maxLength}`,
      );
    }
  }

  /**
   * Writes [CLS] + up to maxLength − 2 pieces + [SEP] through `put` and returns the number of real tokens.
   * Stops tokenising once the row is full: truncation keeps only the first pieces, so later words can't matter.
   */
  private fillRow(text: string, maxLength: number, put: (i: number, id: number) => void): number {
    const budget = maxLength - 2;
    let n = 0;
    put(0, this.clsId);
    outer: for (const seg of this.segments(text)) {
      if (seg.special !== undefined) {
        if (n >= budget) break;
        put(1 + n++, this.specialIds.get(seg.special)!);
        continue;
      }
      for (const word of whitespaceWords(cleanAndSpaceCjk(seg.text))) {
        const ids = this.wordIds(word);
        for (let k = 0; k < ids.length; k++) {
          if (n >= budget) break outer;
          put(1 + n++, ids[k]);
        }
      }
    }
    put(1 + n, this.sepId);
    return n + 2;
  }

  /** Ids of one whitespace-separated word, through the bounded cache (oldest entry evicted first). */
  private wordIds(word: string): Int32Array {
    const hit = this.wordCache.get(word);
    if (hit !== undefined) return hit;
    const pieces: string[] = [];
    for (const bt of basicTokensOfWord(word, this.doLowerCase)) this.wordPiece(bt, pieces);
    const ids = Int32Array.from(pieces, (p) => this.vocab.get(p)!);
    if (this.cacheSize > 0) {
      if (this.wordCache.size >= this.cacheSize) this.wordCache.delete(this.wordCache.keys().next().value!);
      this.wordCache.set(word, ids);
    }
    return ids;
  }

  /** Splits raw text into runs of ordinary text and exact special-token literals (HF's added-token split). */
  private *segments(text: string): Generator<{ text: string; special?: string }> {
    if (text.indexOf('[') < 0) {
      yield { text };
      return;
    }
    const parts = text.split(this.specialSplitRe);
    // With one capture group, odd indices are the matched special tokens.
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 1) yield { text: parts[i], special: parts[i] };
      else if (parts[i] !== '') yield { text: parts[i] };
    }
  }

  /**
   * Greedy longest-match-first WordPiece of one basic token, appended to `out`. Any unmatched stretch, or a
   * token over `maxInputCharsPerWord` code points, turns the whole token into one [UNK].
   */
  private wordPiece(token: string, out: string[]): void {
    const len = codePointLength(token);
    if (len > this.maxInputCharsPerWord) {
      out.push('[UNK]');
      return;
    }
    // Index by code point: Python slices code points, and a piece must never split a surrogate pair.
    const chars = len === token.length ? null : Array.from(token);
    const slice = (a: number, b: number): string => (chars === null ? token.slice(a, b) : chars.slice(a, b).join(''));
    const pieces: string[] = [];
    let start = 0;
    while (start < len) {
      let end = len;
      let found: string | null = null;
      while (start < end) {
        const sub = start > 0 ? '##' + slice(start, end) : slice(start, end);
        if (this.vocab.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === null) {
        out.push('[UNK]');
        return;
      }
      pieces.push(found);
      start = end;
    }
    for (const p of pieces) out.push(p);
  }
}
