/**
 * A training checkpoint written with `torch.save` as the original Python pipeline's CheckpointManager writes it:
 *
 *   {epoch, global_step, model_state_dict, optimizer_state_dict, scheduler_state_dict?, metrics, config,
 *    extra_state, wandb_run_id, random_states: {python, numpy, torch[, cuda]}}
 *
 * parsed by the restricted unpickler (`./torch-file.ts`; numpy metrics and RNG states come back as inert data),
 * with nothing read beyond the pickle until a caller asks for a tensor. `readTorchTrainingCheckpoint` returns
 * the parts a resume can use: the step and epoch, the state dict's keys and tensor references in file order, and
 * torch's AdamW state — `{state: {index: {step, exp_avg, exp_avg_sq}}, param_groups: [{params: [index…], lr,
 * betas, eps, weight_decay, …}]}`, keyed by POSITION in the optimizer's parameter list (mapping positions onto
 * names is the caller's: lib/train/resume-torch.ts). The rest is summarised for the "not carried over" report.
 */
import { CtclipError } from '../errors';
import { NpArray } from './numpy-pickle';
import { PyDict, PyTuple, pyTypeName, type PyValue } from './pickle';
import { readTorchArchive, TorchTensorRef, type StorageCache, type TorchArchive } from './torch-file';

/** The entries that make a torch.save dict a training checkpoint (not just weights). */
export const TRAINING_CHECKPOINT_KEYS = ['model_state_dict', 'optimizer_state_dict'] as const;

/** One parameter's AdamW state: torch keeps `step` as a 0-dim float tensor (torch ≥ 1.12) or a number. */
export interface TorchAdamState {
  index: number;
  step: TorchTensorRef | number;
  expAvg: TorchTensorRef;
  expAvgSq: TorchTensorRef;
}

export interface TorchParamGroup {
  /** Positions in the optimizer's parameter list. */
  params: number[];
  /** Parameter names, when the optimizer was built from named parameters (torch ≥ 2.6); else null. */
  paramNames: string[] | null;
  lr: number | null;
  betas: [number, number] | null;
  eps: number | null;
  weightDecay: number | null;
}

export interface TorchOptimizerState {
  groups: TorchParamGroup[];
  state: Map<number, TorchAdamState>;
}

export interface TorchTrainingCheckpoint {
  file: string;
  archive: TorchArchive;
  globalStep: number | null;
  epoch: number | null;
  /** model_state_dict in file order (torch's module order). */
  stateDict: Array<[string, TorchTensorRef]>;
  optimizer: TorchOptimizerState;
  /** scheduler_state_dict summarised (e.g. {last_epoch: '40', _last_lr: '[0.0001]'}), or null without one. */
  scheduler: Record<string, string> | null;
  /** The finite numeric metrics (numpy scalars included). */
  metrics: Record<string, number>;
  /** The RNG streams recorded under random_states (python, numpy, torch, cuda …). */
  randomStates: string[];
  /** Every top-level key, in file order. */
  topKeys: string[];
}

/** Why an unpickled torch.save value is not a training checkpoint, or null when it is one. */
export function notATrainingCheckpoint(value: PyValue): string | null {
  if (!(value instanceof PyDict)) return `it holds a ${pyTypeName(value)}, not a dict`;
  const missing = TRAINING_CHECKPOINT_KEYS.filter((k) => !(value.map.get(k) instanceof PyDict));
  if (missing.length === 0) return null;
  const keys = [...value.map.keys()].slice(0, 10).map(String);
  return `it has no ${missing.map((k) => `'${k}'`).join(' or ')} dict (top-level keys: ${keys.join(', ') || 'none'})`;
}

function fail(file: string, msg: string): never {
  throw new CtclipError('DATA_ERROR', `${file}: ${msg}`);
}

function intOrNull(v: PyValue | undefined): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

function numOrNull(v: PyValue | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function brief(v: PyValue | undefined): string {
  if (v === undefined) return 'absent';
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint')
    return String(v ?? 'None');
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return v.length <= 4 ? `[${v.map(brief).join(', ')}]` : `list of ${v.length}`;
  return pyTypeName(v);
}

function readOptimizer(file: string, opt: PyDict): TorchOptimizerState {
  const groupsV = opt.map.get('param_groups');
  const stateV = opt.map.get('state');
  if (!Array.isArray(groupsV) || !(stateV instanceof PyDict))
    fail(file, "optimizer_state_dict must hold 'state' (a dict) and 'param_groups' (a list)");
  const seen = new Set<number>();
  const groups: TorchParamGroup[] = (groupsV as PyValue[]).map((g, gi) => {
    if (!(g instanceof PyDict)) fail(file, `optimizer_state_dict param_groups[${gi}] is a ${pyTypeName(g)}`);
    const d = g as PyDict;
    const params = d.map.get('params');
    if (!Array.isArray(params) || params.some((p) => intOrNull(p) === null || (p as number) < 0))
      fail(file, `optimizer_state_dict param_groups[${gi}].params must be a list of non-negative ints`);
    for (const p of params as number[]) {
      if (seen.has(p)) fail(file, `optimizer_state_dict lists parameter ${p} in two places`);
      seen.add(p);
    }
    const namesV = d.map.get('param_names');
    let paramNames: string[] | null = null;
    if (Array.isArray(namesV) && namesV.length === params.length && namesV.every((n) => typeof n === 'string'))
      paramNames = namesV as string[];
    const betasV = d.map.get('betas');
    const betas =
      betasV instanceof PyTuple && betasV.items.length === 2 && betasV.items.every((b) => numOrNull(b) !== null)
        ? ([betasV.items[0], betasV.items[1]] as [number, number])
        : null;
    return {
      params: params as number[],
      paramNames,
      lr: numOrNull(d.map.get('lr')),
      betas,
      eps: numOrNull(d.map.get('eps')),
      weightDecay: numOrNull(d.map.get('weight_decay')),
    };
  });
  const state = new Map<number, TorchAdamState>();
  for (const [k, v] of (stateV as PyDict).map) {
    const index = intOrNull(k as PyValue);
    if (index === null || !seen.has(index))
      fail(file, `optimizer_state_dict state has an entry for ${String(k)}, which no param group lists`);
    if (!(v instanceof PyDict)) fail(file, `optimizer_state_dict state[${index}] is a ${pyTypeName(v)}`);
    const s = v as PyDict;
    const expAvg = s.map.get('exp_avg');
    const expAvgSq = s.map.get('exp_avg_sq');
    const step = s.map.get('step');
    if (!(expAvg instanceof TorchTensorRef) || !(expAvgSq instanceof TorchTensorRef)) {
      const keys = [...s.map.keys()].map(String).join(', ');
      fail(
        file,
        `optimizer_state_dict state[${index}] holds ${keys || 'nothing'}, not Adam's exp_avg and exp_avg_sq tensors (only Adam/AdamW state can be resumed)`,
      );
    }
    const stepOk =
      step instanceof TorchTensorRef ? step.numel === 1 : typeof step === 'number' && Number.isFinite(step);
    if (!stepOk) fail(file, `optimizer_state_dict state[${index}].step is ${brief(step)}`);
    if (s.map.has('max_exp_avg_sq'))
      fail(
        file,
        `optimizer_state_dict state[${index}] has max_exp_avg_sq: AMSGrad state cannot be resumed (ctclip's AdamW has no AMSGrad)`,
      );
    state.set(index as number, {
      index: index as number,
      step: step as TorchTensorRef | number,
      expAvg: expAvg as TorchTensorRef,
      expAvgSq: expAvgSq as TorchTensorRef,
    });
  }
  return { groups, state };
}

/**
 * Opens `file` (a torch.save zip) and reads it as a training checkpoint (see the module comment). Returns null,
 * with the archive closed, when it is a torch.save file but not a training checkpoint (`why` says what it lacks);
 * DATA_ERROR naming the file when its parts are malformed. The caller closes `archive.zip` when done.
 */
export function readTorchTrainingCheckpoint(
  file: string,
): { checkpoint: TorchTrainingCheckpoint; why: null } | { checkpoint: null; why: string } {
  const archive = readTorchArchive(file);
  try {
    const top = archive.value;
    const why = notATrainingCheckpoint(top);
    if (why !== null) {
      archive.zip.close();
      return { checkpoint: null, why };
    }
    const d = top as PyDict;
    const sd = d.map.get('model_state_dict') as PyDict;
    const stateDict: Array<[string, TorchTensorRef]> = [];
    for (const [k, v] of sd.map) if (typeof k === 'string' && v instanceof TorchTensorRef) stateDict.push([k, v]);
    const optimizer = readOptimizer(file, d.map.get('optimizer_state_dict') as PyDict);
    const sched = d.map.get('scheduler_state_dict');
    let scheduler: Record<string, string> | null = null;
    if (sched instanceof PyDict) {
      scheduler = {};
      for (const [k, v] of sched.map) scheduler[String(k)] = brief(v);
    }
    const metrics: Record<string, number> = {};
    const m = d.map.get('metrics');
    if (m instanceof PyDict) {
      for (const [k, v] of m.map) {
        const n = typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? Number(v) : v;
        if (typeof n === 'number' && Number.isFinite(n)) metrics[String(k)] = n;
        else if (v instanceof NpArray && v.size === 1 && typeof v.values()[0] === 'number')
          metrics[String(k)] = v.values()[0] as number;
      }
    }
    const rs = d.map.get('random_states');
    const randomStates = rs instanceof PyDict ? [...rs.map.keys()].map(String) : [];
    const checkpoint: TorchTrainingCheckpoint = {
      file,
      archive,
      globalStep: intOrNull(d.map.get('global_step')),
      epoch: intOrNull(d.map.get('epoch')),
      stateDict,
      optimizer,
      scheduler,
      metrics,
      randomStates,
      topKeys: [...d.map.keys()].map(String),
    };
    return { checkpoint, why: null };
  } catch (e) {
    archive.zip.close();
    throw e;
  }
}

/** The value of a 0-dim (one-element) tensor, e.g. AdamW's `step`. */
export async function scalarTensorValue(cache: StorageCache, ref: TorchTensorRef): Promise<number> {
  const bytes = await cache.storageBytes(ref.storage);
  const dv = new DataView(bytes);
  const es = { float32: 4, float64: 8, int64: 8, int32: 4, float16: 2, bfloat16: 2, uint8: 1, bool: 1 }[ref.dtype];
  const at = ref.offset * es;
  if (at + es > bytes.byteLength) throw new Error(`scalar at element ${ref.offset} is outside its storage`);
  switch (ref.dtype) {
    case 'float32':
      return dv.getFloat32(at, true);
    case 'float64':
      return dv.getFloat64(at, true);
    case 'int64':
      return Number(dv.getBigInt64(at, true));
    case 'int32':
      return dv.getInt32(at, true);
    default:
      throw new Error(`a ${ref.dtype} scalar is not a step count`);
  }
}
