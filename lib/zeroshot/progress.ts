/**
 * A samples progress bar for the evaluation commands, on stderr (stdout keeps the results):
 *
 *     infer: [########------------]  40/100 samples | 3.21 samples/s | ETA 18s | elapsed 12s
 *
 * On a TTY (and not CI) it redraws in place (the ProgressReporter spinner); otherwise it prints a line at the
 * first update, then at most every `intervalSeconds`, and always at the end. The rate counts from the first
 * finished batch on (the first batch also pays for warm-up), so the ETA is not skewed by start-up time.
 */
import { formatDuration, ProgressReporter, type OutputStream } from '../logging';

export function progressBar(done: number, total: number, width = 20): string {
  const f = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`;
}

export interface SamplesProgressOptions {
  stream?: OutputStream;
  tty?: boolean;
  /** Non-TTY: seconds between lines (default 10). */
  intervalSeconds?: number;
  /** Clock in seconds (tests). */
  now?: () => number;
}

export class SamplesProgress {
  private readonly reporter: ProgressReporter;
  private readonly now: () => number;
  private readonly interval: number;
  private readonly t0: number;
  private firstAt: number | null = null;
  private firstDone = 0;
  private lastLineAt = -Infinity;
  private last = 0;

  constructor(
    readonly label: string,
    readonly total: number,
    opts: SamplesProgressOptions = {},
  ) {
    this.reporter = new ProgressReporter({ stream: opts.stream ?? process.stderr, tty: opts.tty });
    this.now = opts.now ?? (() => performance.now() / 1000);
    this.interval = opts.intervalSeconds ?? 10;
    this.t0 = this.now();
  }

  /** Samples per second so far (NaN before two updates). */
  rate(): number {
    if (this.firstAt === null) return NaN;
    const dt = this.now() - this.firstAt;
    return dt > 0 && this.last > this.firstDone ? (this.last - this.firstDone) / dt : NaN;
  }

  /** Overall samples per second including the first batch. */
  overallRate(): number {
    const dt = this.now() - this.t0;
    return dt > 0 ? this.last / dt : NaN;
  }

  line(): string {
    const r = this.rate();
    const rate = Number.isFinite(r) ? r : this.overallRate();
    const eta = this.last >= this.total ? 0 : Number.isFinite(rate) && rate > 0 ? (this.total - this.last) / rate : NaN;
    const width = String(this.total).length;
    return (
      `${this.label}: ${progressBar(this.last, this.total)} ${String(this.last).padStart(width)}/${this.total} samples | ` +
      `${Number.isFinite(rate) ? rate.toFixed(2) : '--'} samples/s | ETA ${formatDuration(eta)} | elapsed ${formatDuration(this.now() - this.t0)}`
    );
  }

  update(done: number): void {
    this.last = done;
    const t = this.now();
    if (this.firstAt === null) {
      this.firstAt = t;
      this.firstDone = done;
    }
    if (this.reporter.interactive) this.reporter.status(this.line());
    else if (t - this.lastLineAt >= this.interval && done < this.total) {
      this.lastLineAt = t;
      this.reporter.log(this.line());
    }
  }

  /** Clears the bar and prints the final line. */
  finish(): void {
    this.reporter.stop();
    this.reporter.log(this.line());
  }

  stop(): void {
    this.reporter.stop();
  }
}
