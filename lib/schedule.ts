/**
 * Epoch/step math and the learning-rate schedule: pure functions, no I/O.
 *
 * Conventions (pipeline-spec §3.1, with the reference's bugs fixed):
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
    throw new CtclipError('PLAN_ERROR', `the number of training samples must be a non-negative integer, got ${samples}`);
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
