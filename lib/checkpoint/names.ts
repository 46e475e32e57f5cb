/**
 * Names inside a checkpoint directory. Everything the manager creates is recognisable from its name alone, so
 * rotation, resume and cleanup work from the directory listing (no in-memory history):
 *
 *  - `ckpt-step00005234/`                         a checkpoint (only ever appears complete: it is renamed into place)
 *  - `.tmp-ckpt-step00005234-<pid>-<random>/`     a checkpoint being written
 *  - `.old-ckpt-step00005234-<pid>-<random>/`     the previous copy of a step being re-saved (moved aside)
 *  - `.del-ckpt-step00005234-<pid>-<random>/`     a checkpoint being deleted by rotation (moved aside first)
 *  - `latest.json`, `best.json`                   pointer files
 *  - `.latest.json.tmp-<pid>-<random>`            a pointer being replaced
 */
import { randomBytes } from 'crypto';
import { CtclipError } from '../errors';

export const CHECKPOINT_PREFIX = 'ckpt-step';
export const STEP_DIGITS = 8;
export const LATEST_POINTER = 'latest.json';
export const BEST_POINTER = 'best.json';
export const MANIFEST_FILE = 'manifest.json';
export const META_FILE = 'meta.json';
/** The model weights part of a training checkpoint (safetensors under the reference key names). */
export const MODEL_PART = 'model.safetensors';

const CHECKPOINT_RE = /^ckpt-step(\d{8,})$/;
const LEFTOVER_RE = /^\.(tmp|old|del)-(ckpt-step\d{8,})-(\d+)-([0-9a-z]+)$/;
const POINTER_TMP_RE = /^\.((?:latest|best)\.json)\.tmp-(\d+)-([0-9a-z]+)$/;

/** `ckpt-step%08d` (more digits when the step needs them; names still sort numerically through `parseCheckpointName`). */
export function checkpointName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new CtclipError('ARGUMENT_ERROR', `checkpoint step must be an integer >= 0, got ${step}`);
  }
  return CHECKPOINT_PREFIX + String(step).padStart(STEP_DIGITS, '0');
}

/** The step of a checkpoint folder name, or null when `name` is not one (temp folders, pointers, other files). */
export function parseCheckpointName(name: string): number | null {
  const m = CHECKPOINT_RE.exec(name);
  if (!m) return null;
  const step = Number(m[1]);
  return Number.isSafeInteger(step) ? step : null;
}

export type LeftoverKind = 'tmp' | 'old' | 'del' | 'pointer-tmp';

export interface LeftoverName {
  kind: LeftoverKind;
  /** The checkpoint folder name (tmp/old/del) or pointer file name (pointer-tmp) it belongs to. */
  target: string;
  /** The process that created it. */
  pid: number;
}

/** Recognises the temporary names the manager creates; null for anything else. */
export function parseLeftoverName(name: string): LeftoverName | null {
  const m = LEFTOVER_RE.exec(name);
  if (m) return { kind: m[1] as 'tmp' | 'old' | 'del', target: m[2], pid: Number(m[3]) };
  const p = POINTER_TMP_RE.exec(name);
  if (p) return { kind: 'pointer-tmp', target: p[1], pid: Number(p[2]) };
  return null;
}

/** A random suffix for temporary names (crypto randomness: not part of any seeded stream, never affects results). */
export function randomSuffix(): string {
  return randomBytes(6).toString('hex');
}

export function leftoverName(
  kind: 'tmp' | 'old' | 'del',
  checkpoint: string,
  pid = process.pid,
  suffix = randomSuffix(),
): string {
  return `.${kind}-${checkpoint}-${pid}-${suffix}`;
}

export function pointerTempName(pointer: string, pid = process.pid, suffix = randomSuffix()): string {
  return `.${pointer}.tmp-${pid}-${suffix}`;
}
