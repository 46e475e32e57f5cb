/**
 * `ctclip config migrate IN.yaml`: a config (the original Python pipeline's format or ctclip's) → one standalone
 * ctclip-native YAML file, with comments.
 *
 * The output is the config as `loadConfig` resolves it — `_base_` files merged, `${VAR}` expanded, the original's
 * keys translated (original.ts), every default written out — so loading it gives the same resolved config, with
 * no warnings. Comments say where the file came from, which source keys were ignored and why, which key each
 * translated value came from, and what the original's code did that no key of its config says.
 */
import * as path from 'path';
import * as YAML from 'yaml';
import { loadConfig, type LoadConfigOptions, type LoadedConfig } from './load';

export interface MigratedConfig {
  /** The ctclip-native YAML text. */
  text: string;
  /** What loading the source gave (the resolved config, its files, warnings and notes). */
  loaded: LoadedConfig;
}

/**
 * Behaviours of the original's training code that its configs do not carry: the ctclip key that reproduces
 * each. Listed in a migrated original-format file; the values are left at what the keys say.
 */
const CODE_BEHAVIOURS: readonly string[] = [
  'training.mixed_precision: the original always trains under fp16 autocast with a loss scaler on CUDA (fp32 on the CPU); set fp16 to match on a GPU',
  "model.image_encoder.use_cpb: the original's latest code no longer adds the spatial position bias in attention (its seed-era code does); set false to match runs of the latest code",
  "model.loss.gather: the original contrasts each rank's batch on its own in multi-GPU runs; set false to match those",
  "logging.log_every_n_steps: the original's seed-era trainer prints every 10 steps whatever the key says",
];

/** YAML 1.1 reads these unquoted strings as booleans; quote them so every YAML reader sees a string. */
const BOOLEANISH = /^(y|yes|n|no|on|off|true|false|null|~)$/i;

function styleNodes(node: unknown): void {
  if (YAML.isMap(node)) for (const pair of node.items) styleNodes(pair.value);
  else if (YAML.isSeq(node)) {
    node.flow = node.items.every((i) => YAML.isScalar(i));
    for (const item of node.items) styleNodes(item);
  } else if (YAML.isScalar(node) && typeof node.value === 'string' && BOOLEANISH.test(node.value)) {
    node.type = 'QUOTE_DOUBLE';
  } else if (YAML.isScalar(node) && typeof node.value === 'number' && node.value !== 0 && Math.abs(node.value) < 1e-3) {
    node.format = 'EXP'; // 1.25e-6, not 0.00000125
  }
}

/** The key node of `keyPath` in the document, or undefined. */
function keyNode(doc: YAML.Document, keyPath: string): YAML.Scalar | undefined {
  const keys = keyPath.split('.');
  const parent = keys.length > 1 ? doc.getIn(keys.slice(0, -1), true) : doc.contents;
  if (!YAML.isMap(parent)) return undefined;
  const pair = parent.items.find((p) => YAML.isScalar(p.key) && p.key.value === keys[keys.length - 1]);
  return pair && YAML.isScalar(pair.key) ? pair.key : undefined;
}

function comment(lines: string[]): string {
  return lines.map((l) => (l ? ` ${l}` : '')).join('\n');
}

/** Loads `file` (see loadConfig) and renders its resolved config as commented ctclip-native YAML. */
export function migrateConfig(file: string, opts: LoadConfigOptions = {}): MigratedConfig {
  const loaded = loadConfig(file, opts);
  const doc = new YAML.Document(loaded.config);
  styleNodes(doc.contents);

  const rel = (f: string): string => path.relative(process.cwd(), f) || f;
  const header = [
    'ctclip configuration written by `ctclip config migrate` from:',
    ...loaded.files.map((f) => `  ${rel(f)}`),
    '',
    "Every key is written out: keys the source did not set have ctclip's defaults (docs/configuration.md).",
    'Environment variables (${VAR}) and _base_ files are resolved.',
  ];
  if (loaded.original) {
    header.push(
      '',
      "The source is in the original Python pipeline's format; each translated key has a comment naming the",
      'original key (docs/migrating.md).',
    );
  }
  const ignored = loaded.notes.filter((n) => n.kind === 'ignored');
  if (ignored.length > 0) {
    header.push('', 'Source keys left out (accepted by ctclip, with no effect):');
    for (const n of ignored) header.push(`  ${n.key}: ${n.why}`);
  }
  if (loaded.original) {
    header.push('', "What the original's code did that its config does not say (set these to reproduce it):");
    for (const b of CODE_BEHAVIOURS) header.push(`  ${b}`);
  }
  doc.commentBefore = comment(header);

  for (const n of loaded.notes) {
    if (n.kind === 'ignored' || !n.to) continue;
    for (const to of n.to.split(', ')) {
      const key = keyNode(doc, to);
      if (!key) continue;
      const line = n.kind === 'defaulted' ? `${n.key} ${n.why}` : `from ${n.key}: ${n.why}`;
      key.commentBefore = key.commentBefore ? `${key.commentBefore}\n ${line}` : ` ${line}`;
    }
  }
  return { text: doc.toString({ lineWidth: 0 }), loaded };
}
