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
