/**
 * CheckpointManager: atomic step-named checkpoints, `latest`/`best` pointers, rotation from the directory
 * listing, and resume resolution that skips corrupt checkpoints. The manager never interprets the content of a
 * part: every part is an opaque file produced by a writer (see parts.ts). Protocol and rules: docs/checkpoints.md.
 *
 * Only one process saves into a directory (rank 0 in a multi-rank run); other processes may construct a
 * `readOnly` manager to resolve and read checkpoints.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { CtclipError, type ErrorCode } from '../errors';
import { toStrictJson } from '../io/strict-json';
import { formatMetric, improves, metricValue, type BestMode } from './best';
import { fsyncDir, isCode, writeFileDurable } from './durable';
import { ACTIVE_TEMP_PATHS, cleanupLeftoversSync, DEFAULT_STALE_AFTER_MS, type CleanupReport } from './leftovers';
import {
  buildManifest,
  hashFile,
  verifyCheckpoint,
  type CheckpointManifest,
  type ManifestEntry,
  type VerifyResult,
} from './manifest';
import {
  BEST_POINTER,
  checkpointName,
  LATEST_POINTER,
  leftoverName,
  MANIFEST_FILE,
  META_FILE,
  parseCheckpointName,
} from './names';
import { validatePartName, writePart, type PartSource } from './parts';
import { readPointer, removePointer, writePointer } from './pointer';
import { readMeta } from './read';
import { planRotation } from './rotation';

export type LogLevel = 'info' | 'warn';
export type LogFn = (message: string, level: LogLevel) => void;

export interface CheckpointManagerOptions {
  /** The checkpoint directory (`checkpoint.save_dir`); created on the first save. */
  dir: string;
  /** Keep the newest N complete checkpoints plus the best; 0 = keep all. */
  keepLastN: number;
  /** The `meta.metrics` key that selects the best checkpoint; unset = no best tracking. */
  bestMetric?: string | null;
  /** 'max' (default) or 'min'. */
  bestMode?: BestMode;
  /** Console lines; default: info to stdout, warnings to stderr as `warning: …`. */
  onLog?: LogFn;
  /** A leftover of another live process is removed only after this long without changes (default 1 h). */
  staleAfterMs?: number;
  /** Resolve/read only: no cleanup at construction, `save` refused (non-zero ranks, evaluation). */
  readOnly?: boolean;
  /**
   * Fault injection for tests: `beforeCommit` runs after every file of the new checkpoint is written and fsynced
   * and before the temporary folder is renamed into place.
   */
  hooks?: { beforeCommit?: (tmpDir: string) => void | Promise<void> };
}

export interface SaveMeta {
  metrics?: Record<string, number | null>;
  [key: string]: unknown;
}

export interface SaveResult {
  path: string;
  step: number;
  isBest: boolean;
  manifest: CheckpointManifest;
  /** Checkpoint folders deleted by rotation after this save. */
  deleted: string[];
}

export interface CheckpointInfo {
  name: string;
  step: number;
  path: string;
  /** Manifest readable and every listed file present with its size (checksums are checked by `verify`). */
  complete: boolean;
  /** Why it is not complete. */
  problem?: string;
  createdAt?: string;
  manifest?: CheckpointManifest;
}

export interface ResolvedCheckpoint {
  path: string;
  manifest: CheckpointManifest;
}

interface BestState {
  name: string;
  step: number;
  value: number;
}

function defaultLog(message: string, level: LogLevel): void {
  if (level === 'warn') process.stderr.write(`warning: ${message}\n`);
  else process.stdout.write(`${message}\n`);
}

const KNOWN_CODES: readonly ErrorCode[] = [
  'CONFIG_ERROR',
  'ARGUMENT_ERROR',
  'IO_ERROR',
  'DATA_ERROR',
  'TORCH_ERROR',
  'SHAPE_ERROR',
  'NATIVE_ERROR',
  'DIST_ERROR',
  'DIST_TIMEOUT',
];

function describeError(e: unknown): { code: ErrorCode; text: string } {
  const err = e as { code?: unknown; message?: unknown };
  const code =
    typeof err?.code === 'string' && (KNOWN_CODES as string[]).includes(err.code)
      ? (err.code as ErrorCode)
      : 'IO_ERROR';
  let text = e instanceof Error ? e.message : String(e);
  if (isCode(e, 'ENOSPC')) text = `no space left on device (${text})`;
  return { code, text };
}

export class CheckpointManager {
  readonly dir: string;
  readonly keepLastN: number;
  readonly bestMetric: string | null;
  readonly bestMode: BestMode;
  readonly readOnly: boolean;
  private readonly log: LogFn;
  private readonly staleAfterMs: number;
  private readonly hooks: NonNullable<CheckpointManagerOptions['hooks']>;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: CheckpointManagerOptions) {
    if (typeof opts.dir !== 'string' || opts.dir === '')
      throw new CtclipError('ARGUMENT_ERROR', 'checkpoint dir must be a non-empty path');
    if (!Number.isInteger(opts.keepLastN) || opts.keepLastN < 0) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `checkpoint keep_last_n must be an integer >= 0 (0 = keep all), got ${opts.keepLastN}`,
      );
    }
    const mode = opts.bestMode ?? 'max';
    if (mode !== 'max' && mode !== 'min')
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `checkpoint best mode must be 'max' or 'min', got ${JSON.stringify(mode)}`,
      );
    if (
      opts.bestMetric !== undefined &&
      opts.bestMetric !== null &&
      (typeof opts.bestMetric !== 'string' || opts.bestMetric === '')
    ) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `checkpoint best metric must be a non-empty string, got ${JSON.stringify(opts.bestMetric)}`,
      );
    }
    this.dir = path.resolve(opts.dir);
    this.keepLastN = opts.keepLastN;
    this.bestMetric = opts.bestMetric ?? null;
    this.bestMode = mode;
    this.readOnly = opts.readOnly ?? false;
    this.log = opts.onLog ?? defaultLog;
    this.staleAfterMs = opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.hooks = opts.hooks ?? {};
    if (!this.readOnly) this.cleanup();
  }

  /** Removes (or restores) leftovers of interrupted writes; see leftovers.ts for the age/ownership rule. */
  cleanup(): CleanupReport {
    return cleanupLeftoversSync(this.dir, { staleAfterMs: this.staleAfterMs, log: this.log });
  }

  /** Every `ckpt-step…` folder, ascending by step, with a cheap completeness check (no checksums). */
  async list(): Promise<CheckpointInfo[]> {
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      if (isCode(e, 'ENOENT')) return [];
      throw new CtclipError('IO_ERROR', `cannot list checkpoint dir ${this.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const out: CheckpointInfo[] = [];
    for (const e of entries) {
      const step = parseCheckpointName(e.name);
      if (step === null) continue;
      const p = path.join(this.dir, e.name);
      if (!e.isDirectory()) {
        out.push({ name: e.name, step, path: p, complete: false, problem: `${p}: not a folder` });
        continue;
      }
      const v = await verifyCheckpoint(p, { hash: false });
      const info: CheckpointInfo = { name: e.name, step, path: p, complete: v.ok };
      if (!v.ok) info.problem = v.problems[0];
      if (v.manifest) {
        info.manifest = v.manifest;
        info.createdAt = v.manifest.createdAt;
      }
      out.push(info);
    }
    return out.sort((a, b) => a.step - b.step || a.name.localeCompare(b.name));
  }

  /** Full check of a checkpoint folder: manifest, sizes and sha256 of every file. */
  async verify(p: string): Promise<VerifyResult> {
    return verifyCheckpoint(path.resolve(p), { hash: true });
  }

  /**
   * `latest`: the newest complete checkpoint whose checksums verify (newer corrupt/incomplete ones are skipped
   * with a warning naming the failing file); `best`: the best pointer's checkpoint (re-derived from the
   * checkpoints' metrics when the pointer is missing or dangling), verified; otherwise a folder path (or a
   * folder name inside the checkpoint dir), verified. Null when there is no such checkpoint (`latest`/`best`).
   * `latest` when checkpoint folders exist but every one fails its checks: IO_ERROR listing each and why (a caller
   * that took that for "no checkpoint" and started fresh would overwrite them).
   */
  async resolve(which: 'latest' | 'best' | string): Promise<ResolvedCheckpoint | null> {
    if (which === 'latest') {
      const all = await this.list();
      const rejected: string[] = [];
      for (const c of [...all].reverse()) {
        if (!c.complete) {
          this.log(`skipping checkpoint ${c.path}: ${c.problem ?? 'incomplete'}`, 'warn');
          rejected.push(`${c.path}: ${c.problem ?? 'incomplete'}`);
          continue;
        }
        const v = await this.verify(c.path);
        if (v.ok && v.manifest) return { path: c.path, manifest: v.manifest };
        this.log(`skipping corrupt checkpoint ${c.path}: ${v.problems.join('; ')}`, 'warn');
        rejected.push(`${c.path}: ${v.problems.join('; ')}`);
      }
      if (rejected.length > 0) {
        // Never "no checkpoint": a caller that starts fresh would then overwrite these (docs/checkpoints.md).
        throw new CtclipError(
          'IO_ERROR',
          `no usable checkpoint in ${this.dir}: all ${rejected.length} fail their checks:\n${rejected.map((r) => `  ${r}`).join('\n')}\n` +
            `Nothing was changed. Repair or restore them, resume from a copy elsewhere (--resume PATH), or start a new run in another directory (checkpoint.save_dir).`,
        );
      }
      return null;
    }
    if (which === 'best') {
      const best = await this.currentBest(null, { repair: false });
      if (!best) return null;
      const p = path.join(this.dir, best.name);
      const v = await this.verify(p);
      if (!v.ok || !v.manifest)
        throw new CtclipError('IO_ERROR', `the best checkpoint ${p} is corrupt: ${v.problems.join('; ')}`);
      return { path: p, manifest: v.manifest };
    }
    const asGiven = path.resolve(which);
    const inDir = path.join(this.dir, which);
    let p: string | null = null;
    if (fs.existsSync(asGiven)) p = asGiven;
    else if (path.basename(which) === which && fs.existsSync(inDir)) p = inDir;
    if (p === null) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `checkpoint not found: ${which} (looked at ${asGiven}${asGiven === inDir ? '' : ` and ${inDir}`})`,
      );
    }
    if (path.basename(p) === MANIFEST_FILE && fs.statSync(p).isFile()) p = path.dirname(p);
    const v = await this.verify(p);
    if (!v.ok || !v.manifest)
      throw new CtclipError('IO_ERROR', `checkpoint ${p} cannot be used: ${v.problems.join('; ')}`);
    return { path: p, manifest: v.manifest };
  }

  /**
   * Writes checkpoint `step` atomically (see docs/checkpoints.md), updates `latest` and (when the metric
   * improves) `best`, then rotates. Saves of one manager run one at a time.
   */
  save(step: number, parts: Record<string, PartSource>, meta: SaveMeta = {}): Promise<SaveResult> {
    const run = this.queue.then(
      () => this.saveNow(step, parts, meta),
      () => this.saveNow(step, parts, meta),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async saveNow(step: number, parts: Record<string, PartSource>, meta: SaveMeta): Promise<SaveResult> {
    if (this.readOnly)
      throw new CtclipError('ARGUMENT_ERROR', `checkpoint manager for ${this.dir} is read-only; only rank 0 saves`);
    const name = checkpointName(step);
    for (const partName of Object.keys(parts)) validatePartName(partName);
    const finalPath = path.join(this.dir, name);

    try {
      await fsp.mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot create checkpoint dir ${this.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.cleanup();

    // 1. Everything into a temporary folder of the same parent (same file system: the rename is atomic).
    const tmp = path.join(this.dir, leftoverName('tmp', name));
    ACTIVE_TEMP_PATHS.add(tmp);
    let manifest: CheckpointManifest;
    try {
      let stage = 'creating the temporary folder';
      try {
        await fsp.mkdir(tmp);
        const files: Record<string, ManifestEntry> = {};
        for (const [partName, source] of Object.entries(parts)) {
          stage = `writing part '${partName}'`;
          const file = path.join(tmp, partName);
          await writePart(file, source);
          files[partName] = await hashFile(file);
        }
        stage = `writing ${META_FILE}`;
        const metaFile = path.join(tmp, META_FILE);
        await writeFileDurable(metaFile, toStrictJson({ ...meta, step }, 2) + '\n');
        files[META_FILE] = await hashFile(metaFile);
        stage = 'checking the temporary folder';
        for (const entry of await fsp.readdir(tmp)) {
          if (!Object.prototype.hasOwnProperty.call(files, entry)) {
            this.log(`a part writer left ${path.join(tmp, entry)}, which is not a declared part; removed`, 'warn');
            await fsp.rm(path.join(tmp, entry), { recursive: true, force: true });
          }
        }
        stage = `writing ${MANIFEST_FILE}`;
        manifest = buildManifest(step, name, files);
        await writeFileDurable(path.join(tmp, MANIFEST_FILE), toStrictJson(manifest, 2) + '\n');
        await fsyncDir(tmp);
        stage = 'running the beforeCommit hook';
        if (this.hooks.beforeCommit) await this.hooks.beforeCommit(tmp);

        // 2. Commit: rename into place (a re-saved step: old copy aside first, deleted once the new one is durable).
        stage = `renaming ${tmp} to ${finalPath}`;
        let aside: string | null = null;
        if (await exists(finalPath)) {
          aside = path.join(this.dir, leftoverName('old', name));
          ACTIVE_TEMP_PATHS.add(aside);
          await fsp.rename(finalPath, aside);
        }
        try {
          await fsp.rename(tmp, finalPath);
        } catch (e) {
          if (aside) await fsp.rename(aside, finalPath).catch(() => undefined);
          throw e;
        }
        await fsyncDir(this.dir);
        if (aside) {
          await fsp.rm(aside, { recursive: true, force: true });
          ACTIVE_TEMP_PATHS.delete(aside);
          await fsyncDir(this.dir);
        }
      } catch (e) {
        const { code, text } = describeError(e);
        throw new CtclipError(
          code,
          `saving checkpoint ${finalPath} failed while ${stage}: ${text}. Nothing was committed; earlier checkpoints are intact.`,
          { cause: e },
        );
      }
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      ACTIVE_TEMP_PATHS.delete(tmp);
    }

    // 3. Pointers (the checkpoint is durable and complete at this point).
    try {
      await writePointer(this.dir, LATEST_POINTER, { checkpoint: name, step });
    } catch (e) {
      throw new CtclipError(
        'IO_ERROR',
        `checkpoint ${finalPath} was saved, but updating ${path.join(this.dir, LATEST_POINTER)} failed: ${describeError(e).text}`,
        { cause: e },
      );
    }
    this.log(`Saved checkpoint: ${finalPath}`, 'info');
    const newer = (await this.list()).filter((c) => c.step > step && c.complete);
    if (newer.length > 0) {
      this.log(
        `${newer.map((c) => c.path).join(', ')} ${newer.length === 1 ? 'is' : 'are'} newer than step ${step} (left by a run that was ` +
          `resumed from an earlier checkpoint); resuming with 'latest' picks the newest step, not this one`,
        'warn',
      );
    }

    let isBest = false;
    let bestName: string | null = null;
    if (this.bestMetric !== null) {
      const value = metricValue(toStrictJsonValueSafe(meta), this.bestMetric);
      // The best among the other checkpoints (this step's previous content, if re-saved, no longer exists).
      const current = await this.currentBest(name, { repair: true });
      if (improves(value, current ? current.value : null, this.bestMode)) {
        try {
          await writePointer(this.dir, BEST_POINTER, {
            checkpoint: name,
            step,
            metric: this.bestMetric,
            mode: this.bestMode,
            value: value as number,
          });
        } catch (e) {
          throw new CtclipError(
            'IO_ERROR',
            `checkpoint ${finalPath} was saved, but updating ${path.join(this.dir, BEST_POINTER)} failed: ${describeError(e).text}`,
            { cause: e },
          );
        }
        isBest = true;
        bestName = name;
        this.log(
          `★ New best ${this.bestMetric}: ${formatMetric(value as number)} (step ${step}) - ${finalPath}`,
          'info',
        );
      } else {
        bestName = current ? current.name : null;
      }
    } else {
      const p = await readPointer(this.dir, BEST_POINTER);
      if (p.state === 'ok') bestName = p.pointer.checkpoint;
    }

    // 4. Rotation, only now that the new checkpoint and the pointers are durable.
    const deleted = await this.rotate(name, bestName);
    return { path: finalPath, step, isBest, manifest: manifest!, deleted };
  }

  /**
   * The best checkpoint: from the best pointer when it is valid (right metric and mode, target present, target's
   * meta has a finite value), else re-derived from the metrics of every complete checkpoint (then, with
   * `repair`, the pointer is rewritten or removed). `exclude`: the checkpoint being saved (the best among the
   * others is what it must beat; a re-saved step's previous content no longer counts).
   */
  private async currentBest(exclude: string | null, opts: { repair: boolean }): Promise<BestState | null> {
    const ptr = await readPointer(this.dir, BEST_POINTER);
    const metric = this.bestMetric ?? (ptr.state === 'ok' ? (ptr.pointer.metric ?? null) : null);
    const ptrFile = path.join(this.dir, BEST_POINTER);
    if (ptr.state === 'ok' && ptr.pointer.checkpoint !== exclude) {
      const target = path.join(this.dir, ptr.pointer.checkpoint);
      if (metric === null) return { name: ptr.pointer.checkpoint, step: ptr.pointer.step, value: NaN };
      if (
        ptr.pointer.metric !== undefined &&
        (ptr.pointer.metric !== metric || (ptr.pointer.mode ?? 'max') !== this.bestMode)
      ) {
        this.log(
          `${ptrFile} tracks ${ptr.pointer.metric} (${ptr.pointer.mode ?? 'max'}), this run tracks ${metric} (${this.bestMode}): best re-derived from the checkpoints`,
          'warn',
        );
      } else {
        let value: number | null = null;
        let why = '';
        try {
          value = metricValue(await readMeta(target), metric);
          if (value === null) why = `its meta has no finite ${metric}`;
        } catch (e) {
          why = (e as Error).message;
        }
        if (value !== null) return { name: ptr.pointer.checkpoint, step: ptr.pointer.step, value };
        this.log(
          `${ptrFile} names ${target}, which cannot be used (${why}): best re-derived from the checkpoints`,
          'warn',
        );
      }
    } else if (ptr.state === 'invalid') {
      this.log(`${ptr.reason}: best re-derived from the checkpoints`, 'warn');
    }
    if (metric === null) return null;
    // Re-derive from the listing: the first strict improvement in step order, as save-by-save tracking would.
    let best: BestState | null = null;
    for (const c of await this.list()) {
      if (!c.complete || c.name === exclude) continue;
      let value: number | null = null;
      try {
        value = metricValue(await readMeta(c.path), metric);
      } catch {
        continue;
      }
      if (improves(value, best ? best.value : null, this.bestMode))
        best = { name: c.name, step: c.step, value: value as number };
    }
    if (opts.repair && !this.readOnly) {
      if (best)
        await writePointer(this.dir, BEST_POINTER, {
          checkpoint: best.name,
          step: best.step,
          metric,
          mode: this.bestMode,
          value: best.value,
        });
      else if (ptr.state !== 'missing') await removePointer(this.dir, BEST_POINTER);
    }
    return best;
  }

  private async rotate(saved: string, best: string | null): Promise<string[]> {
    if (this.keepLastN === 0) return [];
    const deleted: string[] = [];
    try {
      const complete = (await this.list()).filter((c) => c.complete);
      const plan = planRotation(complete, this.keepLastN, [saved, best]);
      for (const name of plan.delete) {
        const p = path.join(this.dir, name);
        const aside = path.join(this.dir, leftoverName('del', name));
        await fsp.rename(p, aside);
        await fsyncDir(this.dir);
        await fsp.rm(aside, { recursive: true, force: true });
        deleted.push(p);
        this.log(`Deleted old checkpoint: ${p}`, 'info');
      }
    } catch (e) {
      this.log(
        `checkpoint rotation in ${this.dir} failed (the new checkpoint is saved): ${describeError(e).text}`,
        'warn',
      );
    }
    return deleted;
  }
}

function toStrictJsonValueSafe(v: unknown): unknown {
  try {
    return JSON.parse(toStrictJson(v));
  } catch {
    return null;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}
