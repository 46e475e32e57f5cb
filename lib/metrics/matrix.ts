/**
 * Input validation and layout conversion for the metrics library.
 *
 * Callers hand us row-major n × C matrices (one row per study, one column per class), as `number[][]` or
 * `Float64Array[]`, because that is how predictions are collected. Every metric, however, works on one class
 * at a time, so the first thing we do is transpose into one contiguous `Float64Array` of scores and one
 * `Uint8Array` of 0/1 labels per class. Validation happens here, once, so the hot paths need no checks.
 */
import { CtclipError } from '../errors';

/** A row-major n × C matrix: `rows[i][c]` is sample i, class c. */
export type MatrixInput = ReadonlyArray<ArrayLike<number>>;

/** Column-major copy of a score/label pair, validated. */
export interface ClassColumns {
  /** Number of samples (rows). */
  n: number;
  /** Number of classes (columns). */
  nClasses: number;
  /** `scores[c][i]`: score of sample i for class c. */
  scores: Float64Array[];
  /** `labels[c][i]`: 0/1 label of sample i for class c. */
  labels: Uint8Array[];
}

/**
 * Validates and transposes n × C score and label matrices.
 *
 * Throws `ARGUMENT_ERROR` when the shapes disagree, a score is not finite (NaN or ±Infinity, which scikit-learn
 * rejects too), or a label is not exactly 0 or 1. Messages name the row and the class.
 */
export function toClassColumns(scores: MatrixInput, labels: MatrixInput, classNames: readonly string[]): ClassColumns {
  if (!Array.isArray(scores) && !isArrayLikeOfRows(scores)) {
    throw new CtclipError('ARGUMENT_ERROR', 'scores: expected an n × C matrix (array of rows)');
  }
  if (!Array.isArray(labels) && !isArrayLikeOfRows(labels)) {
    throw new CtclipError('ARGUMENT_ERROR', 'labels: expected an n × C matrix (array of rows)');
  }
  const n = scores.length;
  const nClasses = classNames.length;
  if (n === 0) throw new CtclipError('ARGUMENT_ERROR', 'scores: expected at least one row, got 0');
  if (labels.length !== n) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `labels has ${labels.length} rows but scores has ${n}; expected the same number`,
    );
  }
  if (nClasses === 0) throw new CtclipError('ARGUMENT_ERROR', 'classNames: expected at least one class name');
  const seen = new Set<string>();
  for (const name of classNames) {
    if (typeof name !== 'string')
      throw new CtclipError('ARGUMENT_ERROR', `classNames: expected strings, got ${typeof name}`);
    if (seen.has(name)) throw new CtclipError('ARGUMENT_ERROR', `classNames: duplicate class name "${name}"`);
    seen.add(name);
  }

  const scoreCols: Float64Array[] = [];
  const labelCols: Uint8Array[] = [];
  for (let c = 0; c < nClasses; c++) {
    scoreCols.push(new Float64Array(n));
    labelCols.push(new Uint8Array(n));
  }
  for (let i = 0; i < n; i++) {
    const srow = scores[i];
    const lrow = labels[i];
    if (srow == null || srow.length !== nClasses) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `scores row ${i} has ${srow == null ? 'no' : srow.length} columns; expected ${nClasses} (one per class name)`,
      );
    }
    if (lrow == null || lrow.length !== nClasses) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `labels row ${i} has ${lrow == null ? 'no' : lrow.length} columns; expected ${nClasses} (one per class name)`,
      );
    }
    for (let c = 0; c < nClasses; c++) {
      const s = srow[c];
      if (typeof s !== 'number' || !Number.isFinite(s)) {
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `scores[${i}] for class "${classNames[c]}" is ${String(s)}; expected a finite number`,
        );
      }
      const y = lrow[c];
      if (y !== 0 && y !== 1) {
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `labels[${i}] for class "${classNames[c]}" is ${String(y)}; expected 0 or 1`,
        );
      }
      scoreCols[c][i] = s;
      labelCols[c][i] = y;
    }
  }
  return { n, nClasses, scores: scoreCols, labels: labelCols };
}

/**
 * Validates one class's score and label vectors (the single-class entry points) and copies them into typed
 * arrays. `what` names the class or argument in error messages.
 */
export function toBinaryColumn(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  what = 'class',
): { scores: Float64Array; labels: Uint8Array } {
  const n = scores.length;
  if (labels.length !== n) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `${what}: labels has length ${labels.length} but scores has ${n}; expected equal lengths`,
    );
  }
  if (n === 0) throw new CtclipError('ARGUMENT_ERROR', `${what}: expected at least one sample, got 0`);
  const s = new Float64Array(n);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = scores[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new CtclipError('ARGUMENT_ERROR', `${what}: scores[${i}] is ${String(v)}; expected a finite number`);
    }
    const l = labels[i];
    if (l !== 0 && l !== 1)
      throw new CtclipError('ARGUMENT_ERROR', `${what}: labels[${i}] is ${String(l)}; expected 0 or 1`);
    s[i] = v;
    y[i] = l;
  }
  return { scores: s, labels: y };
}

/** Validates a decision threshold option (any finite number; scores are not required to lie in [0, 1]). */
export function checkThreshold(threshold: number): number {
  if (typeof threshold !== 'number' || !Number.isFinite(threshold)) {
    throw new CtclipError('ARGUMENT_ERROR', `threshold is ${String(threshold)}; expected a finite number`);
  }
  return threshold;
}

function isArrayLikeOfRows(x: unknown): boolean {
  return x != null && typeof (x as { length?: unknown }).length === 'number';
}
