/**
 * The training progress lines and the reporter that prints them.
 *
 * Line 1 (`formatProgressLine`), the product's documented format:
 *
 *     Step 5234/147500 (Epoch 0.71) | Loss: 0.1234 | LR: 1.2e-06 | Time/Step: 0.52s | ETA: 20h 34m | Elapsed: 45m 12s
 *
 *   Epoch `.2f` (fractional: step / steps per epoch), Loss `.4f`, LR Python `.1e`, Time/Step `.2f` seconds (the
 *   mean pure step time of the ETA window), ETA/Elapsed in `formatDuration` form; ETA is `calculating...` while
 *   unknown.
 *
 * Line 2 (`formatResourceLine`), indented by two spaces, fields joined by ` | `:
 *
 *     CPU:   `  Memory: RSS 1.23 GB (peak 1.50 GB) | Data: 0.01s/step (2%)`
 *     CUDA:  `  Memory: GPU0 3.21 GB alloc / 4.00 GB reserved (peak 3.50 GB) | RSS 1.23 GB | Util: 87% | Data: 0.01s/step (2%)`
 *
 *   GB = 1024³ bytes, 2 decimals. `(peak …)` appears when the peak is known. `Util: N%` appears when a device
 *   utilisation was measured (omitted otherwise; never a guess). Data is the mean time per step spent waiting for
 *   the next batch (`.2f` s) and its share of the mean step time (integer %, clamped to 0–100).
 *
 * `ProgressReporter` prints lines to a stream (stdout by default). On a TTY it keeps an `ora` spinner alive
 * between log lines for the in-between status (`status(text)`: "step 5235…", "validating 40/200…"); lines go
 * above the spinner. Off a TTY (CI, SLURM logs, pipes) it prints plain lines only and status updates are dropped,
 * so log files contain exactly the documented lines.
 */
import ora from 'ora';
import { formatDuration, formatFixed, formatGiB, formatLoss, formatLr } from './format';

export interface ProgressStats {
  step: number;
  totalSteps: number;
  /** Fractional epoch (step / steps per epoch). */
  epoch: number;
  loss: number;
  /** The LR applied in this step. */
  lr: number;
  /** Mean pure step time, seconds. */
  stepTime: number;
  /** Seconds to go, or null while unknown. */
  eta: number | null;
  /** Seconds since training start. */
  elapsed: number;
}

/** Line 1; see the module comment. */
export function formatProgressLine(s: ProgressStats): string {
  return (
    `Step ${s.step}/${s.totalSteps} (Epoch ${formatFixed(s.epoch, 2)}) | Loss: ${formatLoss(s.loss)} | LR: ${formatLr(s.lr)}` +
    ` | Time/Step: ${formatFixed(s.stepTime, 2)}s | ETA: ${s.eta === null ? 'calculating...' : formatDuration(s.eta)}` +
    ` | Elapsed: ${formatDuration(s.elapsed)}`
  );
}

export interface CudaMemoryStats {
  /** Device index as the process sees it (relative to CUDA_VISIBLE_DEVICES). */
  device: number;
  allocatedBytes: number;
  reservedBytes: number;
  peakAllocatedBytes?: number;
}

export interface ResourceStats {
  /** Resident set size of this process. */
  rssBytes: number;
  /** Peak RSS (maxRSS), when known. */
  peakRssBytes?: number;
  /** CUDA caching-allocator numbers of this process, when training on CUDA. */
  cuda?: CudaMemoryStats;
  /** Device utilisation in percent, when measured. */
  utilizationPct?: number | null;
  /** Mean seconds per step spent waiting for data. */
  dataTime: number;
  /** Mean seconds per step (the same window as dataTime), for the percentage. */
  stepTime: number;
}

/** Line 2; see the module comment. */
export function formatResourceLine(r: ResourceStats): string {
  const parts: string[] = [];
  if (r.cuda) {
    const c = r.cuda;
    const peak = c.peakAllocatedBytes !== undefined ? ` (peak ${formatGiB(c.peakAllocatedBytes)})` : '';
    parts.push(
      `Memory: GPU${c.device} ${formatGiB(c.allocatedBytes)} alloc / ${formatGiB(c.reservedBytes)} reserved${peak}`,
    );
    parts.push(`RSS ${formatGiB(r.rssBytes)}`);
  } else {
    const peak = r.peakRssBytes !== undefined ? ` (peak ${formatGiB(r.peakRssBytes)})` : '';
    parts.push(`Memory: RSS ${formatGiB(r.rssBytes)}${peak}`);
  }
  if (r.utilizationPct !== undefined && r.utilizationPct !== null && Number.isFinite(r.utilizationPct)) {
    parts.push(`Util: ${Math.round(r.utilizationPct)}%`);
  }
  const share =
    r.stepTime > 0 && Number.isFinite(r.dataTime)
      ? Math.min(100, Math.max(0, Math.round((100 * r.dataTime) / r.stepTime)))
      : 0;
  parts.push(`Data: ${formatFixed(r.dataTime, 2)}s/step (${share}%)`);
  return `  ${parts.join(' | ')}`;
}

/** This process's RSS and peak RSS (Linux/macOS maxRSS is in KiB in Node's resourceUsage). */
export function processMemory(): { rssBytes: number; peakRssBytes: number } {
  return { rssBytes: process.memoryUsage.rss(), peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

/** What the reporter needs of a stream: `write`, and `isTTY` on terminals. */
export type OutputStream = NodeJS.WritableStream & { isTTY?: boolean };

export interface ProgressReporterOptions {
  /** Default process.stdout. */
  stream?: OutputStream;
  /** Force spinner mode on/off. Default: stream.isTTY and not CI (`CI` env var unset). */
  tty?: boolean;
}

/** Prints the progress/validation lines; see the module comment. */
export class ProgressReporter {
  readonly stream: OutputStream;
  readonly interactive: boolean;
  private spinner: ReturnType<typeof ora> | null = null;

  constructor(options: ProgressReporterOptions = {}) {
    this.stream = options.stream ?? process.stdout;
    this.interactive = options.tty ?? (this.stream.isTTY === true && !process.env.CI);
  }

  /** Prints one persistent line (or several). On a TTY the spinner is cleared first and redrawn after. */
  log(...lines: string[]): void {
    const text = lines.map((l) => `${l}\n`).join('');
    if (this.spinner && this.spinner.isSpinning) {
      this.spinner.clear();
      this.stream.write(text);
      this.spinner.render();
    } else {
      this.stream.write(text);
    }
  }

  /** Prints the two progress lines (line 2 only when `resources` is given). */
  progress(stats: ProgressStats, resources?: ResourceStats): void {
    if (resources) this.log(formatProgressLine(stats), formatResourceLine(resources));
    else this.log(formatProgressLine(stats));
  }

  /** The transient in-between status: the spinner's text on a TTY; nothing otherwise. */
  status(text: string): void {
    if (!this.interactive) return;
    if (!this.spinner) {
      this.spinner = ora({ text, stream: this.stream, isEnabled: true, discardStdin: false, hideCursor: false });
      this.spinner.start();
    } else {
      this.spinner.text = text;
      if (!this.spinner.isSpinning) this.spinner.start();
      else this.spinner.render(); // show the new text now, not at the next frame
    }
  }

  /** Stops and clears the spinner (call before exiting, or before printing a large block). */
  stop(): void {
    if (this.spinner) {
      this.spinner.stop();
      this.spinner = null;
    }
  }
}
