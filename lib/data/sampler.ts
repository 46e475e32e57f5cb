/**
 * Exact-epoch sampling over a global, seeded permutation (no shuffle buffer), identical on every rank.
 *
 * Epoch e visits `perm_e = Rng.derive(seed, 'data-order', e).permutation(N)`. With B = per-rank batch,
 * W = world size, A = gradient-accumulation steps and S = epochGeometry(...).stepsPerEpoch, the epoch uses the
 * first L = S·A·B·W positions of the permutation; positions L..N-1 are the dropped remainder (reported, and
 * used as the replacement pool for samples that fail to read).
 *
 * Layout (global position → rank/micro-batch), for an epoch started at position 0:
 *
 *     p = (j·W + r)·B + i        j = step·A + micro (micro-batch index in the epoch), r = rank, i in [0, B)
 *
 * i.e. micro-batch j of all ranks together covers the contiguous block [j·B·W, (j+1)·B·W), and rank r takes
 * the r-th slice of B. So the number of samples consumed by all ranks together after k micro-batches is
 * exactly k·B·W — that is `globalSamplePosition`, and `{epoch, globalSamplePosition}` is the whole resume
 * state. Every rank gets S·A micro-batches of B samples (S·A·B samples), and no position is visited twice.
 *
 * Resuming from {e, P} (possibly with another W', B' or A'): S' and L' = S'·A'·B'·W' are recomputed for the
 * new geometry; micro-batch j of the resumed run covers [P + j·B'W', P + (j+1)·B'W') with rank r taking
 * [P + j·B'W' + r·B', … + B'), for the M = floor((L' − P) / (B'W')) micro-batches that fit (0 when P ≥ L').
 * With the same geometry this is exactly the continuation of the uninterrupted run. With another geometry
 * the positions already consumed (< P) are never revisited in that epoch, so the union of the two runs'
 * samples still never repeats; positions in [P + M·B'W', N) are dropped for that epoch. The next epoch
 * starts at 0 with the new geometry.
 */
import { CtclipError } from '../errors';
import { Rng } from '../rng';
import { epochGeometry, type EpochGeometry } from '../schedule';

/** Resume state: samples consumed by all ranks together in `epoch`. */
export interface DataPosition {
  epoch: number;
  globalSamplePosition: number;
}

export interface SamplerOptions {
  /** N: samples in the index. */
  numSamples: number;
  /** B: per-rank micro-batch size. */
  batchSize: number;
  /** W (default 1). */
  worldSize?: number;
  /** r in [0, W) (default 0). */
  rank?: number;
  /** A (default 1). */
  gradAccumSteps?: number;
  /** Base seed of the run (data order streams derive from it). */
  seed: number;
}

/** One rank's micro-batch: global positions, dataset sample indices, and the position after it. */
export interface MicroBatchPlan {
  epoch: number;
  /** Micro-batch number counted from the start position of this iteration. */
  j: number;
  positions: number[];
  indices: number[];
  /** Where to resume after this micro-batch (normalised to {epoch + 1, 0} after the epoch's last one). */
  next: DataPosition;
}

/** Checks a resume position; throws ARGUMENT_ERROR naming the bad field. */
export function validatePosition(pos: DataPosition, numSamples: number): void {
  if (!pos || !Number.isInteger(pos.epoch) || pos.epoch < 0) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `data position epoch must be a non-negative integer, got ${JSON.stringify(pos?.epoch)}`,
    );
  }
  if (
    !Number.isInteger(pos.globalSamplePosition) ||
    pos.globalSamplePosition < 0 ||
    pos.globalSamplePosition > numSamples
  ) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `data position globalSamplePosition must be an integer in [0, ${numSamples}] (samples in the index), got ${JSON.stringify(pos.globalSamplePosition)}`,
    );
  }
}

export class EpochSampler {
  readonly numSamples: number;
  readonly batchSize: number;
  readonly worldSize: number;
  readonly rank: number;
  readonly gradAccumSteps: number;
  readonly seed: number;
  readonly geometry: EpochGeometry;
  /** L = S·A·B·W: positions of each epoch that are trained on. */
  readonly usedPerEpoch: number;
  private cache: { epoch: number; perm: Uint32Array } | null = null;

  constructor(opts: SamplerOptions) {
    this.numSamples = opts.numSamples;
    this.batchSize = opts.batchSize;
    this.worldSize = opts.worldSize ?? 1;
    this.rank = opts.rank ?? 0;
    this.gradAccumSteps = opts.gradAccumSteps ?? 1;
    this.seed = opts.seed;
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new CtclipError('ARGUMENT_ERROR', `rank must be an integer in [0, ${this.worldSize}), got ${this.rank}`);
    }
    if (!Number.isSafeInteger(this.seed) || this.seed < 0)
      throw new CtclipError('ARGUMENT_ERROR', `data seed must be a non-negative integer, got ${this.seed}`);
    this.geometry = epochGeometry({
      samples: this.numSamples,
      batchSize: this.batchSize,
      worldSize: this.worldSize,
      gradAccumSteps: this.gradAccumSteps,
    });
    this.usedPerEpoch = this.geometry.stepsPerEpoch * this.geometry.samplesPerStep;
  }

  /** The epoch's permutation of sample indices (the same on every rank). Cached for the last epoch asked. */
  order(epoch: number): Uint32Array {
    if (!this.cache || this.cache.epoch !== epoch) {
      this.cache = { epoch, perm: Rng.derive(this.seed, 'data-order', epoch).permutation(this.numSamples) };
    }
    return this.cache.perm;
  }

  /** Samples of one micro-batch over all ranks (B·W). */
  get globalBatch(): number {
    return this.batchSize * this.worldSize;
  }

  /** Micro-batches this rank yields from `pos` to the end of its epoch (the same number on every rank). */
  remainingMicroBatches(pos: DataPosition): number {
    validatePosition(pos, this.numSamples);
    const left = this.usedPerEpoch - pos.globalSamplePosition;
    return left > 0 ? Math.floor(left / this.globalBatch) : 0;
  }

  /** The j-th micro-batch of this rank counted from `start`. */
  microBatch(start: DataPosition, j: number): MicroBatchPlan {
    const m = this.remainingMicroBatches(start);
    if (!Number.isInteger(j) || j < 0 || j >= m) throw new RangeError(`micro-batch ${j} out of range [0, ${m})`);
    const perm = this.order(start.epoch);
    const base = start.globalSamplePosition + j * this.globalBatch + this.rank * this.batchSize;
    const positions: number[] = [];
    const indices: number[] = [];
    for (let i = 0; i < this.batchSize; i++) {
      positions.push(base + i);
      indices.push(perm[base + i]);
    }
    const after = start.globalSamplePosition + (j + 1) * this.globalBatch;
    const next =
      j + 1 === m
        ? { epoch: start.epoch + 1, globalSamplePosition: 0 }
        : { epoch: start.epoch, globalSamplePosition: after };
    return { epoch: start.epoch, j, positions, indices, next };
  }

  /** Positions of the epoch's dropped remainder (L..N-1). */
  droppedPositions(): { from: number; to: number } {
    return { from: this.usedPerEpoch, to: this.numSamples };
  }

  /**
   * Replacement rule for a sample that fails to read at global position `p` on this rank (deterministic,
   * stateless, so a resumed run makes the same choice):
   *  1. the dropped remainder positions L..N-1 are split between ranks (remainder offset o goes to rank
   *     o mod W), so two ranks never pick the same replacement; rank r tries its share starting at
   *     offset index p mod (its share size), wrapping around;
   *  2. when that share is exhausted (or empty), the next positions of the permutation after p
   *     (p+1, p+2, … wrapping inside [0, L)) — these samples are also trained on elsewhere in the epoch, so
   *     this is the only case where an epoch repeats a sample.
   * The caller skips candidates it has already used in this epoch or that fail too.
   */
  *replacementCandidates(p: number): Generator<number> {
    const L = this.usedPerEpoch;
    const R = this.numSamples - L;
    const W = this.worldSize;
    const r = this.rank;
    const share = R > r ? Math.ceil((R - r) / W) : 0;
    const t0 = share ? p % share : 0;
    for (let t = 0; t < share; t++) yield L + r + W * ((t0 + t) % share);
    for (let t = 1; t < L; t++) yield (p + t) % L;
  }
}

/**
 * The validation subset: null (or n ≥ N) = all samples; otherwise n indices drawn by
 * `Rng.derive(seed, 'eval-subset')` — a uniform subset, not the reference's first-n. Returned sorted
 * ascending (index order = shard order), so validation reads sequentially. Save it with the run.
 */
export function evalSubset(numSamples: number, evalSamples: number | null | undefined, seed: number): number[] {
  if (evalSamples === null || evalSamples === undefined || evalSamples >= numSamples)
    return Array.from({ length: numSamples }, (_, i) => i);
  if (!Number.isInteger(evalSamples) || evalSamples < 1) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `eval_samples must be a positive integer or null, got ${JSON.stringify(evalSamples)}`,
    );
  }
  const perm = Rng.derive(seed, 'eval-subset').permutation(numSamples);
  return Array.from(perm.subarray(0, evalSamples)).sort((a, b) => a - b);
}
