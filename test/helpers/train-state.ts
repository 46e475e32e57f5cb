/**
 * Everything a training step may change, as raw bytes (bit-for-bit comparisons, NaN-safe): the state dict
 * (parameters, buffers, inert tensors), the AdamW state (moments and per-parameter step counts), both generator
 * states and the optimizer-step counter. For the non-finite step tests (native and data-parallel).
 */
import { createHash } from 'crypto';
import type { CTClip } from '../../lib/model/ctclip';
import type { TensorHandle } from '../../lib/native';
import { readTensor } from '../../lib/tensor';

function bytes(t: TensorHandle): Buffer {
  const d = readTensor(t).data as ArrayBufferView;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** key → bytes: `model/<name>`, `adam/<name>/exp_avg|exp_avg_sq|step`, `adam/names`, `rng/dropout`, `rng/init`, `optimizerSteps`. */
export function trainingState(model: CTClip): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const sd = model.stateDict();
  sd.names.forEach((n, i) => out.set(`model/${n}`, Buffer.from(bytes(sd.tensors[i]))));
  const opt = model.optimizerState();
  out.set('adam/names', Buffer.from(opt.names.join('\n')));
  opt.names.forEach((n, i) => {
    out.set(`adam/${n}/exp_avg`, Buffer.from(bytes(opt.exp_avg[i])));
    out.set(`adam/${n}/exp_avg_sq`, Buffer.from(bytes(opt.exp_avg_sq[i])));
    out.set(`adam/${n}/step`, Buffer.from(String(opt.step[i])));
  });
  [...opt.exp_avg, ...opt.exp_avg_sq].forEach((t) => t.dispose());
  const rng = model.rngState();
  out.set('rng/dropout', Buffer.from(bytes(rng.dropout)));
  out.set('rng/init', Buffer.from(bytes(rng.init)));
  rng.dropout.dispose();
  rng.init.dispose();
  out.set('optimizerSteps', Buffer.from(String(model.info().optimizerSteps)));
  return out;
}

/** The keys whose bytes differ (or that only one side has), sorted. */
export function stateDiff(a: Map<string, Buffer>, b: Map<string, Buffer>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => !a.has(k) || !b.has(k) || !a.get(k)!.equals(b.get(k)!)).sort();
}

/** key → sha256 (hex) of the bytes: a compact form for processes that report their state as JSON. */
export function stateHashes(state: Map<string, Buffer>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of state) out[k] = createHash('sha256').update(v).digest('hex');
  return out;
}
