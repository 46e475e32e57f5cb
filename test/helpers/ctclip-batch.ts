/** Deterministic CT-CLIP batches for the native model tests. */
import type { CTClipBatch, CTClipConfig } from '../../lib/model/ctclip';
import { tensorFromBuffer } from '../../lib/tensor';
import { randomData } from './tensors';

/**
 * B texts of length L (CLS, random ids from `seed`, SEP, padding with decreasing true lengths) and B volumes
 * (B, 1, frames, H, H) with H = the config's image_size. `editVolumes` may change the voxels before they become a
 * tensor (e.g. put a NaN into one).
 */
export function makeCTClipBatch(
  config: CTClipConfig,
  B: number,
  seed: number,
  opts: { L?: number; frames?: number; editVolumes?: (v: Float32Array) => void } = {},
): CTClipBatch {
  const L = opts.L ?? 10;
  const F = opts.frames ?? 4;
  const ids = new BigInt64Array(B * L);
  const mask = new BigInt64Array(B * L);
  let s = seed;
  for (let b = 0; b < B; b++) {
    const len = Math.max(3, L - b * 2);
    for (let i = 0; i < len; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      ids[b * L + i] = BigInt(i === 0 ? 2 : i === len - 1 ? 3 : 5 + (s % (config.text.vocab_size - 5)));
      mask[b * L + i] = 1n;
    }
  }
  const H = config.image.image_size;
  const vol = randomData(B * F * H * H, seed + 99);
  opts.editVolumes?.(vol);
  return {
    inputIds: tensorFromBuffer(ids, 'int64', [B, L]),
    attentionMask: tensorFromBuffer(mask, 'int64', [B, L]),
    volumes: tensorFromBuffer(vol, 'float32', [B, 1, F, H, H]),
  };
}

/**
 * The 2-rank children's micro-batch: B = 2 samples (L = 10 tokens, 4 frames of 16×16) from `seed` alone, so each
 * rank can build any rank's batch; `nan` puts one NaN voxel into the first volume.
 */
export function seededMicroBatch(seed: number, nan: boolean): CTClipBatch {
  const [B, L, F, H] = [2, 10, 4, 16];
  const ids = new BigInt64Array(B * L);
  const mask = new BigInt64Array(B * L);
  const vol = new Float32Array(B * F * H * H);
  let s = seed * 2654435761;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  for (let b = 0; b < B; b++) {
    const len = 3 + ((seed + b) % (L - 2));
    for (let i = 0; i < len; i++) {
      ids[b * L + i] = BigInt(i === 0 ? 2 : i === len - 1 ? 3 : 5 + (next() % 45));
      mask[b * L + i] = 1n;
    }
  }
  for (let k = 0; k < vol.length; k++) vol[k] = (next() / 2 ** 32) * 2 - 1;
  if (nan) vol[3 * H + 5] = NaN;
  return {
    inputIds: tensorFromBuffer(ids, 'int64', [B, L]),
    attentionMask: tensorFromBuffer(mask, 'int64', [B, L]),
    volumes: tensorFromBuffer(vol, 'float32', [B, 1, F, H, H]),
  };
}
