/**
 * Key layouts of imported weights, and the mapping to ours (the reference [orig] names, lib/weights/reference-keys.ts):
 *
 * - wrappers: `{model_state_dict | state_dict | model: <state dict>, …}` (MODERN's CheckpointManager, trainers),
 *   and a `module.` prefix on every key (DistributedDataParallel) — unwrapped and reported;
 * - the stale `text_transformer.embeddings.position_ids` (int64 buffer of transformers < 4.31) — dropped, noted;
 * - the refactor (CTCLIP_MODERN) layout: `text_transformer.bert.X` → `text_transformer.X`; its extra heads
 *   (`text_transformer.cls.*`, `text_transformer.cls_projection_head.*`), the CTViT decoder
 *   (`visual_transformer.dec_*`) and `vq._codebook.embed_avg` have no counterpart in our model and are dropped
 *   with a reason; anything else that does not map (e.g. the flag variants' `norm.weight`) is "unexpected";
 * - a bare BERT (`expect: 'bert'`, e.g. a Hugging Face folder): `bert.X` or `X` → `text_transformer.X`, MLM and
 *   projection heads (`cls.*`, `cls_projection_head.*`) dropped.
 *
 * Works on names and shapes only, so dropped tensors are never read; `entriesToLoad` then leaves out what the
 * model does not expect.
 */
import { CtclipError } from '../errors';
import type { ReferenceKey } from './reference-keys';

export type Expect = 'ctclip' | 'bert';

export const REFACTOR_LAYOUT_NAME = 'refactor (CTCLIP_MODERN) layout';

/** Wrapper keys tried in this order. */
export const WRAPPER_KEYS = ['model_state_dict', 'state_dict', 'model'] as const;

export interface DroppedKey {
  key: string;
  reason: string;
}

export interface ShapeMismatch {
  key: string;
  expected: number[];
  got: number[];
}

export interface WeightsReport {
  file: string;
  format: 'torch' | 'safetensors' | 'hf-folder';
  /** 'flat', 'wrapped:<key>' or 'refactor' (the refactor may itself be wrapped: see `wrapper`). */
  layout: string;
  /** Human-readable, e.g. "refactor (CTCLIP_MODERN) layout, wrapped in 'model_state_dict'". */
  layoutDescription: string;
  wrapper: string | null;
  /** The wrapper's other entries (e.g. {epoch: '3'}), summarised, never loaded. */
  otherEntries: Record<string, string>;
  /** Storage devices recorded in a torch file (read onto the CPU regardless). */
  locations: string[];
  /** Keys returned (after mapping and dropping). */
  kept: number;
  renamed: Array<{ from: string; to: string }>;
  dropped: DroppedKey[];
  /** Expected keys the file lacks that the forward pass uses (null when no expected list was given). */
  missing: string[] | null;
  /** Expected keys the file lacks that nothing in the forward pass uses (pooler, first-frame heads). */
  missingUnused: string[];
  unexpected: string[];
  shapeMismatches: ShapeMismatch[];
  notes: string[];
}

export interface KeyInput {
  name: string;
  shape: number[];
  dtype: string;
}

export interface KeyMapping {
  /** Kept entries in file order: source name → our name. */
  keep: Array<{ from: string; to: string }>;
  report: Pick<
    WeightsReport,
    'renamed' | 'dropped' | 'missing' | 'missingUnused' | 'unexpected' | 'shapeMismatches' | 'notes'
  > & { refactor: boolean };
}

const POSITION_IDS = /(^|\.)embeddings\.position_ids$/;
const CTCLIP_FAMILY =
  /^(temperature|logit_bias|to_text_latent\.weight|to_visual_latent\.weight|to_text_latent_extra\.weight|to_visual_latent_extra\.weight|text_transformer\.(embeddings|encoder|pooler)\..+|visual_transformer\..+)$/;
const BERT_FAMILY = /^(embeddings|encoder|pooler)\..+$/;
/** Keys present in the reference layout that the forward pass never reads. */
const UNUSED_BY_FORWARD =
  /^(text_transformer\.pooler\.|visual_transformer\.to_patch_emb_first_frame\.|visual_transformer\.to_pixels_first_frame\.|visual_transformer\.to_pixels\.)/;

function refactorDrop(key: string): string | null {
  if (/^text_transformer\.cls\./.test(key)) return 'refactor MLM head (CXRBertModel cls.*), unused by CT-CLIP';
  if (/^text_transformer\.cls_projection_head\./.test(key))
    return 'refactor projection head (CXRBertModel cls_projection_head.*), unused by CT-CLIP';
  if (/^visual_transformer\.dec_(spatial|temporal)_transformer\./.test(key)) return 'CTViT decoder, unused by CT-CLIP';
  if (key === 'visual_transformer.vq._codebook.embed_avg')
    return 'vector-quantize-pytorch 1.23 EMA sum, unused by the 1.1.2 quantizer';
  return null;
}

/** Maps keys of one state dict to ours; see the module comment. */
export function mapKeys(
  inputs: KeyInput[],
  opts: { expect: Expect; expected?: ReferenceKey[] | string[] },
): KeyMapping {
  const renamed: Array<{ from: string; to: string }> = [];
  const dropped: DroppedKey[] = [];
  const notes: string[] = [];
  const keep: Array<{ from: string; to: string }> = [];
  const names = inputs.map((i) => i.name);

  // DistributedDataParallel prefix on every key.
  const ddp = names.length > 0 && names.every((n) => n.startsWith('module.'));
  if (ddp) notes.push("every key had the DistributedDataParallel prefix 'module.', which was stripped");
  const base = (n: string): string => (ddp ? n.slice('module.'.length) : n);

  const refactor = opts.expect === 'ctclip' && names.some((n) => base(n).startsWith('text_transformer.bert.'));
  if (refactor)
    notes.push(
      `recognised the ${REFACTOR_LAYOUT_NAME}: text_transformer.bert.* mapped to text_transformer.*; its extra heads are dropped`,
    );

  const family = opts.expect === 'ctclip' ? CTCLIP_FAMILY : /^text_transformer\.(embeddings|encoder|pooler)\..+$/;
  const unexpected: string[] = [];
  const seen = new Map<string, string>();
  for (const input of inputs) {
    const src = input.name;
    let key = base(src);
    if (POSITION_IDS.test(key)) {
      dropped.push({
        key: src,
        reason: `stale position_ids buffer (${input.dtype} [${input.shape}]) of transformers < 4.31; positions are 0..L-1`,
      });
      continue;
    }
    if (opts.expect === 'ctclip') {
      if (key.startsWith('text_transformer.bert.'))
        key = 'text_transformer.' + key.slice('text_transformer.bert.'.length);
      const why = refactorDrop(key);
      if (why) {
        dropped.push({ key: src, reason: why });
        continue;
      }
    } else {
      if (
        /^(bert\.)?(cls|cls_projection_head)\./.test(key) ||
        /^text_transformer\.(cls|cls_projection_head)\./.test(key)
      ) {
        dropped.push({ key: src, reason: 'MLM / projection head, unused by the CT-CLIP text tower' });
        continue;
      }
      if (key.startsWith('text_transformer.bert.'))
        key = 'text_transformer.' + key.slice('text_transformer.bert.'.length);
      else if (key.startsWith('bert.')) key = 'text_transformer.' + key.slice('bert.'.length);
      else if (BERT_FAMILY.test(key)) key = 'text_transformer.' + key;
    }
    const dup = seen.get(key);
    if (dup !== undefined) throw new CtclipError('DATA_ERROR', `keys '${dup}' and '${src}' both map to '${key}'`);
    seen.set(key, src);
    if (key !== src) renamed.push({ from: src, to: key });
    if (!family.test(key)) unexpected.push(key);
    keep.push({ from: src, to: key });
  }

  let missing: string[] | null = null;
  const missingUnused: string[] = [];
  const shapeMismatches: ShapeMismatch[] = [];
  if (opts.expected) {
    const expected: ReferenceKey[] = opts.expected.map((e) =>
      typeof e === 'string' ? { key: e, shape: [], kind: 'param' as const } : e,
    );
    const withShapes = opts.expected.length > 0 && typeof opts.expected[0] !== 'string';
    const expectedMap = new Map(expected.map((e) => [e.key, e]));
    const shapes = new Map(inputs.map((i) => [i.name, i.shape]));
    missing = [];
    const have = new Set(keep.map((k) => k.to));
    for (const e of expected) {
      if (have.has(e.key)) continue;
      if (UNUSED_BY_FORWARD.test(e.key)) missingUnused.push(e.key);
      else missing.push(e.key);
    }
    unexpected.length = 0;
    for (const k of keep) {
      const e = expectedMap.get(k.to);
      if (!e) unexpected.push(k.to);
      else if (withShapes) {
        const got = shapes.get(k.from) as number[];
        if (got.length !== e.shape.length || got.some((s, i) => s !== e.shape[i]))
          shapeMismatches.push({ key: k.to, expected: e.shape, got });
      }
    }
    if (missingUnused.length)
      notes.push(
        `${missingUnused.length} expected keys absent that the forward pass never reads (${summarise(missingUnused, 4)}); the model keeps its own values`,
      );
  } else {
    notes.push('no expected key list was given: missing keys were not checked');
  }
  return { keep, report: { renamed, dropped, missing, missingUnused, unexpected, shapeMismatches, notes, refactor } };
}

/**
 * The kept entries to load: with an expected key list, only the keys the model expects, at the expected shape
 * (unexpected keys and shape mismatches stay in the report and are never read, so a file cannot make us allocate
 * for tensors the model has no use for); without one, every kept entry. Adds a note when some were left unread.
 */
export function entriesToLoad(
  mapping: KeyMapping,
  expected: ReferenceKey[] | string[] | undefined,
  notes: string[],
): KeyMapping['keep'] {
  if (!expected) return mapping.keep;
  const wanted = new Set(expected.map((e) => (typeof e === 'string' ? e : e.key)));
  const mismatched = new Set(mapping.report.shapeMismatches.map((m) => m.key));
  const load = mapping.keep.filter((k) => wanted.has(k.to) && !mismatched.has(k.to));
  const skipped = mapping.keep.length - load.length;
  if (skipped)
    notes.push(`${skipped} keys the model does not expect (unexpected, or of another shape) were not loaded`);
  return load;
}

/** "a, b, c and 4 more" */
export function summarise(list: string[], n = 10): string {
  return list.length <= n ? list.join(', ') : `${list.slice(0, n).join(', ')} and ${list.length - n} more`;
}

/** DATA_ERROR listing what makes a strict load fail, or nothing. */
export function enforceStrict(
  file: string,
  report: Pick<WeightsReport, 'missing' | 'unexpected' | 'shapeMismatches'>,
): void {
  const problems: string[] = [];
  if (report.missing && report.missing.length) problems.push(`missing keys: ${summarise(report.missing)}`);
  if (report.unexpected.length) problems.push(`unexpected keys: ${summarise(report.unexpected)}`);
  if (report.shapeMismatches.length) {
    problems.push(
      `shape mismatches: ${summarise(report.shapeMismatches.map((m) => `${m.key} [${m.got}] (expected [${m.expected}])`))}`,
    );
  }
  if (problems.length) throw new CtclipError('DATA_ERROR', `${file}: strict load failed: ${problems.join('; ')}`);
}
