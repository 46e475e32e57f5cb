/**
 * The evaluation loader and batch bridge every evaluating command shares (trainer validation, `infer`, `embed`):
 * one place that maps the config's data section onto an EvalLoader, and one that hands a batch's float16
 * (B, H, W, D) volumes to native code without a copy.
 */
import type { Config } from '../config/schema';
import { EvalLoader, type Batch } from '../data/loader';
import type { ShardIndex } from '../data/shard-index';
import { tensorFromBuffer, type TensorHandle } from '../tensor';

/**
 * An EvalLoader over `index` with the config's batch size, prefetch, readers, error budget, report cap and seed; with `shard`,
 * this rank's share of the chosen samples (data-parallel validation).
 */
export function evalLoaderFor(
  cfg: Config,
  index: ShardIndex,
  evalSamples: number | null,
  shard: { rank: number; worldSize: number } = { rank: 0, worldSize: 1 },
): EvalLoader {
  return new EvalLoader(index, {
    rank: shard.rank,
    worldSize: shard.worldSize,
    batchSize: cfg.data.val_batch_size,
    evalSamples,
    seed: cfg.experiment.seed,
    prefetch: cfg.data.prefetch_factor,
    readers: cfg.data.num_workers,
    maxBadSamples: cfg.data.max_bad_samples,
    maxReportBytes: cfg.data.max_report_bytes,
  });
}

/** The batch's volumes as a (B, H, W, D) float16 tensor borrowing the batch Buffer (no copy). */
export function batchVolumes(batch: Batch): TensorHandle {
  const [H, W, D] = batch.volumeShape;
  return tensorFromBuffer(batch.volumes, 'float16', [batch.studyIds.length, H, W, D]);
}

/**
 * Runs `fn` on each of the loader's batches that holds a sample (a batch whose samples were all skipped as bad is
 * only released), with the batch's volumes as a tensor (batchVolumes); the tensor is disposed and the batch
 * released after `fn`, also when it throws.
 */
export async function forEachVolumeBatch(
  loader: EvalLoader,
  fn: (batch: Batch, volumes: TensorHandle) => Promise<void>,
): Promise<void> {
  for await (const batch of loader.batches()) {
    if (batch.studyIds.length === 0) {
      batch.release();
      continue;
    }
    const volumes = batchVolumes(batch);
    try {
      await fn(batch, volumes);
    } finally {
      volumes.dispose();
      batch.release();
    }
  }
}
