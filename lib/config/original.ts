/**
 * The original Python pipeline's config format (the CTCLIP_MODERN training script's YAML files) → ctclip's.
 *
 * A merged config tree is in the original's format when it carries a key only that format has: a `model.clip`
 * section (the keyword arguments of its CTCLIP constructor) or a `model.image_encoder.type` /
 * `model.text_encoder.type` tag. Such a tree is translated before `--set` overrides and validation, so each of
 * its keys keeps the meaning the original's code gave it:
 *  - moved: `model.clip.dim_latent` → `model.dim_latent`, `model.clip.loss_type` → `model.loss.type`, …;
 *  - value-mapped: keys ctclip has too but whose value the original read differently (`device.use_cuda: true` is
 *    "CUDA when available" there, ctclip's `auto`; `checkpoint.best_metric: auroc` is looked up as `macro_auroc`;
 *    `data.num_workers: 0` reads in the training process);
 *  - ignored: keys with no effect in the original or no meaning for ctclip (each named in one warning);
 *  - checked: keys that state what ctclip derives (`model.clip.dim_image`); a value ctclip cannot honour is a
 *    CONFIG_ERROR naming the key and the ctclip equivalent;
 *  - defaulted: a key the original reads with a default different from ctclip's, when absent.
 * The keys both formats share with one meaning (`training.learning_rate`, …) pass through unchanged. The keys
 * that any config may carry and ctclip ignores (ignored.ts) are dropped later by the loader, in either format.
 *
 * RULES is the one table: the loader applies it, docs/configuration.md renders it, `ctclip config migrate`
 * writes the translation as comments.
 */
import { CtclipError } from '../errors';

type Tree = { [key: string]: unknown };

/** What happened to one key of an original-format config. */
export interface KeyNote {
  /** The key path in the original config. */
  key: string;
  /** The config file (or `--set`) the key came from. */
  origin: string;
  kind: 'ignored' | 'mapped' | 'defaulted';
  /** The ctclip key the value went to (mapped / defaulted), if any. */
  to?: string;
  /** Why, in words (for the warning, the docs and the migrated file's comments). */
  why: string;
}

/** The outcome of one rule on one present key. */
type Outcome = { ignore: string } | { set: Array<[string, unknown]>; why: string } | { keep: true } | { error: string };

interface Rule {
  /** Key path in the original format. */
  key: string;
  /** The ctclip equivalent, for docs/configuration.md. */
  ctclip: string;
  apply(value: unknown, tree: Tree): Outcome;
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function at(tree: unknown, keyPath: string): unknown {
  let node = tree;
  for (const k of keyPath.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Tree)[k];
  }
  return node;
}

function has(tree: Tree, keyPath: string): boolean {
  const keys = keyPath.split('.');
  const parent = keys.length > 1 ? at(tree, keys.slice(0, -1).join('.')) : tree;
  return typeof parent === 'object' && parent !== null && !Array.isArray(parent) && keys[keys.length - 1] in parent;
}

function remove(tree: Tree, keyPath: string): void {
  const keys = keyPath.split('.');
  const parent = at(tree, keys.slice(0, -1).join('.')) as Tree;
  delete parent[keys[keys.length - 1]];
}

function put(tree: Tree, keyPath: string, value: unknown): void {
  const keys = keyPath.split('.');
  let node = tree;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Tree;
  }
  node[keys[keys.length - 1]] = value;
}

/** A key moved to a ctclip key with the same meaning; the ctclip key set as well, to another value, is an error. */
function moveTo(to: string, convert: (v: unknown) => unknown = (v) => v): (value: unknown, tree: Tree) => Outcome {
  return (value, tree) => {
    const v = convert(value);
    const existing = at(tree, to);
    if (existing !== undefined && existing !== null && JSON.stringify(existing) !== JSON.stringify(v)) {
      return { error: `${show(value)} conflicts with ${to}: ${show(existing)} (ctclip equivalent: ${to}; keep one)` };
    }
    return { set: [[to, v]], why: `moved to ${to}` };
  };
}

/** The original's CTCLIP constructor switches; its configs build them off, and so does ctclip (no equivalent). */
function offOnly(what: string): (value: unknown) => Outcome {
  return (value) =>
    value === false || value === null
      ? { ignore: `the original's CTCLIP switch for ${what}, off as in ctclip's CT-CLIP` }
      : {
          error: `${show(value)} cannot be honoured: ctclip's CT-CLIP has no ${what} (no ctclip equivalent; set it to false or remove it)`,
        };
}

const BEST_METRICS = ['weighted_auroc', 'macro_auroc', 'weighted_auprc', 'macro_auprc', 'weighted_f1', 'macro_f1'];

/** The original's order of rule application is the table's; moved keys run before the checks that read them. */
const RULES: readonly Rule[] = [
  {
    key: 'model.clip.dim_latent',
    ctclip: 'model.dim_latent',
    apply: moveTo('model.dim_latent'),
  },
  {
    key: 'model.clip.dim_text',
    ctclip: 'model.text_encoder.hidden_size (the BERT width the text projection reads)',
    apply: moveTo('model.text_encoder.hidden_size'),
  },
  {
    key: 'model.clip.dim_image',
    ctclip: 'derived: (model.image_encoder.image_size / patch_size)² × dim; checked against it',
    apply: (value, tree) => {
      const ie = (at(tree, 'model.image_encoder') ?? {}) as Tree;
      const num = (k: string, d: number): number => (typeof ie[k] === 'number' ? (ie[k] as number) : d);
      const dim = num('dim', 512);
      const image = num('image_size', 480);
      const patch = num('patch_size', 20);
      const derived = (image / patch) ** 2 * dim;
      if (value === derived) {
        return { ignore: `ctclip derives it from model.image_encoder: (${image} / ${patch})² × ${dim} = ${derived}` };
      }
      return {
        error: `${show(value)} cannot be honoured: ctclip derives the image embedding width from model.image_encoder as (image_size ${image} / patch_size ${patch})² × dim ${dim} = ${derived} (ctclip equivalent: set model.image_encoder.image_size / patch_size / dim)`,
      };
    },
  },
  {
    key: 'model.clip.loss_type',
    ctclip: 'model.loss.type (`sigmoid` = `siglip`)',
    apply: (value, tree) => {
      if (value !== 'softmax' && value !== 'siglip' && value !== 'sigmoid') {
        return {
          error: `${show(value)} is not a loss of the original or of ctclip (ctclip equivalent: model.loss.type: softmax | siglip)`,
        };
      }
      return moveTo('model.loss.type', (v) => (v === 'sigmoid' ? 'siglip' : v))(value, tree);
    },
  },
  {
    key: 'model.clip.extra_latent_projection',
    ctclip: 'none (must be false)',
    apply: offOnly('extra latent projections'),
  },
  { key: 'model.clip.use_mlm', ctclip: 'none (must be false)', apply: offOnly('masked-language-model loss') },
  {
    key: 'model.clip.downsample_image_embeds',
    ctclip: 'none (must be false)',
    apply: offOnly('image-embedding downsampling'),
  },
  {
    key: 'model.clip.use_all_token_embeds',
    ctclip: 'none (must be false)',
    apply: offOnly('fine-grained all-token loss'),
  },
  {
    key: 'model.image_encoder.type',
    ctclip: 'none (ignored; the image encoder is CTViT)',
    apply: () => ({ ignore: "the original drops it before building its CTViT; ctclip's image encoder is CTViT" }),
  },
  {
    key: 'model.text_encoder.type',
    ctclip: 'none (ignored; the text encoder is the BERT at model.text_encoder.path)',
    apply: () => ({
      ignore: 'the original never reads it; the text encoder is the BERT folder at model.text_encoder.path',
    }),
  },
  {
    key: 'model.image_encoder.profile_timing',
    ctclip: 'logging.profile_timing when true (its breakdown has the CTViT stages forward_spatial / forward_temporal)',
    apply: (value, tree) => {
      if (value !== true) return { ignore: "the original's CTViT component timing, off" };
      const current = at(tree, 'logging.profile_timing');
      if (current !== undefined && current !== false) return { ignore: 'logging.profile_timing is already on' };
      return {
        set: [['logging.profile_timing', true]],
        why: 'CTViT component timing → logging.profile_timing: true (the step breakdown has forward_spatial / forward_temporal)',
      };
    },
  },
  {
    key: 'data.dataset_format',
    ctclip: "none (ignored; ctclip reads WebDataset shards, as the original's trainer does)",
    apply: () => ({
      ignore: "the original's trainer never reads it and always reads WebDataset shards, as ctclip does",
    }),
  },
  {
    key: 'data.train_dir',
    ctclip: 'none (ignored; data.webdataset_shards_train)',
    apply: () => ({ ignore: "a legacy NPZ folder the original's trainer never reads" }),
  },
  {
    key: 'data.valid_dir',
    ctclip: 'none (ignored; data.webdataset_shards_val)',
    apply: () => ({ ignore: "a legacy NPZ folder the original's trainer never reads" }),
  },
  {
    key: 'data.num_workers',
    ctclip: 'data.num_workers; 0 → 1 with data.prefetch_factor 1',
    apply: (value) => {
      if (value !== 0) return { keep: true };
      return {
        set: [
          ['data.num_workers', 1],
          ['data.prefetch_factor', 1],
        ],
        why: '0 (the original reads in the training process, one sample at a time, prefetch_factor unused) → num_workers 1, prefetch_factor 1: one read in flight, one batch ahead; the samples and their order are the same',
      };
    },
  },
  {
    key: 'training.num_epochs',
    ctclip: 'none (ignored; the length is training.max_epochs / max_steps)',
    apply: () => ({
      ignore:
        'the original never reads it: its run length is training.max_epochs / max_steps (set training.max_epochs to change it)',
    }),
  },
  {
    key: 'validation.every_n_epochs',
    ctclip: 'none (ignored; validation.eval_every_n_epochs)',
    apply: () => ({
      ignore: 'the original never reads it: its cadence is validation.eval_every_n_steps / eval_every_n_epochs',
    }),
  },
  {
    key: 'checkpoint.best_metric',
    ctclip: 'checkpoint.best_metric; a bare `auroc` / `auprc` / `f1` → `macro_…`',
    apply: (value) => {
      if (typeof value === 'string' && BEST_METRICS.includes(value)) return { keep: true };
      if (value === 'auroc' || value === 'auprc' || value === 'f1') {
        return {
          set: [['checkpoint.best_metric', `macro_${value}`]],
          why: `"${value}" → "macro_${value}" (the original's checkpoint manager looks up "${value}", absent from its validation results, then "macro_${value}")`,
        };
      }
      return {
        error: `${show(value)} cannot be honoured (ctclip equivalent: checkpoint.best_metric, one of ${BEST_METRICS.join(', ')})`,
      };
    },
  },
  {
    key: 'device.use_cuda',
    ctclip: 'device.use_cuda; true → auto',
    apply: (value) =>
      value === true
        ? {
            set: [['device.use_cuda', 'auto']],
            why: "true → auto (the original uses CUDA when torch sees a GPU and the CPU otherwise; ctclip's true requires a GPU)",
          }
        : { keep: true },
  },
];

/** The original's defaults for keys it reads with a default different from ctclip's (applied when absent). */
const ORIGINAL_DEFAULTS: ReadonlyArray<{ key: string; value: unknown; why: string; unless?: string }> = [
  { key: 'model.image_encoder.dim_head', value: 64, why: "the original's CTViT default" },
  {
    key: 'training.warmup_steps',
    value: null,
    why: 'the original warms up for training.warmup_epochs (default 0) when warmup_steps is absent',
  },
  {
    key: 'training.max_epochs',
    value: null,
    why: 'the original has no default run length',
    unless: 'training.max_steps',
  },
  {
    key: 'training.save_every_n_epochs',
    value: 1,
    why: "the original's default save cadence",
    unless: 'training.save_every_n_steps',
  },
  {
    key: 'validation.eval_every_n_epochs',
    value: 1,
    why: "the original's default validation cadence",
    unless: 'validation.eval_every_n_steps',
  },
  { key: 'validation.eval_samples', value: null, why: 'the original validates on all samples when absent' },
  { key: 'logging.wandb.project', value: 'ct-clip', why: "the original's W&B project" },
  { key: 'logging.wandb.mode', value: 'online', why: "the original's W&B mode" },
  { key: 'logging.wandb.job_type', value: 'train', why: "the original's W&B job type" },
];

/** Sections a config of the original's format has and ctclip's has not, or tags only the original writes. */
const MARKERS = ['model.clip', 'model.image_encoder.type', 'model.text_encoder.type'];

/** Whether a merged config tree is in the original pipeline's format. */
export function isOriginalFormat(tree: Tree): boolean {
  return MARKERS.some((k) => has(tree, k));
}

/** The key table for docs/configuration.md: original key → ctclip equivalent. */
export function originalKeyTable(): Array<{ key: string; ctclip: string }> {
  return [
    ...RULES.map((r) => ({ key: r.key, ctclip: r.ctclip })),
    ...ORIGINAL_DEFAULTS.map((d) => ({
      key: `${d.key} (absent)`,
      ctclip: `${d.key}: ${show(d.value)} (${d.why}${d.unless ? `; unless ${d.unless} is set` : ''})`,
    })),
  ];
}

function leafPaths(node: unknown, prefix: string, out: string[]): string[] {
  if (typeof node === 'object' && node !== null && !Array.isArray(node)) {
    for (const [k, v] of Object.entries(node as Tree)) leafPaths(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out.push(prefix);
  return out;
}

/**
 * Translates an original-format tree in place (see the file comment). `originOf(key)` names the file that set a
 * key; `setOrigin(key, origin)` records where a translated key came from. Returns one note per translated key;
 * throws CONFIG_ERROR listing every key that cannot be honoured.
 */
export function translateOriginal(
  tree: Tree,
  originOf: (key: string) => string,
  setOrigin: (key: string, origin: string) => void,
): KeyNote[] {
  const notes: KeyNote[] = [];
  const errors: string[] = [];
  // Absent keys first, so a rule that reads a sibling (e.g. dim_image) sees what the original would.
  const absent = ORIGINAL_DEFAULTS.filter((d) => !has(tree, d.key) && !(d.unless && at(tree, d.unless) != null));
  for (const rule of RULES) {
    if (!has(tree, rule.key)) continue;
    const origin = originOf(rule.key);
    const value = at(tree, rule.key);
    const out = rule.apply(value, tree);
    if ('keep' in out) continue;
    remove(tree, rule.key);
    if ('error' in out) {
      errors.push(`${origin}: ${rule.key}: ${out.error}`);
      continue;
    }
    if ('ignore' in out) {
      notes.push({ key: rule.key, origin, kind: 'ignored', why: out.ignore });
      continue;
    }
    for (const [to, v] of out.set) {
      put(tree, to, v);
      setOrigin(to, origin);
    }
    notes.push({ key: rule.key, origin, kind: 'mapped', to: out.set.map(([to]) => to).join(', '), why: out.why });
  }
  // Any other key of the original's CTCLIP constructor section has no translation: name each one.
  const clip = at(tree, 'model.clip');
  if (clip !== undefined) {
    const rest = typeof clip === 'object' && clip !== null ? leafPaths(clip, 'model.clip', []) : [];
    for (const k of rest) {
      errors.push(
        `${originOf(k)}: ${k}: a CTCLIP constructor argument ctclip cannot translate (no ctclip equivalent; the ones it maps: ${RULES.filter(
          (r) => r.key.startsWith('model.clip.'),
        )
          .map((r) => r.key)
          .join(', ')})`,
      );
    }
    remove(tree, 'model.clip');
  }
  if (errors.length > 0) throw new CtclipError('CONFIG_ERROR', errors.join('\n'));
  for (const d of absent) {
    // Reported against the file that holds the key's section (the main file when none does).
    const origin = originOf(d.key);
    put(tree, d.key, d.value);
    setOrigin(d.key, origin);
    notes.push({
      key: d.key,
      origin,
      kind: 'defaulted',
      to: d.key,
      why: `absent, so ${show(d.value)}: ${d.why}`,
    });
  }
  return notes;
}
