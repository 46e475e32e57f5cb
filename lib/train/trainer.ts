/**
 * The trainer: CT-CLIP end to end, by optimizer steps, reporting epochs as fractions (the reference's
 * loop with its bugs fixed; README "Training").
 *
 * One optimizer step = A micro-batches (`training.gradient_accumulation_steps`): `accumulate` × A then
 * `optimizerStep(lr)` (A = 1: one fused `trainStep`). The LR applied in step k is `lrAt(k, …)`. A step whose loss
 * or gradients are non-finite is skipped by the native side: its batches are consumed, the schedule does not
 * advance (the next attempt uses the same LR) and `train/skipped_steps` counts it. The native side rolls a skipped
 * step back completely (weights, codebook, AdamW, dropout stream). `training.max_consecutive_skipped_steps` skipped
 * steps in a row stop the run with NON_FINITE, naming the samples of the last skipped step; no checkpoint is
 * written over the last good one.
 *
 * A failure inside the loop (the skipped-step cap, the loader's bad-sample budget, a native error) still closes the
 * run: an `end` event with status 'failed' and the error, the run report, the loaders; then the error goes on to
 * the caller (the CLI prints its message and exits 1).
 *
 * Data loading overlaps the native step: the next micro-batch is requested from the loader (whose reads run on
 * the libuv threadpool, `prefetch_factor` batches ahead) before the native AsyncWorker of the current one is
 * awaited, and tokenization happens on the JS thread while nothing else waits for it.
 *
 * Cadence (after optimizer step k): progress lines at k = 1 and every `log_every_n_steps`; validation every
 * `eval every` steps and at the last step (never twice for one step), each followed by a checkpoint carrying its
 * metrics (best tracking in CheckpointManager by `checkpoint.best_metric`/mode); otherwise a checkpoint every
 * `save every` steps. A stop request (SIGINT/SIGTERM, or `requestStop()` from an event listener, e.g. early
 * stopping) ends the loop at the next step boundary with a checkpoint.
 *
 * Events (EventEmitter): 'step' (StepEvent), 'eval' (EvalEvent), 'checkpoint' (CheckpointEvent).
 *
 * Structure: `create` runs the builders of lib/train/builders.ts (data, model, state, loaders, logging); `fit` is
 * the loop, one `runStep` (A micro-batches and the native step) per attempt, then `afterSkipped` or `afterStep`
 * (logging, events) and the validation/checkpoint cadence. Metrics go through one RunLog sink
 * (lib/logging/run-log.ts); test fault points are lib/train/faults.ts.
 */
import { EventEmitter } from 'events';
import { Writable } from 'stream';
import type { CheckpointManager, CheckpointManagerOptions, SaveResult } from '../checkpoint';
import type { RunLock } from '../checkpoint/run-lock';
import type { Config } from '../config/schema';
import { badSamplesEvent, formatBadSamples, type Batch, type EvalLoader, type TrainLoader } from '../data/loader';
import type { DataPosition } from '../data/sampler';
import type { ProcessGroup } from '../dist/group';
import { CtclipError } from '../errors';
import { batchVolumes } from '../zeroshot/loader';
import {
  EtaEstimator,
  ProfileTimer,
  ProgressReporter,
  formatValidationLine,
  formatValidationResults,
  processMemory,
  validationHeaderLines,
  writeRunReport,
  type RunLog,
} from '../logging';
import { textTensors, type CTClip, type CTClipStepResult } from '../model/ctclip';
import type { TensorHandle } from '../native';
import type { RunPlan } from '../plan';
import { configureThreads } from '../runtime';
import { lrAt } from '../schedule';
import { readTensor, tensorFromBuffer } from '../tensor';
import type { Tokenizer } from '../text/tokenizer';
import {
  createLoaders,
  createTrainModel,
  openRunLog,
  openTrainData,
  restoreRunState,
  type BuildContext,
} from './builders';
import { checkpointParts, loadModelWeights, type TrainProgress } from './checkpoint-io';
import { Faults, type FaultInjection } from './faults';
import { lockRunDir, type RunDir } from './run-dir';
import type { StopSignals } from './signals';
import { runValidation, type ValidationOutcome } from './validate';

export type { FaultInjection } from './faults';

export interface StepEvent {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  temperature: number;
  skipped: boolean;
  stepTime: number;
  dataTime: number;
}

export interface EvalEvent {
  step: number;
  epoch: number;
  outcome: ValidationOutcome;
}

export interface CheckpointEvent {
  step: number;
  path: string;
  isBest: boolean;
  kind: 'eval' | 'periodic' | 'interrupt' | 'stop';
}

export interface TrainerOptions {
  config: Config;
  /** 'latest' | 'best' | a checkpoint folder | a torch.save training checkpoint file (lib/train/resume-torch.ts). */
  resume?: string | null;
  /** Weights to start a NEW run from (ours: a checkpoint folder or model.safetensors; or a torch .pt/.bin). */
  initFrom?: string | null;
  /** Default true; false restores weights + run position but starts AdamW and the loss scaler fresh. */
  loadOptimizer?: boolean;
  /**
   * Data parallel: this rank's process group (lib/dist/group.ts; null or absent = one process). Every rank reads
   * its slice of each global batch, gradients and decisions are reduced over the group, validation is sharded and
   * gathered to rank 0, and only rank 0 logs and writes files.
   */
  group?: ProcessGroup | null;
  /** Where lines go (default: a ProgressReporter on stdout). */
  reporter?: ProgressReporter;
  signals?: StopSignals | null;
  /** Test-only fault injection (lib/train/faults.ts). */
  faults?: FaultInjection;
  /** Extra CheckpointManager hooks (tests). */
  checkpointHooks?: CheckpointManagerOptions['hooks'];
  /**
   * The concrete device ('cpu' | 'cuda:N') for the model and the step; absent: the config's `device` section
   * (`device.use_cuda`, `device.cuda_device`) resolved against this libtorch and the rank's LOCAL_RANK
   * (lib/model/device.ts).
   */
  device?: string;
}

export type TrainStatus = 'completed' | 'interrupted' | 'stopped';

export interface TrainResult {
  status: TrainStatus;
  step: number;
  totalSteps: number;
  best: TrainProgress['best'];
  lastValidation: ValidationOutcome | null;
  runDir: string;
  reportPath: string | null;
  /** Exit code the CLI should use: 0, or 130/143 after a signal. */
  exitCode: number;
}

const GiB = 1024 ** 3;

class MeanWindow {
  private readonly buf: Float64Array;
  private n = 0;
  private i = 0;
  constructor(size: number) {
    this.buf = new Float64Array(size);
  }
  push(x: number): void {
    this.buf[this.i] = x;
    this.i = (this.i + 1) % this.buf.length;
    this.n = Math.min(this.n + 1, this.buf.length);
  }
  mean(): number {
    if (this.n === 0) return 0;
    let s = 0;
    for (let k = 0; k < this.n; k++) s += this.buf[k];
    return s / this.n;
  }
}

/** The loop's running state across steps (one `fit`). */
interface Loop {
  micro: AsyncGenerator<Batch>;
  /** The next micro-batch, requested while the current step runs. */
  pending: Promise<IteratorResult<Batch>> | null;
  currentEpoch: number;
  profile: ProfileTimer | null;
  eta: EtaEstimator;
  dataWindow: MeanWindow;
  stepWindow: MeanWindow;
  /** Distributed: some rank asked to stop during the last step (all-reduced with its decisions). */
  stopAgreed: boolean;
  consecutiveSkipped: number;
  startElapsed: number;
  wallStart: number;
}

/** One attempt at an optimizer step: the native result and what it consumed. */
interface StepAttempt {
  res: CTClipStepResult;
  batches: Batch[];
  stepTime: number;
  dataTime: number;
}

/** What `Trainer.create` builds (see lib/train/builders.ts). */
interface TrainerParts {
  config: Config;
  plan: RunPlan;
  runDir: RunDir;
  model: CTClip;
  tokenizer: Tokenizer;
  trainLoader: TrainLoader;
  evalLoader: EvalLoader;
  classNames: string[];
  checkpoints: CheckpointManager;
  reporter: ProgressReporter;
  progress: TrainProgress;
  signals: StopSignals | null;
  faults: Faults;
  resumedFrom: string | null;
  runLog: RunLog;
  wandbLines: string[];
  group: ProcessGroup | null;
}

export class Trainer extends EventEmitter {
  readonly config: Config;
  readonly plan: RunPlan;
  readonly runDir: RunDir;
  readonly model: CTClip;
  readonly tokenizer: Tokenizer;
  readonly trainLoader: TrainLoader;
  readonly evalLoader: EvalLoader;
  readonly classNames: string[];
  readonly checkpoints: CheckpointManager;
  readonly reporter: ProgressReporter;
  progress: TrainProgress;
  private readonly signals: StopSignals | null;
  private readonly faults: Faults;
  private stopReason: string | null = null;
  private readonly runLog: RunLog;
  private lastValidation: ValidationOutcome | null = null;
  private lastSavedStep: number | null = null;
  /** The checkpoint this run resumed from (null for a fresh run). */
  readonly resumedFrom: string | null;
  private readonly wandbLines: string[];
  /** The process group (null: one process). */
  readonly group: ProcessGroup | null;
  /** The run directory's lock (rank 0; null on other ranks), released at the end of `fit()`. */
  runLock: RunLock | null = null;

  private constructor(init: TrainerParts) {
    super();
    this.config = init.config;
    this.plan = init.plan;
    this.runDir = init.runDir;
    this.model = init.model;
    this.tokenizer = init.tokenizer;
    this.trainLoader = init.trainLoader;
    this.evalLoader = init.evalLoader;
    this.classNames = init.classNames;
    this.checkpoints = init.checkpoints;
    this.reporter = init.reporter;
    this.progress = init.progress;
    this.signals = init.signals;
    this.faults = init.faults;
    this.resumedFrom = init.resumedFrom;
    this.runLog = init.runLog;
    this.wandbLines = init.wandbLines;
    this.group = init.group;
  }

  /** Rank 0 (or the only process): the one that logs and writes files. */
  get isMain(): boolean {
    return (this.group?.rank ?? 0) === 0;
  }

  /**
   * Builds everything from the config: data, plan, tokenizer, model, resume/init, logging sinks. Rank 0 holds the
   * run directory's lock (lib/checkpoint/run-lock.ts) from here until the end of `fit()` (`runLock`); an error
   * on the way releases it.
   */
  static async create(opts: TrainerOptions): Promise<Trainer> {
    const held: { lock: RunLock | null } = { lock: null };
    try {
      const trainer = await Trainer.build(opts, held);
      trainer.runLock = held.lock;
      return trainer;
    } catch (e) {
      held.lock?.release();
      throw e;
    }
  }

  private static async build(opts: TrainerOptions, held: { lock: RunLock | null }): Promise<Trainer> {
    const cfg = opts.config;
    const group = opts.group && opts.group.worldSize > 1 ? opts.group : null;
    const rank = group?.rank ?? 0;
    const isMain = rank === 0;
    // Only rank 0 prints progress; the others keep warnings and errors (stderr).
    const reporter = isMain
      ? (opts.reporter ?? new ProgressReporter())
      : new ProgressReporter({ stream: silentStream(), tty: false });
    const ctx: BuildContext = {
      cfg,
      group,
      rank,
      worldSize: group?.worldSize ?? 1,
      isMain,
      log: (...lines: string[]) => reporter.log(...lines),
    };
    if (!cfg.data.webdataset_shards_train)
      throw new CtclipError('CONFIG_ERROR', 'data.webdataset_shards_train is not set');
    if (!cfg.data.webdataset_shards_val)
      throw new CtclipError('CONFIG_ERROR', 'data.webdataset_shards_val is not set (validation needs it)');
    // Before anything heavy: a second trainer on this run directory stops here, having written nothing.
    held.lock = await lockRunDir(cfg.checkpoint.save_dir, group);

    const threads = configureThreads(cfg.training.threads);
    const data = openTrainData(ctx);
    const { model, tokenizer } = await createTrainModel(ctx, { device: opts.device, threads });
    const faults = new Faults(opts.faults ?? {});
    const state = await restoreRunState(ctx, model, data, {
      resume: opts.resume ?? null,
      initFrom: opts.initFrom ?? null,
      loadOptimizer: opts.loadOptimizer ?? true,
      faults,
      checkpointHooks: opts.checkpointHooks,
    });
    const { trainLoader, evalLoader } = createLoaders(ctx, data, state.runDir);
    const { runLog, wandbLines } = openRunLog(ctx, state);
    return new Trainer({
      config: cfg,
      plan: data.plan,
      runDir: state.runDir,
      model,
      tokenizer,
      trainLoader,
      evalLoader,
      classNames: data.classNames,
      checkpoints: state.checkpoints,
      reporter,
      progress: state.progress,
      signals: opts.signals ?? null,
      faults,
      resumedFrom: state.resumedFrom,
      runLog,
      wandbLines,
      group,
    });
  }

  /** Asks the loop to stop at the next step boundary (a checkpoint is saved). For early stopping from a listener. */
  requestStop(reason = 'requested'): void {
    this.stopReason = reason;
  }

  private get stopRequested(): boolean {
    return this.stopReason !== null || (this.signals?.stopRequested ?? false);
  }

  private log(...lines: string[]): void {
    this.reporter.log(...lines);
  }

  private epochAt(pos: DataPosition): number {
    const L = this.plan.stepsPerEpoch * this.plan.samplesPerStep;
    return pos.epoch + Math.min(1, pos.globalSamplePosition / L);
  }

  /** Micro-batches from `start`, epoch after epoch, without end. */
  private async *microBatches(start: DataPosition): AsyncGenerator<Batch> {
    let pos = start;
    for (;;) {
      const epoch = pos.epoch;
      let last: DataPosition = { epoch: epoch + 1, globalSamplePosition: 0 };
      let any = false;
      for await (const b of this.trainLoader.batches(pos)) {
        any = true;
        last = b.position;
        yield b;
      }
      pos = last.epoch === epoch ? { epoch: epoch + 1, globalSamplePosition: 0 } : last;
      if (!any && pos.epoch > epoch + 1) throw new CtclipError('DATA_ERROR', 'the training loader yielded no batches');
    }
  }

  /** Trains to the end of the plan (or a stop request); see the module comment. */
  async fit(): Promise<TrainResult> {
    const cfg = this.config;
    const T = this.plan.maxSteps;
    const base = cfg.training.learning_rate;
    const evalEvery = this.plan.evalEvery;
    const saveEvery = this.plan.saveEvery;
    // The breakdown averages over exactly the steps since the previous report (window = the cadence).
    const profileEvery =
      cfg.logging.profile_timing === true ? 100 : cfg.logging.profile_timing === false ? 0 : cfg.logging.profile_timing;
    const p = this.progress;
    const loop: Loop = {
      micro: this.microBatches(p.position),
      pending: null,
      currentEpoch: p.position.epoch,
      profile: profileEvery > 0 ? new ProfileTimer({ window: profileEvery }) : null,
      eta: new EtaEstimator({ totalSteps: T, startStep: p.step, elapsedOffset: p.elapsedSeconds }),
      dataWindow: new MeanWindow(100),
      stepWindow: new MeanWindow(100),
      stopAgreed: false,
      consecutiveSkipped: 0,
      startElapsed: p.elapsedSeconds,
      wallStart: 0,
    };
    let status: TrainStatus = 'completed';
    const distributed = this.group !== null;
    let failure: { error: unknown } | null = null;

    if (p.step >= T) {
      this.log(`Nothing to train: the run is already at step ${p.step} of ${T}.`);
    }
    this.model.train();
    loop.eta.start();
    loop.wallStart = performance.now();
    try {
      while (p.step < T) {
        // One process stops between steps; ranks stop after the step in which any of them asked (all-reduced).
        if (distributed ? loop.stopAgreed : this.stopRequested) break;
        const k = p.step + 1;
        const lr = lrAt(k, base, this.plan.schedule);
        const attempt = await this.runStep(loop, k, lr);
        if (attempt.res.skipped) {
          this.afterSkipped(loop, k, lr, attempt);
          continue;
        }
        this.afterStep(loop, k, lr, attempt);

        const isLast = k === T;
        const doEval = isLast || (evalEvery !== null && k % evalEvery === 0);
        const doSave = doEval || (saveEvery !== null && k % saveEvery === 0);
        if (doEval || doSave) {
          p.elapsedSeconds = elapsedSeconds(loop);
          await loop.eta.paused(async () => {
            const outcome = doEval ? await this.validate() : null;
            await this.save(outcome ? 'eval' : 'periodic', outcome);
          });
          this.model.train();
        }
      }
      if ((distributed ? loop.stopAgreed : this.stopRequested) && p.step < T) {
        status = this.signals?.stopRequested ? 'interrupted' : 'stopped';
        if (p.step > 0 && this.lastSavedStep !== p.step) {
          p.elapsedSeconds = elapsedSeconds(loop);
          await this.save(status === 'interrupted' ? 'interrupt' : 'stop', null);
        } else if (p.step === 0) {
          this.log('Stopped before the first step: nothing to save.');
        }
      }
    } catch (e) {
      failure = { error: e };
    } finally {
      this.reporter.stop();
      if (loop.pending) {
        const r = await loop.pending.catch(() => null);
        if (r && !r.done) r.value.release();
      }
      await loop.micro.return(undefined).catch(() => undefined);
    }
    if (failure) {
      await this.closeFailed(failure.error);
      throw failure.error;
    }
    return this.finish(status);
  }

  /**
   * One attempt at optimizer step `k`: its A micro-batches (the next one is requested while the native step runs;
   * tokenized here), the native step at `lr`, then the run position, the profile and the epoch brought up to date.
   */
  private async runStep(loop: Loop, k: number, lr: number): Promise<StepAttempt> {
    const p = this.progress;
    const A = this.plan.gradAccumSteps;
    const maxLength = this.config.model.text_encoder.max_length;
    const distributed = this.group !== null;
    const profile = loop.profile;
    const t0 = performance.now();
    let dataTime = 0;
    let result: CTClipStepResult | null = null;
    const inject = this.faults.nonFiniteAt(k);
    const batches: Batch[] = [];
    const inputs: { inputIds: TensorHandle; attentionMask: TensorHandle; volumes: TensorHandle }[] = [];
    try {
      for (let a = 0; a < A; a++) {
        const td = performance.now();
        const r: IteratorResult<Batch> = await (loop.pending ?? loop.micro.next());
        dataTime += (performance.now() - td) / 1000;
        loop.pending = null;
        if (r.done) throw new CtclipError('DATA_ERROR', 'the training data ended unexpectedly');
        const batch = r.value;
        batches.push(batch);
        loop.pending = loop.micro.next();
        // Read ahead while the step runs: a loader error (e.g. the bad-sample budget) must not become an
        // unhandled rejection before it is awaited; it is thrown where the next micro-batch is awaited.
        loop.pending.catch(() => undefined);
        if (batch.epoch !== loop.currentEpoch) {
          loop.currentEpoch = batch.epoch;
          this.log(`--- Epoch ${loop.currentEpoch} ---`);
        }
        const tt = performance.now();
        const enc = this.tokenizer.encodeBatch(batch.reports, maxLength);
        const { inputIds, attentionMask } = textTensors(enc);
        inputs.push({ inputIds, attentionMask, volumes: batchVolumes(batch) });
        profile?.add('tokenize', performance.now() - tt);
      }
      // Distributed: the stop request travels with the step's decisions, so every rank stops after the same step.
      result = await this.model.trainStepBatches(inputs, lr, {
        injectNonFiniteGrad: inject,
        stopRequested: distributed && this.stopRequested,
      });
    } finally {
      for (const x of inputs) {
        x.volumes.dispose();
        x.inputIds.dispose();
        x.attentionMask.dispose();
      }
      for (const b of batches) b.release();
    }
    const res = result as CTClipStepResult;
    const fwd = res.timings.forwardMs;
    const bwd = res.timings.backwardMs;
    p.position = batches[batches.length - 1].position;
    p.microBatches += A;
    if (res.stopRequested) loop.stopAgreed = true;
    const stepTime = (performance.now() - t0) / 1000;
    if (profile) {
      profile.add('data', dataTime * 1000);
      // forward = spatial + temporal (CTViT) + text (BERT) + heads (projections) + loss (the rest: loss,
      // all-gathers, feature-cache bookkeeping); host clocks, no device sync.
      const t = res.timings;
      const parts = (t.spatialMs ?? 0) + (t.temporalMs ?? 0) + (t.textMs ?? 0) + (t.headsMs ?? 0);
      profile.add('forward_spatial', t.spatialMs ?? 0);
      profile.add('forward_temporal', t.temporalMs ?? 0);
      profile.add('forward_text', t.textMs ?? 0);
      profile.add('heads', t.headsMs ?? 0);
      profile.add('loss', Math.max(0, fwd - parts));
      profile.add('backward', bwd);
      profile.add('optimizer', res.timings.optimizerMs);
      if (res.timings.allReduceMs) profile.add('allreduce', res.timings.allReduceMs);
      profile.endStep(stepTime * 1000);
    }
    p.epoch = this.epochAt(p.position);
    return { res, batches, stepTime, dataTime };
  }

  /** A skipped attempt: the warning, the 'step' event (skipped), and NON_FINITE once the cap is reached. */
  private afterSkipped(loop: Loop, k: number, lr: number, { res, batches, stepTime, dataTime }: StepAttempt): void {
    const p = this.progress;
    const maxSkipped = this.config.training.max_consecutive_skipped_steps;
    p.skippedSteps += 1;
    loop.consecutiveSkipped += 1;
    process.stderr.write(
      `warning: step ${k} skipped: non-finite loss or gradients (loss ${res.loss}, grad norm ${res.gradNorm}); its batch is consumed, the LR schedule does not advance (${p.skippedSteps} skipped so far); ${loop.consecutiveSkipped} in a row${maxSkipped !== null ? ` (the run stops at training.max_consecutive_skipped_steps = ${maxSkipped})` : ''}\n`,
    );
    this.emit('step', {
      step: p.step,
      totalSteps: this.plan.maxSteps,
      epoch: p.epoch,
      loss: res.loss,
      lr,
      gradNorm: res.gradNorm,
      temperature: res.temperature,
      skipped: true,
      stepTime,
      dataTime,
    } satisfies StepEvent);
    // Every rank takes the same skip decisions (all-reduced), so every rank stops here together.
    if (maxSkipped !== null && loop.consecutiveSkipped >= maxSkipped)
      throw this.tooManySkipped(loop.consecutiveSkipped, maxSkipped, k, res, batches);
  }

  /** Optimizer step `k` done: the run position, the progress line and 'train' record (on cadence), the 'step' event. */
  private afterStep(loop: Loop, k: number, lr: number, { res, stepTime, dataTime }: StepAttempt): void {
    const p = this.progress;
    const cfg = this.config;
    const T = this.plan.maxSteps;
    loop.consecutiveSkipped = 0;
    p.step = k;
    p.lastLr = lr;
    loop.eta.stepDone(k);
    loop.dataWindow.push(dataTime);
    loop.stepWindow.push(stepTime);
    this.faults.afterStep(k);
    if (k === 1 || k % cfg.logging.log_every_n_steps === 0) {
      const mem = processMemory();
      const meanStep = loop.stepWindow.mean();
      this.reporter.progress(
        {
          step: k,
          totalSteps: T,
          epoch: p.epoch,
          loss: res.loss,
          lr,
          stepTime: loop.eta.meanStepTime() ?? stepTime,
          eta: loop.eta.eta(),
          elapsed: loop.eta.elapsed(),
        },
        {
          rssBytes: mem.rssBytes,
          peakRssBytes: mem.peakRssBytes,
          dataTime: loop.dataWindow.mean(),
          stepTime: meanStep,
        },
      );
      const samplesPerS = meanStep > 0 ? this.plan.samplesPerStep / meanStep : 0;
      this.runLog.train(k, p.epoch, {
        loss: res.loss,
        lr,
        grad_norm: res.gradNorm,
        temperature: res.temperature,
        step_time: stepTime,
        data_time: dataTime,
        samples_per_s: samplesPerS,
        skipped_steps: p.skippedSteps,
        ...(res.lossScale !== undefined && cfg.training.mixed_precision === 'fp16'
          ? { loss_scale: res.lossScale }
          : {}),
        rss_gb: mem.rssBytes / GiB,
      });
    }
    if (loop.profile && ProfileTimer.due(k, cfg.logging.profile_timing)) this.log(...loop.profile.report());
    this.emit('step', {
      step: k,
      totalSteps: T,
      epoch: p.epoch,
      loss: res.loss,
      lr,
      gradNorm: res.gradNorm,
      temperature: res.temperature,
      skipped: false,
      stepTime,
      dataTime,
    } satisfies StepEvent);
  }

  /**
   * The run failed inside the loop: the `end` event (status 'failed', with the error's message and code), the run
   * report and the loaders are closed as at a normal end; no checkpoint is written. The caller rethrows.
   */
  private async closeFailed(e: unknown): Promise<void> {
    const p = this.progress;
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : String(e);
    this.log(
      `Training failed at step ${p.step}/${this.plan.maxSteps}${this.lastSavedStep !== null ? ` (last checkpoint written by this run: step ${this.lastSavedStep})` : ''}.`,
    );
    this.endRunLog({ status: 'failed', error: message, ...(typeof code === 'string' ? { code } : {}) });
    const reportPath = await this.writeReport();
    if (reportPath) this.log(`Report: ${reportPath}`);
    this.log(`Run directory: ${this.runDir.root}`);
    await this.trainLoader.close().catch(() => undefined);
    await this.evalLoader.close().catch(() => undefined);
  }

  /** NON_FINITE: the skipped-step cap was reached; names every sample of the last skipped step (shard file and key). */
  private tooManySkipped(n: number, cap: number, k: number, res: CTClipStepResult, batches: Batch[]): CtclipError {
    const index = this.trainLoader.index;
    const samples: string[] = [];
    for (const b of batches) {
      b.keys.forEach((key, i) => {
        const s = index.samples[b.indices[i]];
        samples.push(`${s ? index.shardPaths[s.shard] : '?'} key '${key}'`);
      });
    }
    const resumeFrom = this.lastSavedStep ?? (this.resumedFrom ? this.progress.step : null);
    return new CtclipError(
      'NON_FINITE',
      `${n} consecutive training steps had a non-finite loss or gradient norm and were skipped (training.max_consecutive_skipped_steps = ${cap}); ` +
        `stopped before step ${k}. The last attempt (loss ${res.loss}, grad norm ${res.gradNorm}) used ${samples.length} sample(s)${this.group ? ` on rank ${this.group.rank}` : ''}: ${samples.join('; ')}. ` +
        `${resumeFrom !== null ? `The last checkpoint (step ${resumeFrom}) is untouched.` : 'No checkpoint was written.'} ` +
        `Check those samples and the weights, or lower training.learning_rate; raise the cap or set it to null to keep skipping.`,
    );
  }

  private async finish(status: TrainStatus): Promise<TrainResult> {
    const p = this.progress;
    const T = this.plan.maxSteps;
    if (status === 'completed') {
      this.log('', '='.repeat(80), 'Training Complete!', '='.repeat(80));
    } else {
      this.log(
        `Training ${status} at step ${p.step}/${T}${this.stopReason ? ` (${this.stopReason})` : ''}. Resume with --resume latest.`,
      );
    }
    if (p.best) this.log(`Best ${p.best.metric}: ${p.best.value.toFixed(4)} (step ${p.best.step})`);
    const badLine = formatBadSamples(this.endRunLog({ status }));
    if (badLine) this.log(badLine);
    const reportPath = await this.writeReport();
    if (this.wandbLines.length) this.log(...this.wandbLines);
    // Nobody leaves (and rank 0 does not take its store down) before every rank has finished.
    await this.group?.barrier('end of training');
    this.log(`Run directory: ${this.runDir.root}`);
    if (reportPath) this.log(`Report: ${reportPath}`);
    await this.trainLoader.close();
    await this.evalLoader.close();
    this.runLock?.release();
    return {
      status,
      step: p.step,
      totalSteps: T,
      best: p.best,
      lastValidation: this.lastValidation,
      runDir: this.runDir.root,
      reportPath,
      exitCode: status === 'interrupted' ? (this.signals?.exitCode ?? 130) : 0,
    };
  }

  /**
   * The `end` record (`fields`, then the per-reason counts of the samples lost at index and read time, which it
   * returns for the console and the run report), then the sink is closed.
   */
  private endRunLog(fields: Record<string, unknown>): ReturnType<typeof badSamplesEvent> {
    const p = this.progress;
    const badSamples = badSamplesEvent({ train: this.trainLoader.stats(), val: this.evalLoader.stats() });
    this.runLog.event('end', p.step, p.epoch, { ...fields, bad_samples: badSamples });
    this.runLog.close();
    return badSamples;
  }

  /** Rank 0: report.html in the run directory (null, with a warning, when it cannot be written; other ranks: null). */
  private async writeReport(): Promise<string | null> {
    if (!this.isMain) return null;
    try {
      return await writeRunReport(this.runDir.root);
    } catch (e) {
      process.stderr.write(`warning: could not write the run report: ${(e as Error).message}\n`);
      return null;
    }
  }

  /**
   * Zero-shot validation at the current step: console lines, metrics.jsonl, TensorBoard, the 'eval' event.
   * Distributed: every rank scores its share of the fixed subset; rank 0 gathers the scores by study, computes the
   * metrics and returns them; the other ranks return null.
   */
  async validate(): Promise<ValidationOutcome | null> {
    const p = this.progress;
    const cfg = this.config;
    this.log(...validationHeaderLines(p.step, p.epoch));
    const outcome = await runValidation(this.model, this.tokenizer, this.evalLoader, this.classNames, cfg, {
      onProgress: (done, total) =>
        this.reporter.status(`Validating ${done}/${total}${this.group ? ` (rank 0's share)` : ''}`),
      group: this.group,
    });
    p.lastEvalStep = p.step;
    if (!outcome) return null;
    this.lastValidation = outcome;
    const selection = cfg.checkpoint.best_metric;
    this.log(...formatValidationResults(p.step, outcome.numSamples, outcome.logged, selection));
    this.log(formatValidationLine(p.step, outcome.logged));
    this.runLog.val(p.step, p.epoch, outcome.logged, outcome.perClassAuroc, {
      n_valid_classes: outcome.metrics.n_valid_classes,
      n_samples: outcome.numSamples,
      seconds: outcome.seconds,
      per_class: outcome.metrics.per_class,
    });
    this.emit('eval', { step: p.step, epoch: p.epoch, outcome } satisfies EvalEvent);
    return outcome;
  }

  /** Ranks 1…W−1's dropout generator states (on rank 0; the same-size byte strings of every rank, all-gathered). */
  private async gatherDropoutStates(): Promise<Uint8Array[]> {
    const group = this.group as ProcessGroup;
    const own = this.model.rngState();
    try {
      const bytes = readTensor(own.dropout).data as Uint8Array;
      const all = await group.allGather(tensorFromBuffer(new Uint8Array(bytes), 'uint8', [1, bytes.length]));
      try {
        const data = readTensor(all).data as Uint8Array;
        return Array.from({ length: group.worldSize - 1 }, (_, i) =>
          data.slice((i + 1) * bytes.length, (i + 2) * bytes.length),
        );
      } finally {
        all.dispose();
      }
    } finally {
      own.init.dispose();
      own.dropout.dispose();
    }
  }

  /**
   * Saves a checkpoint of the current state (with the validation's metrics when it evaluated). Distributed: rank 0
   * writes, then every rank meets at a barrier (so nobody races ahead of a checkpoint); other ranks return null.
   */
  async save(kind: CheckpointEvent['kind'], outcome: ValidationOutcome | null): Promise<SaveResult | null> {
    const p = this.progress;
    const cfg = this.config;
    const step = p.step;
    // Every rank's dropout stream goes into the checkpoint, so a resumed data-parallel run continues exactly.
    const rankDropoutStates = this.group ? await this.gatherDropoutStates() : undefined;
    if (!this.isMain) {
      this.lastSavedStep = step;
      await this.group?.barrier(`checkpoint of step ${step}`);
      return null;
    }
    const metric = cfg.checkpoint.best_metric;
    // Best so far (persisted in schedule.json; the manager keeps its own pointer from meta.json).
    if (outcome && cfg.checkpoint.save_best) {
      const v = outcome.logged[metric];
      const better =
        Number.isFinite(v) &&
        (p.best === null || (cfg.checkpoint.best_metric_mode === 'max' ? v > p.best.value : v < p.best.value));
      if (better) p.best = { metric, mode: cfg.checkpoint.best_metric_mode, value: v, step };
    }
    const parts = checkpointParts({
      model: this.model,
      config: cfg,
      progress: p,
      geometry: {
        samples: this.plan.samples,
        batchSize: this.plan.batchSize,
        worldSize: this.plan.worldSize,
        gradAccumSteps: this.plan.gradAccumSteps,
        stepsPerEpoch: this.plan.stepsPerEpoch,
      },
      schedule: { baseLr: cfg.training.learning_rate, ...this.plan.schedule },
      validation: outcome
        ? { ...outcome.metrics, bootstrap: outcome.bootstrap, num_samples: outcome.numSamples }
        : undefined,
      rankDropoutStates,
      faultBeforeModelWrite: this.faults.beforeModelWrite(step),
    });
    const meta = { metrics: outcome ? { ...outcome.logged } : {}, epoch: p.epoch, kind };
    const result = await this.checkpoints.save(step, parts, meta);
    this.lastSavedStep = step;
    await this.group?.barrier(`checkpoint of step ${step}`);
    this.runLog.event('checkpoint', step, p.epoch, { path: result.path, kind, best: result.isBest });
    if (result.isBest && outcome) this.runLog.event('best', step, p.epoch, { metric, value: outcome.logged[metric] });
    this.emit('checkpoint', { step, path: result.path, isBest: result.isBest, kind } satisfies CheckpointEvent);
    return result;
  }
}

/** Seconds of training so far: the resumed run's plus this process's. */
function elapsedSeconds(loop: Loop): number {
  return loop.startElapsed + (performance.now() - loop.wallStart) / 1000;
}

/** Where the progress lines of ranks other than 0 go. */
function silentStream(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

// Re-exported for lib/commands/train.ts and tests.
export { loadModelWeights };
