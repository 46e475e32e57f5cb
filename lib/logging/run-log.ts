/**
 * The training run's one metrics sink: every record goes to `metrics.jsonl` (lib/logging/jsonl.ts) and, when
 * TensorBoard is on, its numbers to the event file (lib/logging/tensorboard.ts) under `train/…` / `val/…` tags
 * (docs/logging.md). Ranks other than 0 hold a sink that drops everything (`RunLog.none()`).
 */
import { MetricsJsonlWriter } from './jsonl';
import { TensorBoardWriter } from './tensorboard';

/** Keys of a 'train' record that go to metrics.jsonl only (no TensorBoard scalar). */
const JSONL_ONLY_TRAIN_KEYS = new Set(['rss_gb']);

export class RunLog {
  private constructor(
    private metrics: MetricsJsonlWriter | null,
    private tensorboard: TensorBoardWriter | null,
  ) {}

  /**
   * Opens `<runDir>/metrics.jsonl` (a resume keeps the records up to `resumeStep`) and, with `tensorboardDir`, a
   * new TensorBoard event file there.
   */
  static open(runDir: string, opts: { resumeStep?: number; tensorboardDir?: string | null } = {}): RunLog {
    const metrics = MetricsJsonlWriter.open(runDir, { resumeStep: opts.resumeStep });
    return new RunLog(metrics, opts.tensorboardDir ? new TensorBoardWriter(opts.tensorboardDir) : null);
  }

  /** A sink that writes nothing (ranks other than 0). */
  static none(): RunLog {
    return new RunLog(null, null);
  }

  /** A 'train' record: metrics.jsonl gets every value; TensorBoard `train/epoch` and `train/<key>` (finite ones). */
  train(step: number, epoch: number, values: Record<string, number>): void {
    this.metrics?.write({ type: 'train', step, epoch, ...values });
    if (this.tensorboard) {
      const tb: Record<string, number> = { 'train/epoch': epoch };
      for (const [key, v] of Object.entries(values))
        if (!JSONL_ONLY_TRAIN_KEYS.has(key) && Number.isFinite(v)) tb[`train/${key}`] = v;
      this.tensorboard.addScalars(tb, step);
    }
  }

  /**
   * A 'val' record: metrics.jsonl gets the logged metrics then `details`; TensorBoard `val/<metric>` and
   * `val/per_class_auroc/<class>` (finite ones), flushed at once.
   */
  val(
    step: number,
    epoch: number,
    logged: Record<string, number>,
    perClassAuroc: Record<string, number>,
    details: Record<string, unknown>,
  ): void {
    this.metrics?.write({ type: 'val', step, epoch, ...logged, ...details });
    if (this.tensorboard) {
      const tb: Record<string, number> = {};
      for (const [k, v] of Object.entries(logged)) if (Number.isFinite(v)) tb[`val/${k}`] = v;
      for (const [c, v] of Object.entries(perClassAuroc)) if (Number.isFinite(v)) tb[`val/per_class_auroc/${c}`] = v;
      this.tensorboard.addScalars(tb, step);
      this.tensorboard.flush();
    }
  }

  /** Any other record ('checkpoint', 'best', 'end'): metrics.jsonl only. */
  event(type: 'checkpoint' | 'best' | 'end', step: number, epoch: number, fields: Record<string, unknown>): void {
    this.metrics?.write({ type, step, epoch, ...fields });
  }

  /** Closes both files (fsyncs metrics.jsonl, flushes TensorBoard); later records are dropped. */
  close(): void {
    this.metrics?.close();
    this.metrics = null;
    this.tensorboard?.close();
    this.tensorboard = null;
  }
}
