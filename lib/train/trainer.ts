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
 */
import { EventEmitter } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { CheckpointManager, MODEL_PART, type CheckpointManagerOptions, type SaveResult } from '../checkpoint';
import type { Config } from '../config/schema';
import { EvalLoader, TrainLoader, badSamplesEvent, formatBadSamples, type Batch } from '../data/loader';
import type { DataPosition } from '../data/sampler';
import { openIndex } from '../data/shard-index';
import { CtclipError } from '../errors';
import {
  EtaEstimator,
  MetricsJsonlWriter,
  ProfileTimer,
  ProgressReporter,
  TensorBoardWriter,
  formatValidationLine,
  formatValidationResults,
  processMemory,
  validationHeaderLines,
  wandbPlan,
  writeRunReport,
} from '../logging';
import { describeDeviceConfig, deviceForConfig, launchedLocalRank } from '../model/device';
import { textTensors, type CTClip, type CTClipStepResult } from '../model/ctclip';
import { buildModel, resolveClassNames } from '../model/factory';
import { loadWeightsInto } from '../model/load-weights';
import { formatPlan, planRun, type RunPlan } from '../plan';
import { configureThreads } from '../runtime';
import { lrAt } from '../schedule';
import type { Tokenizer } from '../text/tokenizer';
import type { WeightsReport } from '../weights';
import { checkpointParts, loadModelWeights, restoreCheckpoint, type TrainProgress } from './checkpoint-io';
import { ensureRunDir, lockRunDir, type RunDir } from './run-dir';
import type { RunLock } from '../checkpoint/run-lock';
import { writeFileAtomicSync } from '../io/atomic';
import type { StopSignals } from './signals';
import { runValidation, type ValidationOutcome } from './validate';
import { batchVolumes, evalLoaderFor } from '../eval/loader';
import type { ProcessGroup } from '../dist/group';
import type { TensorHandle } from '../native';
import { readTensor, tensorFromBuffer } from '../tensor';
import { Rng } from '../rng';
import { Writable } from 'stream';

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

/** Test-only fault injection (README "Training" → tests; set through CTCLIP_TEST_FAULT by lib/train.ts). */
export interface FaultInjection {
  /** SIGKILL this process right after optimizer step N (before its validation/checkpoint). */
  killAfterStep?: number;
  /** SIGKILL this process inside the save of step N, after every file is written and before the rename. */
  killBeforeCommitStep?: number;
  /** Make the save of step N fail with ENOSPC while writing the model part. */
  enospcStep?: number;
  /** Make the first attempt at optimizer step N non-finite (native injectNonFiniteGrad): it must be skipped. */
  nonFiniteStep?: number;
  /** Make EVERY attempt at optimizer step N and later non-finite (the run can only end by the skipped-step cap). */
  nonFiniteFromStep?: number;
}

export interface TrainerOptions {
  config: Config;
  /** 'latest' | 'best' | a checkpoint path. */
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
  private readonly faults: FaultInjection;
  private stopReason: string | null = null;
  private metrics: MetricsJsonlWriter | null = null;
  private tensorboard: TensorBoardWriter | null = null;
  private lastValidation: ValidationOutcome | null = null;
  private lastSavedStep: number | null = null;
  private injectedNonFinite = false;
  /** The checkpoint this run resumed from (null for a fresh run). */
  readonly resumedFrom: string | null;
  private readonly wandbLines: string[];
  /** The process group (null: one process). */
  readonly group: ProcessGroup | null;
  /** The run directory's lock (rank 0; null on other ranks), released at the end of `fit()`. */
  runLock: RunLock | null = null;

  private constructor(init: {
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
    faults: FaultInjection;
    resumedFrom: string | null;
    wandbLines: string[];
    group: ProcessGroup | null;
  }) {
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
    const worldSize = group?.worldSize ?? 1;
    const rank = group?.rank ?? 0;
    const isMain = rank === 0;
    // Only rank 0 prints progress; the others keep warnings and errors (stderr).
    const reporter = isMain ? (opts.reporter ?? new ProgressReporter()) : new ProgressReporter({ stream: silentStream(), tty: false });
    const log = (...lines: string[]) => reporter.log(...lines);
    if (!cfg.data.webdataset_shards_train) throw new CtclipError('CONFIG_ERROR', 'data.webdataset_shards_train is not set');
    if (!cfg.data.webdataset_shards_val) throw new CtclipError('CONFIG_ERROR', 'data.webdataset_shards_val is not set (validation needs it)');
    // Before anything heavy: a second trainer on this run directory stops here, having written nothing.
    held.lock = await lockRunDir(cfg.checkpoint.save_dir, group);

    const threads = configureThreads(cfg.training.threads);
    const index = openIndex(cfg.data.webdataset_shards_train, { missingShards: cfg.data.missing_shards });
    const valIndex = openIndex(cfg.data.webdataset_shards_val, { missingShards: cfg.data.missing_shards });
    const plan = planRun(cfg, { samples: index.samples.length, worldSize });
    log(...formatPlan(plan));
    const classNames = resolveClassNames(cfg, valIndex, 'validation shards');
    if (index.numClasses && index.numClasses !== classNames.length) {
      throw new CtclipError('CONFIG_ERROR', `the training shards have ${index.numClasses} labels per sample but there are ${classNames.length} class names`);
    }
    if (valIndex.numClasses !== classNames.length) {
      throw new CtclipError('CONFIG_ERROR', `the validation shards have ${valIndex.numClasses} labels per sample but there are ${classNames.length} class names (${cfg.data.labels_valid ?? 'data.class_names'})`);
    }

    // Rank r > 0 gets its own dropout stream; its initial weights are replaced by rank 0's (broadcast below).
    const seed = rank > 0 ? Rng.derive(cfg.experiment.seed, 'model', 'rank', rank).nextUint32() : undefined;
    const localRank = group ? group.env.localRank : launchedLocalRank();
    const device = opts.device ?? deviceForConfig(cfg, localRank);
    const { model, tokenizer } = buildModel(cfg, { seed });
    // On its device before any weights are restored or broadcast: loads copy the (CPU) checkpoint tensors there.
    await model.to(device);
    const info = model.info();
    log(`Model: ${info.parameterCount.toLocaleString('en-US')} parameters (${info.trainableParameterCount.toLocaleString('en-US')} trainable), ${info.precision}, device ${info.device} (${describeDeviceConfig(cfg.device, localRank)}), ${threads} threads${group ? ` per rank` : ''}`);
    if (group) {
      log(
        `Data parallel: ${worldSize} ranks (${group.backend}, timeout ${(group.timeoutMs / 60000).toFixed(1)} min), ` +
          `loss over ${cfg.model.loss.gather ? `the global batch of ${cfg.data.batch_size * worldSize * cfg.training.gradient_accumulation_steps}${cfg.model.loss.local_loss ? ' (local rows)' : ' (full loss on every rank)'}` : `each rank's micro-batch of ${cfg.data.batch_size} (loss.gather false)`}`,
      );
    }

    const runDir = ensureRunDir(cfg.checkpoint.save_dir);
    const checkpoints = new CheckpointManager({
      dir: runDir.checkpoints,
      keepLastN: cfg.checkpoint.keep_last_n,
      bestMetric: cfg.checkpoint.save_best ? cfg.checkpoint.best_metric : null,
      bestMode: cfg.checkpoint.best_metric_mode,
      onLog: (message, level) => (level === 'warn' ? process.stderr.write(`warning: ${message}\n`) : log(message)),
      hooks: checkpointHooks(opts),
      readOnly: !isMain,
    });

    const stepsPerEpoch = plan.stepsPerEpoch;
    let progress: TrainProgress = {
      step: 0,
      skippedSteps: 0,
      microBatches: 0,
      position: { epoch: 0, globalSamplePosition: 0 },
      epoch: 0,
      lastLr: 0,
      best: null,
      elapsedSeconds: 0,
      lastEvalStep: null,
    };
    let resumedFrom: string | null = null;
    if (opts.resume && opts.initFrom) throw new CtclipError('ARGUMENT_ERROR', '--resume and --init-from cannot be combined (--init-from starts a new run)');
    if (opts.resume) {
      const which = opts.resume;
      const found = await checkpoints.resolve(which);
      if (!found) {
        if (which === 'latest') log(`No checkpoint found in ${runDir.checkpoints}: starting fresh`);
        else throw new CtclipError('ARGUMENT_ERROR', `--resume best: there is no best checkpoint in ${runDir.checkpoints}`);
      } else {
        const loadOptimizer = opts.loadOptimizer ?? true;
        const r = await restoreCheckpoint(model, found.path, { loadOptimizer, seed: cfg.experiment.seed, rank, samples: index.samples.length });
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        progress = r.progress;
        resumedFrom = found.path;
        const g = r.geometry;
        if (g && (g.batchSize !== cfg.data.batch_size || g.worldSize !== worldSize || g.gradAccumSteps !== cfg.training.gradient_accumulation_steps)) {
          log(
            `Note: the data geometry changed since the checkpoint (batch ${g.batchSize} → ${cfg.data.batch_size}, world size ${g.worldSize} → ${worldSize}, ` +
              `accumulation ${g.gradAccumSteps} → ${cfg.training.gradient_accumulation_steps}): the rest of epoch ${progress.position.epoch} continues after sample position ` +
              `${progress.position.globalSamplePosition} with the new geometry (no sample is repeated); later epochs use the new geometry.`,
          );
        }
        log(
          `Resumed from ${found.path}: step ${progress.step}, epoch ${progress.epoch.toFixed(2)}, data position {epoch ${progress.position.epoch}, sample ${progress.position.globalSamplePosition}}` +
            (loadOptimizer ? '' : ' (--no-load-optimizer: AdamW moments and loss scaler start fresh)'),
        );
      }
    } else if (opts.initFrom) {
      await initFromWeights(model, opts.initFrom, log);
    } else if (cfg.model.text_encoder.path) {
      const r = await loadWeightsInto(model, { kind: 'hf-bert', dir: cfg.model.text_encoder.path });
      if (r.unexpected.length) throw new CtclipError('DATA_ERROR', `${cfg.model.text_encoder.path}: keys that do not fit the text encoder: ${r.unexpected.slice(0, 5).join(', ')}`);
      log(`Text encoder initialised from ${cfg.model.text_encoder.path}`);
    }

    if (group) {
      // Identical starting weights and codebooks everywhere (after any resume/init, which every rank did alike).
      model.setDistributed(group.handle);
      await model.broadcastState(0);
    }

    const trainLoader = new TrainLoader(index, {
      batchSize: cfg.data.batch_size,
      worldSize,
      rank,
      gradAccumSteps: cfg.training.gradient_accumulation_steps,
      seed: cfg.experiment.seed,
      prefetch: cfg.data.prefetch_factor,
      readers: cfg.data.num_workers,
      maxBadSamples: cfg.data.max_bad_samples,
      maxReportBytes: cfg.data.max_report_bytes,
    });
    const evalLoader = evalLoaderFor(cfg, valIndex, cfg.validation.eval_samples, { rank, worldSize });
    log(trainLoader.summary());
    log(`validation: ${evalLoader.chosen.length} of ${valIndex.samples.length} samples (fixed seeded subset), ${classNames.length} classes, prompts '${cfg.validation.prompts.positive}' / '${cfg.validation.prompts.negative}'`);
    if (stepsPerEpoch !== trainLoader.stepsPerEpoch) throw new CtclipError('PLAN_ERROR', `plan and loader disagree on steps per epoch (${stepsPerEpoch} vs ${trainLoader.stepsPerEpoch})`);

    if (isMain) {
      writeFileAtomicSync(runDir.config, YAML.stringify(cfg));
      writeFileAtomicSync(runDir.evalSubset, `${JSON.stringify({ seed: cfg.experiment.seed, eval_samples: cfg.validation.eval_samples, study_ids: evalLoader.chosenStudyIds() }, null, 2)}\n`);
    }
    const wb = wandbPlan(runDir.root, cfg.logging);
    const trainer = new Trainer({
      config: cfg,
      plan,
      runDir,
      model,
      tokenizer,
      trainLoader,
      evalLoader,
      classNames,
      checkpoints,
      reporter,
      progress,
      signals: opts.signals ?? null,
      faults: opts.faults ?? {},
      resumedFrom,
      wandbLines: isMain ? wb.lines : [],
      group,
    });
    if (isMain) {
      trainer.metrics = MetricsJsonlWriter.open(runDir.root, { resumeStep: resumedFrom ? progress.step : undefined });
      if (wb.useTensorboard) trainer.tensorboard = new TensorBoardWriter(runDir.tensorboard);
      if (wb.lines.length) log(...wb.lines);
    }
    return trainer;
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
    const A = this.plan.gradAccumSteps;
    const base = cfg.training.learning_rate;
    const logEvery = cfg.logging.log_every_n_steps;
    const evalEvery = this.plan.evalEvery;
    const saveEvery = this.plan.saveEvery;
    // The breakdown averages over exactly the steps since the previous report (window = the cadence).
    const profileEvery = cfg.logging.profile_timing === true ? 100 : cfg.logging.profile_timing === false ? 0 : cfg.logging.profile_timing;
    const profile = profileEvery > 0 ? new ProfileTimer({ window: profileEvery }) : null;
    const eta = new EtaEstimator({ totalSteps: T, startStep: this.progress.step, elapsedOffset: this.progress.elapsedSeconds });
    const dataWindow = new MeanWindow(100);
    const stepWindow = new MeanWindow(100);
    const maxLength = cfg.model.text_encoder.max_length;
    const p = this.progress;
    let status: TrainStatus = 'completed';
    const distributed = this.group !== null;
    let stopAgreed = false;
    const maxSkipped = cfg.training.max_consecutive_skipped_steps;
    let consecutiveSkipped = 0;
    let failure: { error: unknown } | null = null;

    if (p.step >= T) {
      this.log(`Nothing to train: the run is already at step ${p.step} of ${T}.`);
    }
    this.model.train();
    const micro = this.microBatches(p.position);
    let pending: Promise<IteratorResult<Batch>> | null = null;
    let currentEpoch = p.position.epoch;
    eta.start();
    const startElapsed = p.elapsedSeconds;
    const wallStart = performance.now();
    try {
      while (p.step < T) {
        // One process stops between steps; ranks stop after the step in which any of them asked (all-reduced).
        if (distributed ? stopAgreed : this.stopRequested) break;
        const k = p.step + 1;
        const lr = lrAt(k, base, this.plan.schedule);
        const t0 = performance.now();
        let dataTime = 0;
        let result: CTClipStepResult | null = null;
        let fwd = 0;
        let bwd = 0;
        const inject = (this.faults.nonFiniteStep === k && !this.injectedNonFinite) || (this.faults.nonFiniteFromStep !== undefined && k >= this.faults.nonFiniteFromStep);
        if (inject) this.injectedNonFinite = true;
        // The step's A micro-batches (the loader reads ahead while the native step runs).
        const batches: Batch[] = [];
        const inputs: { inputIds: TensorHandle; attentionMask: TensorHandle; volumes: TensorHandle }[] = [];
        try {
          for (let a = 0; a < A; a++) {
            const td = performance.now();
            const r: IteratorResult<Batch> = await (pending ?? micro.next());
            dataTime += (performance.now() - td) / 1000;
            pending = null;
            if (r.done) throw new CtclipError('DATA_ERROR', 'the training data ended unexpectedly');
            const batch = r.value;
            batches.push(batch);
            pending = micro.next();
            // Read ahead while the step runs: a loader error (e.g. the bad-sample budget) must not become an
            // unhandled rejection before it is awaited; it is thrown where the next micro-batch is awaited.
            pending.catch(() => undefined);
            if (batch.epoch !== currentEpoch) {
              currentEpoch = batch.epoch;
              this.log(`--- Epoch ${currentEpoch} ---`);
            }
            const tt = performance.now();
            const enc = this.tokenizer.encodeBatch(batch.reports, maxLength);
            const { inputIds, attentionMask } = textTensors(enc);
            inputs.push({ inputIds, attentionMask, volumes: batchVolumes(batch) });
            profile?.add('tokenize', performance.now() - tt);
          }
          // Distributed: the stop request travels with the step's decisions, so every rank stops after the same step.
          result = await this.model.trainStepBatches(inputs, lr, { injectNonFiniteGrad: inject, stopRequested: distributed && this.stopRequested });
        } finally {
          for (const x of inputs) {
            x.volumes.dispose();
            x.inputIds.dispose();
            x.attentionMask.dispose();
          }
          for (const b of batches) b.release();
        }
        fwd = (result as CTClipStepResult).timings.forwardMs;
        bwd = (result as CTClipStepResult).timings.backwardMs;
        p.position = batches[batches.length - 1].position;
        p.microBatches += A;
        const res = result as CTClipStepResult;
        if (res.stopRequested) stopAgreed = true;
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
        if (res.skipped) {
          p.skippedSteps += 1;
          consecutiveSkipped += 1;
          process.stderr.write(`warning: step ${k} skipped: non-finite loss or gradients (loss ${res.loss}, grad norm ${res.gradNorm}); its batch is consumed, the LR schedule does not advance (${p.skippedSteps} skipped so far); ${consecutiveSkipped} in a row${maxSkipped !== null ? ` (the run stops at training.max_consecutive_skipped_steps = ${maxSkipped})` : ''}\n`);
          this.emit('step', { step: p.step, totalSteps: T, epoch: p.epoch, loss: res.loss, lr, gradNorm: res.gradNorm, temperature: res.temperature, skipped: true, stepTime, dataTime } satisfies StepEvent);
          // Every rank takes the same skip decisions (all-reduced), so every rank stops here together.
          if (maxSkipped !== null && consecutiveSkipped >= maxSkipped) throw this.tooManySkipped(consecutiveSkipped, maxSkipped, k, res, batches);
          continue;
        }
        consecutiveSkipped = 0;
        p.step = k;
        p.lastLr = lr;
        eta.stepDone(k);
        dataWindow.push(dataTime);
        stepWindow.push(stepTime);
        if (this.faults.killAfterStep === k) {
          process.stdout.write(`FAULT kill-after-step ${k}\n`);
          process.kill(process.pid, 'SIGKILL');
        }
        if (k === 1 || k % logEvery === 0) {
          const mem = processMemory();
          const meanStep = stepWindow.mean();
          this.reporter.progress(
            { step: k, totalSteps: T, epoch: p.epoch, loss: res.loss, lr, stepTime: eta.meanStepTime() ?? stepTime, eta: eta.eta(), elapsed: eta.elapsed() },
            { rssBytes: mem.rssBytes, peakRssBytes: mem.peakRssBytes, dataTime: dataWindow.mean(), stepTime: meanStep },
          );
          const samplesPerS = meanStep > 0 ? this.plan.samplesPerStep / meanStep : 0;
          const values = {
            loss: res.loss,
            lr,
            grad_norm: res.gradNorm,
            temperature: res.temperature,
            step_time: stepTime,
            data_time: dataTime,
            samples_per_s: samplesPerS,
            skipped_steps: p.skippedSteps,
            ...(res.lossScale !== undefined && cfg.training.mixed_precision === 'fp16' ? { loss_scale: res.lossScale } : {}),
            rss_gb: mem.rssBytes / GiB,
          };
          this.metrics?.write({ type: 'train', step: k, epoch: p.epoch, ...values });
          if (this.tensorboard) {
            const tb: Record<string, number> = { 'train/epoch': p.epoch };
            for (const [key, v] of Object.entries(values)) if (key !== 'rss_gb' && Number.isFinite(v)) tb[`train/${key}`] = v;
            this.tensorboard.addScalars(tb, k);
          }
        }
        if (profile && ProfileTimer.due(k, cfg.logging.profile_timing)) this.log(...profile.report());
        this.emit('step', { step: k, totalSteps: T, epoch: p.epoch, loss: res.loss, lr, gradNorm: res.gradNorm, temperature: res.temperature, skipped: false, stepTime, dataTime } satisfies StepEvent);

        const isLast = k === T;
        const doEval = isLast || (evalEvery !== null && k % evalEvery === 0);
        const doSave = doEval || (saveEvery !== null && k % saveEvery === 0);
        if (doEval || doSave) {
          p.elapsedSeconds = startElapsed + (performance.now() - wallStart) / 1000;
          await eta.paused(async () => {
            const outcome = doEval ? await this.validate() : null;
            await this.save(outcome ? 'eval' : 'periodic', outcome);
          });
          this.model.train();
        }
      }
      if ((distributed ? stopAgreed : this.stopRequested) && p.step < T) {
        status = this.signals?.stopRequested ? 'interrupted' : 'stopped';
        if (p.step > 0 && this.lastSavedStep !== p.step) {
          p.elapsedSeconds = startElapsed + (performance.now() - wallStart) / 1000;
          await this.save(status === 'interrupted' ? 'interrupt' : 'stop', null);
        } else if (p.step === 0) {
          this.log('Stopped before the first step: nothing to save.');
        }
      }
    } catch (e) {
      failure = { error: e };
    } finally {
      this.reporter.stop();
      if (pending) {
        const r = await pending.catch(() => null);
        if (r && !r.done) r.value.release();
      }
      await micro.return(undefined).catch(() => undefined);
    }
    if (failure) {
      await this.closeFailed(failure.error);
      throw failure.error;
    }
    return this.finish(status);
  }

  /**
   * The run failed inside the loop: the `end` event (status 'failed', with the error's message and code), the run
   * report and the loaders are closed as at a normal end; no checkpoint is written. The caller rethrows.
   */
  private async closeFailed(e: unknown): Promise<void> {
    const p = this.progress;
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : String(e);
    this.log(`Training failed at step ${p.step}/${this.plan.maxSteps}${this.lastSavedStep !== null ? ` (last checkpoint written by this run: step ${this.lastSavedStep})` : ''}.`);
    const badSamples = badSamplesEvent({ train: this.trainLoader.stats(), val: this.evalLoader.stats() });
    this.metrics?.write({ type: 'end', step: p.step, epoch: p.epoch, status: 'failed', error: message, ...(typeof code === 'string' ? { code } : {}), bad_samples: badSamples });
    this.metrics?.close();
    this.metrics = null;
    this.tensorboard?.close();
    this.tensorboard = null;
    if (this.isMain) {
      try {
        const reportPath = await writeRunReport(this.runDir.root);
        this.log(`Report: ${reportPath}`);
      } catch (err) {
        process.stderr.write(`warning: could not write the run report: ${(err as Error).message}\n`);
      }
    }
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
      this.log(`Training ${status} at step ${p.step}/${T}${this.stopReason ? ` (${this.stopReason})` : ''}. Resume with --resume latest.`);
    }
    if (p.best) this.log(`Best ${p.best.metric}: ${p.best.value.toFixed(4)} (step ${p.best.step})`);
    // Per-reason counts of the samples lost (index time and read time), for the run report.
    const badSamples = badSamplesEvent({ train: this.trainLoader.stats(), val: this.evalLoader.stats() });
    const badLine = formatBadSamples(badSamples);
    if (badLine) this.log(badLine);
    this.metrics?.write({ type: 'end', step: p.step, epoch: p.epoch, status, bad_samples: badSamples });
    this.metrics?.close();
    this.metrics = null;
    this.tensorboard?.close();
    this.tensorboard = null;
    let reportPath: string | null = null;
    if (this.isMain) {
      try {
        reportPath = await writeRunReport(this.runDir.root);
      } catch (e) {
        process.stderr.write(`warning: could not write the run report: ${(e as Error).message}\n`);
      }
    }
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
   * Zero-shot validation at the current step: console lines, metrics.jsonl, TensorBoard, the 'eval' event.
   * Distributed: every rank scores its share of the fixed subset; rank 0 gathers the scores by study, computes the
   * metrics and returns them; the other ranks return null.
   */
  async validate(): Promise<ValidationOutcome | null> {
    const p = this.progress;
    const cfg = this.config;
    this.log(...validationHeaderLines(p.step, p.epoch));
    const outcome = await runValidation(this.model, this.tokenizer, this.evalLoader, this.classNames, cfg, {
      onProgress: (done, total) => this.reporter.status(`Validating ${done}/${total}${this.group ? ` (rank 0's share)` : ''}`),
      group: this.group,
    });
    p.lastEvalStep = p.step;
    if (!outcome) return null;
    this.lastValidation = outcome;
    const selection = cfg.checkpoint.best_metric;
    this.log(...formatValidationResults(p.step, outcome.numSamples, outcome.logged, selection));
    this.log(formatValidationLine(p.step, outcome.logged));
    this.metrics?.write({ type: 'val', step: p.step, epoch: p.epoch, ...outcome.logged, n_valid_classes: outcome.metrics.n_valid_classes, n_samples: outcome.numSamples, seconds: outcome.seconds, per_class: outcome.metrics.per_class });
    if (this.tensorboard) {
      const tb: Record<string, number> = {};
      for (const [k, v] of Object.entries(outcome.logged)) if (Number.isFinite(v)) tb[`val/${k}`] = v;
      for (const [c, v] of Object.entries(outcome.perClassAuroc)) if (Number.isFinite(v)) tb[`val/per_class_auroc/${c}`] = v;
      this.tensorboard.addScalars(tb, p.step);
      this.tensorboard.flush();
    }
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
        return Array.from({ length: group.worldSize - 1 }, (_, i) => data.slice((i + 1) * bytes.length, (i + 2) * bytes.length));
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
      const better = Number.isFinite(v) && (p.best === null || (cfg.checkpoint.best_metric_mode === 'max' ? v > p.best.value : v < p.best.value));
      if (better) p.best = { metric, mode: cfg.checkpoint.best_metric_mode, value: v, step };
    }
    const faults = this.faults;
    const parts = checkpointParts({
      model: this.model,
      config: cfg,
      progress: p,
      geometry: { samples: this.plan.samples, batchSize: this.plan.batchSize, worldSize: this.plan.worldSize, gradAccumSteps: this.plan.gradAccumSteps, stepsPerEpoch: this.plan.stepsPerEpoch },
      schedule: { baseLr: cfg.training.learning_rate, ...this.plan.schedule },
      validation: outcome ? { ...outcome.metrics, bootstrap: outcome.bootstrap, num_samples: outcome.numSamples } : undefined,
      rankDropoutStates,
      faultBeforeModelWrite:
        faults.enospcStep === step
          ? () => {
              throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected by CTCLIP_TEST_FAULT)`), { code: 'ENOSPC' });
            }
          : undefined,
    });
    const meta = { metrics: outcome ? { ...outcome.logged } : {}, epoch: p.epoch, kind };
    const result = await this.checkpoints.save(step, parts, meta);
    this.lastSavedStep = step;
    await this.group?.barrier(`checkpoint of step ${step}`);
    this.metrics?.write({ type: 'checkpoint', step, epoch: p.epoch, path: result.path, kind, best: result.isBest });
    if (result.isBest && outcome) this.metrics?.write({ type: 'best', step, epoch: p.epoch, metric, value: outcome.logged[metric] });
    this.emit('checkpoint', { step, path: result.path, isBest: result.isBest, kind } satisfies CheckpointEvent);
    return result;
  }
}

/** Where the progress lines of ranks other than 0 go. */
function silentStream(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

/** The CheckpointManager hooks: the caller's, plus the kill-before-commit fault. */
function checkpointHooks(opts: TrainerOptions): CheckpointManagerOptions['hooks'] {
  const killStep = opts.faults?.killBeforeCommitStep;
  const user = opts.checkpointHooks?.beforeCommit;
  if (killStep === undefined) return opts.checkpointHooks;
  return {
    beforeCommit: async (tmpDir: string) => {
      if (user) await user(tmpDir);
      const m = /^\.tmp-ckpt-step(\d+)-/.exec(path.basename(tmpDir));
      if (m && Number(m[1]) === killStep) {
        process.stdout.write(`FAULT kill-before-commit ${killStep} ${tmpDir}\n`);
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => undefined);
      }
    },
  };
}

/** --init-from: ours (a checkpoint folder, its model.safetensors, any safetensors) or an imported torch file. */
async function initFromWeights(model: CTClip, file: string, log: (...l: string[]) => void): Promise<void> {
  if (!fs.existsSync(file)) throw new CtclipError('ARGUMENT_ERROR', `--init-from ${file}: no such file or folder`);
  let target = file;
  if (fs.statSync(file).isDirectory()) {
    target = path.join(file, MODEL_PART);
    if (!fs.existsSync(target)) throw new CtclipError('ARGUMENT_ERROR', `--init-from ${file}: a folder without ${MODEL_PART} (expected a checkpoint folder)`);
  }
  // Only the keys the model has, at their shapes, are read (the rest is reported); see docs/limits.md.
  const r = await loadWeightsInto(model, { kind: 'weights-file', file: target });
  const report = r.report as WeightsReport;
  const unexpected = [...r.unexpected, ...report.unexpected, ...report.shapeMismatches.map((m) => `${m.key} [${m.got}] (expected [${m.expected}])`)];
  if (r.missing.length || unexpected.length) {
    throw new CtclipError(
      'DATA_ERROR',
      `--init-from ${target}: the weights do not fit the configured model (missing: ${r.missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${unexpected.slice(0, 5).join(', ') || 'none'})`,
    );
  }
  for (const note of report.notes ?? []) log(`  ${note}`);
  log(`Initialised the model from ${target} (${r.layout} layout, ${r.count} tensors); a new run starts at step 0`);
}

// Re-exported for lib/train.ts and tests.
export { loadModelWeights };
