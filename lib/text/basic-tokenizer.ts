/**
 * The "basic" half of Hugging Face `BertTokenizer` (its `BasicTokenizer` with `do_lower_case=True`,
 * `tokenize_chinese_chars=True`, `strip_accents=None`): text cleaning, CJK spacing, whitespace splitting,
 * lower-casing with accent stripping, and punctuation splitting. WordPiece runs on its output.
 *
 * All character tests go by Unicode code point (Python iterates strings by code point; JS by UTF-16 unit), so
 * every loop here uses `for…of`/`Array.from`, never indexing.
 */

/** Unicode categories C* (Cc, Cf, Cs, Co, Cn): HF `_is_control` treats every one of them as control. */
const CONTROL_RE = /\p{C}/u;
/** Category Zs: HF `_is_whitespace` maps these (and \t \n \r) to a plain space. */
const SPACE_SEPARATOR_RE = /\p{Zs}/u;
/** Category Mn (non-spacing marks): what `_run_strip_accents` drops after NFD. */
const NONSPACING_MARK_RE = /\p{Mn}/gu;
/** Unicode P* categories; the ASCII symbol ranges are added in `isPunctuation`. */
const UNICODE_PUNCT_RE = /\p{P}/u;
/**
 * Python's `str.split()` (HF `whitespace_tokenize`) splits on `str.isspace()` chars. After cleaning, the only
 * ones left are spaces and the line/paragraph separators U+2028/U+2029, all of which JS `\s` covers.
 */
const WHITESPACE_SPLIT_RE = /\s+/u;
/** Strings made of these need no cleaning, CJK spacing, NFC, lower-casing beyond ASCII, or accent stripping. */
const PLAIN_ASCII_RE = /^[\x20-\x7e\t\n\r]*$/;

/** True for code points HF treats as CJK ideographs (Hangul and kana are deliberately not included). */
export function isCjkCodePoint(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * True for BERT punctuation: all non-alphanumeric printable ASCII (33–47, 58–64, 91–96, 123–126, which
 * includes symbols such as `$ + < = > ^ \` | ~` that Unicode does not call punctuation) plus Unicode P*.
 */
export function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return cp > 127 && UNICODE_PUNCT_RE.test(ch);
}

/**
 * HF `_clean_text` + `_tokenize_chinese_chars`: drop U+0000, U+FFFD and every C* char except \t \n \r; map
 * \t \n \r and Zs to a space; surround CJK ideographs with spaces (so each becomes its own word).
 */
export function cleanAndSpaceCjk(text: string): string {
  if (PLAIN_ASCII_RE.test(text)) {
    // Fast path for the common case: only \t \n \r need mapping; no control or CJK chars can be present.
    return text.replace(/[\t\n\r]/g, ' ');
  }
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x20 || cp === 0x09 || cp === 0x0a || cp === 0x0d) {
      out += ' ';
      continue;
    }
    if (cp === 0 || cp === 0xfffd || CONTROL_RE.test(ch)) continue;
    if (SPACE_SEPARATOR_RE.test(ch)) {
      out += ' ';
    } else if (isCjkCodePoint(cp)) {
      out += ' ' + ch + ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

/**
 * Splits cleaned text into whitespace-separated words, as HF does after NFC-normalising the cleaned text.
 * NFC never composes across a space, so normalising the whole string equals normalising each word.
 */
export function whitespaceWords(cleaned: string): string[] {
  const text = PLAIN_ASCII_RE.test(cleaned) ? cleaned : cleaned.normalize('NFC');
  const trimmed = text.trim();
  return trimmed === '' ? [] : trimmed.split(WHITESPACE_SPLIT_RE);
}

/** Lower-cases one word (full Unicode, like Python `str.lower`: İ → i + U+0307) and strips accents (NFD, drop Mn). */
export function lowerAndStripAccents(word: string): string {
  if (PLAIN_ASCII_RE.test(word)) return word.toLowerCase();
  return word.toLowerCase().normalize('NFD').replace(NONSPACING_MARK_RE, '');
}

/** HF `_run_split_on_punc`: every punctuation char becomes its own token; runs of other chars stay together. */
export function splitOnPunctuation(word: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const ch of word) {
    if (isPunctuation(ch)) {
      if (current !== '') out.push(current);
      out.push(ch);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current !== '') out.push(current);
  return out;
}

/**
 * The basic tokens of one whitespace-separated word (lower-cased, accents stripped, punctuation split). A word
 * made only of combining marks yields no tokens, as in HF.
 */
export function basicTokensOfWord(word: string, doLowerCase = true): string[] {
  const w = doLowerCase ? lowerAndStripAccents(word) : word;
  return w === '' ? [] : splitOnPunctuation(w);
}

/**
 * Full basic tokenisation of a text that contains no special-token literals (those are split out first by
 * the caller, as HF's added-token trie does).
 */
export function basicTokenize(text: string, doLowerCase = true): string[] {
  const out: string[] = [];
  for (const word of whitespaceWords(cleanAndSpaceCjk(text))) {
    for (const t of basicTokensOfWord(word, doLowerCase)) out.push(t);
  }
  return out;
}
