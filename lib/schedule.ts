/**
 * Epoch/step math and the learning-rate schedule: pure functions, no I/O.
 *
 * Conventions (the reference's, with its bugs fixed):
 *   N = samples in the training split (from our shard index), B = per-rank batch, W = world size,
 *   A = gradient-accumulation steps. One optimizer step consumes B·W·A samples, so
 *   S = floor(N / (B·W·A)) steps per epoch, and the remainder N − S·B·W·A samples of each epoch are dropped.
 */
import { CtclipError } from './errors';

export interface StepsPerEpochInput {
  /** N: samples in the training split. */
  samples: number;
  /** B: per-rank micro-batch size. */
  batchSize: number;
  /** W: number of processes. */
  worldSize: number;
  /** A: gradient-accumulation steps per optimizer step. */
  gradAccumSteps: number;
}

export interface EpochGeometry {
  /** S: optimizer steps per epoch. */
  stepsPerEpoch: number;
  /** Samples consumed per optimizer step over all ranks (B·W·A). */
  samplesPerStep: number;
  /** Samples each rank consumes per epoch (S·A·B). */
  samplesPerRankPerEpoch: number;
  /** Samples of each epoch that no rank sees (N − S·B·W·A). */
  droppedPerEpoch: number;
}

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new CtclipError('PLAN_ERROR', `${name} must be an integer >= 1, got ${v}`);
}

/** S = floor(N / (B·W·A)) and what follows from it. Throws PLAN_ERROR when S would be 0. */
export function epochGeometry(input: StepsPerEpochInput): EpochGeometry {
  const { samples, batchSize, worldSize, gradAccumSteps } = input;
  if (!Number.isInteger(samples) || samples < 0) {
    throw new CtclipError(
      'PLAN_ERROR',
      `the number of training samples must be a non-negative integer, got ${samples}`,
    );
  }
  positiveInt('data.batch_size', batchSize);
  positiveInt('world size', worldSize);
  positiveInt('training.gradient_accumulation_steps', gradAccumSteps);
  const samplesPerStep = batchSize * worldSize * gradAccumSteps;
  const stepsPerEpoch = Math.floor(samples / samplesPerStep);
  if (stepsPerEpoch < 1) {
    throw new CtclipError(
      'PLAN_ERROR',
      `the training split has ${samples} samples, fewer than one optimizer step needs ` +
        `(batch_size ${batchSize} × world size ${worldSize} × gradient_accumulation_steps ${gradAccumSteps} = ${samplesPerStep}); ` +
        `use more data, a smaller batch or fewer processes`,
    );
  }
  return {
    stepsPerEpoch,
    samplesPerStep,
    samplesPerRankPerEpoch: stepsPerEpoch * gradAccumSteps * batchSize,
    droppedPerEpoch: samples - stepsPerEpoch * samplesPerStep,
  };
}

/** Convenience: just S. */
export function stepsPerEpoch(input: StepsPerEpochInput): number {
  return epochGeometry(input).stepsPerEpoch;
}

export interface LrScheduleParams {
  /** Linear warmup length in optimizer steps (0 = none). */
  warmupSteps: number;
  /** T: the step at which the cosine reaches its floor. */
  maxSteps: number;
  /** Cosine floor as a fraction of the base learning rate. */
  minLrRatio: number;
}

/**
 * Learning-rate factor f(k) for optimizer step k (1-based): the LR applied IN step k is base·f(k).
 *   warmup (k <= W):  f = k / W
 *   after:            p = clamp((k − W) / max(1, T − W), 0, 1);  f = r + (1 − r)·½·(1 + cos πp)
 * The progress is clamped, so past T the LR stays at the floor instead of rising again.
 * Difference from the reference: its LambdaLR gives step k the factor f_ref(k−1), so
 * step 1 runs at LR 0 and the last step at f(T−1); ctclip uses f(k), so step 1 already learns (1/W of the
 * peak) and step T runs exactly at the floor.
 */
export function lrFactor(step: number, p: LrScheduleParams): number {
  if (!Number.isInteger(step) || step < 1)
    throw new CtclipError('PLAN_ERROR', `optimizer steps are 1-based integers, got ${step}`);
  const { warmupSteps, maxSteps, minLrRatio } = p;
  if (warmupSteps > 0 && step <= warmupSteps) return step / warmupSteps;
  const progress = Math.min(1, Math.max(0, (step - warmupSteps) / Math.max(1, maxSteps - warmupSteps)));
  return minLrRatio + (1 - minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The learning rate applied in optimizer step k (1-based). */
export function lrAt(step: number, baseLr: number, p: LrScheduleParams): number {
  return baseLr * lrFactor(step, p);
}
