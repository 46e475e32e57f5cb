/**
 * The configuration reference (docs/configuration.md), generated from the one zod schema (lib/config/schema.ts):
 * every key with its dotted path, type, default and meaning (the key's `.describe()` text), grouped by section.
 *
 * It walks zod's own JSON-Schema rendering of the schema (`z.toJSONSchema(ConfigSchema, {io: 'input'})`), so
 * defaults and types are exactly what the schema accepts. A key without a description is rendered as
 * `(no description)`; `missingDescriptions()` lists them. Regenerate the file with `npm run docs:config`
 * (scripts/gen-config-reference.js); test/unit/config-reference.test.ts fails when it is stale.
 */
import { z } from 'zod';
import { IGNORED_KEYS } from './ignored';
import { originalKeyTable } from './original';
import { ConfigSchema } from './schema';

/** What zod's JSON-Schema output holds for one key (the subset the reference reads). */
interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  pattern?: string;
}

/** One leaf key of the configuration. */
export interface ConfigKeyReference {
  /** Dotted path, e.g. `training.learning_rate`. */
  path: string;
  /** The section (dotted path of the enclosing object), e.g. `model.image_encoder`. */
  section: string;
  /** Accepted values as text, e.g. `integer ≥ 1 | null`. */
  type: string;
  /** The default as YAML-like text, or `(required)` when the key has none. */
  defaultText: string;
  /** The `.describe()` text, or null when the schema has none. */
  description: string | null;
}

/** Marker rendered for keys without a `.describe()` text. */
export const NO_DESCRIPTION = '(no description)';

/** One-line introductions of the known sections (a section not listed here simply has none). */
const SECTION_INTROS: Record<string, string> = {
  experiment: 'Naming and seeding of the run.',
  data: 'Where the WebDataset shards and labels are, and how they are read.',
  model: 'The CT-CLIP architecture: latent width, image encoder, text encoder and loss.',
  'model.image_encoder': 'The CTViT 3-D image encoder.',
  'model.text_encoder': 'The BERT text encoder (CXR-BERT layout) and its tokenizer.',
  'model.loss': 'The contrastive loss.',
  training: 'Optimisation: length, learning-rate schedule, AdamW, precision, checkpoint cadence.',
  validation: 'Zero-shot validation during training (and the defaults of `ctclip infer`).',
  'validation.prompts': 'Zero-shot prompt templates; `{p}` is replaced by the class name.',
  checkpoint: 'The run directory, checkpoint retention and model selection.',
  logging: 'Console, TensorBoard and Weights & Biases output.',
  'logging.wandb':
    'Weights & Biases run settings (ctclip writes TensorBoard events for `wandb sync --sync-tensorboard`).',
  device:
    'CPU / CUDA placement of the model and the training step: the one place the device is chosen (docs/training.md "Devices"; the public API\'s `{device}` options override it per call).',
  distributed: 'Data-parallel training over c10d (Gloo / NCCL).',
};

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function formatNumber(x: number): string {
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential();
  return String(x);
}

function formatValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(formatValue).join(', ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length ? `{${entries.map(([k, x]) => `${k}: ${formatValue(x)}`).join(', ')}}` : '{}';
  }
  return String(v);
}

function numberBounds(s: JsonSchema): string {
  const lo =
    s.exclusiveMinimum !== undefined
      ? { x: s.exclusiveMinimum, open: true }
      : s.minimum !== undefined && s.minimum > -MAX_SAFE
        ? { x: s.minimum, open: false }
        : null;
  const hi =
    s.exclusiveMaximum !== undefined
      ? { x: s.exclusiveMaximum, open: true }
      : s.maximum !== undefined && s.maximum < MAX_SAFE
        ? { x: s.maximum, open: false }
        : null;
  if (lo && hi) return ` in ${lo.open ? '(' : '['}${formatNumber(lo.x)}, ${formatNumber(hi.x)}${hi.open ? ')' : ']'}`;
  if (lo) return ` ${lo.open ? '>' : '≥'} ${formatNumber(lo.x)}`;
  if (hi) return ` ${hi.open ? '<' : '≤'} ${formatNumber(hi.x)}`;
  return '';
}

/** A regex that is a plain literal (only escaped specials), as its literal text; else null. */
function literalPattern(pattern: string): string | null {
  if (!/^(?:\\.|[^.*+?^$()[\]{}|\\])+$/.test(pattern)) return null;
  return pattern.replace(/\\(.)/g, '$1');
}

/** Accepted values of one JSON-Schema node as short text. */
function typeText(s: JsonSchema): string {
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return alts.map(typeText).join(' | ');
  if (s.enum) return s.enum.map(formatValue).join(' | ');
  if (s.const !== undefined) return formatValue(s.const);
  if (Array.isArray(s.type)) return s.type.map((t) => typeText({ ...s, type: t })).join(' | ');
  switch (s.type) {
    case 'integer':
    case 'number':
      return `${s.type}${numberBounds(s)}`;
    case 'string': {
      const extra: string[] = [];
      if (s.minLength) extra.push('non-empty');
      if (s.pattern) {
        const literal = literalPattern(s.pattern);
        extra.push(literal !== null ? `containing ${literal}` : `matching /${s.pattern}/`);
      }
      return extra.length ? `string (${extra.join(', ')})` : 'string';
    }
    case 'array': {
      if (s.prefixItems) return `[${s.prefixItems.map(typeText).join('; ')}]`;
      const item = s.items ? typeText(s.items) : 'values';
      return `list of ${item.includes(' | ') ? `(${item})` : item}${s.minItems ? ` (at least ${s.minItems})` : ''}`;
    }
    case 'boolean':
    case 'null':
    case 'object':
      return s.type;
    default:
      return 'any';
  }
}

function isSection(s: JsonSchema): boolean {
  return s.type === 'object' && s.properties !== undefined;
}

/** Every leaf key of the configuration schema, in schema order (depth first). */
export function configKeyReference(): ConfigKeyReference[] {
  const root = z.toJSONSchema(ConfigSchema, { io: 'input' }) as JsonSchema;
  const out: ConfigKeyReference[] = [];
  const walk = (node: JsonSchema, prefix: string): void => {
    const required = new Set(node.required ?? []);
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (isSection(child)) {
        walk(child, path);
        continue;
      }
      const hasDefault = Object.prototype.hasOwnProperty.call(child, 'default');
      out.push({
        path,
        section: prefix,
        type: typeText(child),
        defaultText: hasDefault ? formatValue(child.default) : required.has(key) ? '(required)' : '(unset)',
        description: child.description ?? null,
      });
    }
  };
  walk(root, '');
  return out;
}

/** Dotted paths of the leaf keys that have no `.describe()` text in the schema. */
export function missingDescriptions(): string[] {
  return configKeyReference()
    .filter((k) => k.description === null)
    .map((k) => k.path);
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** docs/configuration.md's full text (deterministic: the same schema always gives the same bytes). */
export function renderConfigReference(): string {
  const keys = configKeyReference();
  const sections: string[] = [];
  for (const k of keys) if (!sections.includes(k.section)) sections.push(k.section);
  const lines: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from lib/config/schema.ts by `npm run docs:config` (lib/config/reference.ts). Do not edit by hand:',
    '     test/unit/config-reference.test.ts fails when this file is out of date. -->',
    '',
    'Every key of a ctclip YAML config, with its type, default and meaning, generated from the zod schema',
    '(`lib/config/schema.ts`). How configs are loaded (`_base_` inheritance, `${VAR}` expansion, `--set k=v`',
    "overrides, `null` = unset, error messages) is described in the README's",
    '[Configuration](../README.md#configuration) section; `configs/base_config.yaml` is a commented full config.',
    '',
    'Conventions: every section is strict (an unknown key is an error with a "did you mean" hint); `null` for a',
    'nullable key means "unset"; for cadence pairs (`*_steps` / `*_epochs`) the steps form wins when set (see',
    '`ctclip plan`). Keys whose default is `(required)` must be set.',
    '',
    '## Sections',
    '',
    ...sections.map((s) => `- [\`${s}\`](#${s.replace(/\./g, '')})`),
    '',
  ];
  for (const section of sections) {
    lines.push(`## \`${section}\``, '');
    const intro = SECTION_INTROS[section];
    if (intro) lines.push(intro, '');
    lines.push('| key | type | default | meaning |', '|---|---|---|---|');
    for (const k of keys.filter((x) => x.section === section)) {
      lines.push(
        `| \`${k.path}\` | ${cell(k.type)} | \`${cell(k.defaultText)}\` | ${cell(k.description ?? `*${NO_DESCRIPTION}*`)} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    '## Accepted but ignored keys',
    '',
    "Keys that the reference pipeline's configs carry but ctclip does not use, in any config. They are accepted",
    'and named in one "ignored keys" warning per config file (`lib/config/ignored.ts`).',
    '',
    '| key | why it is ignored |',
    '|---|---|',
    ...[...IGNORED_KEYS].map(([key, why]) => `| \`${key}\` | ${cell(why)} |`),
    '',
    "## The original pipeline's keys",
    '',
    "A config in the original Python pipeline's format (it has a `model.clip` section or a",
    '`model.image_encoder.type` / `model.text_encoder.type` tag) is translated key by key before `--set` and',
    'validation (`lib/config/original.ts`), keeping the meaning its code gave each key; one warning per file names',
    'the translated keys. Keys not listed here mean the same in both formats. A value that cannot be honoured is an',
    'error naming the key and the ctclip equivalent. `ctclip config migrate IN.yaml > OUT.yaml` writes the',
    'result as a ctclip config; [docs/migrating.md](migrating.md) has the details.',
    '',
    '| original key | ctclip equivalent |',
    '|---|---|',
    ...originalKeyTable().map(({ key, ctclip }) => `| \`${key}\` | ${cell(ctclip)} |`),
    '',
  );
  return lines.join('\n');
}
