/**
 * The one configuration schema (zod). Defaults here are the product's documented defaults and equal
 * configs/base_config.yaml. Conventions:
 *  - every object is strict: unknown keys are errors (with a "did you mean" hint, see load.ts);
 *  - an explicit `null` for an optional key means "unset" (e.g. `max_steps: null` → use `max_epochs`);
 *  - cadence pairs (`*_steps` / `*_epochs`): the steps form wins when set; see lib/plan.ts.
 */
import { z } from 'zod';

const posInt = z.number().int().min(1);
const nonNegInt = z.number().int().min(0);
const posNumber = z.number().positive();
const probability = z.number().min(0).max(1);

export const ExperimentSchema = z
  .object({
    name: z.string().min(1).describe('Run name; used in output folder names and logs'),
    seed: nonNegInt
      .default(2025)
      .describe('Base seed; every RNG stream (init, data order, dropout, bootstrap) derives from it'),
    tags: z.array(z.string()).default([]).describe('Free-form tags recorded with the run'),
    notes: z.string().nullable().default(null).describe('Free-form notes recorded with the run'),
  })
  .strict();

export const DataSchema = z
  .object({
    webdataset_shards_train: z
      .string()
      .nullable()
      .default(null)
      .describe('Brace pattern of the training shards, e.g. data/train/shard-{000000..000316}.tar'),
    webdataset_shards_val: z.string().nullable().default(null).describe('Brace pattern of the validation shards'),
    labels_valid: z
      .string()
      .nullable()
      .default(null)
      .describe('Labels CSV whose header gives the class names (VolumeName/study_id dropped)'),
    class_names: z
      .array(z.string().min(1))
      .nullable()
      .default(null)
      .describe('Class names in label order (instead of labels_valid or the shard index)'),
    batch_size: posInt.default(4).describe('Per-rank micro-batch size B'),
    val_batch_size: posInt.default(1).describe('Validation batch size per rank'),
    num_workers: posInt.default(4).describe('Parallel sample reads in flight'),
    prefetch_factor: posInt.default(2).describe('Batches read ahead of the training step'),
    max_bad_samples: nonNegInt
      .default(100)
      .describe(
        'Error budget: samples lost per run (excluded or lost at index time, plus distinct bad samples met while reading) before training aborts',
      ),
    missing_shards: z
      .enum(['error', 'skip'])
      .default('error')
      .describe(
        'Shards of a pattern that were missing, empty or unreadable at index time: error = refuse to start; skip = go on without them, their samples counted against max_bad_samples',
      ),
    max_report_bytes: posInt
      .default(1024 * 1024)
      .describe(
        'Largest report text (txt member) of a sample, in bytes, checked from the tar header before reading; a larger one is a bad sample',
      ),
  })
  .strict();

export const ImageEncoderSchema = z
  .object({
    dim: posInt.default(512).describe('CTViT token width'),
    codebook_size: posInt.default(8192).describe('Vector-quantizer codebook entries'),
    image_size: posInt.default(480).describe('Input height and width H = W'),
    frames: posInt.default(240).describe('Input depth F (slices)'),
    patch_size: posInt.default(20).describe('Spatial patch size (divides image_size)'),
    temporal_patch_size: posInt.default(10).describe('Temporal patch size (divides frames)'),
    spatial_depth: posInt.default(4).describe('Spatial transformer layers'),
    temporal_depth: posInt.default(4).describe('Temporal transformer layers'),
    heads: posInt.default(8).describe('Attention heads'),
    dim_head: posInt.default(32).describe('Width per attention head'),
    channels: posInt.default(1).describe('Input channels'),
    use_cpb: z
      .boolean()
      .default(true)
      .describe('Continuous position bias in the spatial stack (the published checkpoint needs it)'),
    vq: z
      .enum(['straight_through', 'rotation'])
      .default('straight_through')
      .describe('Vector-quantizer gradient estimator'),
    vq_decay: probability.default(0.8).describe('Codebook EMA decay'),
    activation_checkpointing: z
      .boolean()
      .default(false)
      .describe('Recompute each transformer layer in backward to save memory'),
    use_flash_attention: z
      .boolean()
      .default(false)
      .describe(
        'MODERN variant: attention without QK-norm (q, k, v from LayerNorm(x) with weight and bias; softmax(q·kᵀ/√dim_head)·v via SDPA); weights do not interchange with the reference',
      ),
    use_rms_norm: z
      .boolean()
      .default(false)
      .describe("MODERN variant: RMSNorm (key `weight`) for the attention norms and each stack's norm_out"),
    use_swiglu: z
      .boolean()
      .default(false)
      .describe('MODERN variant: SwiGLU feed-forward, SiLU(first half) · second half, instead of GEGLU'),
  })
  .strict();

export const TextEncoderSchema = z
  .object({
    path: z
      .string()
      .nullable()
      .default(null)
      .describe(
        'Local Hugging Face BERT folder (config.json, vocab.txt or tokenizer.json, weights); null = random init from the fields below',
      ),
    vocab: z
      .string()
      .nullable()
      .default(null)
      .describe(
        'vocab.txt (or a Hugging Face tokenizer.json) for the tokenizer (defaults to <path>/vocab.txt, else <path>/tokenizer.json)',
      ),
    do_lower_case: z.boolean().default(true).describe('Lower-case and strip accents before WordPiece'),
    max_length: posInt.default(512).describe('Tokens per report (padded/truncated)'),
    vocab_size: posInt
      .nullable()
      .default(null)
      .describe('BERT vocabulary size; null = the number of lines of the vocab file'),
    hidden_size: posInt.default(768).describe('BERT hidden width'),
    num_hidden_layers: posInt.default(12).describe('BERT layers'),
    num_attention_heads: posInt.default(12).describe('BERT attention heads'),
    intermediate_size: posInt.default(3072).describe('BERT feed-forward width'),
    max_position_embeddings: posInt.default(512).describe('BERT absolute positions'),
    hidden_dropout_prob: probability.default(0.25).describe('Dropout on hidden states (reference CXR-BERT: 0.25)'),
    attention_probs_dropout_prob: probability.default(0.25).describe('Dropout on attention probabilities'),
    layer_norm_eps: posNumber.default(1e-12).describe('LayerNorm epsilon'),
  })
  .strict();

export const LossSchema = z
  .object({
    type: z.enum(['softmax', 'siglip']).default('softmax').describe('InfoNCE (softmax) or SigLIP'),
    gather: z
      .boolean()
      .default(true)
      .describe('Contrast against the global batch of all ranks (false = per-rank, as the reference)'),
    local_loss: z
      .boolean()
      .default(true)
      .describe(
        'With gather: each rank scores its own rows against the global batch (open_clip local_loss); false = every rank computes the full global loss',
      ),
  })
  .strict();

export const ModelSchema = z
  .object({
    dim_latent: posInt.default(512).describe('Shared latent width of the projections'),
    image_encoder: ImageEncoderSchema.prefault({}),
    text_encoder: TextEncoderSchema.prefault({}),
    loss: LossSchema.prefault({}),
  })
  .strict();

export const TrainingSchema = z
  .object({
    max_epochs: posNumber.nullable().default(20).describe('Training length in epochs (used when max_steps is null)'),
    max_steps: posInt.nullable().default(null).describe('Training length in optimizer steps (wins over max_epochs)'),
    learning_rate: posNumber.default(1.25e-6).describe('Peak learning rate'),
    warmup_steps: nonNegInt.nullable().default(1000).describe('Linear warmup steps (wins over warmup_epochs)'),
    warmup_epochs: z.number().min(0).nullable().default(null).describe('Linear warmup in epochs'),
    min_lr_ratio: z.number().min(0).max(1).default(0.01).describe('Cosine floor as a fraction of learning_rate'),
    weight_decay: z
      .number()
      .min(0)
      .default(0.01)
      .describe('AdamW weight decay (not applied to biases, norms, temperature)'),
    max_grad_norm: posNumber.nullable().default(0.5).describe('Gradient clipping L2 norm; null = no clipping'),
    betas: z
      .tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)])
      .default([0.9, 0.99])
      .describe('AdamW betas'),
    eps: posNumber.default(1e-8).describe('AdamW epsilon'),
    gradient_accumulation_steps: posInt.default(1).describe('Micro-batches per optimizer step A'),
    save_every_n_steps: posInt
      .nullable()
      .default(null)
      .describe('Checkpoint cadence in steps (wins over save_every_n_epochs)'),
    save_every_n_epochs: posNumber.nullable().default(0.5).describe('Checkpoint cadence in epochs'),
    mixed_precision: z.enum(['no', 'fp16', 'bf16']).default('no').describe('Autocast dtype (fp16 uses a loss scaler)'),
    threads: posInt.nullable().default(null).describe('libtorch intra-op threads; null = the CPU count'),
    max_consecutive_skipped_steps: posInt
      .nullable()
      .default(20)
      .describe(
        'Stop the run (exit 1, naming the samples of the last skipped batch) after this many consecutive non-finite (skipped) steps; null = no cap',
      ),
  })
  .strict();

/**
 * Zero-shot prompt templates ({p} = class name). The default is the published CT-CLIP evaluation's pair; the
 * reference refactor's `There is {p}.` / `There is no {p}.` can be selected in the config.
 */
export const DEFAULT_PROMPTS = { positive: '{p} is present.', negative: '{p} is not present.' } as const;

export const PromptsSchema = z
  .object({
    positive: z
      .string()
      .includes('{p}')
      .default(DEFAULT_PROMPTS.positive)
      .describe('Prompt for a present finding ({p} = class name)'),
    negative: z.string().includes('{p}').default(DEFAULT_PROMPTS.negative).describe('Prompt for an absent finding'),
  })
  .strict();

export const ValidationSchema = z
  .object({
    eval_every_n_steps: posInt
      .nullable()
      .default(null)
      .describe('Validation cadence in steps (wins over eval_every_n_epochs)'),
    eval_every_n_epochs: posNumber.nullable().default(0.5).describe('Validation cadence in epochs'),
    eval_samples: posInt.nullable().default(200).describe('Fixed seeded validation subset size; null = all'),
    metrics: z
      .array(z.enum(['auroc', 'auprc', 'f1', 'precision', 'recall', 'specificity', 'accuracy']))
      .min(1)
      .default(['auroc', 'auprc', 'f1', 'precision', 'recall'])
      .describe('Metrics computed at validation'),
    threshold: probability.default(0.5).describe('Decision threshold for precision/recall/specificity/accuracy'),
    use_bootstrap: z.boolean().default(false).describe('Bootstrap confidence intervals at validation'),
    n_bootstrap: posInt.default(1000).describe('Bootstrap resamples'),
    bootstrap_level: z.number().gt(0).lt(1).default(0.95).describe('Confidence level of the intervals'),
    prompts: PromptsSchema.prefault({}),
  })
  .strict();

export const CheckpointSchema = z
  .object({
    save_dir: z.string().min(1).default('runs/ctclip').describe('Folder of the run: checkpoints, logs, metrics'),
    keep_last_n: nonNegInt.default(3).describe('Checkpoints kept besides the best (0 = keep all)'),
    save_best: z.boolean().default(true).describe('Track the best checkpoint by best_metric'),
    best_metric: z
      .enum(['weighted_auroc', 'macro_auroc', 'weighted_auprc', 'macro_auprc', 'weighted_f1', 'macro_f1'])
      .default('weighted_auroc')
      .describe('Model-selection metric'),
    best_metric_mode: z.enum(['max', 'min']).default('max').describe('Whether larger or smaller is better'),
  })
  .strict();

export const WandbSchema = z
  .object({
    project: z.string().default('ctclip').describe('W&B project'),
    entity: z.string().nullable().default(null).describe('W&B user or team; null = the default entity'),
    mode: z.enum(['online', 'offline', 'disabled']).default('offline').describe('W&B mode'),
    name: z.string().min(1).nullable().default(null).describe('W&B run name; null = experiment.name'),
    group: z.string().min(1).nullable().default(null).describe('W&B run group (e.g. one per experiment series)'),
    job_type: z.string().min(1).nullable().default(null).describe('W&B job type, e.g. train; null = unset'),
    python: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe(
        'Python interpreter that runs the wandb client for live logging; null = $CTCLIP_WANDB_PYTHON, else python3',
      ),
  })
  .strict();

export const LoggingSchema = z
  .object({
    log_every_n_steps: posInt.default(10).describe('Progress line cadence (and always at step 1)'),
    use_console: z.boolean().default(true).describe('Progress and validation lines on stdout'),
    use_tensorboard: z.boolean().default(false).describe('Write TensorBoard event files under <save_dir>/tensorboard'),
    use_wandb: z
      .boolean()
      .default(false)
      .describe(
        'Log to W&B live through the wandb client (logging.wandb.*), rank 0; without an interpreter that imports wandb, TensorBoard files plus a `wandb sync` hint. Turns TensorBoard on too',
      ),
    wandb: WandbSchema.prefault({}),
    profile_timing: z
      .union([z.boolean(), posInt])
      .default(false)
      .describe('Timing breakdown every N steps (true = 100)'),
  })
  .strict();

export const DeviceSchema = z
  .object({
    use_cuda: z
      .union([z.boolean(), z.literal('auto')])
      .default('auto')
      .describe(
        'Device for the model and step: auto = CUDA when libtorch sees a GPU, else cpu; true = CUDA required (CONFIG_ERROR when libtorch sees no GPU); false = cpu. The GPU is cuda:<LOCAL_RANK> when launched, else device.cuda_device',
      ),
    cuda_device: nonNegInt
      .default(0)
      .describe(
        'CUDA device index of a single process (CONFIG_ERROR when libtorch does not see it); when launched (LOCAL_RANK set), cuda:<LOCAL_RANK> wins',
      ),
  })
  .strict();

export const DistributedSchema = z
  .object({
    backend: z
      .enum(['auto', 'gloo', 'nccl'])
      .default('auto')
      .describe('c10d backend: auto = NCCL on CUDA when built in, else Gloo'),
    timeout_minutes: posNumber
      .default(30)
      .describe('Timeout of every collective; a dead or stuck rank fails the others after this long'),
    bucket_mb: posNumber.default(25).describe('Gradient all-reduce bucket size in MiB'),
    overlap_allreduce: z
      .boolean()
      .default(true)
      .describe(
        'Send each gradient bucket while the backward pass still runs (as DDP does); false: all buckets after it. Bit-identical results either way',
      ),
  })
  .strict();

export const ConfigSchema = z
  .object({
    experiment: ExperimentSchema,
    data: DataSchema.prefault({}),
    model: ModelSchema.prefault({}),
    training: TrainingSchema.prefault({}),
    validation: ValidationSchema.prefault({}),
    checkpoint: CheckpointSchema.prefault({}),
    logging: LoggingSchema.prefault({}),
    device: DeviceSchema.prefault({}),
    distributed: DistributedSchema.prefault({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (cfg.training.max_steps === null && cfg.training.max_epochs === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'max_steps'],
        message: 'one of training.max_steps / training.max_epochs must be set',
      });
    }
    if (!cfg.logging.use_console && !cfg.logging.use_tensorboard && !cfg.logging.use_wandb) {
      ctx.addIssue({
        code: 'custom',
        path: ['logging', 'use_console'],
        message: 'at least one of logging.use_console / use_tensorboard / use_wandb must be true',
      });
    }
    const ie = cfg.model.image_encoder;
    if (ie.image_size % ie.patch_size !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'image_encoder', 'patch_size'],
        message: `patch_size ${ie.patch_size} must divide image_size ${ie.image_size}`,
      });
    }
    if (ie.frames % ie.temporal_patch_size !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'image_encoder', 'temporal_patch_size'],
        message: `temporal_patch_size ${ie.temporal_patch_size} must divide frames ${ie.frames}`,
      });
    }
    const te = cfg.model.text_encoder;
    if (te.hidden_size % te.num_attention_heads !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'text_encoder', 'num_attention_heads'],
        message: `num_attention_heads ${te.num_attention_heads} must divide hidden_size ${te.hidden_size}`,
      });
    }
    if (te.max_length > te.max_position_embeddings) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'text_encoder', 'max_length'],
        message: `max_length ${te.max_length} exceeds max_position_embeddings ${te.max_position_embeddings}`,
      });
    }
  });

/** A validated configuration with all defaults filled in. */
export type Config = z.output<typeof ConfigSchema>;
/** What a YAML file may contain (before defaults). */
export type ConfigInput = z.input<typeof ConfigSchema>;
