/**
 * Convenience wrappers over `CTClip` for library users (exported from the package root): build a model from a run
 * config, load weights the way `ctclip infer` does, save weights the way a checkpoint does, encode texts, and
 * zero-shot-score volumes. Thin by design: model construction is lib/model/factory.ts (`buildModel`), loading
 * is lib/model/inference-model.ts (`loadInferenceModel`), saving is lib/weights/save.ts, and zero-shot scoring is
 * lib/zeroshot/zero-shot.ts (`encodePrompts` + `scoreVolumes`), the same code training-time validation runs.
 */
import { DEFAULT_PROMPTS, type Config } from './config/schema';
import { CtclipError } from './errors';
import { loadInferenceModel } from './model/inference-model';
import { encodePrompts, scoreVolumes, type ZeroShotPrompts } from './zeroshot/zero-shot';
import type { TensorHandle } from './native';
import type { Tokenizer } from './text/tokenizer';
import type { WeightsReport } from './weights/layout';
import { saveWeights } from './weights/save';
import { textTensors, type CTClip } from './model/ctclip';
import { deviceFor, launchedLocalRank, type DeviceRequest } from './model/device';
import { buildModel } from './model/factory';

/** A model together with the tokenizer its text tower was built for. */
export interface ModelWithTokenizer {
  model: CTClip;
  tokenizer: Tokenizer;
}

/** Options of `createModel`. */
export interface CreateModelOptions {
  /** The tokenizer (default: built from `model.text_encoder.vocab` / `<path>/vocab.txt` of the config). */
  tokenizer?: Tokenizer;
  /**
   * Where the model goes ('auto' | 'cpu' | 'cuda' | 'cuda:N', resolved as lib/model/device.ts does). Only
   * `createModelOn` honours it (moving a model is asynchronous); `createModel` builds on the CPU.
   */
  device?: DeviceRequest;
}

/**
 * Builds a freshly initialised CT-CLIP (seeded from `experiment.seed`, eval mode) from a validated run config,
 * with the tokenizer whose vocabulary sizes its text embeddings. Throws CONFIG_ERROR when the config names no
 * vocabulary and none is passed.
 */
export function createModel(cfg: Config, opts: CreateModelOptions = {}): ModelWithTokenizer {
  return buildModel(cfg, { tokenizer: opts.tokenizer });
}

/**
 * `createModel`, then the model moved to `opts.device` ('auto' | 'cpu' | 'cuda' | 'cuda:N'; 'auto' picks
 * cuda:<LOCAL_RANK> when libtorch sees a GPU, else the CPU) or, without it, to the device the config's `device`
 * section chooses (`device.use_cuda`, `device.cuda_device`; lib/model/device.ts). DEVICE_UNAVAILABLE / CONFIG_ERROR
 * when the device is not there.
 */
export async function createModelOn(cfg: Config, opts: CreateModelOptions = {}): Promise<ModelWithTokenizer> {
  const device = deviceFor(cfg, opts.device, launchedLocalRank());
  const created = createModel(cfg, opts);
  try {
    await created.model.to(device);
  } catch (e) {
    created.model.dispose();
    throw e;
  }
  return created;
}

/** What `loadModel` returns: the model (eval mode), its tokenizer, and what was read. */
export interface LoadedModel extends ModelWithTokenizer {
  /** The weights import report (layout, dropped / missing / unexpected keys). */
  report: WeightsReport;
  /** The weights actually read: file or checkpoint folder, training step when known, sha256 of the file. */
  checkpoint: { path: string; step: number | null; sha256: string };
}

/**
 * Builds the model the config describes and loads `checkpoint` into it, exactly as `ctclip infer --checkpoint`:
 * one of our `model.safetensors`, a checkpoint folder (verified against its manifest), a run directory (its
 * newest complete checkpoint) or a PyTorch `torch.save` file (read without executing pickle code). The weights
 * must fit the configured model (DATA_ERROR naming the keys otherwise). `log` receives progress lines. `device`
 * ('auto' | 'cpu' | 'cuda' | 'cuda:N'; 'auto' = cuda:<LOCAL_RANK> when libtorch sees a GPU, else cpu) is where the
 * model ends up; without it, the device the config's `device` section chooses (lib/model/device.ts).
 */
export async function loadModel(
  cfg: Config,
  checkpoint: string,
  opts: { log?: (...lines: string[]) => void; onWarn?: (message: string) => void; device?: DeviceRequest } = {},
): Promise<LoadedModel> {
  const loaded = await loadInferenceModel(cfg, checkpoint, opts.log ?? (() => undefined), opts.onWarn, {
    device: opts.device,
  });
  return { model: loaded.model, tokenizer: loaded.tokenizer, report: loaded.report, checkpoint: loaded.checkpoint };
}

/**
 * Writes the model's weights to `file` as safetensors under the reference CT-CLIP key names (what a checkpoint's
 * `model.safetensors` holds; PyTorch loads it with `model.load_state_dict(safetensors.torch.load_file(file))`).
 * `metadata` goes into the safetensors header next to `format: pt`.
 */
export async function saveModel(model: CTClip, file: string, metadata: Record<string, string> = {}): Promise<void> {
  const sd = model.stateDict();
  try {
    await saveWeights(file, sd.names, sd.tensors, metadata);
  } finally {
    sd.tensors.forEach((t) => t.dispose());
  }
}

/**
 * (n, latent) unit text latents of `texts`, tokenized to `maxLength` tokens (`model.text_encoder.max_length`).
 * The caller disposes the returned tensor.
 */
export async function encodeTexts(
  model: CTClip,
  tokenizer: Tokenizer,
  texts: readonly string[],
  maxLength: number,
): Promise<TensorHandle> {
  if (texts.length === 0) throw new CtclipError('ARGUMENT_ERROR', 'encodeTexts: no texts');
  const { inputIds, attentionMask } = textTensors(tokenizer.encodeBatch([...texts], maxLength));
  try {
    return await model.encodeText(inputIds, attentionMask);
  } finally {
    inputIds.dispose();
    attentionMask.dispose();
  }
}

/** Options of `zeroShot`. */
export interface ZeroShotOptions {
  /** Prompt templates (`validation.prompts`; default `{p} is present.` / `{p} is not present.`). */
  prompts?: ZeroShotPrompts;
  /** Tokens per prompt (`model.text_encoder.max_length`; default 512). */
  maxLength?: number;
}

/** Zero-shot result: `pPresent[i * numClasses + c]` is P(class c present | volume i). */
export interface ZeroShotResult {
  numClasses: number;
  numSamples: number;
  /** Row-major (numSamples, numClasses). */
  pPresent: Float32Array;
  /** The same values as one row per volume. */
  rows: Float32Array[];
}

/**
 * Zero-shot classification of a batch of volumes against `classNames`, scored exactly as validation and
 * `ctclip infer` score (lib/zeroshot/zero-shot.ts): prompt latents once, each volume encoded in eval mode, P(present)
 * = softmax over each (present, absent) pair. `volumes` is (n, H, W, D) float16/float32 as the loader gives them
 * (`tensorFromBuffer`), or (n, 1, F, H, W) float32; it is not disposed. Leaves the model in eval mode.
 */
export async function zeroShot(
  model: CTClip,
  tokenizer: Tokenizer,
  volumes: TensorHandle,
  classNames: readonly string[],
  opts: ZeroShotOptions = {},
): Promise<ZeroShotResult> {
  const prompts = opts.prompts ?? DEFAULT_PROMPTS;
  const prompt = await encodePrompts(model, tokenizer, classNames, { prompts, maxLength: opts.maxLength ?? 512 });
  try {
    const C = classNames.length;
    const p = await scoreVolumes(model, volumes, prompt, C);
    const n = p.length / C;
    const rows: Float32Array[] = [];
    for (let i = 0; i < n; i++) rows.push(p.slice(i * C, (i + 1) * C));
    return { numClasses: C, numSamples: n, pPresent: p, rows };
  } finally {
    prompt.dispose();
  }
}
