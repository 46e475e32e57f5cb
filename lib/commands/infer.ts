/**
 * `node lib/inference.js --checkpoint W --config C [--output results/] [--bootstrap] [--n_bootstrap 1000]
 * [--limit n] [--set k=v ...] [--threads N]` (also `ctclip infer …`): zero-shot classification of the validation
 * shards (`data.webdataset_shards_val`) with a trained CT-CLIP, scored exactly as training-time validation
 * (lib/zeroshot/zero-shot.ts: prompt latents once, P(present) = softmax over each prompt pair), and the four
 * evaluation files (docs/evaluation.md): results.json, predictions.csv, per_class.csv, report.html.
 *
 * Exit codes: 0 done · 1 runtime failure (data, I/O, native) · 2 bad arguments or configuration.
 */
import * as path from 'path';
import { intOption, parseCommandArgs, runCommand, startCommand } from './common';
import { loadConfig } from '../config/load';
import { openIndex } from '../data/shard-index';
import { CtclipError } from '../errors';
import { loadInferenceModel, resolveClassNames } from '../model/inference-model';
import { SamplesProgress } from '../zeroshot/progress';
import { zeroShotScores } from '../zeroshot/zero-shot';
import { formatEvaluationSummary, writeEvaluation } from '../results';
import { configureThreads } from '../runtime';
import { evalLoaderFor } from '../zeroshot/loader';

export const USAGE = `usage: node lib/inference.js --checkpoint W --config C [--output DIR] [--bootstrap] [--n_bootstrap N]
                          [--limit N] [--set key.path=value ...] [--threads N]      (or: ctclip infer …)

  --checkpoint W     our model.safetensors, one of our checkpoint folders, a run directory (its latest
                     checkpoint), or a PyTorch torch.save file (.pt/.bin; e.g. the published CT-CLIP_v2.pt)
  --config C         YAML config: model.*, data.webdataset_shards_val (indexed), class names
                     (data.class_names, data.labels_valid or the index), validation.prompts / threshold
  --output DIR       where results.json, predictions.csv, per_class.csv and report.html go (default results/)
  --bootstrap        bootstrap confidence intervals (also on when validation.use_bootstrap is true)
  --n_bootstrap N    bootstrap resamples (default validation.n_bootstrap; implies --bootstrap)
  --limit N          evaluate a fixed seeded subset of N samples (as validation.eval_samples); default all
  --set k=v          override a config value (repeatable)
  --threads N        libtorch intra-op threads (default training.threads, $CTCLIP_THREADS, the CPU count)
  --quiet            no progress bar

exit codes: 0 done · 1 runtime failure · 2 bad arguments/config`;

export async function run(argv: string[]): Promise<number> {
  return runCommand('infer', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      output: { type: 'string' },
      bootstrap: { type: 'boolean', default: false },
      n_bootstrap: { type: 'string' },
      'n-bootstrap': { type: 'string' },
      limit: { type: 'string' },
      set: { type: 'string', multiple: true },
      threads: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    });
    if (!startCommand(values, positionals, USAGE)) return 0;
    if (!values.checkpoint) throw new CtclipError('ARGUMENT_ERROR', '--checkpoint is required');
    if (!values.config) throw new CtclipError('ARGUMENT_ERROR', '--config is required');
    const nBootText = values.n_bootstrap ?? values['n-bootstrap'];
    const nBoot = nBootText === undefined ? undefined : intOption('n_bootstrap', nBootText);
    const limit = values.limit === undefined ? null : intOption('limit', values.limit);
    const overrides = [...(values.set ?? [])];
    if (values.threads !== undefined) overrides.push(`training.threads=${intOption('threads', values.threads)}`);
    const { config: cfg } = loadConfig(values.config, { overrides });
    const v = cfg.validation;
    if (!cfg.data.webdataset_shards_val)
      throw new CtclipError(
        'CONFIG_ERROR',
        `${values.config}: data.webdataset_shards_val is not set (the shards to evaluate)`,
      );
    const outDir = path.resolve(values.output ?? 'results');
    const useBootstrap = values.bootstrap || nBoot !== undefined || v.use_bootstrap;
    const bootstrap = useBootstrap
      ? { nResamples: nBoot ?? v.n_bootstrap, seed: cfg.experiment.seed, level: v.bootstrap_level }
      : null;

    const log = (...lines: string[]): void => {
      for (const l of lines) process.stdout.write(`${l}\n`);
    };
    const threads = configureThreads(cfg.training.threads);
    const index = openIndex(cfg.data.webdataset_shards_val, { missingShards: cfg.data.missing_shards });
    const classNames = resolveClassNames(cfg, index);
    if (index.numClasses !== classNames.length) {
      throw new CtclipError(
        'CONFIG_ERROR',
        `the validation shards have ${index.numClasses} labels per sample but there are ${classNames.length} class names (${cfg.data.class_names ? 'data.class_names' : (cfg.data.labels_valid ?? 'the index')})`,
      );
    }
    const { model, tokenizer, checkpoint, report } = await loadInferenceModel(cfg, values.checkpoint, log);
    try {
      const loader = evalLoaderFor(cfg, index, limit);
      const total = loader.mine.length;
      log(
        `Zero-shot: ${total} of ${index.samples.length} samples${limit !== null && limit < index.samples.length ? ` (--limit ${limit}: fixed seeded subset, seed ${cfg.experiment.seed})` : ''}, ` +
          `${classNames.length} classes, prompts '${v.prompts.positive}' / '${v.prompts.negative}', batch ${cfg.data.val_batch_size}, ${threads} threads`,
      );
      const progress = values.quiet ? null : new SamplesProgress('infer', total);
      const t0 = performance.now();
      let scored;
      try {
        scored = await zeroShotScores(
          model,
          tokenizer,
          loader,
          classNames,
          { prompts: v.prompts, maxLength: cfg.model.text_encoder.max_length },
          { onProgress: (done) => progress?.update(done) },
        );
      } finally {
        progress?.finish();
        await loader.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      if (scored.scores.length === 0)
        throw new CtclipError('DATA_ERROR', `${cfg.data.webdataset_shards_val}: no sample could be read`);
      const { files, results } = await writeEvaluation(outDir, {
        studyIds: scored.studyIds,
        classNames,
        scores: scored.scores,
        labels: scored.labels,
        config: cfg,
        checkpoint,
        threshold: v.threshold,
        bootstrap,
        extra: {
          command: 'infer',
          prompts: v.prompts,
          shards: cfg.data.webdataset_shards_val,
          limit,
          n_samples_in_shards: index.samples.length,
          weights: {
            file: report.file,
            format: report.format,
            layout: report.layout,
            dropped: report.dropped.map((d) => d.key),
          },
          seconds,
          samples_per_second: scored.scores.length / seconds,
          threads,
        },
      });
      log(...formatEvaluationSummary(results));
      log(
        `Scored ${scored.scores.length} samples in ${seconds.toFixed(1)} s (${(scored.scores.length / seconds).toFixed(2)} samples/s)`,
      );
      log(
        `Wrote ${files.results}, ${path.basename(files.predictions)}, ${path.basename(files.perClass)}, ${path.basename(files.report)}`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  });
}
