/**
 * Brace expansion of shard patterns, as WebDataset (python `braceexpand`) does it:
 *   `shard-{000000..000316}.tar` → 317 names, inclusive, zero padding kept;
 *   `{train,valid}/shard-{0..3}.tar` → lists, cartesian product, in the order written (NOT sorted);
 *   `{a..e}` single-letter ranges and `{0..10..2}` steps; descending ranges count down.
 * A brace group with neither a top-level comma nor a valid range stays literal, like braceexpand.
 */
import { CtclipError } from '../errors';

const RANGE_RE = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/;
const ALPHA_RANGE_RE = /^([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?$/;

/** Index of the `}` matching the `{` at `open`, or -1. */
function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '{') depth++;
    else if (s[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** Splits at top-level commas (commas inside nested braces stay). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

function numericRange(a: string, b: string, stepText: string | undefined, pattern: string): string[] {
  const start = parseInt(a, 10);
  const end = parseInt(b, 10);
  const step = Math.abs(stepText === undefined ? 1 : parseInt(stepText, 10)) || 1;
  // braceexpand pads to the longer bound's width when either bound is written with a leading zero.
  const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
  const width = padded ? Math.max(a.length, b.length) : 0;
  const count = Math.floor(Math.abs(end - start) / step) + 1;
  if (count > 10_000_000)
    throw new CtclipError('ARGUMENT_ERROR', `brace range {${a}..${b}} in '${pattern}' expands to ${count} names`);
  const out: string[] = [];
  const dir = end >= start ? 1 : -1;
  for (let k = 0, v = start; k < count; k++, v += dir * step) {
    const neg = v < 0;
    let digits = String(Math.abs(v));
    if (width) digits = digits.padStart(width - (neg ? 1 : 0), '0');
    out.push(neg ? '-' + digits : digits);
  }
  return out;
}

function alphaRange(a: string, b: string, stepText: string | undefined): string[] {
  const start = a.charCodeAt(0);
  const end = b.charCodeAt(0);
  const step = Math.abs(stepText === undefined ? 1 : parseInt(stepText, 10)) || 1;
  const dir = end >= start ? 1 : -1;
  const out: string[] = [];
  for (let v = start; dir > 0 ? v <= end : v >= end; v += dir * step) out.push(String.fromCharCode(v));
  return out;
}

function expand(s: string, pattern: string): string[] {
  // Find the first brace group that actually expands; literal groups are skipped over.
  let from = 0;
  for (;;) {
    const open = s.indexOf('{', from);
    if (open < 0) return [s];
    const close = matchingBrace(s, open);
    if (close < 0) return [s];
    const body = s.slice(open + 1, close);
    let alternatives: string[] | null = null;
    const parts = splitTopLevel(body);
    if (parts.length > 1) {
      alternatives = parts.flatMap((p) => expand(p, pattern));
    } else {
      const m = RANGE_RE.exec(body);
      if (m) alternatives = numericRange(m[1], m[2], m[3], pattern);
      else {
        const am = ALPHA_RANGE_RE.exec(body);
        if (am) alternatives = alphaRange(am[1], am[2], am[3]);
      }
    }
    if (!alternatives) {
      from = open + 1;
      continue;
    }
    const prefix = s.slice(0, open);
    const suffixes = expand(s.slice(close + 1), pattern);
    const out: string[] = [];
    for (const alt of alternatives) for (const suf of suffixes) out.push(prefix + alt + suf);
    return out;
  }
}

/** Expands a brace pattern into names, in the order written (inclusive ranges, zero padding kept). */
export function expandBraces(pattern: string): string[] {
  return expand(pattern, pattern);
}

/** True for names our random-access reader must refuse (compressed tar). */
export function isCompressedShardName(name: string): boolean {
  return /\.(tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tzst|gz)$/i.test(name);
}

/**
 * Expands a shard pattern and validates the names: refuses compressed shards with a message saying to
 * decompress them, because positioned reads need a plain tar.
 */
export function expandShardPattern(pattern: string): string[] {
  if (typeof pattern !== 'string' || pattern.trim() === '') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      'the shard pattern is empty; expected e.g. /data/train/shard-{000000..000316}.tar',
    );
  }
  const names = expandBraces(pattern);
  const compressed = names.find(isCompressedShardName);
  if (compressed) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `compressed shard '${compressed}' (from pattern '${pattern}') is not supported: ctclip reads samples by ` +
        `positioned reads, which need an uncompressed tar. Decompress the shards first, e.g. ` +
        `'gunzip -k shard-*.tar.gz' (or 'for f in *.tgz; do gzip -dc "$f" > "\${f%.tgz}.tar"; done'), and point the pattern at the .tar files`,
    );
  }
  return names;
}
