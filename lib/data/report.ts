/**
 * Report-text cleaning, done in the data layer (not the tokenizer) so every consumer sees the same text.
 *
 * The stored text is `Findings_EN + "\n" + Impressions_EN`. We split at the FIRST "\n"
 * (findings never contain one in stage-1 output; anything after the first "\n" belongs to the impressions),
 * blank a part that is exactly "nan" (pandas NaN written by `str()`) or "Not given.", join with "\n", and
 * delete the ASCII characters `" ' ( )`. Nothing else is stripped: whitespace and the "\n" separator stay, so
 * a sample whose two parts are empty becomes "\n". This fixes the reference, which only blanked the WHOLE
 * text when it equalled "Not given." (never true for a combined text).
 */

const EMPTY_PARTS = new Set(['nan', 'Not given.']);

function cleanPart(part: string): string {
  return EMPTY_PARTS.has(part) ? '' : part;
}

/** Cleans a stored report text (see module comment). Pure; the same input always gives the same output. */
export function cleanReport(text: string): string {
  const cut = text.indexOf('\n');
  const joined = cut < 0 ? cleanPart(text) : cleanPart(text.slice(0, cut)) + '\n' + cleanPart(text.slice(cut + 1));
  return joined.replace(/["'()]/g, '');
}
