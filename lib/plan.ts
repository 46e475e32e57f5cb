/**
 * The run plan: everything the trainer derives from the config and the dataset size before step 1
 * (the reference's arithmetic, with its missing guards added). Pure; `ctclip plan` prints it.
 */
import type { Config } from './config/schema';
import { CtclipError } from './errors';
import { epochGeometry, type EpochGeometry, type LrScheduleParams } from './schedule';

export interface RunPlan extends EpochGeometry {
  samples: number;
  batchSize: number;
  worldSize: number;
  gradAccumSteps: number;
  /** Whether the length came from max_steps (step-based) or max_epochs (epoch-based). */
  mode: 'epochs' | 'steps';
  maxSteps: number;
  /** maxSteps / S. */
  epochs: number;
  warmupSteps: number;
  /** Validation cadence in optimizer steps; null = only at the end of training. */
  evalEvery: number | null;
  /** Checkpoint cadence in optimizer steps; null = only at the end of training. */
  saveEvery: number | null;
  schedule: LrScheduleParams;
}

export interface PlanInput {
  /** N: samples in the training split (from the shard index). */
  samples: number;
  /** W: number of processes (default 1). */
  worldSize?: number;
}

/** `*_steps` when set, else int(`*_epochs`·S) when set, else null; a derived value < 1 is an error. */
function cadence(
  steps: number | null,
  epochs: number | null,
  S: number,
  stepsKey: string,
  epochsKey: string,
): number | null {
  if (steps !== null) return steps;
  if (epochs === null) return null;
  const derived = Math.floor(epochs * S);
  if (derived < 1) {
    throw new CtclipError(
      'PLAN_ERROR',
      `${epochsKey}: ${epochs} epochs × ${S} steps/epoch = ${epochs * S} is less than one step; ` +
        `raise ${epochsKey} to at least ${(1 / S).toPrecision(3)} or set ${stepsKey}`,
    );
  }
  return derived;
}

export function planRun(cfg: Config, input: PlanInput): RunPlan {
  const worldSize = input.worldSize ?? 1;
  const t = cfg.training;
  const geometry = epochGeometry({
    samples: input.samples,
    batchSize: cfg.data.batch_size,
    worldSize,
    gradAccumSteps: t.gradient_accumulation_steps,
  });
  const S = geometry.stepsPerEpoch;
  let maxSteps: number;
  let mode: 'epochs' | 'steps';
  if (t.max_steps !== null) {
    maxSteps = t.max_steps;
    mode = 'steps';
  } else {
    maxSteps = cadence(null, t.max_epochs, S, 'training.max_steps', 'training.max_epochs') as number;
    mode = 'epochs';
  }
  const warmupSteps =
    t.warmup_steps !== null ? t.warmup_steps : t.warmup_epochs !== null ? Math.floor(t.warmup_epochs * S) : 0;
  if (warmupSteps > maxSteps) {
    throw new CtclipError(
      'PLAN_ERROR',
      `the warmup (${warmupSteps} steps) is longer than the whole run (${maxSteps} steps); lower training.warmup_steps/warmup_epochs`,
    );
  }
  const evalEvery = cadence(
    cfg.validation.eval_every_n_steps,
    cfg.validation.eval_every_n_epochs,
    S,
    'validation.eval_every_n_steps',
    'validation.eval_every_n_epochs',
  );
  const saveEvery = cadence(
    t.save_every_n_steps,
    t.save_every_n_epochs,
    S,
    'training.save_every_n_steps',
    'training.save_every_n_epochs',
  );
  return {
    ...geometry,
    samples: input.samples,
    batchSize: cfg.data.batch_size,
    worldSize,
    gradAccumSteps: t.gradient_accumulation_steps,
    mode,
    maxSteps,
    epochs: maxSteps / S,
    warmupSteps,
    evalEvery,
    saveEvery,
    schedule: { warmupSteps, maxSteps, minLrRatio: t.min_lr_ratio },
  };
}

function epochsText(steps: number, S: number): string {
  return (steps / S).toFixed(2);
}

function countText(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** The plan as the product documents it (README "The plan"). */
export function formatPlan(plan: RunPlan): string[] {
  const S = plan.stepsPerEpoch;
  const lines: string[] = [];
  lines.push(
    plan.mode === 'epochs'
      ? `Using epoch-based training: ${countText(plan.epochs)} epochs = ${plan.maxSteps} steps`
      : `Using step-based training: ${plan.maxSteps} steps = ${epochsText(plan.maxSteps, S)} epochs`,
  );
  const divisor =
    plan.worldSize === 1 && plan.gradAccumSteps === 1
      ? `batch_size ${plan.batchSize}`
      : `(batch_size ${plan.batchSize} × ${plan.worldSize} ranks × ${plan.gradAccumSteps} accumulation steps)`;
  lines.push(`Dataset: ${plan.samples} samples / ${divisor} = ${S} steps/epoch`);
  if (plan.droppedPerEpoch > 0) {
    lines.push(
      `Dropped per epoch: ${plan.droppedPerEpoch} samples (the remainder of ${plan.samples} / ${plan.samplesPerStep}; a different subset each epoch)`,
    );
  }
  // The original pipeline's summary line, in its format (two decimals in either mode), for side-by-side runs.
  lines.push(`Training duration: ${epochsText(plan.maxSteps, S)} epochs = ${plan.maxSteps} steps`);
  lines.push(`Warmup: ${plan.warmupSteps} steps (${epochsText(plan.warmupSteps, S)} epochs)`);
  lines.push(
    plan.evalEvery === null
      ? 'Eval every: end of training only'
      : `Eval every: ${plan.evalEvery} steps (${epochsText(plan.evalEvery, S)} epochs)`,
  );
  lines.push(
    plan.saveEvery === null
      ? 'Save every: end of training only'
      : `Save every: ${plan.saveEvery} steps (${epochsText(plan.saveEvery, S)} epochs)`,
  );
  return lines;
}
