/**
 * The checkpoint manifest (`manifest.json`): the format version, the ctclip version that wrote it, the step, the
 * creation time, and the size + sha256 of every other file in the folder. It is written last, inside the
 * temporary folder, before the folder is renamed into place; `verifyCheckpoint` checks a folder against it.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { isCode } from './durable';
import { MANIFEST_FILE, parseCheckpointName } from './names';

export const MANIFEST_FORMAT = 'ctclip-checkpoint';
export const MANIFEST_FORMAT_VERSION = 1;

export interface ManifestEntry {
  size: number;
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: number;
  /** The ctclip version (package.json) that wrote the checkpoint. */
  ctclipVersion: string;
  step: number;
  /** The folder name it was written for (`ckpt-step%08d`). */
  name: string;
  /** ISO-8601 UTC. */
  createdAt: string;
  /** Every file of the checkpoint except manifest.json, sorted by name. */
  files: Record<string, ManifestEntry>;
}

export interface VerifyResult {
  ok: boolean;
  /** What makes the checkpoint unusable, each naming the file: `<dir>/model.safetensors: sha256 mismatch (…)`. */
  problems: string[];
  /** Harmless oddities (files not listed in the manifest). */
  warnings: string[];
  manifest: CheckpointManifest | null;
}

let cachedVersion: string | undefined;
/** ctclip's version from package.json. */
export function ctclipVersion(): string {
  if (cachedVersion === undefined) {
    cachedVersion = (require('../../package.json') as { version: string }).version;
  }
  return cachedVersion;
}

/** sha256 (hex) and size of a file, streamed. */
export async function hashFile(file: string): Promise<ManifestEntry> {
  const h = createHash('sha256');
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const s = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    s.on('data', (chunk) => {
      const b = chunk as Buffer;
      size += b.length;
      h.update(b);
    });
    s.on('error', reject);
    s.on('end', () => resolve());
  });
  return { size, sha256: h.digest('hex') };
}

export function sha256Of(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function buildManifest(
  step: number,
  name: string,
  files: Record<string, ManifestEntry>,
  createdAt = new Date(),
): CheckpointManifest {
  const sorted: Record<string, ManifestEntry> = {};
  for (const k of Object.keys(files).sort()) sorted[k] = { size: files[k].size, sha256: files[k].sha256 };
  return {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_FORMAT_VERSION,
    ctclipVersion: ctclipVersion(),
    step,
    name,
    createdAt: createdAt.toISOString(),
    files: sorted,
  };
}

/** Checks the shape of a parsed manifest; returns the problems (empty when valid). */
export function manifestProblems(m: unknown): string[] {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return ['not a JSON object'];
  const o = m as Record<string, unknown>;
  const out: string[] = [];
  if (o.format !== MANIFEST_FORMAT) out.push(`format is ${JSON.stringify(o.format)}, expected "${MANIFEST_FORMAT}"`);
  if (typeof o.formatVersion !== 'number' || !Number.isInteger(o.formatVersion)) out.push('formatVersion missing');
  else if (o.formatVersion > MANIFEST_FORMAT_VERSION) {
    out.push(
      `formatVersion ${o.formatVersion} is newer than this ctclip reads (${MANIFEST_FORMAT_VERSION}); upgrade ctclip`,
    );
  }
  if (typeof o.step !== 'number' || !Number.isSafeInteger(o.step) || o.step < 0)
    out.push('step missing or not an integer >= 0');
  if (typeof o.files !== 'object' || o.files === null || Array.isArray(o.files)) {
    out.push('files missing');
  } else {
    for (const [k, v] of Object.entries(o.files as Record<string, unknown>)) {
      const e = v as Partial<ManifestEntry> | null;
      if (k.includes('/') || k.includes('\\') || k === '..' || k === '.' || k === MANIFEST_FILE)
        out.push(`files: invalid name ${JSON.stringify(k)}`);
      else if (!e || typeof e.size !== 'number' || typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) {
        out.push(`files["${k}"]: expected {size, sha256}`);
      }
    }
  }
  return out;
}

/** Reads `<dir>/manifest.json`; throws with a message naming the file when it is missing or invalid. */
export async function readManifest(dir: string): Promise<CheckpointManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isCode(e, 'ENOENT')) throw new Error(`${file}: missing`);
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const problems = manifestProblems(parsed);
  if (problems.length > 0) throw new Error(`${file}: ${problems.join('; ')}`);
  return parsed as CheckpointManifest;
}

/**
 * Checks a checkpoint folder against its manifest. `hash: false` checks presence and sizes only (cheap: what
 * `list()` calls "complete"); `hash: true` (the default) also recomputes every sha256.
 */
export async function verifyCheckpoint(dir: string, opts: { hash?: boolean } = {}): Promise<VerifyResult> {
  const hash = opts.hash ?? true;
  const problems: string[] = [];
  const warnings: string[] = [];
  let st: fs.Stats;
  try {
    st = await fsp.stat(dir);
  } catch {
    return { ok: false, problems: [`${dir}: no such folder`], warnings, manifest: null };
  }
  if (!st.isDirectory()) return { ok: false, problems: [`${dir}: not a folder`], warnings, manifest: null };
  let manifest: CheckpointManifest;
  try {
    manifest = await readManifest(dir);
  } catch (e) {
    return { ok: false, problems: [(e as Error).message], warnings, manifest: null };
  }
  const folderStep = parseCheckpointName(path.basename(dir));
  if (folderStep !== null && folderStep !== manifest.step) {
    problems.push(
      `${path.join(dir, MANIFEST_FILE)}: step ${manifest.step} does not match the folder name (step ${folderStep})`,
    );
  }
  for (const [name, want] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    let fst: fs.Stats;
    try {
      fst = await fsp.lstat(file);
    } catch {
      problems.push(`${file}: missing`);
      continue;
    }
    if (!fst.isFile()) {
      problems.push(`${file}: not a regular file`);
      continue;
    }
    if (fst.size !== want.size) {
      problems.push(`${file}: size ${fst.size} bytes, manifest says ${want.size} (truncated or overwritten)`);
      continue;
    }
    if (hash) {
      const got = await hashFile(file);
      if (got.sha256 !== want.sha256) {
        problems.push(
          `${file}: sha256 mismatch (manifest ${want.sha256.slice(0, 12)}…, file ${got.sha256.slice(0, 12)}…)`,
        );
      }
    }
  }
  for (const e of await fsp.readdir(dir)) {
    if (e !== MANIFEST_FILE && !Object.prototype.hasOwnProperty.call(manifest.files, e))
      warnings.push(`${path.join(dir, e)}: not listed in the manifest`);
  }
  return { ok: problems.length === 0, problems, warnings, manifest };
}
