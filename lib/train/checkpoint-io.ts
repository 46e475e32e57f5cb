/**
 * Filling and restoring the parts of a training checkpoint (the folder layout and atomicity are
 * lib/checkpoint's; the part list is docs/checkpoints.md's):
 *
 *   model.safetensors       weights under the reference key names (PyTorch: load_state_dict(load_file(f)))
 *   optimizer.safetensors   AdamW moments and per-parameter step counts keyed by parameter NAME
 *   scaler.json             loss-scaler state (null without fp16)
 *   rng.safetensors         native generator states (init, dropout), byte-exact
 *   rng.json                TS Rng streams (the data-order stream of the current epoch, the eval subset)
 *   data_position.json      {epoch, globalSamplePosition} to resume the loader exactly, plus the geometry
 *   schedule.json           optimizer step, skipped steps, LR-schedule parameters, best-so-far, elapsed time
 *   metrics.json            the full validation results of this step (only when it evaluated)
 *   config.yaml             the fully merged configuration
 *   versions.json           ctclip, node, libtorch compiled/loaded
 */
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { MODEL_PART, type PartSource } from '../checkpoint';
import type { Config } from '../config/schema';
import type { DataPosition } from '../data/sampler';
import { CtclipError } from '../errors';
import type { CTClip } from '../model/ctclip';
import { loadWeightsInto } from '../model/load-weights';
import {
  nativeRngFromTensors,
  nativeRngToTensors,
  optimizerStateFromModel,
  optimizerStateToModel,
  readTrainingState,
  scalerStateFromModel,
  trainingStateParts,
  type TsRngStates,
} from '../model/training-state';
import { loadAddon, type TensorHandle } from '../native';
import { Rng } from '../rng';
import { saveWeights } from '../weights/save';

export { MODEL_PART };
export const DATA_POSITION_PART = 'data_position.json';
export const SCHEDULE_PART = 'schedule.json';
export const METRICS_PART = 'metrics.json';
export const CONFIG_PART = 'config.yaml';
export const VERSIONS_PART = 'versions.json';

export interface BestSoFar {
  metric: string;
  mode: 'max' | 'min';
  value: number;
  step: number;
}

/** The trainer's position, saved in every checkpoint and restored on resume. */
export interface TrainProgress {
  /** Optimizer steps done (the LR-schedule position; skipped steps do not count). */
  step: number;
  /** Non-finite steps skipped so far (their batches were consumed). */
  skippedSteps: number;
  /** Micro-batches consumed so far by this rank. */
  microBatches: number;
  /** Where the data loader resumes. */
  position: DataPosition;
  /** Fractional epoch at `step` (from the data position). */
  epoch: number;
  /** The LR applied in the last optimizer step (0 before the first). */
  lastLr: number;
  best: BestSoFar | null;
  /** Training wall time so far, seconds, over all processes of the run. */
  elapsedSeconds: number;
  /** The step of the last validation (so a resumed run does not repeat it). */
  lastEvalStep: number | null;
}

export interface GeometryRecord {
  samples: number;
  batchSize: number;
  worldSize: number;
  gradAccumSteps: number;
  stepsPerEpoch: number;
}

export interface ScheduleRecord {
  baseLr: number;
  warmupSteps: number;
  maxSteps: number;
  minLrRatio: number;
}

export interface CheckpointContext {
  model: CTClip;
  config: Config;
  progress: TrainProgress;
  geometry: GeometryRecord;
  schedule: ScheduleRecord;
  /** Full validation results of this step, when it evaluated. */
  validation?: unknown;
  /** Fault injection for tests: wraps the model writer. */
  faultBeforeModelWrite?: () => void;
  /** Data parallel: the dropout generator states of ranks 1…W−1 (rank 0's is the model's own). */
  rankDropoutStates?: Uint8Array[];
}

/** The rng.safetensors stream holding rank r's dropout generator (r ≥ 1; rank 0 uses 'dropout'). */
export function rankDropoutStream(rank: number): string {
  return `dropout_rank${rank}`;
}

function packageVersion(): string {
  try {
    return (
      JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    return 'unknown';
  }
}

export function versionsRecord(): Record<string, unknown> {
  const info = loadAddon().buildInfo();
  return {
    ctclip: packageVersion(),
    node: process.version,
    libtorch_compiled: info.compiledTorchVersion,
    libtorch_loaded: info.runtimeTorchVersion,
    libtorch_source: info.torchSource,
    cuda_available: info.cudaAvailable,
    cuda_devices: info.cudaDeviceCount,
  };
}

/** The TS Rng streams of the run, as recorded (all are derived from experiment.seed; recorded for audit). */
export function tsRngStreams(seed: number, epoch: number): TsRngStates {
  return {
    [`data-order/epoch-${epoch}`]: Rng.derive(seed, 'data-order', epoch).getState(),
    'eval-subset': Rng.derive(seed, 'eval-subset').getState(),
  };
}

/** The parts for CheckpointManager.save (see the module comment). */
export function checkpointParts(ctx: CheckpointContext): Record<string, PartSource> {
  const { model, config, progress } = ctx;
  const sd = model.stateDict();
  const opt = model.optimizerState();
  const training = trainingStateParts({
    optimizer: optimizerStateFromModel(opt, {
      lr: progress.lastLr,
      weight_decay: config.training.weight_decay,
      betas: [...config.training.betas],
      eps: config.training.eps,
    }),
    scaler: scalerStateFromModel(model.scalerState()),
    nativeRng: {
      ...nativeRngFromTensors(model.rngState()),
      ...Object.fromEntries((ctx.rankDropoutStates ?? []).map((bytes, i) => [rankDropoutStream(i + 1), bytes])),
    },
    tsRng: tsRngStreams(config.experiment.seed, progress.position.epoch),
  });
  const parts: Record<string, PartSource> = {
    [MODEL_PART]: async (tmp: string) => {
      ctx.faultBeforeModelWrite?.();
      await saveWeights(tmp, sd.names, sd.tensors, { ctclip_step: String(progress.step) });
    },
    ...(training as Record<string, PartSource>),
    [DATA_POSITION_PART]: {
      format: 'ctclip-data-position',
      version: 1,
      epoch: progress.position.epoch,
      globalSamplePosition: progress.position.globalSamplePosition,
      microBatches: progress.microBatches,
      geometry: ctx.geometry,
    },
    [SCHEDULE_PART]: {
      format: 'ctclip-schedule',
      version: 1,
      optimizerStep: progress.step,
      skippedSteps: progress.skippedSteps,
      epoch: progress.epoch,
      lastLr: progress.lastLr,
      schedule: ctx.schedule,
      best: progress.best,
      lastEvalStep: progress.lastEvalStep,
      elapsedSeconds: progress.elapsedSeconds,
    },
    [CONFIG_PART]: YAML.stringify(config),
    [VERSIONS_PART]: versionsRecord(),
  };
  if (ctx.validation !== undefined) parts[METRICS_PART] = ctx.validation as object;
  return parts;
}

/** The JSON parts of a checkpoint are small; a larger one is not ours (read with this bound). */
export const MAX_JSON_PART_BYTES = 16 * 1024 * 1024;

function readJson(dir: string, name: string): Record<string, unknown> {
  const file = path.join(dir, name);
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_JSON_PART_BYTES)
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: ${size} bytes, more than a checkpoint's JSON part can be (${MAX_JSON_PART_BYTES})`,
      );
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CtclipError) throw e;
    throw new CtclipError('IO_ERROR', `${file}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CtclipError('DATA_ERROR', `${file}: not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new CtclipError('DATA_ERROR', `${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * Field checks for the run-position parts (data_position.json, schedule.json): a value that was edited (its
 * manifest checksum updated too) or written by another tool is a DATA_ERROR naming the file, the key, the value
 * and what was expected, never a crash or an "invalid argument" later in the loader.
 */
class PartFields {
  constructor(
    readonly file: string,
    private readonly o: Record<string, unknown>,
  ) {}

  fail(key: string, expected: string): never {
    const v = this.o[key];
    const shown = JSON.stringify(v) ?? String(v);
    throw new CtclipError(
      'DATA_ERROR',
      `${this.file}: "${key}" must be ${expected}, got ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}`,
    );
  }

  /** The part's `format` must be `format` (`what` says what the part is) and its `version`, when present, 1. */
  formatV1(format: string, what: string): void {
    if (this.o.format !== format) this.fail('format', `'${format}' (not a ctclip ${what})`);
    if (this.o.version !== undefined && this.o.version !== 1) this.fail('version', '1 (written by a newer ctclip?)');
  }

  /** A safe integer in [min, max]; `fallback` when absent (undefined = required). */
  int(key: string, opts: { min?: number; max?: number; fallback?: number } = {}): number {
    const v = this.o[key];
    const min = opts.min ?? 0;
    const max = opts.max ?? Number.MAX_SAFE_INTEGER;
    if (v === undefined && opts.fallback !== undefined) return opts.fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      this.fail(key, `an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '2^53' : max}]`);
    return v as number;
  }

  /** A finite number >= min; `fallback` when absent. */
  num(key: string, fallback: number, min = -Infinity): number {
    const v = this.o[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
      this.fail(key, `a finite number${min > -Infinity ? ` >= ${min}` : ''}`);
    return v as number;
  }
}

function readDataPosition(
  dir: string,
  samples: number | undefined,
): { position: DataPosition; microBatches: number; geometry: GeometryRecord | null } {
  const file = path.join(dir, DATA_POSITION_PART);
  const dp = readJson(dir, DATA_POSITION_PART);
  const f = new PartFields(file, dp);
  f.formatV1('ctclip-data-position', 'data position');
  const epoch = f.int('epoch');
  const globalSamplePosition = f.int('globalSamplePosition', samples !== undefined ? { max: samples } : {});
  const microBatches = f.int('microBatches', { fallback: 0 });
  let geometry: GeometryRecord | null = null;
  if (dp.geometry !== undefined && dp.geometry !== null) {
    if (typeof dp.geometry !== 'object' || Array.isArray(dp.geometry)) f.fail('geometry', 'an object');
    const g = new PartFields(`${file} geometry`, dp.geometry as Record<string, unknown>);
    geometry = {
      samples: g.int('samples', { min: 1 }),
      batchSize: g.int('batchSize', { min: 1 }),
      worldSize: g.int('worldSize', { min: 1 }),
      gradAccumSteps: g.int('gradAccumSteps', { min: 1 }),
      stepsPerEpoch: g.int('stepsPerEpoch', { min: 1 }),
    };
  }
  return { position: { epoch, globalSamplePosition }, microBatches, geometry };
}

function readSchedule(dir: string): {
  progress: Omit<TrainProgress, 'position' | 'microBatches' | 'epoch'>;
  epoch: number | null;
  schedule: ScheduleRecord | null;
} {
  const file = path.join(dir, SCHEDULE_PART);
  const sc = readJson(dir, SCHEDULE_PART);
  const f = new PartFields(file, sc);
  f.formatV1('ctclip-schedule', 'schedule record');
  const step = f.int('optimizerStep');
  let best: BestSoFar | null = null;
  if (sc.best !== undefined && sc.best !== null) {
    const b = sc.best as Record<string, unknown>;
    if (
      typeof b !== 'object' ||
      Array.isArray(b) ||
      typeof b.metric !== 'string' ||
      (b.mode !== 'max' && b.mode !== 'min') ||
      typeof b.value !== 'number' ||
      !Number.isSafeInteger(b.step)
    ) {
      f.fail('best', 'null or {metric, mode: "max"|"min", value, step}');
    }
    best = {
      metric: b.metric as string,
      mode: b.mode as 'max' | 'min',
      value: b.value as number,
      step: b.step as number,
    };
  }
  let lastEvalStep: number | null = null;
  if (sc.lastEvalStep !== undefined && sc.lastEvalStep !== null) lastEvalStep = f.int('lastEvalStep');
  let schedule: ScheduleRecord | null = null;
  if (sc.schedule !== undefined && sc.schedule !== null) {
    if (typeof sc.schedule !== 'object' || Array.isArray(sc.schedule)) f.fail('schedule', 'an object');
    const g = new PartFields(`${file} schedule`, sc.schedule as Record<string, unknown>);
    schedule = {
      baseLr: g.num('baseLr', 0),
      warmupSteps: g.int('warmupSteps', { fallback: 0 }),
      maxSteps: g.int('maxSteps', { fallback: 0 }),
      minLrRatio: g.num('minLrRatio', 0, 0),
    };
  }
  return {
    epoch: sc.epoch === undefined ? null : f.num('epoch', 0, 0),
    progress: {
      step,
      skippedSteps: f.int('skippedSteps', { fallback: 0 }),
      lastLr: f.num('lastLr', 0),
      best,
      elapsedSeconds: f.num('elapsedSeconds', 0, 0),
      lastEvalStep,
    },
    schedule,
  };
}

/**
 * Loads a checkpoint's model part into the model (strict: every key, no extras; finite values): the 'model-part'
 * route of `loadWeightsInto` (lib/model/load-weights.ts).
 */
export async function loadModelWeights(model: CTClip, file: string): Promise<void> {
  await loadWeightsInto(model, { kind: 'model-part', file });
}

export interface RestoreResult {
  progress: TrainProgress;
  geometry: GeometryRecord | null;
  schedule: ScheduleRecord | null;
  /** Whether the optimizer/scaler/RNG state was restored. */
  optimizerRestored: boolean;
  warnings: string[];
}

/**
 * Restores a checkpoint folder into `model` and returns the run position. `loadOptimizer: false` restores the
 * weights and the run position (step, data position, schedule, RNG) but starts AdamW and the loss scaler fresh.
 * `samples` (the training index's sample count) bounds the saved sample position. A data_position.json or
 * schedule.json that is not what ctclip writes is a DATA_ERROR naming the file and the key (PartFields).
 */
export async function restoreCheckpoint(
  model: CTClip,
  dir: string,
  opts: { loadOptimizer: boolean; seed: number; rank?: number; samples?: number },
): Promise<RestoreResult> {
  const warnings: string[] = [];
  // The small run-position parts first: a bad one fails before any weights are loaded.
  const dp = readDataPosition(dir, opts.samples);
  const sc = readSchedule(dir);
  await loadModelWeights(model, path.join(dir, MODEL_PART));
  const progress: TrainProgress = {
    ...sc.progress,
    microBatches: dp.microBatches,
    position: dp.position,
    epoch: sc.epoch ?? dp.position.epoch,
  };
  const state = await readTrainingState(dir);
  try {
    if (opts.loadOptimizer) {
      model.loadOptimizerState(optimizerStateToModel(state.optimizer));
      if (state.scaler) model.setScalerState(state.scaler);
    }
    // The RNG streams are part of the run position: restored in both cases, so dropout continues exactly.
    const rank = opts.rank ?? 0;
    const rng = nativeRngToTensors(state.nativeRng);
    let dropout: TensorHandle | undefined = rng.dropout;
    if (rank > 0) {
      // Data parallel: each rank continues its own dropout stream; a rank the checkpoint does not know (the world
      // size grew) keeps the fresh stream it was created with.
      dropout = rng[rankDropoutStream(rank)];
      if (!dropout)
        warnings.push(
          `rank ${rank}: the checkpoint has no dropout stream for this rank (saved with fewer ranks): it starts a fresh one`,
        );
    }
    const { reseeded } = model.setRngState(dropout ? { init: rng.init, dropout } : { init: rng.init });
    if (reseeded.includes('dropout')) {
      warnings.push(
        `the checkpoint's dropout generator state was saved on another device type (model now on ${model.device}): the dropout stream is re-seeded from it ` +
          '(weights, optimizer, schedule and data position are restored exactly; the dropout masks differ from an uninterrupted run)',
      );
    }
    for (const t of Object.values(rng)) t.dispose();
    model.setStepCounters({ optimizerSteps: progress.step, skippedSteps: progress.skippedSteps });
  } finally {
    state.optimizer.expAvg.forEach((t) => t.dispose());
    state.optimizer.expAvgSq.forEach((t) => t.dispose());
  }
  const expected = tsRngStreams(opts.seed, progress.position.epoch);
  for (const [name, s] of Object.entries(state.tsRng)) {
    const e = expected[name];
    if (e && e.some((w, i) => w !== s[i])) {
      warnings.push(
        `the TS RNG stream '${name}' differs from the checkpoint's (experiment.seed changed?): the data order from here on is not the interrupted run's`,
      );
    }
  }
  return {
    progress,
    geometry: dp.geometry,
    schedule: sc.schedule,
    optimizerRestored: opts.loadOptimizer,
    warnings,
  };
}
