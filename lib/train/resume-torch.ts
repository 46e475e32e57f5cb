/**
 * `--resume FILE.pt`: continuing a run from a training checkpoint that `torch.save` wrote (the original Python
 * pipeline's CheckpointManager dict; lib/weights/torch-checkpoint.ts reads it). What carries over, exactly:
 *
 * - the weights (the 'weights-file' route of lib/model/load-weights.ts; they must fit the configured model);
 * - AdamW's moments and per-parameter step counts. torch keys them by POSITION in the optimizer's parameter list,
 *   so positions are mapped onto names: by the groups' `param_names` when torch recorded them, otherwise by
 *   rebuilding torch's `model.parameters()` order from the state dict (file order, buffers left out, tied tensors
 *   once) and trying the layouts an optimizer is built with — one group in module order, or the original's two
 *   weight-decay groups (tensors with ndim ≥ 2, then the rest). A layout is accepted only when EVERY saved moment
 *   has its parameter's shape, and only when no other accepted layout assigns a moment differently; otherwise the
 *   optimizer is not restored and the report says why (an optimizer built from a Python set has no recoverable
 *   order);
 * - the step (`global_step`): the LR schedule continues from it.
 *
 * What cannot carry over is listed for the log (`notCarried`): the data position (the file records an epoch, not a
 * place in a data order; the run continues at the step's place in ctclip's own seeded order), the LR scheduler's
 * state (recomputed from the step), the Python/numpy/torch RNG streams, a loss scaler, the best-metric record and
 * AdamW hyper-parameters that differ from the config's.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MANIFEST_FILE } from '../checkpoint';
import { CtclipError } from '../errors';
import type { Config } from '../config/schema';
import type { CTClip } from '../model/ctclip';
import { expectedKeys, loadWeightsInto, weightsMisfit } from '../model/load-weights';
import type { TensorHandle } from '../native';
import type { RunPlan } from '../plan';
import { lrAt } from '../schedule';
import { importBudget, sniffWeightsFormat, type WeightsReport } from '../weights';
import {
  readTorchTrainingCheckpoint,
  scalarTensorValue,
  type TorchOptimizerState,
  type TorchTrainingCheckpoint,
} from '../weights/torch-checkpoint';
import { StorageCache, type TorchTensorRef } from '../weights/torch-file';
import type { TrainProgress } from './checkpoint-io';

/** The forms `--resume` takes, for messages. */
export const RESUME_FORMS =
  "'latest', 'best', a checkpoint folder (ckpt-stepNNNNNNNN/, or its manifest.json), or a torch.save training checkpoint (.pt holding model_state_dict and optimizer_state_dict, as the original pipeline's CheckpointManager writes)";

/** State-dict names that are buffers in the reference modules (used for keys our model does not have). */
const BUFFER_NAME =
  /(^|\.)(position_ids|token_type_ids|embed_avg|cluster_size|initted|num_batches_tracked|running_mean|running_var)$/;

/** One entry of torch's `model.parameters()` order, rebuilt from the state dict. */
interface ParamSlot {
  /** Our name (after the layout mapping), or null when the model has no such tensor. */
  name: string | null;
  fileKey: string;
  shape: number[];
  trainable: boolean;
}

export interface OptimizerMapping {
  /** index → slot for every saved AdamW state entry. */
  assignment: Map<number, ParamSlot>;
  /** How the positions were mapped (for the log). */
  how: string;
}

const sameShape = (a: number[], b: number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** torch's `model.parameters()` order, rebuilt from the state dict (see the module comment). */
function parameterSlots(
  ckpt: TorchTrainingCheckpoint,
  kinds: Map<string, string>,
  renamed: Map<string, string>,
): ParamSlot[] {
  const slots: ParamSlot[] = [];
  const seen = new Set<string>();
  for (const [key, ref] of ckpt.stateDict) {
    const name = renamed.get(key) ?? key;
    const kind = kinds.get(name);
    if (kind === 'buffer' || (kind === undefined && BUFFER_NAME.test(key))) continue;
    // Tied parameters (one tensor under two names) are one parameter to torch: listed once, first name first.
    const identity = `${ref.storage.key}:${ref.offset}:${ref.size}:${ref.stride}`;
    if (seen.has(identity)) continue;
    seen.add(identity);
    slots.push({ name: kind ? name : null, fileKey: key, shape: ref.size, trainable: kind === 'parameter' });
  }
  return slots;
}

function shapesFit(opt: TorchOptimizerState, assignment: Map<number, ParamSlot>): string | null {
  for (const s of opt.state.values()) {
    const slot = assignment.get(s.index);
    if (!slot) return `optimizer parameter ${s.index} has no counterpart`;
    for (const t of [s.expAvg, s.expAvgSq]) {
      if (!sameShape(t.size, slot.shape))
        return `optimizer parameter ${s.index} has moments of shape [${t.size}] but '${slot.fileKey}' is [${slot.shape}]`;
    }
  }
  return null;
}

/**
 * Maps torch's positional AdamW state onto parameter names (see the module comment). Returns the mapping, or the
 * reason none is safe.
 */
export function mapOptimizerPositions(
  ckpt: TorchTrainingCheckpoint,
  kinds: Map<string, string>,
  renamed: Map<string, string>,
): OptimizerMapping | { reason: string } {
  const opt = ckpt.optimizer;
  const slots = parameterSlots(ckpt, kinds, renamed);
  if (opt.groups.every((g) => g.paramNames !== null)) {
    const byKey = new Map(slots.map((s) => [s.fileKey, s]));
    const byName = new Map(slots.filter((s) => s.name).map((s) => [s.name as string, s]));
    const assignment = new Map<number, ParamSlot>();
    for (const g of opt.groups) {
      g.params.forEach((index, i) => {
        const n = (g.paramNames as string[])[i];
        const slot = byKey.get(n) ?? byName.get(renamed.get(n) ?? n);
        if (slot) assignment.set(index, slot);
      });
    }
    const bad = shapesFit(opt, assignment);
    return bad ? { reason: bad } : { assignment, how: 'by the parameter names the optimizer recorded' };
  }
  const total = opt.groups.reduce((a, g) => a + g.params.length, 0);
  if (total !== slots.length) {
    return {
      reason: `the optimizer lists ${total} parameters but the model_state_dict holds ${slots.length} parameter tensors, so positions cannot be matched to names`,
    };
  }
  const decays = slots.filter((s) => s.shape.length >= 2);
  const rest = slots.filter((s) => s.shape.length < 2);
  const layouts: Array<{ how: string; lists: ParamSlot[][] }> = [{ how: 'in module order', lists: [slots] }];
  if (opt.groups.length === 2) {
    layouts.push({ how: 'as two weight-decay groups (ndim >= 2, then the rest)', lists: [decays, rest] });
    layouts.push({ how: 'as two weight-decay groups (ndim < 2 first)', lists: [rest, decays] });
  }
  const accepted: OptimizerMapping[] = [];
  const rejected: string[] = [];
  for (const layout of layouts) {
    const flat = layout.lists.flat();
    const sizes = layout.lists.map((l) => l.length);
    if (layout.lists.length > 1 && !sizes.every((n, i) => n === opt.groups[i].params.length)) {
      rejected.push(`${layout.how}: group sizes ${opt.groups.map((g) => g.params.length)} vs ${sizes}`);
      continue;
    }
    const assignment = new Map<number, ParamSlot>();
    opt.groups.flatMap((g) => g.params).forEach((index, i) => assignment.set(index, flat[i]));
    const bad = shapesFit(opt, assignment);
    if (bad) rejected.push(`${layout.how}: ${bad}`);
    else accepted.push({ assignment, how: `by position, ${layout.how}, every moment's shape checked` });
  }
  if (accepted.length === 0) {
    return {
      reason: `no parameter order fits the saved moments (${rejected.join('; ')}); an optimizer built from an unordered collection (a Python set) has no recoverable order`,
    };
  }
  const first = accepted[0];
  for (const other of accepted.slice(1)) {
    for (const [index, slot] of first.assignment) {
      if (ckpt.optimizer.state.has(index) && other.assignment.get(index)?.fileKey !== slot.fileKey) {
        return {
          reason: `the saved moments fit more than one parameter order (${first.how} / ${other.how}) that disagree on parameter ${index}`,
        };
      }
    }
  }
  return first;
}

export interface TorchResumeResult {
  progress: TrainProgress;
  /** Lines for the log: what was restored. */
  restored: string[];
  /** Lines for the log: what could not carry over, and what the run does instead. */
  notCarried: string[];
}

function fmt(v: number): string {
  return Number(v.toPrecision(6)).toString();
}

/**
 * `--resume FILE` for a plain file: a torch.save training checkpoint is restored (`restoreTorchCheckpoint`); a file
 * of one of our checkpoint folders points to the folder; anything else is an ARGUMENT_ERROR that says what the
 * file is, what --resume takes and, for weights, to use --init-from.
 */
export async function resumeFromFile(
  model: CTClip,
  file: string,
  opts: { cfg: Config; plan: RunPlan; loadOptimizer: boolean },
): Promise<TorchResumeResult> {
  const folder = path.dirname(file);
  if (fs.existsSync(path.join(folder, MANIFEST_FILE))) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--resume ${file}: a file inside the checkpoint folder ${folder}; resume from the folder: --resume ${folder}`,
    );
  }
  let format: string;
  try {
    format = sniffWeightsFormat(file);
  } catch (e) {
    if ((e as CtclipError).code !== 'DATA_ERROR') throw e;
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--resume ${file}: not a checkpoint (${(e as Error).message}). --resume takes ${RESUME_FORMS}`,
      {
        cause: e,
      },
    );
  }
  if (format !== 'torch') {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--resume ${file}: a ${format} weights file, not a training checkpoint (it has no optimizer state or step). --resume takes ${RESUME_FORMS}; to start a new run from these weights use --init-from ${file}`,
    );
  }
  return restoreTorchCheckpoint(model, file, opts);
}

/**
 * Restores a torch.save training checkpoint into `model` (see the module comment). ARGUMENT_ERROR naming the file
 * when it is a torch.save file but not a training checkpoint; DATA_ERROR when its weights do not fit the model.
 */
export async function restoreTorchCheckpoint(
  model: CTClip,
  file: string,
  opts: { cfg: Config; plan: RunPlan; loadOptimizer: boolean },
): Promise<TorchResumeResult> {
  const { cfg, plan } = opts;
  const read = readTorchTrainingCheckpoint(file);
  if (!read.checkpoint) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--resume ${file}: a torch.save file but not a training checkpoint: ${read.why}. --resume takes ${RESUME_FORMS}; to start a new run from its weights use --init-from ${file}`,
    );
  }
  const ckpt = read.checkpoint;
  const restored: string[] = [];
  const notCarried: string[] = [];
  try {
    let report: WeightsReport | null = null;
    const loaded = await loadWeightsInto(model, { kind: 'weights-file', file }, { beforeLoad: (r) => (report = r) });
    const misfit = weightsMisfit(loaded, cfg);
    if (misfit)
      throw new CtclipError('DATA_ERROR', `--resume ${file}: the weights do not fit the configured model (${misfit})`);
    const r = report as unknown as WeightsReport;
    restored.push(`weights: ${loaded.count} tensors (${r.layoutDescription})`);
    let stepFromState: number | null = null;

    const states = [...ckpt.optimizer.state.values()];
    const cache = new StorageCache(ckpt.archive, importBudget(expectedKeys(model)));
    try {
      // Per-parameter step counts first: they also give the step when global_step is absent.
      const steps = new Map<number, number>();
      for (const s of states) {
        const n = typeof s.step === 'number' ? s.step : await scalarTensorValue(cache, s.step as TorchTensorRef);
        if (!Number.isSafeInteger(n) || n < 0)
          throw new CtclipError(
            'DATA_ERROR',
            `${file}: optimizer_state_dict state[${s.index}].step is ${n}, not a count of steps`,
          );
        steps.set(s.index, n);
      }
      if (!opts.loadOptimizer) {
        notCarried.push('AdamW moments: not loaded (--no-load-optimizer); AdamW starts fresh');
      } else {
        const sd = model.stateDict();
        const kinds = new Map(sd.names.map((n, i) => [n, sd.kinds[i] as string]));
        sd.tensors.forEach((t) => t.dispose());
        const renamed = new Map(r.renamed.map((x) => [x.from, x.to]));
        const mapping = mapOptimizerPositions(ckpt, kinds, renamed);
        if ('reason' in mapping) {
          notCarried.push(`AdamW moments: ${mapping.reason}; AdamW starts fresh (weights and step are restored)`);
        } else {
          const names: string[] = [];
          const expAvg: TensorHandle[] = [];
          const expAvgSq: TensorHandle[] = [];
          const stepCounts: number[] = [];
          const skipped: string[] = [];
          try {
            for (const s of states) {
              const slot = mapping.assignment.get(s.index)!;
              if (!slot.name || !slot.trainable) {
                skipped.push(slot.fileKey);
                continue;
              }
              expAvg.push(await cache.tensor(s.expAvg, `optimizer state[${s.index}].exp_avg`));
              expAvgSq.push(await cache.tensor(s.expAvgSq, `optimizer state[${s.index}].exp_avg_sq`));
              names.push(slot.name);
              stepCounts.push(steps.get(s.index)!);
            }
            model.loadOptimizerState({ names, exp_avg: expAvg, exp_avg_sq: expAvgSq, step: stepCounts });
          } finally {
            expAvg.forEach((t) => t.dispose());
            expAvgSq.forEach((t) => t.dispose());
          }
          restored.push(
            `AdamW: moments and step counts of ${names.length} parameters, mapped ${mapping.how}` +
              (skipped.length
                ? ` (${skipped.length} saved for tensors this model does not train: ${skipped.slice(0, 3).join(', ')})`
                : ''),
          );
        }
      }
      stepFromState = steps.size ? Math.max(...steps.values()) : null;
    } finally {
      cache.release();
    }

    const step = ckpt.globalStep ?? stepFromState ?? 0;
    if (ckpt.globalStep === null)
      notCarried.push(`global_step: absent; the step is taken from the optimizer state (${step})`);
    else if (stepFromState !== null && stepFromState !== ckpt.globalStep)
      restored.push(`note: global_step ${ckpt.globalStep} but AdamW's largest per-parameter step is ${stepFromState}`);
    model.setStepCounters({ optimizerSteps: step, skippedSteps: 0 });
    restored.push(`step: ${step}${ckpt.epoch !== null ? ` (the file's epoch ${ckpt.epoch})` : ''}`);

    const S = plan.stepsPerEpoch;
    const position = { epoch: Math.floor(step / S), globalSamplePosition: (step % S) * plan.samplesPerStep };
    notCarried.push(
      `data position: the file records epoch ${ckpt.epoch ?? '?'} and step ${step}, not a place in a data order; the run continues at epoch ${position.epoch}, sample ${position.globalSamplePosition} of ctclip's own order (seeded by experiment.seed; ${S} steps per epoch with this config)`,
    );
    const lrNext = lrAt(step + 1, cfg.training.learning_rate, plan.schedule);
    notCarried.push(
      `LR scheduler: ${ckpt.scheduler ? `scheduler_state_dict (last_epoch ${ckpt.scheduler.last_epoch ?? '?'}) is not loaded` : 'none in the file'}; the LR is recomputed from step ${step} with this config's schedule (step ${step + 1}: ${fmt(lrNext)})`,
    );
    notCarried.push(
      `RNG streams: ${ckpt.randomStates.length ? `the file's ${ckpt.randomStates.join(', ')} generator states are` : 'none in the file;'} not restored; ctclip's dropout and data-order streams derive from experiment.seed`,
    );
    if (model.scalerState().enabled) notCarried.push('loss scaler: none in the file; it starts at its initial scale');
    const metricNames = Object.keys(ckpt.metrics);
    if (metricNames.length)
      notCarried.push(
        `metrics / best checkpoint: ${metricNames
          .slice(0, 4)
          .map((k) => `${k}=${fmt(ckpt.metrics[k])}`)
          .join(', ')} are not a ctclip best record; the next validation starts it`,
      );
    const g = ckpt.optimizer.groups;
    const t = cfg.training;
    const differs: string[] = [];
    const b = g[0]?.betas;
    if (b && (b[0] !== t.betas[0] || b[1] !== t.betas[1]))
      differs.push(`betas (${b.join(', ')}) vs training.betas (${t.betas.join(', ')})`);
    const eps = g[0]?.eps ?? null;
    if (eps !== null && eps !== t.eps) differs.push(`eps ${eps} vs training.eps ${t.eps}`);
    const decay = Math.max(...g.map((x) => x.weightDecay ?? 0));
    if (g.some((x) => x.weightDecay !== null) && decay !== t.weight_decay)
      differs.push(`weight_decay ${decay} vs training.weight_decay ${t.weight_decay}`);
    if (differs.length)
      notCarried.push(`AdamW hyper-parameters: the file's differ (${differs.join('; ')}); the config's are used`);
    const used = new Set([
      'epoch',
      'global_step',
      'model_state_dict',
      'optimizer_state_dict',
      'scheduler_state_dict',
      'metrics',
      'random_states',
    ]);
    const ignored = ckpt.topKeys.filter((k) => !used.has(k));
    if (ignored.length) notCarried.push(`other entries, not used: ${ignored.join(', ')}`);

    const progress: TrainProgress = {
      step,
      skippedSteps: 0,
      microBatches: step * plan.gradAccumSteps,
      position,
      epoch: position.epoch + position.globalSamplePosition / (S * plan.samplesPerStep),
      lastLr: step > 0 ? lrAt(step, cfg.training.learning_rate, plan.schedule) : 0,
      best: null,
      elapsedSeconds: 0,
      lastEvalStep: null,
    };
    return { progress, restored, notCarried };
  } finally {
    ckpt.archive.zip.close();
  }
}
