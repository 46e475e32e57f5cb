/**
 * The trainer's builders, in the order `Trainer.create` calls them (each logs what it built):
 *
 *   openTrainData    the training and validation indices, the run plan, the class names
 *   createTrainModel the tokenizer and CT-CLIP (lib/model/factory.ts) on this rank's device
 *   restoreRunState  the run directory, the CheckpointManager, and where the weights and position come from:
 *                    --resume, --init-from or model.text_encoder.path (lib/model/load-weights.ts), then the
 *                    broadcast of rank 0's state
 *   createLoaders    the training and validation loaders; config.yaml and eval_subset.json (rank 0)
 *   openRunLog       the RunLog sink (metrics.jsonl, TensorBoard, live W&B) or the W&B sync hint (rank 0)
 */
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { CheckpointManager, MANIFEST_FILE, MODEL_PART, type CheckpointManagerOptions } from '../checkpoint';
import type { Config } from '../config/schema';
import { TrainLoader, type EvalLoader } from '../data/loader';
import { openIndex, type ShardIndex } from '../data/shard-index';
import type { ProcessGroup } from '../dist/group';
import { CtclipError } from '../errors';
import { evalLoaderFor } from '../zeroshot/loader';
import { writeFileAtomicSync } from '../io/atomic';
import { RunLog, startWandb, wandbPlan } from '../logging';
import type { CTClip } from '../model/ctclip';
import { describeDeviceConfig, deviceForConfig, launchedLocalRank } from '../model/device';
import { buildModel, resolveClassNames } from '../model/factory';
import { loadWeightsInto, weightsMisfit } from '../model/load-weights';
import { formatPlan, planRun, type RunPlan } from '../plan';
import { Rng } from '../rng';
import type { Tokenizer } from '../text/tokenizer';
import type { WeightsReport } from '../weights';
import { restoreCheckpoint, type TrainProgress } from './checkpoint-io';
import { resumeFromFile } from './resume-torch';
import type { Faults } from './faults';
import { ensureRunDir, type RunDir } from './run-dir';

/** What every builder needs: the config, this rank's place in the group, and where lines go. */
export interface BuildContext {
  cfg: Config;
  /** The process group (null: one process). */
  group: ProcessGroup | null;
  rank: number;
  worldSize: number;
  /** Rank 0 (or the only process): logs and writes files. */
  isMain: boolean;
  log: (...lines: string[]) => void;
}

export interface TrainData {
  index: ShardIndex;
  valIndex: ShardIndex;
  plan: RunPlan;
  classNames: string[];
}

/** The indices, the plan (logged) and the class names, checked against the label counts of both indices. */
export function openTrainData(ctx: BuildContext): TrainData {
  const { cfg } = ctx;
  const index = openIndex(cfg.data.webdataset_shards_train as string, { missingShards: cfg.data.missing_shards });
  const valIndex = openIndex(cfg.data.webdataset_shards_val as string, { missingShards: cfg.data.missing_shards });
  const plan = planRun(cfg, { samples: index.samples.length, worldSize: ctx.worldSize });
  ctx.log(...formatPlan(plan));
  const classNames = resolveClassNames(cfg, valIndex, 'validation shards');
  if (index.numClasses && index.numClasses !== classNames.length) {
    throw new CtclipError(
      'CONFIG_ERROR',
      `the training shards have ${index.numClasses} labels per sample but there are ${classNames.length} class names`,
    );
  }
  if (valIndex.numClasses !== classNames.length) {
    throw new CtclipError(
      'CONFIG_ERROR',
      `the validation shards have ${valIndex.numClasses} labels per sample but there are ${classNames.length} class names (${cfg.data.labels_valid ?? 'data.class_names'})`,
    );
  }
  return { index, valIndex, plan, classNames };
}

/**
 * The tokenizer and the model, moved to `device` (absent: the config's device section for this rank) before any
 * weights are restored or broadcast (loads copy the CPU tensors there). Logs the model line and, distributed, the
 * data-parallel line.
 */
export async function createTrainModel(
  ctx: BuildContext,
  opts: { device?: string; threads: number },
): Promise<{ model: CTClip; tokenizer: Tokenizer }> {
  const { cfg, group, rank, worldSize, log } = ctx;
  // Rank r > 0 gets its own dropout stream; its initial weights are replaced by rank 0's (broadcast later).
  const seed = rank > 0 ? Rng.derive(cfg.experiment.seed, 'model', 'rank', rank).nextUint32() : undefined;
  const localRank = group ? group.env.localRank : launchedLocalRank();
  const device = opts.device ?? deviceForConfig(cfg, localRank);
  const { model, tokenizer } = buildModel(cfg, { seed });
  await model.to(device);
  const info = model.info();
  log(
    `Model: ${info.parameterCount.toLocaleString('en-US')} parameters (${info.trainableParameterCount.toLocaleString('en-US')} trainable), ${info.precision}, device ${info.device} (${describeDeviceConfig(cfg.device, localRank)}), ${opts.threads} threads${group ? ` per rank` : ''}`,
  );
  if (group) {
    log(
      `Data parallel: ${worldSize} ranks (${group.backend}, timeout ${(group.timeoutMs / 60000).toFixed(1)} min), ` +
        `loss over ${cfg.model.loss.gather ? `the global batch of ${cfg.data.batch_size * worldSize * cfg.training.gradient_accumulation_steps}${cfg.model.loss.local_loss ? ' (local rows)' : ' (full loss on every rank)'}` : `each rank's micro-batch of ${cfg.data.batch_size} (loss.gather false)`}`,
    );
  }
  return { model, tokenizer };
}

export interface RunState {
  runDir: RunDir;
  checkpoints: CheckpointManager;
  progress: TrainProgress;
  /** The checkpoint this run resumed from (null for a fresh run). */
  resumedFrom: string | null;
}

/** Where a new run starts and what it starts from. */
export interface StartOptions {
  /** 'latest' | 'best' | a checkpoint folder (or its manifest.json) | a torch.save training checkpoint file. */
  resume: string | null;
  /** Weights to start a NEW run from. */
  initFrom: string | null;
  /** false: restore weights and position, start AdamW and the loss scaler fresh. */
  loadOptimizer: boolean;
  faults: Faults;
  checkpointHooks: CheckpointManagerOptions['hooks'];
}

/**
 * The run directory and its CheckpointManager, then the model's starting state: a checkpoint (--resume, with the
 * run position, optimizer, scaler and RNG), weights only (--init-from), or the text tower from
 * model.text_encoder.path; distributed, rank 0's state broadcast to every rank.
 */
export async function restoreRunState(
  ctx: BuildContext,
  model: CTClip,
  data: TrainData,
  opts: StartOptions,
): Promise<RunState> {
  const { cfg, group, rank, worldSize, isMain, log } = ctx;
  const runDir = ensureRunDir(cfg.checkpoint.save_dir);
  const checkpoints = new CheckpointManager({
    dir: runDir.checkpoints,
    keepLastN: cfg.checkpoint.keep_last_n,
    bestMetric: cfg.checkpoint.save_best ? cfg.checkpoint.best_metric : null,
    bestMode: cfg.checkpoint.best_metric_mode,
    onLog: (message, level) => (level === 'warn' ? process.stderr.write(`warning: ${message}\n`) : log(message)),
    hooks: opts.faults.checkpointHooks(opts.checkpointHooks),
    readOnly: !isMain,
  });

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
  if (opts.resume && opts.initFrom)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      '--resume and --init-from cannot be combined (--init-from starts a new run)',
    );
  const resumeFile = opts.resume && opts.resume !== 'latest' && opts.resume !== 'best' ? plainFile(opts.resume) : null;
  if (resumeFile) {
    // A file, not a checkpoint folder: a torch.save training checkpoint (lib/train/resume-torch.ts) or refused.
    const r = await resumeFromFile(model, resumeFile, {
      cfg,
      plan: data.plan,
      loadOptimizer: opts.loadOptimizer,
    });
    progress = r.progress;
    resumedFrom = resumeFile;
    log(
      `Resumed from ${resumeFile} (a torch.save training checkpoint): step ${progress.step}`,
      ...r.restored.map((l) => `  restored: ${l}`),
      ...r.notCarried.map((l) => `  not carried over: ${l}`),
    );
  } else if (opts.resume) {
    const which = opts.resume;
    const found = await checkpoints.resolve(which);
    if (!found) {
      if (which === 'latest') log(`No checkpoint found in ${runDir.checkpoints}: starting fresh`);
      else
        throw new CtclipError('ARGUMENT_ERROR', `--resume best: there is no best checkpoint in ${runDir.checkpoints}`);
    } else {
      const loadOptimizer = opts.loadOptimizer;
      const r = await restoreCheckpoint(model, found.path, {
        loadOptimizer,
        seed: cfg.experiment.seed,
        rank,
        samples: data.index.samples.length,
      });
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      progress = r.progress;
      resumedFrom = found.path;
      const g = r.geometry;
      if (
        g &&
        (g.batchSize !== cfg.data.batch_size ||
          g.worldSize !== worldSize ||
          g.gradAccumSteps !== cfg.training.gradient_accumulation_steps)
      ) {
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
    await initFromWeights(model, opts.initFrom, cfg, log);
  } else if (cfg.model.text_encoder.path) {
    const r = await loadWeightsInto(model, { kind: 'hf-bert', dir: cfg.model.text_encoder.path });
    if (r.unexpected.length)
      throw new CtclipError(
        'DATA_ERROR',
        `${cfg.model.text_encoder.path}: keys that do not fit the text encoder: ${r.unexpected.slice(0, 5).join(', ')}`,
      );
    log(`Text encoder initialised from ${cfg.model.text_encoder.path}`);
  }

  if (group) {
    // Identical starting weights and codebooks everywhere (after any resume/init, which every rank did alike).
    model.setDistributed(group.handle);
    await model.broadcastState(0);
  }
  return { runDir, checkpoints, progress, resumedFrom };
}

/** `--resume ARG` names an existing plain file other than a manifest.json (absolute), else null. */
function plainFile(arg: string): string | null {
  const p = path.resolve(arg);
  try {
    return fs.statSync(p).isFile() && path.basename(p) !== MANIFEST_FILE ? p : null;
  } catch {
    return null;
  }
}

/** --init-from: ours (a checkpoint folder, its model.safetensors, any safetensors) or an imported torch file. */
async function initFromWeights(model: CTClip, file: string, cfg: Config, log: (...l: string[]) => void): Promise<void> {
  if (!fs.existsSync(file)) throw new CtclipError('ARGUMENT_ERROR', `--init-from ${file}: no such file or folder`);
  let target = file;
  if (fs.statSync(file).isDirectory()) {
    target = path.join(file, MODEL_PART);
    if (!fs.existsSync(target))
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `--init-from ${file}: a folder without ${MODEL_PART} (expected a checkpoint folder)`,
      );
  }
  // Only the keys the model has, at their shapes, are read (the rest is reported); see docs/limits.md.
  const r = await loadWeightsInto(model, { kind: 'weights-file', file: target });
  const report = r.report as WeightsReport;
  const misfit = weightsMisfit(r, cfg);
  if (misfit)
    throw new CtclipError(
      'DATA_ERROR',
      `--init-from ${target}: the weights do not fit the configured model (${misfit})`,
    );
  for (const note of report.notes ?? []) log(`  ${note}`);
  log(`Initialised the model from ${target} (${r.layout} layout, ${r.count} tensors); a new run starts at step 0`);
}

/**
 * This rank's training loader and its share of the fixed validation subset (both logged); rank 0 writes the
 * merged config.yaml and eval_subset.json into the run directory.
 */
export function createLoaders(
  ctx: BuildContext,
  data: TrainData,
  runDir: RunDir,
): { trainLoader: TrainLoader; evalLoader: EvalLoader } {
  const { cfg, rank, worldSize, log } = ctx;
  const trainLoader = new TrainLoader(data.index, {
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
  const evalLoader = evalLoaderFor(cfg, data.valIndex, cfg.validation.eval_samples, { rank, worldSize });
  log(trainLoader.summary());
  log(
    `validation: ${evalLoader.chosen.length} of ${data.valIndex.samples.length} samples (fixed seeded subset), ${data.classNames.length} classes, prompts '${cfg.validation.prompts.positive}' / '${cfg.validation.prompts.negative}'`,
  );
  const stepsPerEpoch = data.plan.stepsPerEpoch;
  if (stepsPerEpoch !== trainLoader.stepsPerEpoch)
    throw new CtclipError(
      'PLAN_ERROR',
      `plan and loader disagree on steps per epoch (${stepsPerEpoch} vs ${trainLoader.stepsPerEpoch})`,
    );
  if (ctx.isMain) {
    writeFileAtomicSync(runDir.config, YAML.stringify(cfg));
    writeFileAtomicSync(
      runDir.evalSubset,
      `${JSON.stringify({ seed: cfg.experiment.seed, eval_samples: cfg.validation.eval_samples, study_ids: evalLoader.chosenStudyIds() }, null, 2)}\n`,
    );
  }
  return { trainLoader, evalLoader };
}

/**
 * Rank 0: the RunLog sink (a resume keeps metrics.jsonl up to the resumed step and restarts TensorBoard after it;
 * TensorBoard when the W&B plan uses it; live W&B when `logging.use_wandb` and wandb is importable, continuing the
 * run folder's W&B run on a resume, with the restored best metric in its summary) and the W&B lines for the end.
 * Other ranks: a sink that writes nothing.
 */
export function openRunLog(ctx: BuildContext, state: RunState): { runLog: RunLog; wandbLines: string[] } {
  const { cfg } = ctx;
  if (!ctx.isMain) return { runLog: RunLog.none(), wandbLines: [] };
  const root = state.runDir.root;
  const resumeStep = state.resumedFrom ? state.progress.step : undefined;
  const wandb = cfg.logging.use_wandb
    ? startWandb(root, cfg.logging, {
        resume: resumeStep !== undefined,
        config: cfg,
        experimentName: cfg.experiment.name,
        log: ctx.log,
      })
    : null;
  const best = state.progress.best;
  if (resumeStep !== undefined && best)
    wandb?.sidecar?.summary({ [`best/${best.metric}`]: best.value, 'best/step': best.step });
  const runLog = RunLog.open(root, {
    resumeStep,
    tensorboardDir: wandbPlan(root, cfg.logging).useTensorboard ? state.runDir.tensorboard : null,
    wandb: wandb?.sidecar ?? null,
  });
  return { runLog, wandbLines: wandb?.endLines ?? [] };
}
