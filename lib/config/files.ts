/**
 * The files a configuration names (shards, labels CSV, vocabulary, text-encoder folder), checked before any
 * heavy work: `loadConfig(file, { checkFiles: 'train' | 'plan' | 'predict' })` refuses a config whose named files
 * do not exist with CONFIG_ERROR (exit 2), one line per missing file naming the key path, the file (and where a
 * relative path was resolved), and the config file that set the key.
 *
 * What each command needs:
 *  - train, plan: data.webdataset_shards_train and data.webdataset_shards_val (when set: at least one shard of
 *    each brace pattern must exist — a missing shard among others is reported by the index), data.labels_valid
 *    (when data.class_names is null), model.text_encoder.vocab, else <model.text_encoder.path>/vocab.txt (or its
 *    tokenizer.json), and the model.text_encoder.path folder itself;
 *  - predict: data.labels_valid (when data.class_names is null) and the vocabulary (vocab / path as above).
 * Paths are used as written: relative ones are relative to the working directory (as the readers use them).
 */
import * as fs from 'fs';
import * as path from 'path';
import { expandShardPattern } from '../data/brace';
import { CtclipError } from '../errors';
import { fileKind } from '../io/regular-file';
import { folderVocabFile } from '../text/folder-vocab';
import type { Config } from './schema';

/** Which command the files are checked for. */
export type FileCheck = 'train' | 'plan' | 'predict';

export interface ConfigFileRef {
  /** Key path, e.g. data.labels_valid. */
  key: string;
  /** The path as the config gives it (or derived from it, e.g. <path>/vocab.txt). */
  file: string;
  kind: 'file' | 'dir' | 'shards';
  /** Why a derived path is needed, e.g. "model.text_encoder.vocab is null". */
  note?: string;
}

/** The files `use` needs from this config. */
export function configFileRefs(cfg: Config, use: FileCheck): ConfigFileRef[] {
  const refs: ConfigFileRef[] = [];
  const d = cfg.data;
  const te = cfg.model.text_encoder;
  if (use !== 'predict') {
    if (d.webdataset_shards_train)
      refs.push({ key: 'data.webdataset_shards_train', file: d.webdataset_shards_train, kind: 'shards' });
    if (d.webdataset_shards_val)
      refs.push({ key: 'data.webdataset_shards_val', file: d.webdataset_shards_val, kind: 'shards' });
  }
  if (d.labels_valid && !d.class_names) refs.push({ key: 'data.labels_valid', file: d.labels_valid, kind: 'file' });
  if (te.path && use !== 'predict') refs.push({ key: 'model.text_encoder.path', file: te.path, kind: 'dir' });
  if (te.vocab) refs.push({ key: 'model.text_encoder.vocab', file: te.vocab, kind: 'file' });
  else if (te.path)
    refs.push({
      key: 'model.text_encoder.path',
      file: folderVocabFile(te.path) ?? path.join(te.path, 'vocab.txt'),
      kind: 'file',
      note: 'the vocabulary, as model.text_encoder.vocab is null: vocab.txt, or the tokenizer.json of a transformers 5 folder',
    });
  return refs;
}

function where(file: string): string {
  return path.isAbsolute(file) ? `'${file}'` : `'${file}' (relative to the working directory: ${path.resolve(file)})`;
}

/** The problem with one reference, or null when it is there. */
function problemOf(ref: ConfigFileRef, listings: Map<string, Set<string> | null>): string | null {
  if (ref.kind === 'shards') {
    let names: string[];
    try {
      names = expandShardPattern(ref.file);
    } catch (e) {
      return `${(e as Error).message}`;
    }
    // One directory listing per directory instead of one stat per name (a pattern may expand to many names).
    for (const name of names) {
      const dir = path.resolve(path.dirname(name));
      let listing = listings.get(dir);
      if (listing === undefined) {
        try {
          listing = new Set(fs.readdirSync(dir));
        } catch {
          listing = null;
        }
        listings.set(dir, listing);
      }
      if (listing?.has(path.basename(name))) return null;
    }
    const dir = path.dirname(names[0]);
    const dirNote =
      listings.get(path.resolve(dir)) === null
        ? `; the directory ${where(dir)} does not exist or cannot be listed`
        : '';
    return `no shard of the pattern '${ref.file}' exists (${names.length} name${names.length === 1 ? '' : 's'}, e.g. ${where(names[0])})${dirNote}`;
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(ref.file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return `${where(ref.file)} ${code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be read (${(e as Error).message})`}${ref.note ? ` (${ref.note})` : ''}`;
  }
  if (ref.kind === 'dir' && !st.isDirectory()) return `${where(ref.file)} is ${fileKind(st)}, expected a folder`;
  if (ref.kind === 'file' && !st.isFile())
    return `${where(ref.file)} is ${fileKind(st)}, expected a regular file${ref.note ? ` (${ref.note})` : ''}`;
  return null;
}

/**
 * Checks the files `use` needs; throws CONFIG_ERROR listing every missing one. `originOf(key)` names the
 * config file (or `--set`) that set a key.
 */
export function checkConfigFiles(
  cfg: Config,
  use: FileCheck,
  originOf: (key: string) => string = () => 'config',
): void {
  const listings = new Map<string, Set<string> | null>();
  const lines: string[] = [];
  const failed = new Set<string>();
  for (const ref of configFileRefs(cfg, use)) {
    if (failed.has(ref.key)) continue; // e.g. no <path>/vocab.txt line when the folder itself is missing
    const problem = problemOf(ref, listings);
    if (problem === null) continue;
    failed.add(ref.key);
    lines.push(`${originOf(ref.key)}: ${ref.key}: ${problem}`);
  }
  if (lines.length) throw new CtclipError('CONFIG_ERROR', lines.join('\n'));
}
