/**
 * Pointer files (`latest.json`, `best.json`): a small JSON document naming a checkpoint folder of the same
 * directory. They are replaced atomically (temp file + fsync + rename + fsync of the folder). A pointer is a
 * convenience for people and tools; the manager re-derives everything it needs when a pointer is missing,
 * unreadable or dangling.
 */
import * as fsp from 'fs/promises';
import * as path from 'path';
import { toStrictJson } from '../io/strict-json';
import { isCode, replaceFileAtomic, unlinkDurable } from './durable';
import { parseCheckpointName } from './names';

export interface PointerContent {
  /** The checkpoint folder name (a sibling of the pointer file). */
  checkpoint: string;
  step: number;
  /** ISO-8601 UTC time of the update. */
  updatedAt: string;
  /** best.json only: the metric, its mode and the value at the pointed checkpoint. */
  metric?: string;
  mode?: 'max' | 'min';
  value?: number;
}

export type PointerRead =
  { state: 'missing' } | { state: 'invalid'; reason: string } | { state: 'ok'; pointer: PointerContent };

/**
 * Reads a pointer. Accepts our JSON form, and also a bare folder name on one line (hand-written pointers).
 * The named folder must be a plain `ckpt-step…` name (no paths: a pointer never leads outside its directory).
 */
export async function readPointer(dir: string, name: string): Promise<PointerRead> {
  const file = path.join(dir, name);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isCode(e, 'ENOENT')) return { state: 'missing' };
    return { state: 'invalid', reason: `${file}: ${(e as Error).message}` };
  }
  let checkpoint: unknown;
  let extra: Record<string, unknown> = {};
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      extra = JSON.parse(trimmed) as Record<string, unknown>;
      checkpoint = extra.checkpoint;
    } catch (e) {
      return { state: 'invalid', reason: `${file}: invalid JSON (${(e as Error).message})` };
    }
  } else {
    checkpoint = trimmed;
  }
  if (typeof checkpoint !== 'string') return { state: 'invalid', reason: `${file}: no "checkpoint" field` };
  const step = parseCheckpointName(checkpoint);
  if (step === null)
    return {
      state: 'invalid',
      reason: `${file}: ${JSON.stringify(checkpoint)} is not a checkpoint folder name (ckpt-stepNNNNNNNN)`,
    };
  const pointer: PointerContent = {
    checkpoint,
    step,
    updatedAt: typeof extra.updatedAt === 'string' ? extra.updatedAt : '',
  };
  if (typeof extra.metric === 'string') pointer.metric = extra.metric;
  if (extra.mode === 'max' || extra.mode === 'min') pointer.mode = extra.mode;
  if (typeof extra.value === 'number') pointer.value = extra.value;
  return { state: 'ok', pointer };
}

/** Atomically replaces the pointer `name` in `dir`. */
export async function writePointer(
  dir: string,
  name: string,
  content: Omit<PointerContent, 'updatedAt'>,
): Promise<void> {
  const body: PointerContent = {
    checkpoint: content.checkpoint,
    step: content.step,
    updatedAt: new Date().toISOString(),
  };
  if (content.metric !== undefined) body.metric = content.metric;
  if (content.mode !== undefined) body.mode = content.mode;
  if (content.value !== undefined) body.value = content.value;
  await replaceFileAtomic(dir, name, toStrictJson(body, 2) + '\n');
}

export async function removePointer(dir: string, name: string): Promise<void> {
  await unlinkDurable(path.join(dir, name));
}
