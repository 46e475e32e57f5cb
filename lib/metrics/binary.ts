/**
 * Per-class (binary) metrics, defined exactly as the reference pipeline and fixture G define them
 * (scikit-learn 1.9.1 semantics; fixture G, docs/reference.md):
 *
 * - `auroc`: `roc_auc_score`, the trapezoidal area under the ROC curve. Ties are one ROC point, so the area
 *   equals the Mann–Whitney statistic with average ranks.
 * - `auprc`: `average_precision_score`, the STEP-WISE sum Σ_k (R_k − R_{k−1})·P_k over distinct thresholds in
 *   decreasing order, R_0 = 0 (not the trapezoidal area).
 * - `f1`: the maximum of 2PR/(P + R + 1e-10) over the points of `precision_recall_curve` (one per distinct
 *   score, "positive if s ≥ t", plus the final point P = 1, R = 0). It is an oracle threshold chosen on the
 *   evaluation set, so it is optimistic; `f1_threshold` is the threshold of the first maximiser in
 *   scikit-learn's (increasing-threshold) order, 1.0 if that is the final point.
 * - precision / recall / specificity / accuracy / `f1_at_threshold` at a FIXED threshold, positive if
 *   s ≥ threshold; each ratio is 0 when its denominator is 0.
 * - If the labels have a single value (all 0 or all 1) every metric is NaN.
 *
 * Everything is computed in ONE pass over the samples sorted once by decreasing score: O(n log n) per class for
 * the sort, O(n) per evaluation afterwards. The pass takes optional per-sample multiplicities (`weights`),
 * which is how the bootstrap evaluates a resample without re-sorting: a resample is just a count per original
 * sample, and tie groups whose total count is 0 are skipped as if absent.
 */
import { checkThreshold, toBinaryColumn } from './matrix';

/** The fixed-threshold confusion counts (multiplicities when evaluated with weights). */
export interface ConfusionCounts {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Every per-class metric. NaN marks "undefined" (single-valued labels); strict JSON writes it as null. */
export interface BinaryMetrics {
  /** Number of positive samples (the weight used by the weighted aggregates). */
  support: number;
  /** Number of negative samples. */
  n_negative: number;
  /** Confusion counts at the fixed threshold (reported even for single-valued classes). */
  counts_at_threshold: ConfusionCounts;
  auroc: number;
  auprc: number;
  /** Maximum F1 over the precision–recall curve (oracle threshold). */
  f1: number;
  /** Threshold of the first F1 maximiser (information only). */
  f1_threshold: number;
  /** Number of points on scikit-learn's precision–recall curve: distinct scores + 1. */
  n_pr_points: number;
  precision: number;
  recall: number;
  specificity: number;
  accuracy: number;
  /** F1 of the fixed-threshold precision and recall, 2TP / (2TP + FP + FN). */
  f1_at_threshold: number;
  /** Only with `youden: true`: the ROC threshold maximising TPR − FPR (the highest one on ties). */
  youden_threshold?: number;
  /** Only with `youden: true`: the maximal TPR − FPR. */
  youden_j?: number;
}

/** Options of the per-class evaluation. */
export interface BinaryOptions {
  /** Fixed decision threshold; positive if score ≥ threshold. Default 0.5. */
  threshold?: number;
  /** Also report the Youden threshold (max TPR − FPR over the ROC points). Default false. */
  youden?: boolean;
}

/** The default fixed decision threshold (reference `validation.threshold`). */
export const DEFAULT_THRESHOLD = 0.5;

/** The ε in the reference's max-F1 formula 2PR/(P + R + ε). */
export const F1_EPSILON = 1e-10;

/**
 * One class's samples sorted by decreasing score, with tie groups. Build it once with `sortClass` and evaluate
 * it any number of times (the bootstrap does so once per resample).
 */
export interface SortedClass {
  n: number;
  /** Original sample indices in decreasing-score order. */
  order: Uint32Array;
  /** Labels in that order. */
  y: Uint8Array;
  /** Number of tie groups (distinct scores). */
  nGroups: number;
  /** Exclusive end (position in `order`) of each tie group. */
  groupEnd: Uint32Array;
  /** The score shared by each tie group. */
  groupScore: Float64Array;
  /** The tie group of each sorted position. */
  groupOf: Uint32Array;
}

/** Sorts one class by decreasing score and finds the tie groups (exactly equal doubles). O(n log n). */
export function sortClass(scores: Float64Array, labels: Uint8Array): SortedClass {
  const n = scores.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[b] - scores[a]);
  const y = new Uint8Array(n);
  const groupEndTmp = new Uint32Array(n);
  const groupScoreTmp = new Float64Array(n);
  const groupOf = new Uint32Array(n);
  let nGroups = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    y[k] = labels[i];
    const s = scores[i];
    // A new group starts whenever the score changes; -0 === 0, as in numpy's diff.
    if (k > 0 && s !== groupScoreTmp[nGroups - 1]) groupEndTmp[nGroups - 1] = k;
    if (k === 0 || s !== groupScoreTmp[nGroups - 1]) {
      groupScoreTmp[nGroups] = s;
      nGroups++;
    }
    groupOf[k] = nGroups - 1;
  }
  if (nGroups > 0) groupEndTmp[nGroups - 1] = n;
  return {
    n,
    order,
    y,
    nGroups,
    groupEnd: groupEndTmp.slice(0, nGroups),
    groupScore: groupScoreTmp.slice(0, nGroups),
    groupOf,
  };
}

/**
 * Evaluates a sorted class. `weights[i]` is the multiplicity of ORIGINAL sample i (a bootstrap count), or
 * null for "every sample once". This is the hot path of the bootstrap: no allocation besides the result.
 */
export function evaluateSorted(
  sc: SortedClass,
  weights: ArrayLike<number> | null,
  threshold: number,
  youden = false,
): BinaryMetrics {
  const { order, y, nGroups, groupEnd, groupScore, groupOf } = sc;

  // Pass 1 (over samples): the weighted positives and total of every tie group, and the class totals, which
  // AP and F1 need at every point. Branch-free (w·y), because labels in score order are unpredictable.
  ensureScratch(nGroups);
  const gPosArr = scratchPos;
  const gTotArr = scratchTot;
  let totalPos = 0;
  let totalAll = 0;
  if (weights === null) {
    let start = 0;
    for (let g = 0; g < nGroups; g++) {
      const end = groupEnd[g];
      let gPos = 0;
      for (let k = start; k < end; k++) gPos += y[k];
      gPosArr[g] = gPos;
      gTotArr[g] = end - start;
      totalPos += gPos;
      start = end;
    }
    totalAll = sc.n;
  } else {
    // Flat loop over samples (most tie groups hold one sample, so a nested loop would mostly be overhead).
    gPosArr.fill(0, 0, nGroups);
    gTotArr.fill(0, 0, nGroups);
    for (let k = 0; k < sc.n; k++) {
      const w = weights[order[k]];
      const g = groupOf[k];
      gPosArr[g] += w * y[k];
      gTotArr[g] += w;
    }
    for (let g = 0; g < nGroups; g++) {
      totalPos += gPosArr[g];
      totalAll += gTotArr[g];
    }
  }
  const totalNeg = totalAll - totalPos;

  // Pass 2 (over tie groups, i.e. distinct thresholds in decreasing order): the curves.
  let tp = 0;
  let fp = 0;
  let tpAt = 0;
  let fpAt = 0;
  let area2 = 0; // 2 · area · P · N, accumulated in integers, divided once at the end (exact for counts).
  let ap = 0;
  let prevRecall = 0;
  let bestF1 = -Infinity;
  let bestF1Threshold = NaN;
  let bestJ = -Infinity;
  let bestJThreshold = NaN;
  let nPoints = 0;
  const valid = totalPos > 0 && totalNeg > 0;

  for (let g = 0; g < nGroups; g++) {
    const gPos = gPosArr[g];
    const gNeg = gTotArr[g] - gPos;
    // A tie group absent from the resample is not a threshold of it.
    if (gPos + gNeg === 0) continue;
    const tpPrev = tp;
    tp += gPos;
    fp += gNeg;
    nPoints++;
    const s = groupScore[g];
    if (s >= threshold) {
      tpAt = tp;
      fpAt = fp;
    }
    if (!valid) continue;
    area2 += gNeg * (tpPrev + tp);
    const precision = tp / (tp + fp);
    const recall = tp / totalPos;
    ap += (recall - prevRecall) * precision;
    prevRecall = recall;
    const f1 = (2 * precision * recall) / (precision + recall + F1_EPSILON);
    // Walking thresholds downwards, `>=` keeps the LOWEST threshold among equal maxima, i.e. the first
    // maximiser in scikit-learn's increasing-threshold order (np.argmax).
    if (f1 >= bestF1) {
      bestF1 = f1;
      bestF1Threshold = s;
    }
    if (youden) {
      const j = recall - fp / totalNeg;
      // roc_curve order is decreasing threshold; np.argmax keeps the first, i.e. the highest threshold.
      if (j > bestJ) {
        bestJ = j;
        bestJThreshold = s;
      }
    }
  }

  const counts: ConfusionCounts = { tp: tpAt, fp: fpAt, tn: totalNeg - fpAt, fn: totalPos - tpAt };
  const result: BinaryMetrics = {
    support: totalPos,
    n_negative: totalNeg,
    counts_at_threshold: counts,
    auroc: NaN,
    auprc: NaN,
    f1: NaN,
    f1_threshold: NaN,
    n_pr_points: NaN,
    precision: NaN,
    recall: NaN,
    specificity: NaN,
    accuracy: NaN,
    f1_at_threshold: NaN,
  };
  if (youden) {
    result.youden_threshold = NaN;
    result.youden_j = NaN;
  }
  if (!valid) return result;

  // The final precision–recall point (P = 1, R = 0) has F1 = 0 and comes last in scikit-learn's order, so it
  // wins only if every other point is below 0 (never with ≥ 1 positive); kept for fidelity.
  const finalF1 = (2 * 1 * 0) / (1 + 0 + F1_EPSILON);
  if (finalF1 > bestF1) {
    bestF1 = finalF1;
    bestF1Threshold = 1.0;
  }

  result.auroc = area2 / (2 * totalPos * totalNeg);
  result.auprc = ap;
  result.f1 = bestF1;
  result.f1_threshold = bestF1Threshold;
  result.n_pr_points = nPoints + 1;
  result.precision = ratio(counts.tp, counts.tp + counts.fp);
  result.recall = ratio(counts.tp, counts.tp + counts.fn);
  result.specificity = ratio(counts.tn, counts.tn + counts.fp);
  result.accuracy = (counts.tp + counts.tn) / (totalPos + totalNeg);
  result.f1_at_threshold = ratio(2 * counts.tp, 2 * counts.tp + counts.fp + counts.fn);
  if (youden) {
    result.youden_threshold = bestJThreshold;
    result.youden_j = bestJ;
  }
  return result;
}

/**
 * Scratch buffers for the per-group sums, shared by every evaluation (JS is single-threaded and
 * `evaluateSorted` never re-enters); grown on demand.
 */
let scratchPos = new Float64Array(1024);
let scratchTot = new Float64Array(1024);

function ensureScratch(nGroups: number): void {
  if (scratchPos.length < nGroups) {
    const size = Math.max(nGroups, 2 * scratchPos.length);
    scratchPos = new Float64Array(size);
    scratchTot = new Float64Array(size);
  }
}

/** a / b, or 0 when b is 0 (the reference's zero_division=0 convention). */
function ratio(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

/**
 * All per-class metrics for one class. `scores` must be finite and `labels` 0/1 (ARGUMENT_ERROR otherwise);
 * `name` is used in error messages.
 */
export function binaryMetrics(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  opts: BinaryOptions & { name?: string } = {},
): BinaryMetrics {
  const threshold = checkThreshold(opts.threshold ?? DEFAULT_THRESHOLD);
  const sc = sortColumn(scores, labels, opts.name ?? 'binaryMetrics');
  return evaluateSorted(sc, null, threshold, opts.youden ?? false);
}

/** One class's checked scores and labels (errors name `name`), sorted by `sortClass`. */
function sortColumn(scores: ArrayLike<number>, labels: ArrayLike<number>, name: string): SortedClass {
  const col = toBinaryColumn(scores, labels, name);
  return sortClass(col.scores, col.labels);
}

/** scikit-learn `roc_auc_score` for one class; NaN when the labels are single-valued (sklearn raises). */
export function rocAucScore(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  return binaryMetrics(scores, labels, { name: 'rocAucScore' }).auroc;
}

/** scikit-learn `average_precision_score` for one class; NaN when the labels are single-valued. */
export function averagePrecisionScore(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  return binaryMetrics(scores, labels, { name: 'averagePrecisionScore' }).auprc;
}

/**
 * The counts both curves are made of: after each tie group (distinct score, decreasing), the cumulative true
 * positives `tps[g + 1]` and false positives `fps[g + 1]` of "positive if s ≥ that score"; `tps[0] = fps[0] = 0`.
 */
function cumulativeCounts(sc: SortedClass): { tps: Float64Array; fps: Float64Array } {
  const tps = new Float64Array(sc.nGroups + 1);
  const fps = new Float64Array(sc.nGroups + 1);
  let start = 0;
  for (let g = 0; g < sc.nGroups; g++) {
    let pos = 0;
    for (let k = start; k < sc.groupEnd[g]; k++) pos += sc.y[k];
    const neg = sc.groupEnd[g] - start - pos;
    start = sc.groupEnd[g];
    tps[g + 1] = tps[g] + pos;
    fps[g + 1] = fps[g] + neg;
  }
  return { tps, fps };
}

/** ROC curve points, for plotting. */
export interface RocCurve {
  fpr: Float64Array;
  tpr: Float64Array;
  /** Decreasing; the first is +Infinity (the (0, 0) point), as scikit-learn. */
  thresholds: Float64Array;
}

/**
 * ROC curve like scikit-learn `roc_curve(..., drop_intermediate=False)`: the point (0, 0) at threshold +∞,
 * then one point per distinct score in decreasing order. Single-valued labels give NaN rates on the axis
 * that has no samples (as sklearn, which warns).
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): RocCurve {
  const sc = sortColumn(scores, labels, 'rocCurve');
  const { tps, fps } = cumulativeCounts(sc);
  const totalPos = tps[sc.nGroups];
  const totalNeg = fps[sc.nGroups];
  const thresholds = new Float64Array(sc.nGroups + 1);
  thresholds[0] = Infinity;
  thresholds.set(sc.groupScore, 1);
  return { fpr: fps.map((v) => v / totalNeg), tpr: tps.map((v) => v / totalPos), thresholds };
}

/** Precision–recall curve points, in scikit-learn's order. */
export interface PrecisionRecallCurve {
  precision: Float64Array;
  recall: Float64Array;
  /** Increasing; one shorter than precision/recall (the final point P = 1, R = 0 has no threshold). */
  thresholds: Float64Array;
}

/**
 * scikit-learn `precision_recall_curve` (drop_intermediate=False): one point per distinct score in INCREASING
 * threshold order, then the final point (1, 0). With no positives sklearn sets every recall to 1; so do we.
 */
export function precisionRecallCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): PrecisionRecallCurve {
  const sc = sortColumn(scores, labels, 'precisionRecallCurve');
  const m = sc.nGroups;
  const { tps, fps } = cumulativeCounts(sc);
  const totalPos = tps[m];
  const precision = new Float64Array(m + 1);
  const recall = new Float64Array(m + 1);
  for (let g = 0; g < m; g++) {
    const tp = tps[g + 1];
    const at = m - 1 - g; // reverse into increasing-threshold order
    precision[at] = tp / (tp + fps[g + 1]);
    recall[at] = totalPos === 0 ? 1 : tp / totalPos;
  }
  precision[m] = 1;
  recall[m] = 0;
  return { precision, recall, thresholds: sc.groupScore.slice().reverse() };
}
