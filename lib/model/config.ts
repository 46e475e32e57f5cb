/**
 * The native model configuration, defined once: the zod schemas below describe what `createCTViT` /
 * `createCTClip` take (CTViT image encoder, BERT text encoder, CT-CLIP head, loss and training step), and the TS
 * types, the defaults and the validation all derive from them. `modelConfigFromConfig` maps a validated run config
 * (lib/config/schema.ts) onto it: `model.*` gives the architecture (CTViT image encoder, BERT text encoder, latent
 * width, loss), `training.*` the step hyper-parameters (precision, clipping, AdamW), `experiment.seed` the seed
 * from which every model-side random stream (weights, dropout) derives.
 *
 * Errors are ARGUMENT_ERRORs naming the key and the value: "ctclip config text: 'num_attention_heads' must be an
 * integer >= 1, got 0". The native parser (native/napi/ctvit_config.h and the bindings) checks the same again for
 * callers of the raw addon.
 */
import { z } from 'zod';
import type { Config } from '../config/schema';
import { CtclipError } from '../errors';
import { Rng } from '../rng';

// --- Field builders: each carries the "expected" text its error message shows. ---

function int(min: number, expected = `an integer >= ${min}`) {
  const error = () => expected;
  return z.number({ error }).int({ error }).min(min, { error });
}

function num(expected: string, check: (x: number) => boolean) {
  const error = () => expected;
  return z.number({ error }).refine(check, { error });
}

function bool() {
  return z.boolean({ error: () => 'true or false' });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, hint = '') {
  const expected = values
    .map((v) => `'${v}'`)
    .join(', ')
    .replace(/, ([^,]*)$/, ' or $1');
  return z.enum(values, { error: () => `${expected}${hint}` });
}

/** A strict object: an unknown key is an error listing the known ones. */
function obj<S extends z.ZodRawShape>(shape: S, expected = 'an object') {
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? `unknown key '${iss.keys[0]}' (known: ${Object.keys(shape).join(', ')})`
        : expected,
  });
}

/** A problem of the object as a whole (several keys), reported as written. */
function objectIssue(ctx: z.RefinementCtx, message: string): void {
  ctx.addIssue({ code: 'custom', message, params: { objectLevel: true } });
}

function divisible<T>(a: keyof T & string, b: keyof T & string) {
  return (c: T, ctx: z.RefinementCtx) => {
    const x = c[a] as number;
    const y = c[b] as number;
    if (x % y !== 0) objectIssue(ctx, `'${a}' (${x}) must be divisible by '${b}' (${y})`);
  };
}

// --- CTViT image encoder (reference constructor names; native/model/ctvit.h) ---

const ctvitShape = {
  dim: int(1),
  codebook_size: int(1),
  image_size: int(1),
  patch_size: int(1),
  temporal_patch_size: int(1),
  spatial_depth: int(0),
  temporal_depth: int(0),
  dim_head: int(1),
  heads: int(1),
  channels: int(1).default(1),
  use_cpb: bool().default(true),
  vq: oneOf(['straight_through', 'rotation']).default('straight_through'),
  vq_decay: num('a number in (0, 1]', (x) => x > 0 && x <= 1).default(0.8),
  activation_checkpointing: bool().default(false),
  /** The modern variants (docs/model-variants.md), default false: attention without QK-norm (SDPA), RMSNorm, SwiGLU. */
  use_flash_attention: bool().default(false),
  use_rms_norm: bool().default(false),
  use_swiglu: bool().default(false),
  seed: int(0),
};

/** The CTViT config `createCTViT` takes; the output has every default filled. */
export const CTViTConfigSchema = obj(ctvitShape).superRefine(divisible('image_size', 'patch_size'));

/** The image encoder inside CT-CLIP: the CTViT config without its seed (CT-CLIP seeds it from its own). */
const CTClipImageSchema = obj(
  { ...ctvitShape, seed: int(0).optional() },
  'an object: the CTViT config, model.image_encoder',
)
  .superRefine(divisible('image_size', 'patch_size'))
  .transform(({ seed: _seed, ...image }) => image);

// --- BERT text encoder (Hugging Face `BertConfig` names) ---

const probability = () => num('a probability in [0, 1)', (x) => x >= 0 && x < 1);

export const BertConfigSchema = obj(
  {
    vocab_size: int(1),
    hidden_size: int(1),
    num_hidden_layers: int(0),
    num_attention_heads: int(1),
    intermediate_size: int(1),
    max_position_embeddings: int(1),
    type_vocab_size: int(1).default(2),
    layer_norm_eps: num('a number > 0', (x) => x > 0).default(1e-12),
    hidden_dropout_prob: probability().default(0),
    attention_probs_dropout_prob: probability().default(0),
    pad_token_id: int(0).default(0),
    initializer_range: num('a number > 0', (x) => x > 0).default(0.02),
  },
  'an object: the BERT config, model.text_encoder',
).superRefine((t, ctx) => {
  if (t.hidden_size % t.num_attention_heads !== 0) {
    objectIssue(ctx, `'num_attention_heads' (${t.num_attention_heads}) must divide 'hidden_size' (${t.hidden_size})`);
  }
  if (t.pad_token_id >= t.vocab_size) objectIssue(ctx, `'pad_token_id' ${t.pad_token_id} is outside the vocabulary`);
});

// --- The training step (precision, clipping, AdamW, loss scaling, the contrastive loss's batch) ---

const LossScaleSchema = obj({
  /** Default: on for fp16, off otherwise. */
  enabled: bool().optional(),
  init_scale: num('a finite number > 0', (x) => x > 0).default(65536),
  growth_factor: num('a number > 1', (x) => x > 1).default(2),
  backoff_factor: num('a number in (0, 1)', (x) => x > 0 && x < 1).default(0.5),
  growth_interval: int(1).default(2000),
});

const beta = num('[beta1, beta2] in [0, 1) (training.betas)', (x) => x >= 0 && x < 1);

export const CTClipTrainingSchema = obj({
  precision: oneOf(['fp32', 'bf16', 'fp16'], ' (training.mixed_precision)').default('fp32'),
  /** null: no clipping (the pre-clip norm is still reported). */
  max_grad_norm: num('a number > 0 or null (training.max_grad_norm)', (x) => x > 0)
    .nullable()
    .default(0.5),
  weight_decay: num('a number >= 0 (training.weight_decay)', (x) => x >= 0).default(0.01),
  betas: z
    .tuple([beta, beta], { error: () => '[beta1, beta2] in [0, 1) (training.betas)' })
    .default((): [number, number] => [0.9, 0.99]),
  eps: num('a number > 0 (training.eps)', (x) => x > 0).default(1e-8),
  /** model.loss.gather: the contrastive loss over the whole global batch (all micro-batches and ranks). Native default true. */
  gather: z.boolean({ error: () => 'true or false (model.loss.gather)' }).optional(),
  /** model.loss.local_loss: own rows against the global batch (false: every rank the full loss). Native default true. */
  local_loss: z.boolean({ error: () => 'true or false (model.loss.local_loss)' }).optional(),
  /** distributed.bucket_mb in bytes. */
  bucket_bytes: int(1, 'an integer >= 1 (distributed.bucket_mb in bytes)').optional(),
  /** distributed.overlap_allreduce: send gradient buckets during the last backward. Native default true. */
  overlap_allreduce: z.boolean({ error: () => 'true or false (distributed.overlap_allreduce)' }).optional(),
  loss_scale: LossScaleSchema.optional(),
}).transform(({ loss_scale, ...t }) => {
  const out: typeof t & { loss_scale?: Omit<z.output<typeof LossScaleSchema>, 'enabled'> & { enabled: boolean } } = t;
  if (loss_scale !== undefined) {
    const { enabled, ...scale } = loss_scale;
    out.loss_scale = { enabled: enabled ?? t.precision === 'fp16', ...scale };
  }
  return out;
});

// --- CT-CLIP ---

/** The CT-CLIP config `createCTClip` takes; the output has every default filled (the image seed dropped). */
export const CTClipConfigSchema = obj({
  image: CTClipImageSchema,
  text: BertConfigSchema,
  dim_latent: int(1),
  loss: oneOf(['softmax', 'siglip'], ' (model.loss.type)').default('softmax'),
  clamp_temperature: bool().default(false),
  seed: int(0),
  training: CTClipTrainingSchema.prefault({}),
});

/** CTViT configuration as the native side takes it (reference constructor names). */
export type CTViTConfig = z.input<typeof CTViTConfigSchema>;
/** A validated CTViT configuration, every default filled. */
export type ResolvedCTViTConfig = z.output<typeof CTViTConfigSchema>;
/** BERT configuration as the native side takes it (Hugging Face `BertConfig` names). */
export type BertNativeConfig = z.input<typeof BertConfigSchema>;
export type CTClipTrainingNativeConfig = z.input<typeof CTClipTrainingSchema>;
/** CT-CLIP configuration as the native side takes it. */
export type CTClipNativeConfig = z.input<typeof CTClipConfigSchema>;
/** A validated CT-CLIP configuration, every default filled. */
export type ResolvedCTClipConfig = z.output<typeof CTClipConfigSchema>;

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/**
 * Validates `value` against a native config schema and fills the defaults; the first problem (an unknown key
 * before any other) is an ARGUMENT_ERROR "<where>[ <object>]: '<key>' must be <expected>, got <value>".
 */
export function parseNativeConfig<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues.find((i) => i.code === 'unrecognized_keys') ?? r.error.issues[0];
  // Array positions (betas[1]) are reported as the array's key, with the whole array as the value.
  const path = [...issue.path];
  while (path.length > 0 && typeof path[path.length - 1] === 'number') path.pop();
  const wholeObject =
    issue.code === 'unrecognized_keys' || (issue.code === 'custom' && issue.params?.objectLevel === true);
  const objectPath = wholeObject ? path : path.slice(0, -1);
  const at = `${where}${objectPath.length > 0 ? ` ${objectPath.join(' ')}` : ''}`;
  if (objectPath === path) return fail(`${at}: ${issue.message}`);
  const key = path[path.length - 1];
  const got = valueAt(value, path);
  if (key === undefined) return fail(`${at}: expected ${issue.message}, got ${JSON.stringify(got)}`);
  if (got === undefined) return fail(`${at}: '${String(key)}' is required (${issue.message})`);
  return fail(`${at}: '${String(key)}' must be ${issue.message}, got ${JSON.stringify(got)}`);
}

function fail(message: string): never {
  throw new CtclipError('ARGUMENT_ERROR', message);
}

/**
 * Maps a run config to the native CT-CLIP config. `vocabSize` is the tokenizer's vocabulary size, used when
 * `model.text_encoder.vocab_size` is null (a non-null value must match it).
 */
export function modelConfigFromConfig(cfg: Config, vocabSize: number): CTClipNativeConfig {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `modelConfigFromConfig: vocabSize must be a positive integer, got ${vocabSize}`,
    );
  }
  const m = cfg.model;
  const te = m.text_encoder;
  const ie = m.image_encoder;
  if (te.vocab_size !== null && te.vocab_size !== vocabSize) {
    throw new CtclipError(
      'CONFIG_ERROR',
      `model.text_encoder.vocab_size: ${te.vocab_size} does not match the tokenizer's vocabulary of ${vocabSize} entries`,
    );
  }
  const t = cfg.training;
  const extra = m as unknown as { clamp_temperature?: unknown };
  return {
    image: {
      dim: ie.dim,
      codebook_size: ie.codebook_size,
      image_size: ie.image_size,
      patch_size: ie.patch_size,
      temporal_patch_size: ie.temporal_patch_size,
      spatial_depth: ie.spatial_depth,
      temporal_depth: ie.temporal_depth,
      dim_head: ie.dim_head,
      heads: ie.heads,
      channels: ie.channels,
      use_cpb: ie.use_cpb,
      vq: ie.vq,
      vq_decay: ie.vq_decay,
      activation_checkpointing: ie.activation_checkpointing,
      use_flash_attention: ie.use_flash_attention,
      use_rms_norm: ie.use_rms_norm,
      use_swiglu: ie.use_swiglu,
    },
    text: {
      vocab_size: te.vocab_size ?? vocabSize,
      hidden_size: te.hidden_size,
      num_hidden_layers: te.num_hidden_layers,
      num_attention_heads: te.num_attention_heads,
      intermediate_size: te.intermediate_size,
      max_position_embeddings: te.max_position_embeddings,
      layer_norm_eps: te.layer_norm_eps,
      hidden_dropout_prob: te.hidden_dropout_prob,
      attention_probs_dropout_prob: te.attention_probs_dropout_prob,
    },
    dim_latent: m.dim_latent,
    loss: m.loss.type,
    // Not in the schema yet (proposed key model.clamp_temperature, default false): honoured when present.
    clamp_temperature: typeof extra.clamp_temperature === 'boolean' ? extra.clamp_temperature : false,
    seed: Rng.derive(cfg.experiment.seed, 'model').nextUint32(),
    training: {
      precision: t.mixed_precision === 'no' ? 'fp32' : t.mixed_precision,
      max_grad_norm: t.max_grad_norm,
      weight_decay: t.weight_decay,
      betas: [t.betas[0], t.betas[1]],
      eps: t.eps,
      gather: m.loss.gather,
      local_loss: m.loss.local_loss,
      bucket_bytes: Math.max(1, Math.round(cfg.distributed.bucket_mb * 1024 * 1024)),
      overlap_allreduce: cfg.distributed.overlap_allreduce,
    },
  };
}
