/**
 * `ctclip embed --checkpoint W --config C --shards PATTERN --out embeddings.safetensors [--limit n]
 * [--with-image-embeddings] [--set k=v ...] [--threads N]`: per sample of the (indexed) shards, in index order,
 * the image latent, the text latent of its cleaned report and optionally the pre-projection image embedding
 * (the CTViT output averaged over time and flattened, what `to_visual_latent` projects), written with
 * `writeEmbeddings` (docs/evaluation.md: `<out>` + the `<out>.json` sidecar with the study ids).
 *
 * The latents are exactly `CTClip.encodeImage` / `encodeText` in eval mode. With `--with-image-embeddings` one
 * no-autograd forward per batch returns both latents and the embedding (the `image_embedding` intermediate).
 *
 * Exit codes: 0 done · 1 runtime failure · 2 bad arguments/config.
 */
import * as path from 'path';
import { loadConfig } from '../config/load';
import { openIndex } from '../data/shard-index';
import { CtclipError } from '../errors';
import { loadInferenceModel } from '../model/inference-model';
import { SamplesProgress } from '../zeroshot/progress';
import { writeEmbeddings } from '../results';
import { textTensors } from '../model/ctclip';
import type { TensorHandle } from '../native';
import { configureThreads } from '../runtime';
import { readTensor, tensorInfo, transformTensor } from '../tensor';
import { intOption, parseCommandArgs, runCommand, startCommand } from './common';
import { evalLoaderFor, forEachVolumeBatch } from '../zeroshot/loader';
import { resolveCheckpointArg } from '../checkpoint/shortcut';

export const USAGE = `usage: ctclip embed --checkpoint W --config C --shards PATTERN --out FILE.safetensors [--limit N]
                    [--with-image-embeddings] [--set key.path=value ...] [--threads N] [--quiet]

  --checkpoint W             our model.safetensors, a checkpoint folder, a run directory, RUN_DIR:best or RUN_DIR:latest, or a torch .pt
  --config C                 YAML config (model.*, text_encoder vocab, data.val_batch_size)
  --shards PATTERN           indexed shards (brace pattern; 'ctclip shards index' first)
  --out FILE                 the safetensors file (image_latents, text_latents[, image_embeddings]);
                             the sidecar FILE.json holds the study ids (row order)
  --limit N                  a fixed seeded subset of N samples (index order); default all
  --with-image-embeddings    also write the pre-projection image embedding (n × (image_size/patch_size)² · dim)
  --set k=v                  override a config value (repeatable)
  --threads N                libtorch intra-op threads
  --quiet                    no progress bar

exit codes: 0 done · 1 runtime failure · 2 bad arguments/config`;

async function float32Rows(h: TensorHandle, n: number, what: string): Promise<Float32Array> {
  let t = h;
  if (tensorInfo(h).dtype !== 'float32') t = await transformTensor(h, { dtype: 'float32' });
  try {
    const r = readTensor(t);
    if (r.shape[0] !== n)
      throw new CtclipError('SHAPE_ERROR', `embed: ${what} has shape [${r.shape.join(', ')}], expected ${n} rows`);
    return r.data as Float32Array;
  } finally {
    if (t !== h) t.dispose();
  }
}

function concat(chunks: Float32Array[]): Float32Array {
  const out = new Float32Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export function run(argv: string[]): Promise<number> {
  return runCommand('embed', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      shards: { type: 'string' },
      out: { type: 'string' },
      limit: { type: 'string' },
      'with-image-embeddings': { type: 'boolean', default: false },
      set: { type: 'string', multiple: true },
      threads: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    });
    if (!startCommand(values, positionals, USAGE, ['checkpoint', 'config', 'shards', 'out'])) return 0;
    const limit = values.limit === undefined ? null : intOption('limit', values.limit);
    const withEmb = values['with-image-embeddings'] === true;
    const overrides = [...(values.set ?? [])];
    if (values.threads !== undefined) overrides.push(`training.threads=${intOption('threads', values.threads)}`);
    const { config: cfg } = loadConfig(values.config!, { overrides });
    const out = path.resolve(values.out!);
    const log = (...lines: string[]): void => {
      for (const l of lines) process.stdout.write(`${l}\n`);
    };

    const threads = configureThreads(cfg.training.threads);
    const index = openIndex(values.shards!, { missingShards: cfg.data.missing_shards });
    const resolved = await resolveCheckpointArg(values.checkpoint!);
    if (resolved.shortcut) log(`Checkpoint ${values.checkpoint} → ${resolved.path}`);
    const { model, tokenizer, checkpoint } = await loadInferenceModel(cfg, resolved.path, log);
    const maxLength = cfg.model.text_encoder.max_length;
    try {
      const loader = evalLoaderFor(cfg, index, limit);
      const total = loader.mine.length;
      log(
        `Embedding ${total} of ${index.samples.length} samples (${values.shards}), batch ${cfg.data.val_batch_size}, ${threads} threads${withEmb ? ', with image embeddings' : ''}`,
      );
      const studyIds: string[] = [];
      const img: Float32Array[] = [];
      const txt: Float32Array[] = [];
      const emb: Float32Array[] = [];
      const progress = values.quiet ? null : new SamplesProgress('embed', total);
      const t0 = performance.now();
      try {
        await forEachVolumeBatch(loader, async (batch, volumes) => {
          const n = batch.studyIds.length;
          const { inputIds, attentionMask } = textTensors(tokenizer.encodeBatch(batch.reports, maxLength));
          const owned: TensorHandle[] = [inputIds, attentionMask];
          try {
            if (withEmb) {
              const f = await model.forward({ inputIds, attentionMask, volumes }, { returnIntermediates: true });
              owned.push(
                f.textLatents,
                f.imageLatents,
                f.logits,
                f.lossTensor,
                f.scale,
                f.indices,
                ...Object.values(f.intermediates ?? {}),
              );
              const e = f.intermediates?.image_embedding;
              if (!e)
                throw new CtclipError(
                  'NATIVE_ERROR',
                  'embed: the forward pass returned no image_embedding intermediate',
                );
              img.push(await float32Rows(f.imageLatents, n, 'image latents'));
              txt.push(await float32Rows(f.textLatents, n, 'text latents'));
              emb.push(await float32Rows(e, n, 'image embedding'));
            } else {
              const i = await model.encodeImage(volumes);
              owned.push(i);
              const t = await model.encodeText(inputIds, attentionMask);
              owned.push(t);
              img.push(await float32Rows(i, n, 'image latents'));
              txt.push(await float32Rows(t, n, 'text latents'));
            }
          } finally {
            owned.forEach((h) => h.dispose());
          }
          studyIds.push(...batch.studyIds);
          progress?.update(studyIds.length);
        });
      } finally {
        progress?.finish();
        await loader.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      if (studyIds.length === 0) throw new CtclipError('DATA_ERROR', `${values.shards}: no sample could be read`);
      const written = await writeEmbeddings(
        out,
        {
          studyIds,
          imageLatents: concat(img),
          textLatents: concat(txt),
          imageEmbeddings: withEmb ? concat(emb) : null,
        },
        { checkpoint, shards: values.shards, limit, config: cfg, seconds },
      );
      log(
        `Wrote ${written.files.safetensors} (${written.nSamples} samples, latent ${written.dimLatent}` +
          `${written.dimEmbedding !== null ? `, image embedding ${written.dimEmbedding}` : ''}) and ${path.basename(written.files.sidecar)} in ${seconds.toFixed(1)} s`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  });
}
