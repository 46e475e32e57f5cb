/**
 * Training state for checkpoints, (de)serialised bit-exactly against plain data shapes (the model/optimizer
 * handles produce and consume these; this module only moves them in and out of files):
 *
 * - optimizer (AdamW): `{names, expAvg, expAvgSq, step}` → `optimizer.safetensors` with tensors
 *   `exp_avg.<name>` and `exp_avg_sq.<name>` (keyed by parameter NAME, never by position), the step, the name
 *   order and the hyper-parameters in `__metadata__`;
 * - loss scaler: `{scale, growthTracker}` (or null without AMP) → `scaler.json`;
 * - RNG streams: native generator states (CPU, each CUDA device, dropout …: opaque byte strings) → `U8` tensors in
 *   `rng.safetensors`; TS `Rng` streams (`Rng.getState()`) → `rng.json`.
 *
 * JSON keeps doubles exactly (shortest round-trip representation), safetensors keeps bytes exactly.
 * `trainingStateParts` returns the four parts in the form `CheckpointManager.save` takes them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { decodeSafetensors, encodeSafetensors, type SafetensorsTensor } from '../io/safetensors';
import type { TensorHandle } from '../native';
import type { RngState } from '../rng';
import { readTensor, tensorFromBuffer } from '../tensor';
import { loadSafetensors, saveSafetensors } from '../weights/safetensors-native';

export const OPTIMIZER_PART = 'optimizer.safetensors';
export const SCALER_PART = 'scaler.json';
export const NATIVE_RNG_PART = 'rng.safetensors';
export const TS_RNG_PART = 'rng.json';

export interface OptimizerStateData {
  /** Parameter names (reference state_dict names), one per moment pair. */
  names: string[];
  expAvg: TensorHandle[];
  expAvgSq: TensorHandle[];
  /** Optimizer steps taken (AdamW bias correction): one count, or one per parameter (as torch keeps them). */
  step: number | number[];
  /** Hyper-parameters, informational (lr, betas, eps, weight_decay …). */
  hyper?: Record<string, number | number[]>;
}

export interface ScalerStateData {
  scale: number;
  growthTracker: number;
}

/** Native generator states by stream name (e.g. 'cpu', 'cuda:0'). */
export type NativeRngStates = Record<string, Uint8Array>;
/** TS `Rng` states by stream name. */
export type TsRngStates = Record<string, RngState>;

const OPT_FORMAT = 'ctclip-optimizer';

function dataError(file: string, msg: string): never {
  throw new CtclipError('DATA_ERROR', `${file}: ${msg}`);
}

// --- optimizer ----------------------------------------------------------------------------------------------------

/** Writes the optimizer state (atomically, native writer; dtypes preserved). */
export async function saveOptimizerState(file: string, s: OptimizerStateData): Promise<void> {
  if (s.names.length !== s.expAvg.length || s.names.length !== s.expAvgSq.length) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `saveOptimizerState ${file}: ${s.names.length} names, ${s.expAvg.length} exp_avg, ${s.expAvgSq.length} exp_avg_sq`,
    );
  }
  const steps = Array.isArray(s.step) ? s.step : [s.step];
  if (Array.isArray(s.step) && s.step.length !== s.names.length)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `saveOptimizerState ${file}: ${s.step.length} per-parameter steps for ${s.names.length} names`,
    );
  if (steps.some((x) => !Number.isSafeInteger(x) || x < 0))
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `saveOptimizerState ${file}: steps must be non-negative integers, got ${JSON.stringify(s.step)}`,
    );
  if (new Set(s.names).size !== s.names.length)
    throw new CtclipError('ARGUMENT_ERROR', `saveOptimizerState ${file}: a parameter name is given twice`);
  const names = [...s.names.map((n) => `exp_avg.${n}`), ...s.names.map((n) => `exp_avg_sq.${n}`)];
  await saveSafetensors(file, names, [...s.expAvg, ...s.expAvgSq], {
    format: OPT_FORMAT,
    step: JSON.stringify(s.step),
    names: JSON.stringify(s.names),
    hyper: JSON.stringify(s.hyper ?? {}),
  });
}

/** Reads what `saveOptimizerState` wrote, in the saved parameter order. DATA_ERROR naming the file and key. */
export async function loadOptimizerState(file: string): Promise<OptimizerStateData> {
  const c = await loadSafetensors(file);
  try {
    if (c.metadata.format !== OPT_FORMAT)
      dataError(
        file,
        `not an optimizer state file (metadata format '${c.metadata.format ?? ''}', expected '${OPT_FORMAT}')`,
      );
    let step: unknown;
    try {
      step = JSON.parse(c.metadata.step ?? '');
    } catch {
      step = undefined;
    }
    const stepOk = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (!(stepOk(step) || (Array.isArray(step) && step.every(stepOk))))
      dataError(file, `metadata 'step' is '${c.metadata.step}'`);
    let names: unknown;
    let hyper: unknown;
    try {
      names = JSON.parse(c.metadata.names ?? '');
      hyper = JSON.parse(c.metadata.hyper ?? '{}');
    } catch {
      dataError(file, "metadata 'names'/'hyper' is not JSON");
    }
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))
      dataError(file, "metadata 'names' must be a list of strings");
    const byName = new Map(c.names.map((n, i) => [n, c.tensors[i]]));
    const take = (k: string): TensorHandle => {
      const t = byName.get(k);
      if (!t) dataError(file, `tensor '${k}' is missing`);
      byName.delete(k);
      return t as TensorHandle;
    };
    const list = names as string[];
    const expAvg = list.map((n) => take(`exp_avg.${n}`));
    const expAvgSq = list.map((n) => take(`exp_avg_sq.${n}`));
    if (byName.size) dataError(file, `unexpected tensors: ${[...byName.keys()].slice(0, 5).join(', ')}`);
    if (Array.isArray(step) && step.length !== list.length)
      dataError(file, `metadata 'step' has ${step.length} entries for ${list.length} parameters`);
    return {
      names: list,
      expAvg,
      expAvgSq,
      step: step as number | number[],
      hyper: hyper as Record<string, number | number[]>,
    };
  } catch (e) {
    c.tensors.forEach((t) => t.dispose());
    throw e;
  }
}

// --- loss scaler --------------------------------------------------------------------------------------------------

export function encodeScalerState(s: ScalerStateData | null): {
  format: 'ctclip-scaler';
  version: 1;
  state: ScalerStateData | null;
} {
  if (s !== null) {
    if (!(Number.isFinite(s.scale) && s.scale > 0))
      throw new CtclipError('ARGUMENT_ERROR', `scaler scale must be a positive finite number, got ${s.scale}`);
    if (!Number.isSafeInteger(s.growthTracker) || s.growthTracker < 0)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `scaler growthTracker must be a non-negative integer, got ${s.growthTracker}`,
      );
  }
  return {
    format: 'ctclip-scaler',
    version: 1,
    state: s === null ? null : { scale: s.scale, growthTracker: s.growthTracker },
  };
}

export function decodeScalerState(json: unknown, what = SCALER_PART): ScalerStateData | null {
  const j = json as { format?: unknown; state?: unknown } | null;
  if (!j || j.format !== 'ctclip-scaler') dataError(what, "not a loss-scaler state (format 'ctclip-scaler' expected)");
  if (j.state === null) return null;
  const s = j.state as Partial<ScalerStateData>;
  if (typeof s.scale !== 'number' || !(s.scale > 0) || !Number.isFinite(s.scale))
    dataError(what, `state.scale is ${JSON.stringify(s.scale)}`);
  if (typeof s.growthTracker !== 'number' || !Number.isSafeInteger(s.growthTracker) || s.growthTracker < 0)
    dataError(what, `state.growthTracker is ${JSON.stringify(s.growthTracker)}`);
  return { scale: s.scale as number, growthTracker: s.growthTracker as number };
}

// --- RNG ----------------------------------------------------------------------------------------------------------

/** Native generator states as a safetensors file's bytes (one U8 tensor per stream, in the given order). */
export function encodeNativeRngStates(states: NativeRngStates): Buffer {
  const tensors: Array<[string, SafetensorsTensor]> = Object.entries(states).map(([name, bytes]) => {
    if (!(bytes instanceof Uint8Array))
      throw new CtclipError('ARGUMENT_ERROR', `native RNG state '${name}' must be a Uint8Array`);
    return [name, { dtype: 'U8', shape: [bytes.length], data: new Uint8Array(bytes) }];
  });
  return encodeSafetensors(tensors, { format: 'ctclip-rng' });
}

export function decodeNativeRngStates(bytes: Uint8Array, what = NATIVE_RNG_PART): NativeRngStates {
  const f = decodeSafetensors(bytes, what);
  if (f.header.metadata.format !== 'ctclip-rng')
    dataError(what, "not an RNG state file (metadata format 'ctclip-rng' expected)");
  const out: NativeRngStates = {};
  for (const [name, t] of f.tensors) {
    if (t.dtype !== 'U8' || t.shape.length !== 1)
      dataError(what, `stream '${name}' must be a 1-D U8 tensor, got ${t.dtype} [${t.shape}]`);
    out[name] = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  return out;
}

export function encodeTsRngStates(states: TsRngStates): {
  format: 'ctclip-ts-rng';
  version: 1;
  streams: Record<string, number[]>;
} {
  const streams: Record<string, number[]> = {};
  for (const [name, s] of Object.entries(states)) {
    if (s.length !== 4 || s.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `Rng state '${name}' must be four uint32 words, got ${JSON.stringify(s)}`,
      );
    }
    streams[name] = [...s];
  }
  return { format: 'ctclip-ts-rng', version: 1, streams };
}

export function decodeTsRngStates(json: unknown, what = TS_RNG_PART): TsRngStates {
  const j = json as { format?: unknown; streams?: unknown } | null;
  if (!j || j.format !== 'ctclip-ts-rng' || !j.streams || typeof j.streams !== 'object')
    dataError(what, "not a TS RNG state (format 'ctclip-ts-rng' expected)");
  const out: TsRngStates = {};
  for (const [name, s] of Object.entries(j.streams as Record<string, unknown>)) {
    if (
      !Array.isArray(s) ||
      s.length !== 4 ||
      s.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff) ||
      s.every((w) => w === 0)
    ) {
      dataError(what, `stream '${name}' must be four uint32 words, not all zero, got ${JSON.stringify(s)}`);
    }
    out[name] = [s[0], s[1], s[2], s[3]] as RngState;
  }
  return out;
}

// --- checkpoint parts ---------------------------------------------------------------------------------------------

export interface TrainingStateData {
  optimizer: OptimizerStateData;
  scaler: ScalerStateData | null;
  nativeRng: NativeRngStates;
  tsRng: TsRngStates;
}

/** The parts for `CheckpointManager.save` (writers or values, as `lib/checkpoint/parts.ts` takes them). */
export function trainingStateParts(s: TrainingStateData): Record<string, ((tmp: string) => Promise<void>) | object> {
  return {
    [OPTIMIZER_PART]: (tmp: string) => saveOptimizerState(tmp, s.optimizer),
    [SCALER_PART]: encodeScalerState(s.scaler),
    [NATIVE_RNG_PART]: encodeNativeRngStates(s.nativeRng),
    [TS_RNG_PART]: encodeTsRngStates(s.tsRng),
  };
}

/** Reads the four parts back from a checkpoint folder (or any folder holding them). */
export async function readTrainingState(dir: string): Promise<TrainingStateData> {
  const readJson = (name: string): unknown => {
    const f = path.join(dir, name);
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (e) {
      throw new CtclipError('IO_ERROR', `${f}: cannot read: ${(e as Error).message}`, { cause: e });
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new CtclipError('DATA_ERROR', `${f}: not JSON: ${(e as Error).message}`, { cause: e });
    }
  };
  const rngFile = path.join(dir, NATIVE_RNG_PART);
  let rngBytes: Buffer;
  try {
    rngBytes = fs.readFileSync(rngFile);
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${rngFile}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  return {
    optimizer: await loadOptimizerState(path.join(dir, OPTIMIZER_PART)),
    scaler: decodeScalerState(readJson(SCALER_PART), path.join(dir, SCALER_PART)),
    nativeRng: decodeNativeRngStates(rngBytes, rngFile),
    tsRng: decodeTsRngStates(readJson(TS_RNG_PART), path.join(dir, TS_RNG_PART)),
  };
}

// --- adapters to the CT-CLIP model handle's shapes (lib/model/ctclip.ts), structural so this module does not
// depend on the model: optimizerState() → {names, exp_avg, exp_avg_sq, step[]}, scalerState() → {enabled, scale,
// growthTracker}, rngState() → {init, dropout} uint8 tensors.

export interface ModelOptimizerState {
  names: string[];
  exp_avg: TensorHandle[];
  exp_avg_sq: TensorHandle[];
  step: number[];
}

export function optimizerStateFromModel(
  s: ModelOptimizerState,
  hyper?: Record<string, number | number[]>,
): OptimizerStateData {
  return { names: s.names, expAvg: s.exp_avg, expAvgSq: s.exp_avg_sq, step: s.step, hyper };
}

export function optimizerStateToModel(d: OptimizerStateData): ModelOptimizerState {
  return {
    names: d.names,
    exp_avg: d.expAvg,
    exp_avg_sq: d.expAvgSq,
    step: Array.isArray(d.step) ? d.step : d.names.map(() => d.step as number),
  };
}

export function scalerStateFromModel(s: {
  enabled: boolean;
  scale: number;
  growthTracker: number;
}): ScalerStateData | null {
  return s.enabled ? { scale: s.scale, growthTracker: s.growthTracker } : null;
}

/** Native generator-state tensors (uint8) → bytes (copied). */
export function nativeRngFromTensors(states: Record<string, TensorHandle>): NativeRngStates {
  const out: NativeRngStates = {};
  for (const [name, t] of Object.entries(states)) {
    const d = readTensor(t);
    if (d.dtype !== 'uint8')
      throw new CtclipError('ARGUMENT_ERROR', `native RNG state '${name}' must be a uint8 tensor, got ${d.dtype}`);
    out[name] = new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength);
  }
  return out;
}

/** Bytes → uint8 tensors for the model's setRngState. */
export function nativeRngToTensors(states: NativeRngStates): Record<string, TensorHandle> {
  const out: Record<string, TensorHandle> = {};
  for (const [name, b] of Object.entries(states)) out[name] = tensorFromBuffer(new Uint8Array(b), 'uint8', [b.length]);
  return out;
}
