/**
 * Training and validation loaders over an opened shard index.
 *
 * A batch is `{ volumes, volumeShape, reports, labels, studyIds, keys, position, … }` where `volumes` is ONE
 * contiguous Buffer of B samples of raw float16 (H, W, D) — exactly the bytes of the `bin` members, one
 * sample after another — which the native tensor bridge wraps without a copy (the permute to [D, H, W] and
 * the cast happen there). Batch Buffers come from a small pool: call `batch.release()` when the native side
 * no longer needs the memory and the Buffer is reused; a batch that is never released is simply garbage
 * collected (correct, just more allocation).
 *
 * Prefetch: up to `prefetch` batches are being read or waiting while the consumer holds the current one, so
 * the loader itself holds at most prefetch × B × sampleBytes of volume memory (`stats().peakHeldBytes`).
 *
 * Bad samples at read time (I/O error, truncated file, size/shape mismatch, bad JSON, bad label values,
 * NaN/±Inf voxels, an oversize report): skipped with a warning naming shard, key and reason, counted per epoch
 * and per reason code (reasons.ts), and — in training — replaced by the sampler's deterministic rule
 * (`EpochSampler.replacementCandidates`); failures are resolved strictly in batch order, so the choice does not
 * depend on read timing. The error budget `maxBadSamples` covers every sample the run loses: those excluded
 * or lost at index time (`index.totalExcluded`, charged when the loader is created) plus the distinct bad
 * samples met while reading; exceeding it aborts with DATA_ERROR naming the counts and the budget. A sample
 * that failed once is not read again (it is skipped as known-bad), which changes nothing in the outcome.
 */
import { constants as bufferConstants } from 'buffer';
import { CtclipError } from '../errors';
import { EpochSampler, evalSubset, validatePosition, type DataPosition, type MicroBatchPlan } from './sampler';
import { SampleReader, SampleReadError, type ReaderOptions, type SampleMeta } from './reader';
import { excludedCount, type ShardIndex } from './shard-index';
import type { BadSampleReason } from './reasons';

/** What the loaders yield. */
export interface Batch {
  /** B × H×W×D float16 (little-endian), contiguous, sample after sample. */
  volumes: Buffer;
  /** [H, W, D] of each sample in `volumes`. */
  volumeShape: [number, number, number];
  /** Cleaned report texts (report.ts). */
  reports: string[];
  /** B × C float32 labels (C = index.numClasses; empty when the dataset has no classes). */
  labels: Float32Array;
  studyIds: string[];
  /** WebDataset keys (with the shard file, `keys[i]` identifies the sample). */
  keys: string[];
  /** Where to resume after this batch (training: normalised to {epoch + 1, 0} after the last micro-batch). */
  position: DataPosition;
  /** Dataset sample indices (into index.samples) actually delivered, after replacements. */
  indices: number[];
  /** Epoch of this batch (training) or 0 (validation). */
  epoch: number;
  /** Micro-batch number counted from the start of this iteration. */
  microBatch: number;
  /** Returns `volumes` to the loader's pool. Idempotent. Do not touch `volumes` afterwards. */
  release(): void;
}

export interface LoaderStats {
  sampleBytes: number;
  batchBytes: number;
  prefetch: number;
  readers: number;
  chunkBytes: number;
  /** Volume bytes the loader holds now (being read or queued, not yet handed out). */
  heldBytes: number;
  /** Peak of heldBytes: ≈ prefetch × batchBytes. */
  peakHeldBytes: number;
  /** prefetch × batchBytes, the bound for peakHeldBytes. */
  expectedPeakBytes: number;
  /** Released Buffers kept for reuse. */
  pooledBytes: number;
  buffersAllocated: number;
  samplesRead: number;
  bytesRead: number;
  batchesYielded: number;
  badSamples: {
    /** Distinct bad samples met while reading. */
    distinct: number;
    /** Samples excluded or lost at index time (index.totalExcluded for this loader's shards). */
    excludedAtIndex: number;
    /** What the budget counts: excludedAtIndex + distinct. */
    counted: number;
    budget: number;
    /**
     * `counted` by stable reason name (reasons.ts), index-time exclusions and read-time failures together, e.g.
     * `{ non_finite_volume: 2, bad_label: 1, truncated_shard: 11 }`. Only reasons that occurred are present.
     */
    byReason: Partial<Record<BadSampleReason, number>>;
    /** Skip events per epoch ('0', '1', … or 'eval'). */
    byEpoch: Record<string, number>;
    /** Replacements that had to take a sample already trained on in the epoch (remainder exhausted). */
    duplicatedReplacements: number;
    /** The most recent skip events (up to 100). */
    recent: Array<{ epoch: string; shard: string; key: string; reason: string; code: BadSampleReason }>;
  };
}

export interface LoaderCommonOptions extends ReaderOptions {
  /** Batches read ahead (default 2, minimum 1). */
  prefetch?: number;
  /**
   * Budget of samples lost before aborting (config data.max_bad_samples; default 100): index-time exclusions
   * plus distinct bad samples at read time.
   */
  maxBadSamples?: number;
  /** Receives warnings (default: written to stderr). */
  onWarning?: (message: string) => void;
}

/** `reason n, reason n` (largest first), for log lines. */
export function formatReasonCounts(byReason: Partial<Record<string, number>>): string {
  return Object.entries(byReason)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0) || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

class BufferPool {
  private free: Buffer[] = [];
  allocated = 0;
  constructor(
    readonly bytes: number,
    private readonly maxFree: number,
  ) {}
  acquire(): Buffer {
    const b = this.free.pop();
    if (b) return b;
    this.allocated++;
    // Outside Node's small-buffer slab: these are large and long-lived.
    return Buffer.allocUnsafeSlow(this.bytes);
  }
  release(b: Buffer): void {
    if (b.byteLength === this.bytes && this.free.length < this.maxFree && !this.free.includes(b)) this.free.push(b);
  }
  get pooledBytes(): number {
    return this.free.length * this.bytes;
  }
}

/** Shared machinery: reader, pool, prefetch pipeline, bad-sample accounting. */
abstract class LoaderBase {
  readonly index: ShardIndex;
  readonly prefetch: number;
  readonly maxBadSamples: number;
  protected readonly reader: SampleReader;
  protected readonly pool: BufferPool;
  protected readonly batchSize: number;
  private readonly warn: (message: string) => void;
  private readonly knownBad = new Map<number, SampleReadError>();
  private readonly badByEpoch: Record<string, number> = {};
  private readonly byReason: Partial<Record<BadSampleReason, number>> = {};
  private readonly excludedAtIndex: number;
  private readonly recent: LoaderStats['badSamples']['recent'] = [];
  protected duplicatedReplacements = 0;
  private held = 0;
  private peakHeld = 0;
  private samplesRead = 0;
  private batchesYielded = 0;

  constructor(index: ShardIndex, batchSize: number, opts: LoaderCommonOptions) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new CtclipError('ARGUMENT_ERROR', `batch size must be an integer >= 1, got ${batchSize}`);
    this.index = index;
    this.batchSize = batchSize;
    this.prefetch = Math.max(1, Math.floor(opts.prefetch ?? 2));
    this.maxBadSamples = opts.maxBadSamples ?? 100;
    if (!Number.isInteger(this.maxBadSamples) || this.maxBadSamples < 0) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `data.max_bad_samples must be a non-negative integer, got ${opts.maxBadSamples}`,
      );
    }
    const batchBytes = batchSize * index.sampleBytes;
    if (batchBytes > bufferConstants.MAX_LENGTH) {
      throw new CtclipError(
        'CONFIG_ERROR',
        `a batch of ${batchSize} volumes of ${index.sampleBytes} bytes (${index.volumeShape.join('×')} float16) needs ${batchBytes} bytes, ` +
          `more than the largest Buffer (${bufferConstants.MAX_LENGTH}); lower the batch size (data.batch_size / data.val_batch_size)`,
      );
    }
    this.reader = new SampleReader(index, opts);
    this.pool = new BufferPool(batchBytes, this.prefetch + 2);
    this.warn = opts.onWarning ?? ((m) => process.stderr.write(`warning: ${m}\n`));
    // Samples the index already lost count against the same budget.
    this.excludedAtIndex = 0;
    for (const x of index.excluded) {
      const n = excludedCount(x);
      if (n === 0) continue;
      const code: BadSampleReason = x.code ?? 'excluded';
      this.byReason[code] = (this.byReason[code] ?? 0) + n;
      this.excludedAtIndex += n;
    }
    if (this.excludedAtIndex > this.maxBadSamples) {
      const reasons = formatReasonCounts(this.byReason);
      throw new CtclipError(
        'DATA_ERROR',
        `${this.excludedAtIndex} samples were excluded or lost when '${index.pattern}' was indexed (${reasons}; see ${index.indexPath}), ` +
          `more than the error budget data.max_bad_samples = ${this.maxBadSamples}; fix or restore the shards and re-index, or raise the budget`,
      );
    }
  }

  protected get numClasses(): number {
    return this.index.numClasses;
  }

  /** Reads sample `idx` into slot `slot`; a failure comes back as a value (not thrown) so batches can resolve in order. */
  protected async tryRead(
    idx: number,
    buf: Buffer,
    slot: number,
    labels: Float32Array,
  ): Promise<SampleMeta | SampleReadError> {
    const known = this.knownBad.get(idx);
    if (known) return new SampleReadError(known.shard, known.key, `known bad (${known.reason})`, known.code);
    try {
      const meta = await this.reader.readSample(
        idx,
        buf,
        slot * this.index.sampleBytes,
        labels,
        slot * this.numClasses,
      );
      this.samplesRead++;
      return meta;
    } catch (e) {
      if (e instanceof SampleReadError) return e;
      const s = this.index.samples[idx];
      return new SampleReadError(
        this.index.shards[s.shard].file,
        s.key,
        `unexpected error: ${(e as Error).message}`,
        'unexpected',
      );
    }
  }

  /** Counts a skip, warns, and enforces the budget (throws DATA_ERROR when exceeded). */
  protected recordBad(epochLabel: string, idx: number, err: SampleReadError): void {
    if (!this.knownBad.has(idx)) {
      this.knownBad.set(idx, err);
      this.byReason[err.code] = (this.byReason[err.code] ?? 0) + 1;
    }
    this.badByEpoch[epochLabel] = (this.badByEpoch[epochLabel] ?? 0) + 1;
    this.recent.push({ epoch: epochLabel, shard: err.shard, key: err.key, reason: err.reason, code: err.code });
    if (this.recent.length > 100) this.recent.shift();
    const distinct = this.knownBad.size;
    const counted = distinct + this.excludedAtIndex;
    const atIndex = this.excludedAtIndex ? ` + ${this.excludedAtIndex} excluded at index time` : '';
    this.warn(
      `skipping bad sample: shard '${err.shard}' key '${err.key}': ${err.reason} [${err.code}] ` +
        `(epoch ${epochLabel}: ${this.badByEpoch[epochLabel]} skipped; ${distinct} distinct bad${atIndex} of budget ${this.maxBadSamples})`,
    );
    if (counted > this.maxBadSamples) {
      throw new CtclipError(
        'DATA_ERROR',
        `${counted} bad samples exceed the error budget data.max_bad_samples = ${this.maxBadSamples} ` +
          `(${distinct} while reading${atIndex}; last: shard '${err.shard}' key '${err.key}': ${err.reason}); fix or re-index the shards, or raise the budget`,
      );
    }
  }

  protected newBatchBuffer(): Buffer {
    const b = this.pool.acquire();
    this.held += b.byteLength;
    if (this.held > this.peakHeld) this.peakHeld = this.held;
    return b;
  }

  protected handOut(buf: Buffer): void {
    this.held -= buf.byteLength;
  }

  protected makeRelease(buf: Buffer): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.pool.release(buf);
    };
  }

  /**
   * Runs `count` batch builds with at most `prefetch` in flight ahead of the consumer. Build j receives a
   * promise that settles when build j−1 has finished, so order-dependent work (bad-sample replacement) runs
   * in batch order whatever the read timing.
   */
  protected async *prefetched(
    count: number,
    build: (j: number, previous: Promise<void>) => Promise<{ batch: Batch; buf: Buffer } | null>,
  ): AsyncGenerator<Batch> {
    const queue: Array<Promise<{ batch: Batch; buf: Buffer } | null>> = [];
    let launched = 0;
    let previous: Promise<void> = Promise.resolve();
    const launch = (): void => {
      const p = build(launched++, previous);
      p.catch(() => undefined); // handled when awaited; avoids an unhandled rejection while queued
      previous = p.then(
        () => undefined,
        () => undefined,
      );
      queue.push(p);
    };
    try {
      while (launched < count && queue.length < this.prefetch) launch();
      while (queue.length) {
        const r = await queue.shift()!;
        // Hand the finished batch out before starting the next read, so the loader never holds more than
        // `prefetch` batch buffers.
        if (r) this.handOut(r.buf);
        if (launched < count) launch();
        if (!r) continue;
        this.batchesYielded++;
        yield r.batch;
      }
    } finally {
      // Consumer stopped early, or a build failed: let the rest finish and take their buffers back.
      for (const r of await Promise.allSettled(queue)) {
        if (r.status === 'fulfilled' && r.value) {
          this.handOut(r.value.buf);
          r.value.batch.release();
        }
      }
    }
  }

  /** Memory, throughput and bad-sample counters. */
  stats(): LoaderStats {
    return {
      sampleBytes: this.index.sampleBytes,
      batchBytes: this.pool.bytes,
      prefetch: this.prefetch,
      readers: this.reader.readers,
      chunkBytes: this.reader.chunkBytes,
      heldBytes: this.held,
      peakHeldBytes: this.peakHeld,
      expectedPeakBytes: this.prefetch * this.pool.bytes,
      pooledBytes: this.pool.pooledBytes,
      buffersAllocated: this.pool.allocated,
      samplesRead: this.samplesRead,
      bytesRead: this.reader.bytesRead,
      batchesYielded: this.batchesYielded,
      badSamples: {
        distinct: this.knownBad.size,
        excludedAtIndex: this.excludedAtIndex,
        counted: this.knownBad.size + this.excludedAtIndex,
        budget: this.maxBadSamples,
        byReason: { ...this.byReason },
        byEpoch: { ...this.badByEpoch },
        duplicatedReplacements: this.duplicatedReplacements,
        recent: [...this.recent],
      },
    };
  }

  /** Closes the shard files. */
  async close(): Promise<void> {
    await this.reader.close();
  }
}

export interface TrainLoaderOptions extends LoaderCommonOptions {
  /** B: per-rank micro-batch size. */
  batchSize: number;
  /** W (default 1). */
  worldSize?: number;
  /** r (default 0). */
  rank?: number;
  /** A (default 1). */
  gradAccumSteps?: number;
  /** Base seed; epoch e's order is Rng.derive(seed, 'data-order', e). */
  seed: number;
}

/** Training loader: exact epochs over a global seeded permutation, sharded by rank (see sampler.ts). */
export class TrainLoader extends LoaderBase {
  readonly sampler: EpochSampler;

  constructor(index: ShardIndex, opts: TrainLoaderOptions) {
    super(index, opts.batchSize, opts);
    this.sampler = new EpochSampler({
      numSamples: index.samples.length,
      batchSize: opts.batchSize,
      worldSize: opts.worldSize,
      rank: opts.rank,
      gradAccumSteps: opts.gradAccumSteps,
      seed: opts.seed,
    });
  }

  /** S: optimizer steps per epoch. */
  get stepsPerEpoch(): number {
    return this.sampler.geometry.stepsPerEpoch;
  }

  /** S·A: micro-batches each rank yields in a whole epoch. */
  get microBatchesPerEpoch(): number {
    return this.sampler.geometry.stepsPerEpoch * this.sampler.gradAccumSteps;
  }

  /** One line for the run log: sizes, geometry and the dropped remainder. */
  summary(): string {
    const g = this.sampler.geometry;
    return (
      `data: ${this.index.samples.length} samples (${this.index.totalExcluded} excluded at index time${this.index.totalExcluded ? `: ${formatReasonCounts(this.stats().badSamples.byReason)}` : ''}), ` +
      `${g.stepsPerEpoch} steps/epoch × ${g.samplesPerStep} samples (B ${this.sampler.batchSize} × W ${this.sampler.worldSize} × A ${this.sampler.gradAccumSteps}); ` +
      `${g.droppedPerEpoch} samples dropped per epoch (a different random remainder each epoch)`
    );
  }

  /**
   * Yields this rank's micro-batches from `start` to the end of `start.epoch` (call again with the last
   * batch's `position` for the next epoch). The same count on every rank.
   */
  async *batches(start: DataPosition = { epoch: 0, globalSamplePosition: 0 }): AsyncGenerator<Batch> {
    validatePosition(start, this.index.samples.length);
    const count = this.sampler.remainingMicroBatches(start);
    const usedReplacements = new Set<number>();
    const epochLabel = String(start.epoch);
    yield* this.prefetched(count, async (j, previous) => {
      const plan = this.sampler.microBatch(start, j);
      return this.buildTrain(plan, previous, usedReplacements, epochLabel);
    });
  }

  /** Convenience: batches from `start` through the end of epoch `lastEpoch` (inclusive). */
  async *batchesThrough(start: DataPosition, lastEpoch: number): AsyncGenerator<Batch> {
    let pos = start;
    while (pos.epoch <= lastEpoch) {
      const epoch = pos.epoch;
      let last: DataPosition = { epoch: epoch + 1, globalSamplePosition: 0 };
      for await (const b of this.batches(pos)) {
        last = b.position;
        yield b;
      }
      pos = last.epoch === epoch ? { epoch: epoch + 1, globalSamplePosition: 0 } : last;
    }
  }

  private async buildTrain(
    plan: MicroBatchPlan,
    previous: Promise<void>,
    used: Set<number>,
    epochLabel: string,
  ): Promise<{ batch: Batch; buf: Buffer }> {
    const B = plan.indices.length;
    const C = this.numClasses;
    const buf = this.newBatchBuffer();
    const labels = new Float32Array(B * C);
    try {
      const results = await Promise.all(plan.indices.map((idx, i) => this.tryRead(idx, buf, i, labels)));
      await previous;
      const indices = [...plan.indices];
      const metas: SampleMeta[] = [];
      const perm = this.sampler.order(plan.epoch);
      for (let i = 0; i < B; i++) {
        let r = results[i];
        if (r instanceof SampleReadError) {
          this.recordBad(epochLabel, indices[i], r);
          let replaced: SampleMeta | null = null;
          for (const q of this.sampler.replacementCandidates(plan.positions[i])) {
            const idx = perm[q];
            if (used.has(q) || q === plan.positions[i]) continue;
            used.add(q);
            const rr = await this.tryRead(idx, buf, i, labels);
            if (rr instanceof SampleReadError) {
              // Known-bad candidates are passed over silently (already counted when they failed).
              if (!rr.reason.startsWith('known bad')) this.recordBad(epochLabel, idx, rr);
              continue;
            }
            if (q < this.sampler.usedPerEpoch) this.duplicatedReplacements++;
            indices[i] = idx;
            replaced = rr;
            break;
          }
          if (!replaced)
            throw new CtclipError(
              'DATA_ERROR',
              `no readable replacement left for shard '${r.shard}' key '${r.key}' in epoch ${plan.epoch}`,
            );
          r = replaced;
        }
        metas.push(r);
      }
      const parts = { buf, n: B, labels, indices, metas, position: plan.next, epoch: plan.epoch, j: plan.j };
      return { batch: makeBatch(this.index, parts, this.makeRelease(buf)), buf };
    } catch (e) {
      this.handOut(buf);
      this.pool.release(buf);
      throw e;
    }
  }
}

/** What a loader has read for one batch: n samples' voxels in `buf`, their labels, indices and metadata. */
interface BatchParts {
  buf: Buffer;
  n: number;
  labels: Float32Array;
  indices: number[];
  metas: SampleMeta[];
  position: DataPosition;
  epoch: number;
  j: number;
}

function makeBatch(index: ShardIndex, parts: BatchParts, release: () => void): Batch {
  const { buf, n, labels, indices, metas, position, epoch, j } = parts;
  return {
    volumes: n * index.sampleBytes === buf.byteLength ? buf : buf.subarray(0, n * index.sampleBytes),
    volumeShape: [...index.volumeShape] as [number, number, number],
    reports: metas.map((m) => m.report),
    labels: labels.length === n * index.numClasses ? labels : labels.subarray(0, n * index.numClasses),
    studyIds: metas.map((m) => m.studyId),
    keys: indices.map((i) => index.samples[i].key),
    position,
    indices,
    epoch,
    microBatch: j,
    release,
  };
}

export interface EvalLoaderOptions extends LoaderCommonOptions {
  /** Validation batch size. */
  batchSize: number;
  /** n = a fixed seeded subset of n samples (Rng.derive(seed, 'eval-subset')); null/undefined = all. */
  evalSamples?: number | null;
  /** Seed for the subset. */
  seed: number;
  /** Shard validation over ranks: rank r takes every W-th chosen sample starting at r (default 1 / 0). */
  worldSize?: number;
  rank?: number;
}

/**
 * Validation loader: deterministic order (index order of the chosen subset), no replacement — a bad sample is
 * skipped (warned, counted under 'eval', budgeted) and its batch is one shorter. The last batch may be partial.
 */
export class EvalLoader extends LoaderBase {
  /** The chosen sample indices over all ranks (sorted); save them with the run. */
  readonly chosen: number[];
  /** This rank's share of `chosen`. */
  readonly mine: number[];

  constructor(index: ShardIndex, opts: EvalLoaderOptions) {
    super(index, opts.batchSize, opts);
    const W = opts.worldSize ?? 1;
    const r = opts.rank ?? 0;
    if (!Number.isInteger(W) || W < 1 || !Number.isInteger(r) || r < 0 || r >= W) {
      throw new CtclipError('ARGUMENT_ERROR', `eval rank/world size must satisfy 0 <= rank < worldSize, got ${r}/${W}`);
    }
    this.chosen = evalSubset(index.samples.length, opts.evalSamples, opts.seed);
    this.mine = this.chosen.filter((_, k) => k % W === r);
  }

  /** Study ids of the chosen subset (what a run saves to reproduce it). */
  chosenStudyIds(): string[] {
    return this.chosen.map((i) => this.index.samples[i].studyId);
  }

  /** Number of batches this rank yields (before skipping empty ones). */
  get batchCount(): number {
    return Math.ceil(this.mine.length / this.batchSize);
  }

  async *batches(): AsyncGenerator<Batch> {
    const B = this.batchSize;
    const count = this.batchCount;
    yield* this.prefetched(count, async (j, previous) => {
      const idxs = this.mine.slice(j * B, (j + 1) * B);
      const C = this.numClasses;
      const buf = this.newBatchBuffer();
      const labels = new Float32Array(idxs.length * C);
      try {
        const results = await Promise.all(idxs.map((idx, i) => this.tryRead(idx, buf, i, labels)));
        await previous;
        const kept: number[] = [];
        const metas: SampleMeta[] = [];
        const S = this.index.sampleBytes;
        for (let i = 0; i < idxs.length; i++) {
          const r = results[i];
          if (r instanceof SampleReadError) {
            this.recordBad('eval', idxs[i], r);
            continue;
          }
          const slot = kept.length;
          if (slot !== i) {
            // Compact over the skipped slot (rare: only after a failure).
            buf.copyWithin(slot * S, i * S, (i + 1) * S);
            labels.copyWithin(slot * C, i * C, (i + 1) * C);
          }
          kept.push(idxs[i]);
          metas.push(r);
        }
        if (kept.length === 0) {
          this.handOut(buf);
          this.pool.release(buf);
          return null;
        }
        const position = { epoch: 0, globalSamplePosition: Math.min(this.mine.length, (j + 1) * B) };
        return {
          batch: makeBatch(
            this.index,
            { buf, n: kept.length, labels, indices: kept, metas, position, epoch: 0, j },
            this.makeRelease(buf),
          ),
          buf,
        };
      } catch (e) {
        this.handOut(buf);
        this.pool.release(buf);
        throw e;
      }
    });
  }
}

/** One loader's part of `badSamplesEvent`. */
export interface BadSamplesPart {
  excluded_at_index: number;
  bad_at_read: number;
  budget: number;
  by_reason: Partial<Record<BadSampleReason, number>>;
}

/**
 * The bad-sample counts of a run's loaders for metrics.jsonl (the `bad_samples` field of the `end` event) and
 * the run report: per loader (`train`, `val`), samples excluded at index time, distinct bad samples met while
 * reading, the budget, and both together by reason name.
 */
export function badSamplesEvent(loaders: Record<string, LoaderStats>): Record<string, BadSamplesPart> {
  const out: Record<string, BadSamplesPart> = {};
  for (const [name, st] of Object.entries(loaders)) {
    const b = st.badSamples;
    out[name] = {
      excluded_at_index: b.excludedAtIndex,
      bad_at_read: b.distinct,
      budget: b.budget,
      by_reason: { ...b.byReason },
    };
  }
  return out;
}

/** One log line for `badSamplesEvent` (empty when nothing was lost). */
export function formatBadSamples(event: Record<string, BadSamplesPart>): string {
  const parts = Object.entries(event)
    .filter(([, p]) => p.excluded_at_index + p.bad_at_read > 0)
    .map(
      ([name, p]) =>
        `${name} ${p.excluded_at_index + p.bad_at_read} (${p.excluded_at_index} at index time, ${p.bad_at_read} while reading: ${formatReasonCounts(p.by_reason)})`,
    );
  return parts.length ? `Bad samples: ${parts.join('; ')}` : '';
}
