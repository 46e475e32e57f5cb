/**
 * Retrieval metrics for a volume ↔ report similarity matrix: `similarity[i][j]` is the score of volume i
 * against report j, and report i belongs to volume i (the diagonal is the ground truth).
 *
 * - image_to_text: for volume i, the rank of report i among row i;
 * - text_to_image: for report j, the rank of volume j among column j.
 *
 * Ranks are 1-based. Ties with the correct item are resolved PESSIMISTICALLY by default (rank = 1 + number of
 * items scoring ≥ the correct one, other than itself), so a degenerate model that gives every pair the same
 * score gets rank n, not 1; `ties: 'optimistic'` (1 + number strictly greater) and `'average'` (the mean of
 * the two) are available. recall@k = share of queries with rank ≤ k; the median is numpy's (mean of the two
 * middle ranks for even n). Reading the matrix is O(n²), which is its size; each query is O(n).
 */
import { CtclipError } from '../errors';
import { median } from './percentile';

/** How a tie between the correct item and others counts. */
export type TieMode = 'pessimistic' | 'optimistic' | 'average';

/** Retrieval metrics of one direction. */
export interface RetrievalDirection {
  r1: number;
  r5: number;
  r10: number;
  r50: number;
  mean_rank: number;
  median_rank: number;
}

/** Both directions plus the number of pairs. */
export interface RetrievalMetrics {
  n: number;
  ties: TieMode;
  image_to_text: RetrievalDirection;
  text_to_image: RetrievalDirection;
}

/** Ranks of the ground truth, one per query, in both directions. */
export interface RetrievalRanks {
  imageToText: Float64Array;
  textToImage: Float64Array;
}

/** Options of `retrievalMetrics`. */
export interface RetrievalOptions {
  /** Tie handling. Default 'pessimistic'. */
  ties?: TieMode;
}

/** Accepts a row-major `Float64Array` of n·n values plus n, or an n × n array of rows. */
export type SimilarityInput = Float64Array | ReadonlyArray<ArrayLike<number>>;

function toSquare(similarity: SimilarityInput, n?: number): { data: Float64Array; n: number } {
  let data: Float64Array;
  let size: number;
  if (similarity instanceof Float64Array) {
    size = n ?? Math.round(Math.sqrt(similarity.length));
    if (!Number.isInteger(size) || size < 1 || size * size !== similarity.length) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `similarity has ${similarity.length} values; expected n·n for n = ${n ?? 'a whole number'} (volumes × reports, row-major)`,
      );
    }
    data = similarity;
  } else {
    size = similarity.length;
    if (size < 1) throw new CtclipError('ARGUMENT_ERROR', 'similarity: expected at least one row');
    if (n !== undefined && n !== size)
      throw new CtclipError('ARGUMENT_ERROR', `similarity has ${size} rows; expected n = ${n}`);
    data = new Float64Array(size * size);
    for (let i = 0; i < size; i++) {
      const row = similarity[i];
      if (row == null || row.length !== size) {
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `similarity row ${i} has ${row == null ? 'no' : row.length} columns; expected ${size} (a square volumes × reports matrix)`,
        );
      }
      for (let j = 0; j < size; j++) data[i * size + j] = row[j];
    }
  }
  for (let k = 0; k < data.length; k++) {
    if (Number.isNaN(data[k])) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `similarity[${Math.floor(k / size)}][${k % size}] is NaN; expected a number`,
      );
    }
  }
  return { data, n: size };
}

function rankOf(greater: number, ties: number, mode: TieMode): number {
  if (mode === 'optimistic') return 1 + greater;
  if (mode === 'pessimistic') return 1 + greater + ties;
  return 1 + greater + ties / 2;
}

/** The 1-based rank of the ground-truth item for every query, in both directions. */
export function retrievalRanks(similarity: SimilarityInput, n?: number, opts: RetrievalOptions = {}): RetrievalRanks {
  const mode = checkTies(opts.ties);
  const sq = toSquare(similarity, n);
  const size = sq.n;
  const s = sq.data;
  const imageToText = new Float64Array(size);
  const textToImage = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const target = s[i * size + i];
    let greater = 0;
    let ties = 0;
    const base = i * size;
    for (let j = 0; j < size; j++) {
      if (j === i) continue;
      const v = s[base + j];
      if (v > target) greater++;
      else if (v === target) ties++;
    }
    imageToText[i] = rankOf(greater, ties, mode);
  }
  for (let j = 0; j < size; j++) {
    const target = s[j * size + j];
    let greater = 0;
    let ties = 0;
    for (let i = 0; i < size; i++) {
      if (i === j) continue;
      const v = s[i * size + j];
      if (v > target) greater++;
      else if (v === target) ties++;
    }
    textToImage[j] = rankOf(greater, ties, mode);
  }
  return { imageToText, textToImage };
}

/** recall@1/5/10/50 and mean/median rank from a list of 1-based ranks. */
export function summarizeRanks(ranks: ArrayLike<number>): RetrievalDirection {
  const m = ranks.length;
  if (m === 0) throw new CtclipError('ARGUMENT_ERROR', 'summarizeRanks: expected at least one rank');
  const recallAt = (k: number) => {
    let hit = 0;
    for (let i = 0; i < m; i++) if (ranks[i] <= k) hit++;
    return hit / m;
  };
  let sum = 0;
  for (let i = 0; i < m; i++) sum += ranks[i];
  return {
    r1: recallAt(1),
    r5: recallAt(5),
    r10: recallAt(10),
    r50: recallAt(50),
    mean_rank: sum / m,
    median_rank: median(ranks),
  };
}

/**
 * Retrieval metrics of an n × n volume × report similarity matrix (row-major `Float64Array` with `n`, or an
 * array of rows). Throws `ARGUMENT_ERROR` if it is not square or contains NaN.
 */
export function retrievalMetrics(
  similarity: SimilarityInput,
  n?: number,
  opts: RetrievalOptions = {},
): RetrievalMetrics {
  const ties = checkTies(opts.ties);
  const ranks = retrievalRanks(similarity, n, { ties });
  return {
    n: ranks.imageToText.length,
    ties,
    image_to_text: summarizeRanks(ranks.imageToText),
    text_to_image: summarizeRanks(ranks.textToImage),
  };
}

function checkTies(ties: TieMode | undefined): TieMode {
  const mode = ties ?? 'pessimistic';
  if (mode !== 'pessimistic' && mode !== 'optimistic' && mode !== 'average') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `ties is ${JSON.stringify(mode)}; expected 'pessimistic', 'optimistic' or 'average'`,
    );
  }
  return mode;
}
