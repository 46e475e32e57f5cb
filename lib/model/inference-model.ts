/**
 * The model side of the evaluation commands (`node lib/inference.js`, `ctclip embed`, `ctclip predict`): the
 * tokenizer and CT-CLIP built from the config, and the weights from `--checkpoint`, which may be
 *
 * - a weights file: our `model.safetensors` (or any safetensors under the reference names) or a PyTorch
 *   `torch.save` file (`.pt`/`.bin`: flat, wrapped in `model_state_dict`/`state_dict`/`model`, or the refactor
 *   layout), recognised by content (`loadWeightsFile`);
 * - one of our checkpoint folders (`ckpt-stepNNNNNNNN/`, verified against its manifest): its `model.safetensors`;
 * - a run directory (`checkpoint.save_dir`): its newest complete checkpoint (`latest`, as `--resume latest`);
 * - a folder holding a `model.safetensors` (no manifest): that file.
 *
 * The weights must fit the configured model exactly (no missing, unexpected or mis-shaped keys, after the
 * documented mapping: stale `position_ids` dropped, refactor names renamed); otherwise DATA_ERROR naming them.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  CheckpointManager,
  LATEST_POINTER,
  MANIFEST_FILE,
  MODEL_PART,
  parseCheckpointName,
  readMeta,
} from '../checkpoint';
import { hashFile } from '../checkpoint/manifest';
import type { Config } from '../config/schema';
import { CtclipError } from '../errors';
import { deviceFor, launchedLocalRank } from './device';
import type { CTClip } from './ctclip';
import { buildModel } from './factory';
import { loadWeightsInto } from './load-weights';
import { weightsConfigAdvice } from './weights-config-hint';
import type { Tokenizer } from '../text/tokenizer';
import type { WeightsReport } from '../weights';

// Resolved as training resolves them (one place: lib/model/factory.ts).
export { resolveClassNames, vocabFile } from './factory';

export interface ResolvedWeights {
  /** The weights file actually read. */
  file: string;
  /** What `--checkpoint` named. */
  kind: 'weights-file' | 'checkpoint' | 'run-dir' | 'folder';
  /** The checkpoint folder (kinds checkpoint / run-dir). */
  checkpointDir: string | null;
  /** The training step, when known (checkpoint meta.json). */
  step: number | null;
  /** sha256 of the weights file from the checkpoint manifest (null: compute it when needed). */
  sha256: string | null;
}

/** Where the weights of `--checkpoint ARG` are (see the module comment). */
export async function resolveWeights(
  arg: string,
  onWarn: (message: string) => void = () => undefined,
): Promise<ResolvedWeights> {
  if (!fs.existsSync(arg)) throw new CtclipError('ARGUMENT_ERROR', `--checkpoint ${arg}: no such file or folder`);
  const abs = path.resolve(arg);
  if (fs.statSync(abs).isFile()) {
    if (path.basename(abs) === MANIFEST_FILE) return resolveWeights(path.dirname(abs), onWarn);
    return { file: abs, kind: 'weights-file', checkpointDir: null, step: null, sha256: null };
  }
  const log = (message: string, level: string): void => {
    if (level === 'warn') onWarn(message);
  };
  if (fs.existsSync(path.join(abs, MANIFEST_FILE))) {
    const manager = new CheckpointManager({ dir: path.dirname(abs), keepLastN: 0, readOnly: true, onLog: log });
    const found = await manager.resolve(abs);
    return fromCheckpoint(found!.path, found!.manifest.files[MODEL_PART]?.sha256 ?? null, 'checkpoint');
  }
  const entries = fs.readdirSync(abs);
  if (entries.includes(LATEST_POINTER) || entries.some((n) => parseCheckpointName(n) !== null)) {
    const manager = new CheckpointManager({ dir: abs, keepLastN: 0, readOnly: true, onLog: log });
    const found = await manager.resolve('latest');
    if (!found)
      throw new CtclipError('ARGUMENT_ERROR', `--checkpoint ${arg}: a run directory without a complete checkpoint`);
    return fromCheckpoint(found.path, found.manifest.files[MODEL_PART]?.sha256 ?? null, 'run-dir');
  }
  if (entries.includes(MODEL_PART)) {
    return { file: path.join(abs, MODEL_PART), kind: 'folder', checkpointDir: null, step: null, sha256: null };
  }
  throw new CtclipError(
    'ARGUMENT_ERROR',
    `--checkpoint ${arg}: a folder that is neither a checkpoint (no ${MANIFEST_FILE}), nor a run directory (no ${LATEST_POINTER} or ckpt-step* folders), nor holds a ${MODEL_PART}`,
  );
}

async function fromCheckpoint(
  dir: string,
  sha256: string | null,
  kind: 'checkpoint' | 'run-dir',
): Promise<ResolvedWeights> {
  const file = path.join(dir, MODEL_PART);
  if (!fs.existsSync(file)) throw new CtclipError('DATA_ERROR', `checkpoint ${dir} has no ${MODEL_PART}`);
  let step: number | null = parseCheckpointName(path.basename(dir));
  try {
    const meta = await readMeta(dir, { verify: false });
    if (typeof meta.step === 'number') step = meta.step;
  } catch {
    /* the folder name's step is enough */
  }
  return { file, kind, checkpointDir: dir, step, sha256 };
}

/** Human-readable lines of a weights import report (layout, dropped/renamed/missing/unexpected keys). */
export function formatImportReport(r: WeightsReport): string[] {
  const list = (keys: string[], max = 8): string =>
    keys.length <= max ? keys.join(', ') : `${keys.slice(0, max).join(', ')}, … (${keys.length - max} more)`;
  const lines = [`Imported ${r.file} (${r.format}): ${r.layoutDescription}; ${r.kept} tensors kept`];
  if (r.locations.length && !(r.locations.length === 1 && r.locations[0] === 'cpu'))
    lines.push(`  storage locations: ${r.locations.join(', ')} (read onto the CPU)`);
  const other = Object.entries(r.otherEntries ?? {});
  if (r.wrapper && other.length)
    lines.push(
      `  other entries of '${r.wrapper}' wrapper (not loaded): ${other.map(([k, v]) => `${k}=${v}`).join(', ')}`,
    );
  if (r.renamed.length)
    lines.push(`  renamed: ${r.renamed.length} keys (e.g. ${r.renamed[0].from} → ${r.renamed[0].to})`);
  lines.push(`  dropped: ${r.dropped.length ? r.dropped.map((d) => `${d.key} (${d.reason})`).join('; ') : 'none'}`);
  lines.push(`  missing: ${r.missing === null ? 'not checked' : r.missing.length ? list(r.missing) : 'none'}`);
  if (r.missingUnused.length) lines.push(`  missing but unused by the forward pass: ${list(r.missingUnused)}`);
  lines.push(`  unexpected: ${r.unexpected.length ? list(r.unexpected) : 'none'}`);
  if (r.shapeMismatches.length)
    lines.push(`  shape mismatches: ${r.shapeMismatches.map((m) => JSON.stringify(m)).join('; ')}`);
  for (const note of r.notes ?? []) lines.push(`  note: ${note}`);
  return lines;
}

export interface InferenceModel {
  model: CTClip;
  tokenizer: Tokenizer;
  weights: ResolvedWeights;
  report: WeightsReport;
  /** For results.json: {path, step, sha256}. */
  checkpoint: { path: string; step: number | null; sha256: string };
}

/**
 * Builds the tokenizer and the model from `cfg`, loads `--checkpoint` into it (eval mode) and returns both.
 * `log` receives the import report of a torch file (always) and one line naming what was loaded.
 */
export async function loadInferenceModel(
  cfg: Config,
  checkpointArg: string,
  log: (...lines: string[]) => void,
  onWarn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
  opts: { device?: string } = {},
): Promise<InferenceModel> {
  // Resolved first: a device this machine does not have fails before any weights are read.
  const device = deviceFor(cfg, opts.device, launchedLocalRank());
  const weights = await resolveWeights(checkpointArg, onWarn);
  const { model, tokenizer } = buildModel(cfg);
  try {
    const loaded = await loadWeightsInto(
      model,
      { kind: 'weights-file', file: weights.file },
      {
        beforeLoad: (r) => {
          if (r.format === 'torch') log(...formatImportReport(r));
          const problems: string[] = [];
          if (r.missing && r.missing.length)
            problems.push(
              `missing: ${r.missing.slice(0, 5).join(', ')}${r.missing.length > 5 ? ` (+${r.missing.length - 5})` : ''}`,
            );
          if (r.unexpected.length)
            problems.push(
              `unexpected: ${r.unexpected.slice(0, 5).join(', ')}${r.unexpected.length > 5 ? ` (+${r.unexpected.length - 5})` : ''}`,
            );
          if (r.shapeMismatches.length)
            problems.push(
              `shape mismatches: ${r.shapeMismatches
                .slice(0, 3)
                .map((m) => JSON.stringify(m))
                .join('; ')}`,
            );
          if (problems.length) {
            throw new CtclipError(
              'DATA_ERROR',
              `${weights.file}: the weights do not fit the model configured by the config (${problems.join('; ')}); ${weightsConfigAdvice({ missing: r.missing ?? [], unexpected: r.unexpected, shapeMismatches: r.shapeMismatches }, cfg)}`,
            );
          }
        },
      },
    );
    if (loaded.missing.length || loaded.unexpected.length) {
      throw new CtclipError(
        'DATA_ERROR',
        `${weights.file}: the weights do not fit the configured model (missing: ${loaded.missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${loaded.unexpected.slice(0, 5).join(', ') || 'none'})`,
      );
    }
    const r = loaded.report as WeightsReport;
    // The weights were copied in on the CPU; one move puts the whole model on its device (opts.device, else the
    // config's device section).
    await model.to(device);
    model.eval();
    const sha256 = weights.sha256 ?? (await hashFile(weights.file)).sha256;
    const where = weights.checkpointDir
      ? `checkpoint ${weights.checkpointDir}${weights.step !== null ? ` (step ${weights.step})` : ''}`
      : weights.file;
    log(`Loaded ${loaded.count} tensors from ${where} (${r.layoutDescription}), model on ${model.device}`);
    return {
      model,
      tokenizer,
      weights,
      report: r,
      checkpoint: { path: weights.checkpointDir ?? weights.file, step: weights.step, sha256 },
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
