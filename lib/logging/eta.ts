/**
 * `EtaEstimator`: time per step over a sliding window of PURE step durations, and elapsed time since training
 * start. It fixes two reference bugs: the reference's ETA averaged the wall time
 * between successive steps, validation and checkpointing included, so the ETA jumped up after every evaluation;
 * and its "elapsed" counted from trainer construction (checkpoint loading included).
 *
 * Use:
 *
 *     const eta = new EtaEstimator({ totalSteps, startStep });   // startStep = resumed step (0 for a fresh run)
 *     eta.start();                        // right before the first step: elapsed counts from here
 *     ... eta.stepDone(step) after each optimizer step ...
 *     eta.pause(); validate(); save(); eta.resume();   // excluded from the durations (nesting allowed)
 *
 * `stepDone(step)` measures the time since the previous `stepDone` (or `start`) MINUS any time spent paused in
 * between; `stepDone(step, seconds)` records a duration measured by the caller instead (e.g. the native step's
 * own timer). Because paused time never enters the window, an evaluation can never make the ETA rise.
 * Elapsed is plain wall time since `start()` (pauses included: it is how long the run has taken), plus
 * `elapsedOffset` (the elapsed time stored in a checkpoint, when a resumed run wants to continue counting).
 *
 * ETA = (totalSteps − lastStep) × mean(window); `null` before any duration is known (print "calculating..."),
 * 0 once lastStep ≥ totalSteps. Memory is bounded: the window is a fixed ring buffer.
 */
import { CtclipError } from '../errors';

export interface EtaEstimatorOptions {
  totalSteps: number;
  /** Steps already done before this process started (a resumed run); ETA counts the rest. Default 0. */
  startStep?: number;
  /** Number of most recent step durations averaged. Default 100 (as the reference). */
  window?: number;
  /** Seconds already elapsed in earlier processes of this run (from a checkpoint). Default 0. */
  elapsedOffset?: number;
  /** Clock in seconds (monotonic). Default: performance.now() / 1000. Tests inject a fake one. */
  now?: () => number;
}

export class EtaEstimator {
  readonly totalSteps: number;
  private readonly now: () => number;
  private readonly durations: Float64Array;
  private count = 0;
  private next = 0;
  private sum = 0;
  private startedAt: number | null = null;
  private lastMark = 0;
  private pausedSinceMark = 0;
  private pauseDepth = 0;
  private pauseStartedAt = 0;
  private lastStepValue: number;
  private readonly elapsedOffset: number;

  constructor(options: EtaEstimatorOptions) {
    const window = options.window ?? 100;
    if (!Number.isInteger(options.totalSteps) || options.totalSteps < 0) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `EtaEstimator: totalSteps must be an integer >= 0, got ${options.totalSteps}`,
      );
    }
    if (!Number.isInteger(window) || window < 1)
      throw new CtclipError('ARGUMENT_ERROR', `EtaEstimator: window must be an integer >= 1, got ${window}`);
    this.totalSteps = options.totalSteps;
    this.lastStepValue = options.startStep ?? 0;
    this.elapsedOffset = options.elapsedOffset ?? 0;
    this.durations = new Float64Array(window);
    this.now = options.now ?? (() => performance.now() / 1000);
  }

  /** Marks the start of training (call right before the first step). Elapsed counts from here. */
  start(): void {
    this.startedAt = this.now();
    this.lastMark = this.startedAt;
    this.pausedSinceMark = 0;
  }

  /** True between start() and forever after. */
  get started(): boolean {
    return this.startedAt !== null;
  }

  /** Begins a span (validation, checkpoint) excluded from step durations. Calls nest. */
  pause(): void {
    if (this.pauseDepth === 0) this.pauseStartedAt = this.now();
    this.pauseDepth += 1;
  }

  /** Ends the span begun by the matching pause(). */
  resume(): void {
    if (this.pauseDepth === 0)
      throw new CtclipError('ARGUMENT_ERROR', 'EtaEstimator.resume() without a matching pause()');
    this.pauseDepth -= 1;
    if (this.pauseDepth === 0) this.pausedSinceMark += this.now() - this.pauseStartedAt;
  }

  /** Runs `fn` (sync or async) paused: its time is excluded from the step durations. */
  async paused<T>(fn: () => T | Promise<T>): Promise<T> {
    this.pause();
    try {
      return await fn();
    } finally {
      this.resume();
    }
  }

  /**
   * Records that optimizer step `step` finished. Without `seconds`, the duration is the time since the previous
   * stepDone/start minus the time paused in between. With `seconds`, that duration is recorded as given.
   */
  stepDone(step: number, seconds?: number): void {
    if (this.startedAt === null) throw new CtclipError('ARGUMENT_ERROR', 'EtaEstimator.stepDone() before start()');
    if (this.pauseDepth !== 0)
      throw new CtclipError('ARGUMENT_ERROR', `EtaEstimator.stepDone(${step}) while paused; call resume() first`);
    const t = this.now();
    const measured = seconds ?? t - this.lastMark - this.pausedSinceMark;
    this.lastMark = t;
    this.pausedSinceMark = 0;
    this.lastStepValue = step;
    if (!Number.isFinite(measured) || measured < 0) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `EtaEstimator.stepDone(${step}): step duration must be a finite number >= 0, got ${measured}`,
      );
    }
    if (this.count === this.durations.length) this.sum -= this.durations[this.next];
    else this.count += 1;
    this.durations[this.next] = measured;
    this.sum += measured;
    this.next = (this.next + 1) % this.durations.length;
    // Recompute now and then so floating-point drift in the running sum cannot accumulate.
    if (this.next === 0) this.sum = this.durations.reduce((a, b) => a + b, 0);
  }

  /** The last step recorded (or startStep). */
  get lastStep(): number {
    return this.lastStepValue;
  }

  /** Mean duration of the steps in the window, in seconds; null before the first. */
  meanStepTime(): number | null {
    return this.count === 0 ? null : this.sum / this.count;
  }

  /** Seconds to go; null while unknown; 0 when done. */
  eta(): number | null {
    if (this.lastStepValue >= this.totalSteps) return 0;
    const mean = this.meanStepTime();
    return mean === null ? null : (this.totalSteps - this.lastStepValue) * mean;
  }

  /** Seconds since start() (0 before it), plus elapsedOffset. */
  elapsed(): number {
    return this.elapsedOffset + (this.startedAt === null ? 0 : this.now() - this.startedAt);
  }
}
