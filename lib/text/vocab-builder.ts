/**
 * A small, deterministic WordPiece-style vocabulary builder, so the demo can write its own `vocab.txt` and the
 * repo works without external files.
 *
 * Fixture F's vocabulary came from `tokenizers.BertWordPieceTokenizer` (a BPE-style merge trainer). That
 * trainer's output depends on hash-map iteration order (the order of its `##` alphabet, which then breaks merge
 * ties), so it cannot be mirrored exactly; this builder uses a simpler scheme that still guarantees no [UNK] on
 * its own corpus (for words of at most 100 characters):
 *
 *   1. `[PAD] [UNK] [CLS] [SEP] [MASK]` (ids 0–4, as in CXR-BERT);
 *   2. every character seen in a basic token, by code point;
 *   3. `##c` for every character seen in a non-initial position, by code point;
 *   4. whole basic tokens (lower-cased, basic-tokenized exactly as the tokenizer does) with at least
 *      `minFrequency` occurrences, most frequent first, ties broken by code-unit order of the token,
 *      until `vocabSize` entries.
 *
 * Any word then tokenizes either as itself or as its first character followed by `##` characters.
 */
import { CtclipError } from '../errors';
import { basicTokenize } from './basic-tokenizer';

/** Options of `buildWordPieceVocab`. */
export interface VocabBuilderOptions {
  /** Total number of entries wanted. Must leave room for the specials and the character alphabet. */
  vocabSize: number;
  /** Whole words seen fewer times than this are left out (they still tokenize, by characters). Default 1. */
  minFrequency?: number;
  /** Lower-case and strip accents, as the tokenizer that will use the vocab does. Default true. */
  doLowerCase?: boolean;
}

/** Special tokens, in id order. */
export const SPECIAL_VOCAB_TOKENS: readonly string[] = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byCodePoint(a: string, b: string): number {
  return a.codePointAt(0)! - b.codePointAt(0)!;
}

/**
 * Builds a vocabulary (index = id) from a corpus of texts. Deterministic: the same corpus and options always
 * give the same list. Throws `ARGUMENT_ERROR` when `vocabSize` cannot hold the specials and the alphabet.
 * The result may be shorter than `vocabSize` when the corpus has too few distinct words.
 */
export function buildWordPieceVocab(corpus: string[], opts: VocabBuilderOptions): string[] {
  const { vocabSize } = opts;
  const minFrequency = opts.minFrequency ?? 1;
  if (!Number.isInteger(vocabSize) || vocabSize < 1) {
    throw new CtclipError('ARGUMENT_ERROR', `vocabSize must be a positive integer, got ${vocabSize}`);
  }
  if (!Number.isFinite(minFrequency) || minFrequency < 1) {
    throw new CtclipError('ARGUMENT_ERROR', `minFrequency must be ≥ 1, got ${minFrequency}`);
  }
  const counts = new Map<string, number>();
  const initial = new Set<string>();
  const continuing = new Set<string>();
  for (const text of corpus) {
    for (const token of basicTokenize(text, opts.doLowerCase ?? true)) {
      counts.set(token, (counts.get(token) ?? 0) + 1);
      let first = true;
      for (const ch of token) {
        (first ? initial : continuing).add(ch);
        first = false;
      }
    }
  }
  // A character seen only mid-word still needs a plain entry: it may start a word in other text.
  const alphabet = [...new Set([...initial, ...continuing])].sort(byCodePoint);
  const head = [...SPECIAL_VOCAB_TOKENS, ...alphabet, ...[...continuing].sort(byCodePoint).map((c) => '##' + c)];
  if (head.length > vocabSize) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `vocabSize ${vocabSize} is too small: the special tokens and the corpus alphabet alone need ${head.length} entries`,
    );
  }
  const taken = new Set(head);
  const words = [...counts.entries()]
    .filter(([w, c]) => c >= minFrequency && !taken.has(w))
    .sort((a, b) => b[1] - a[1] || byCodeUnits(a[0], b[0]))
    .slice(0, vocabSize - head.length)
    .map(([w]) => w);
  return [...head, ...words];
}

/** The vocabulary as `vocab.txt` content: one token per line, trailing newline. */
export function vocabToText(tokens: string[]): string {
  return tokens.join('\n') + '\n';
}
