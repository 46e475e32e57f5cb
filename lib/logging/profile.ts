/**
 * `logging.profile_timing`: a per-phase timing breakdown averaged over a bounded window of recent steps.
 *
 * The reference appended every step's timings to unbounded lists and compared a 100-step trainer average with
 * the model's LAST-step internal numbers. Here every phase and the step total live in
 * fixed ring buffers of the same `window` steps, so all numbers in a report are means over the same steps and
 * memory stays constant.
 *
 * Per step: `add(phase, ms)` any number of times (repeated adds to a phase within a step sum up; phases measured
 * on the device come from the addon's own timers/events, so no device sync per step is needed here), then
 * `endStep(totalMs)` with the wall time of the whole step. A phase not reported in a step counts as 0 for it.
 *
 * `report()` lines:
 *
 *     Timing (mean over the last 100 steps):
 *       data                12.34 ms    2.4%
 *       forward_spatial    201.00 ms   39.3%
 *       ...
 *       other                1.00 ms    0.2%
 *       total              512.00 ms  100.0%
 *
 * Phases print in the canonical order (PROFILE_PHASES) and then in first-seen order; phases whose mean is 0 over
 * the window are left out. `other` = max(0, mean total − Σ phase means); percentages are of the mean total.
 */
import { CtclipError } from '../errors';
import { formatFixed } from './format';

/** The canonical phase names, in report order. */
export const PROFILE_PHASES = [
  'data',
  'h2d',
  'tokenize',
  'forward_spatial',
  'forward_temporal',
  'forward_text',
  'heads',
  'loss',
  'backward',
  'allreduce',
  'optimizer',
] as const;

export class ProfileTimer {
  readonly window: number;
  private readonly phases = new Map<string, Float64Array>();
  private readonly order: string[] = [];
  private readonly totals: Float64Array;
  private current = new Map<string, number>();
  private filled = 0;
  private slot = 0;

  constructor(options: { window?: number } = {}) {
    this.window = options.window ?? 100;
    if (!Number.isInteger(this.window) || this.window < 1)
      throw new CtclipError('ARGUMENT_ERROR', `ProfileTimer: window must be an integer >= 1, got ${this.window}`);
    this.totals = new Float64Array(this.window);
  }

  /** Adds `ms` to `phase` for the current step. */
  add(phase: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `ProfileTimer.add(${phase}): expected a finite duration >= 0 ms, got ${ms}`,
      );
    if (!this.phases.has(phase)) {
      this.phases.set(phase, new Float64Array(this.window));
      this.order.push(phase);
    }
    this.current.set(phase, (this.current.get(phase) ?? 0) + ms);
  }

  /** Times a synchronous or async function into `phase`. */
  async time<T>(phase: string, fn: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(phase, performance.now() - t0);
    }
  }

  /** Closes the current step with its total wall time in ms. */
  endStep(totalMs: number): void {
    if (!Number.isFinite(totalMs) || totalMs < 0)
      throw new CtclipError('ARGUMENT_ERROR', `ProfileTimer.endStep: expected a finite total >= 0 ms, got ${totalMs}`);
    for (const [name, ring] of this.phases) ring[this.slot] = this.current.get(name) ?? 0;
    this.totals[this.slot] = totalMs;
    this.current = new Map();
    this.slot = (this.slot + 1) % this.window;
    this.filled = Math.min(this.filled + 1, this.window);
  }

  /** Number of steps in the window (≤ window). */
  get steps(): number {
    return this.filled;
  }

  /** Mean ms per phase and of the total over the window (phases in report order). */
  means(): { phases: Array<{ name: string; ms: number }>; totalMs: number } {
    const n = this.filled;
    const mean = (ring: Float64Array): number => {
      if (n === 0) return 0;
      let s = 0;
      for (let i = 0; i < n; i++) s += ring[i]; // when not full, slots 0..n-1 are the filled ones
      return s / n;
    };
    const canonical = (PROFILE_PHASES as readonly string[]).filter((p) => this.phases.has(p));
    const rest = this.order.filter((p) => !(PROFILE_PHASES as readonly string[]).includes(p));
    return {
      phases: [...canonical, ...rest].map((name) => ({ name, ms: mean(this.phases.get(name) as Float64Array) })),
      totalMs: mean(this.totals),
    };
  }

  /** The report lines (see the module comment); one line saying so when no step was recorded. */
  report(): string[] {
    if (this.filled === 0) return ['Timing: no steps recorded yet'];
    const { phases, totalMs } = this.means();
    const shown = phases.filter((p) => p.ms > 0);
    const other = Math.max(0, totalMs - shown.reduce((a, p) => a + p.ms, 0));
    const rows = [...shown, ...(other > 1e-9 ? [{ name: 'other', ms: other }] : []), { name: 'total', ms: totalMs }];
    const width = Math.max(...rows.map((r) => r.name.length));
    const pct = (ms: number): string => (totalMs > 0 ? formatFixed((100 * ms) / totalMs, 1) : '0.0');
    const lines = [`Timing (mean over the last ${this.filled} steps):`];
    for (const r of rows)
      lines.push(`  ${r.name.padEnd(width)}  ${formatFixed(r.ms, 2).padStart(9)} ms  ${pct(r.ms).padStart(5)}%`);
    return lines;
  }

  /** True when a report is due after `step` for a cadence of `every` steps (profile_timing: true = 100). */
  static due(step: number, every: number | boolean): boolean {
    const n = every === true ? 100 : every === false ? 0 : every;
    return n > 0 && step > 0 && step % n === 0;
  }
}
