/**
 * The training run's one metrics sink: every record goes to `metrics.jsonl` (lib/logging/jsonl.ts); when
 * TensorBoard is on, its numbers to the event file (lib/logging/tensorboard.ts) under `train/…` / `val/…` tags
 * (docs/logging.md); with live W&B (lib/logging/wandb.ts) the same numbers to `run.log` at the same steps, and the
 * best checkpoint's metric to the run summary. Ranks other than 0 hold a sink that drops everything
 * (`RunLog.none()`).
 */
import { MetricsJsonlWriter } from './jsonl';
import { TensorBoardWriter } from './tensorboard';
import type { WandbSidecar } from './wandb-sidecar';

/** Keys of a 'train' record that go to metrics.jsonl only (no TensorBoard scalar). */
const JSONL_ONLY_TRAIN_KEYS = new Set(['rss_gb']);

export class RunLog {
  /** The exit code W&B gets at the end: 1 after an 'end' record with status 'failed'. */
  private exitCode = 0;

  private constructor(
    private metrics: MetricsJsonlWriter | null,
    private tensorboard: TensorBoardWriter | null,
    private wandb: WandbSidecar | null,
  ) {}

  /**
   * Opens `<runDir>/metrics.jsonl` (a resume keeps the records up to `resumeStep`) and, with `tensorboardDir`, a
   * new TensorBoard event file there (a resume's starts with the restart at `resumeStep + 1`, so TensorBoard drops
   * the points the earlier process logged after that checkpoint). `wandb`: the live W&B client, closed by `close()`.
   */
  static open(
    runDir: string,
    opts: { resumeStep?: number; tensorboardDir?: string | null; wandb?: WandbSidecar | null } = {},
  ): RunLog {
    const metrics = MetricsJsonlWriter.open(runDir, { resumeStep: opts.resumeStep });
    const purgeStep = opts.resumeStep === undefined ? undefined : opts.resumeStep + 1;
    const tensorboard = opts.tensorboardDir ? new TensorBoardWriter(opts.tensorboardDir, { purgeStep }) : null;
    return new RunLog(metrics, tensorboard, opts.wandb ?? null);
  }

  /** A sink that writes nothing (ranks other than 0). */
  static none(): RunLog {
    return new RunLog(null, null, null);
  }

  /** The scalars of one step to TensorBoard and W&B. */
  private scalars(values: Record<string, number>, step: number): void {
    this.tensorboard?.addScalars(values, step);
    this.wandb?.log(step, values);
  }

  /**
   * A 'train' record: metrics.jsonl gets every value; TensorBoard and W&B `train/epoch` and `train/<key>` (finite
   * ones).
   */
  train(step: number, epoch: number, values: Record<string, number>): void {
    this.metrics?.write({ type: 'train', step, epoch, ...values });
    if (this.tensorboard || this.wandb) {
      const tb: Record<string, number> = { 'train/epoch': epoch };
      for (const [key, v] of Object.entries(values))
        if (!JSONL_ONLY_TRAIN_KEYS.has(key) && Number.isFinite(v)) tb[`train/${key}`] = v;
      this.scalars(tb, step);
    }
  }

  /**
   * A 'val' record: metrics.jsonl gets the logged metrics then `details`; TensorBoard and W&B `val/<metric>` and
   * `val/per_class_auroc/<class>` (finite ones), TensorBoard flushed at once.
   */
  val(
    step: number,
    epoch: number,
    logged: Record<string, number>,
    perClassAuroc: Record<string, number>,
    details: Record<string, unknown>,
  ): void {
    this.metrics?.write({ type: 'val', step, epoch, ...logged, ...details });
    if (this.tensorboard || this.wandb) {
      const tb: Record<string, number> = {};
      for (const [k, v] of Object.entries(logged)) if (Number.isFinite(v)) tb[`val/${k}`] = v;
      for (const [c, v] of Object.entries(perClassAuroc)) if (Number.isFinite(v)) tb[`val/per_class_auroc/${c}`] = v;
      this.scalars(tb, step);
      this.tensorboard?.flush();
    }
  }

  /**
   * Any other record ('checkpoint', 'best', 'end') to metrics.jsonl. W&B: a 'best' record's `{metric, value}`
   * becomes the summary's `best/<metric>` and `best/step`; an 'end' record with status 'failed' makes the run's
   * exit code 1.
   */
  event(type: 'checkpoint' | 'best' | 'end', step: number, epoch: number, fields: Record<string, unknown>): void {
    this.metrics?.write({ type, step, epoch, ...fields });
    if (type === 'best' && typeof fields.metric === 'string')
      this.wandb?.summary({ [`best/${fields.metric}`]: fields.value, 'best/step': step });
    if (type === 'end' && fields.status === 'failed') this.exitCode = 1;
  }

  /**
   * Closes the files (fsyncs metrics.jsonl, flushes TensorBoard) and finishes the W&B run (its client uploads and
   * exits on its own); later records are dropped.
   */
  close(): void {
    this.metrics?.close();
    this.metrics = null;
    this.tensorboard?.close();
    this.tensorboard = null;
    this.wandb?.finish(this.exitCode);
    this.wandb = null;
  }
}
