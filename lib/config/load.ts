/**
 * Loading a configuration: YAML files with `_base_` inheritance, `${VAR}` / `${VAR:default}` expansion,
 * CLI overrides (`--set training.learning_rate=1e-5`), then the zod schema with defaults.
 *
 * Order (each step's errors name the file, the key path, the bad value and what was expected):
 *  1. read the YAML file; expand environment variables in its strings (an unset variable without a default
 *     is an error naming the file and key);
 *  2. if it has `_base_` (a path or a list of paths, relative to the file), load those first, recursively, and
 *     deep-merge this file on top: mappings merge key by key; anything else, lists included, is replaced;
 *  3. if the merged tree is in the original Python pipeline's format (a `model.clip` section, `*.type` tags),
 *     translate its keys to ctclip's with their original meaning (original.ts); a key that cannot be honoured
 *     is an error naming it and the ctclip equivalent;
 *  4. apply `--set key.path=value` overrides (values parsed as YAML scalars, so `1e-5` is a number), in
 *     ctclip's key names;
 *  5. drop the keys ctclip accepts and ignores (ignored.ts); one warning per config file names the ignored
 *     keys, one the translated ones;
 *  6. validate with the schema; unknown keys get a "did you mean" hint;
 *  7. with `checkFiles`, check that the files the command needs from the config exist (files.ts).
 *
 * Hostile files (docs/limits.md): a config file (the main one and every `_base_`) must be a regular file of at
 * most MAX_CONFIG_BYTES (1 MiB), checked on the open descriptor (a FIFO or `/dev/zero` is refused, never read);
 * the keys `__proto__`, `constructor` and `prototype` are unknown keys wherever they appear (in a file, a
 * `--set` path or value, or an expanded `${VAR}`), so no config can reach an object prototype.
 */
import * as path from 'path';
import * as YAML from 'yaml';
import { z } from 'zod';
import { CtclipError } from '../errors';
import { readRegularFileSync } from '../io/regular-file';
import { checkConfigFiles, type FileCheck } from './files';
import { IGNORED_KEYS } from './ignored';
import { isOriginalFormat, translateOriginal, type KeyNote } from './original';
import { ConfigSchema, type Config } from './schema';

type Tree = { [key: string]: unknown };

export interface LoadConfigOptions {
  /** `key.path=value` overrides, applied after the files. */
  overrides?: string[];
  /** Environment used for `${VAR}` expansion (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Receives the warnings (ignored and translated keys; default: console.warn). */
  warn?: (message: string) => void;
  /**
   * Check that the files this command needs from the config exist (shards, labels CSV, vocabulary, text encoder
   * folder; see files.ts): CONFIG_ERROR naming each key path and file. Default: no check.
   */
  checkFiles?: FileCheck;
}

/** Largest config file accepted (each of the main file and its `_base_` files): 1 MiB. */
export const MAX_CONFIG_BYTES = 2 ** 20;

/** Keys that would reach an object prototype in JavaScript; never config keys. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function forbiddenKey(where: string, keyPath: string): never {
  return fail(`${where}: unknown key ${keyPath} (a reserved JavaScript name, never a config key)`);
}

/**
 * A parsed YAML node (from `toJS({ mapAsMap: true })`, so every key is kept as written) → plain objects and
 * arrays; a forbidden key is an "unknown key" error naming `where` and its path.
 */
function plainTree(node: unknown, where: string, keyPath: string): unknown {
  if (node instanceof Map) {
    const out: Tree = {};
    for (const [k, v] of node) {
      const key = typeof k === 'object' && k !== null ? JSON.stringify(k) : String(k);
      const p = keyPath ? `${keyPath}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) forbiddenKey(where, p);
      out[key] = plainTree(v, where, p);
    }
    return out;
  }
  if (node instanceof Set) return [...node].map((v, i) => plainTree(v, where, `${keyPath}[${i}]`));
  if (Array.isArray(node)) return node.map((v, i) => plainTree(v, where, `${keyPath}[${i}]`));
  return node;
}

/** Parses YAML text (a document, a `--set` value, an expanded variable) into plain data, forbidden keys refused. */
function parseYaml(text: string, where: string, keyPath: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw doc.errors[0];
  return plainTree(doc.toJS({ mapAsMap: true }), where, keyPath);
}

export interface LoadedConfig {
  config: Config;
  /** Files read, base files first. */
  files: string[];
  /** Warnings emitted: per config file, one naming its ignored keys and one naming its translated keys. */
  warnings: string[];
  /** Whether the file is in the original Python pipeline's format (translated by original.ts). */
  original: boolean;
  /** Every ignored, translated or defaulted key, in order (what the warnings say, as data). */
  notes: KeyNote[];
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(message: string): never {
  throw new CtclipError('CONFIG_ERROR', message);
}

function show(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}/g;

/** Expands `${VAR}` / `${VAR:default}` in every string of a parsed YAML tree. */
function expandEnv(node: unknown, env: NodeJS.ProcessEnv, file: string, keyPath: string): unknown {
  if (typeof node === 'string') {
    const whole = /^\$\{[^}]*\}$/.test(node);
    const out = node.replace(VAR, (_m, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      return fail(
        `${file}: ${keyPath || '(root)'}: environment variable ${name} is not set and "${node}" gives no default (write \${${name}:default})`,
      );
    });
    // A value that is exactly one ${...} takes the type its text has in YAML (numbers, booleans, null).
    if (!whole) return out;
    let value: unknown;
    try {
      value = parseYaml(out, file, keyPath);
    } catch (e) {
      if (e instanceof CtclipError) throw e;
      return fail(`${file}: ${keyPath || '(root)'}: the value of "${node}" is not valid YAML: ${(e as Error).message}`);
    }
    return value ?? null;
  }
  if (Array.isArray(node)) return node.map((v, i) => expandEnv(v, env, file, `${keyPath}[${i}]`));
  if (isTree(node)) {
    const out: Tree = {};
    for (const [k, v] of Object.entries(node)) out[k] = expandEnv(v, env, file, keyPath ? `${keyPath}.${k}` : k);
    return out;
  }
  return node;
}

/** Deep merge: mappings merge key by key; lists and scalars from `top` replace. Records each leaf's origin. */
function merge(base: Tree, top: Tree, origin: string, origins: Map<string, string>, prefix = ''): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(top)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (isTree(v) && isTree(out[k])) {
      out[k] = merge(out[k] as Tree, v, origin, origins, p);
    } else {
      out[k] = v;
      origins.set(p, origin);
      if (isTree(v)) recordOrigins(v, origin, origins, p);
    }
  }
  return out;
}

function recordOrigins(tree: Tree, origin: string, origins: Map<string, string>, prefix: string): void {
  for (const [k, v] of Object.entries(tree)) {
    const p = `${prefix}.${k}`;
    origins.set(p, origin);
    if (isTree(v)) recordOrigins(v, origin, origins, p);
  }
}

function readYamlFile(
  file: string,
  env: NodeJS.ProcessEnv,
  chain: string[],
  origins: Map<string, string>,
  files: string[],
): Tree {
  const abs = path.resolve(file);
  if (chain.includes(abs)) fail(`${abs}: _base_ inheritance cycle: ${[...chain, abs].join(' -> ')}`);
  const of = chain.length ? ` (the _base_ of ${chain[chain.length - 1]})` : '';
  let text: string;
  try {
    // Regular files only, at most 1 MiB, checked on the open descriptor: a FIFO or a device is never read.
    text = readRegularFileSync(abs, {
      what: 'config',
      code: 'CONFIG_ERROR',
      ioCode: 'CONFIG_ERROR',
      maxBytes: MAX_CONFIG_BYTES,
      limitName: 'the 1 MiB limit for config files',
    }).toString('utf8');
  } catch (e) {
    const cause = (e as { cause?: NodeJS.ErrnoException }).cause;
    if (!cause) return fail(`${(e as Error).message}${of}`); // not a regular file, or over the size limit (names the file)
    const why = cause.code === 'ENOENT' ? 'file not found' : cause.message;
    return fail(`${abs}: cannot read config (${why})${of}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text, abs, '') ?? {};
  } catch (e) {
    if (e instanceof CtclipError) throw e;
    return fail(`${abs}: invalid YAML: ${(e as Error).message}`);
  }
  if (!isTree(parsed)) fail(`${abs}: a config must be a YAML mapping at the top level, got ${show(parsed)}`);
  const expanded = expandEnv(parsed, env, abs, '') as Tree;
  const baseRef = expanded._base_;
  delete expanded._base_;
  let merged: Tree = {};
  if (baseRef !== undefined && baseRef !== null) {
    const bases = Array.isArray(baseRef) ? baseRef : [baseRef];
    for (const b of bases) {
      if (typeof b !== 'string' || b === '')
        fail(`${abs}: _base_: expected a file path or a list of paths, got ${show(b)}`);
      const basePath = path.resolve(path.dirname(abs), b);
      merged = merge(merged, readYamlFile(basePath, env, [...chain, abs], origins, files), basePath, origins);
    }
  }
  files.push(abs);
  return merge(merged, expanded, abs, origins);
}

/** Applies one `a.b.c=value` override; the value is parsed as a YAML scalar/flow value. */
export function applyOverride(tree: Tree, spec: string, origins?: Map<string, string>): Tree {
  const eq = spec.indexOf('=');
  if (eq <= 0) fail(`--set ${spec}: expected key.path=value (e.g. --set training.learning_rate=1e-5)`);
  const keyPath = spec.slice(0, eq).trim();
  const raw = spec.slice(eq + 1);
  const keys = keyPath.split('.');
  if (keys.some((k) => k === '')) fail(`--set ${spec}: empty key in path "${keyPath}"`);
  const bad = keys.findIndex((k) => FORBIDDEN_KEYS.has(k));
  if (bad >= 0) forbiddenKey(`--set ${keyPath}`, keys.slice(0, bad + 1).join('.'));
  let value: unknown;
  try {
    value = raw === '' ? '' : parseYaml(raw, `--set ${keyPath}`, keyPath);
  } catch (e) {
    if (e instanceof CtclipError) throw e;
    return fail(`--set ${keyPath}: cannot parse value ${show(raw)}: ${(e as Error).message}`);
  }
  const out: Tree = { ...tree };
  let node = out;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (next !== undefined && next !== null && !isTree(next))
      fail(`--set ${keyPath}: "${k}" is a value (${show(next)}), not a section`);
    node[k] = isTree(next) ? { ...next } : {};
    node = node[k] as Tree;
  }
  node[keys[keys.length - 1]] = value;
  origins?.set(keyPath, '--set');
  return out;
}

function dropIgnored(tree: Tree, notes: KeyNote[], origins: Map<string, string>, mainFile: string): void {
  for (const [keyPath, why] of IGNORED_KEYS) {
    const keys = keyPath.split('.');
    let node: unknown = tree;
    for (const k of keys.slice(0, -1)) node = isTree(node) ? node[k] : undefined;
    const last = keys[keys.length - 1];
    if (isTree(node) && last in node) {
      delete node[last];
      notes.push({ key: keyPath, origin: originOf(keyPath, origins, mainFile), kind: 'ignored', why });
    }
  }
}

/** One warning per origin naming its ignored keys, one naming its translated (mapped or defaulted) keys. */
function noteWarnings(notes: KeyNote[]): string[] {
  const groups = new Map<string, string[]>();
  for (const n of notes) {
    const head =
      n.kind === 'ignored'
        ? `${n.origin}: ignored keys (accepted, no effect in ctclip):`
        : `${n.origin}: the original pipeline's keys, translated to ctclip's (\`ctclip config migrate\` writes the result):`;
    const lines = groups.get(head) ?? [];
    lines.push(`  ${n.key}: ${n.why}`);
    groups.set(head, lines);
  }
  return [...groups].map(([head, lines]) => [head, ...lines].join('\n'));
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The keys the schema accepts at a given path (for "did you mean"). */
function knownKeysAt(keys: PropertyKey[]): string[] {
  let schema: z.ZodType = ConfigSchema;
  for (const k of keys) {
    const shape = objectShape(schema);
    if (!shape || typeof k !== 'string' || !(k in shape)) return [];
    schema = shape[k];
  }
  const shape = objectShape(schema);
  return shape ? Object.keys(shape) : [];
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  // Unwrap pipes/defaults/optionals/effects down to an object, if any.
  let s: unknown = schema;
  for (let i = 0; i < 10 && s; i++) {
    const def = (s as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) return undefined;
    if (def.type === 'object') return def.shape as Record<string, z.ZodType>;
    s = def.innerType ?? def.in ?? def.schema;
  }
  return undefined;
}

export function suggest(unknown: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = levenshtein(unknown.toLowerCase(), c.toLowerCase());
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(unknown.length / 3)) ? best : undefined;
}

function originOf(keyPath: string, origins: Map<string, string>, fallback: string): string {
  for (let p = keyPath; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const o = origins.get(p);
    if (o) return o;
  }
  return fallback;
}

function valueAt(tree: unknown, keys: PropertyKey[]): unknown {
  let node = tree;
  for (const k of keys) node = isTree(node) || Array.isArray(node) ? (node as Tree)[k as string] : undefined;
  return node;
}

/** Keys that no longer exist, with where their setting lives now (instead of a "did you mean" guess). */
const REMOVED_KEYS: ReadonlyMap<string, string> = new Map([
  [
    'training.device',
    'removed: the device is chosen by the device section, device.use_cuda (auto, true or false) and device.cuda_device (the GPU index of a single process)',
  ],
]);

function formatIssues(error: z.ZodError, raw: Tree, origins: Map<string, string>, mainFile: string): string {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const keys = issue.path;
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const full = [...keys, key].join('.');
        const removed = REMOVED_KEYS.get(full);
        const hint = removed === undefined ? suggest(key, knownKeysAt(keys)) : undefined;
        const note =
          removed !== undefined ? ` (${removed})` : hint ? ` (did you mean ${[...keys, hint].join('.')}?)` : '';
        lines.push(`${originOf(full, origins, mainFile)}: unknown key ${full}${note}`);
      }
      continue;
    }
    const full = keys.join('.') || '(root)';
    const value = valueAt(raw, keys);
    const got = value === undefined ? 'missing' : show(value);
    lines.push(`${originOf(full, origins, mainFile)}: ${full}: ${issue.message} (got ${got})`);
  }
  return lines.join('\n');
}

/** Validates an already-merged raw tree (used by loadConfig and by tests/library users). */
export function parseConfig(raw: Tree, origins = new Map<string, string>(), mainFile = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) fail(formatIssues(result.error, raw, origins, mainFile));
  return result.data;
}

/** Loads, merges, expands, overrides, and validates a config file. Throws CONFIG_ERROR (exit code 2 in CLIs). */
export function loadConfig(file: string, opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const origins = new Map<string, string>();
  const files: string[] = [];
  let tree = readYamlFile(file, env, [], origins, files);
  const mainFile = path.resolve(file);
  const original = isOriginalFormat(tree);
  const notes = original
    ? translateOriginal(
        tree,
        (key) => originOf(key, origins, mainFile),
        (key, origin) => origins.set(key, origin),
      )
    : [];
  for (const spec of opts.overrides ?? []) tree = applyOverride(tree, spec, origins);
  dropIgnored(tree, notes, origins, mainFile);
  const warnings = noteWarnings(notes);
  const warn = opts.warn ?? ((m: string) => console.warn(`warning: ${m}`));
  for (const w of warnings) warn(w);
  const config = parseConfig(tree, origins, mainFile);
  if (opts.checkFiles) checkConfigFiles(config, opts.checkFiles, (key) => originOf(key, origins, mainFile));
  return { config, files, warnings, original, notes };
}
