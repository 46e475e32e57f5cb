/**
 * `node lib/inference.js --checkpoint W [--config C] [--output results/ | X.json] [--bootstrap] [--n_bootstrap 1000]
 * [--limit n] [--set k=v ...] [--threads N]` (also `ctclip infer …`): zero-shot classification of the validation
 * shards (`data.webdataset_shards_val`) with a trained CT-CLIP, scored exactly as training-time validation
 * (lib/zeroshot/zero-shot.ts: prompt latents once, P(present) = softmax over each prompt pair), and the four
 * evaluation files (docs/evaluation.md): results.json, predictions.csv, per_class.csv, report.html.
 *
 * The reference's `inference.py` command line works as typed: its five flags mean the same here (`--config`
 * defaults to configs/base_config.yaml, `--output X.json` writes that file, `--bootstrap` / `--n_bootstrap` are
 * `validation.use_bootstrap` / `validation.n_bootstrap`), and results.json carries its flat keys.
 *
 * Exit codes: 0 done · 1 runtime failure (data, I/O, native) · 2 bad arguments or configuration.
 */
import * as fs from 'fs';
import * as path from 'path';
import { intOption, parseCommandArgs, runCommand, startCommand } from './common';
import { resolveCheckpointArg } from '../checkpoint/shortcut';
import { loadConfig } from '../config/load';
import { openIndex } from '../data/shard-index';
import { CtclipError } from '../errors';
import { loadInferenceModel, resolveClassNames } from '../model/inference-model';
import { SamplesProgress } from '../zeroshot/progress';
import { zeroShotScores } from '../zeroshot/zero-shot';
import { formatEvaluationSummary, writeEvaluation } from '../results';
import { configureThreads } from '../runtime';
import { evalLoaderFor } from '../zeroshot/loader';

/** The reference's `--config` default, relative to the working directory as there. */
export const DEFAULT_CONFIG = path.join('configs', 'base_config.yaml');

export const USAGE = `usage: node lib/inference.js --checkpoint W [--config C] [--output DIR|X.json] [--bootstrap] [--n_bootstrap N]
                          [--limit N] [--set key.path=value ...] [--threads N]      (or: ctclip infer …)

  --checkpoint W     our model.safetensors, one of our checkpoint folders, a run directory (its latest
                     checkpoint), RUN_DIR:best or RUN_DIR:latest (the run's best / newest checkpoint), or a
                     PyTorch torch.save file (.pt/.bin; e.g. the published CT-CLIP_v2.pt)
  --config C         YAML config: model.*, data.webdataset_shards_val (indexed), class names
                     (data.class_names, data.labels_valid or the index), validation.prompts / threshold
                     (default ${DEFAULT_CONFIG}, as the reference)
  --output DIR       where results.json, predictions.csv, per_class.csv and report.html go (default results/)
  --output X.json    results written to exactly X.json; predictions.csv, per_class.csv, report.html beside it
  --bootstrap        bootstrap confidence intervals (= validation.use_bootstrap: true)
  --n_bootstrap N    bootstrap resamples (= validation.n_bootstrap; takes effect with --bootstrap, as the reference)
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
    if (!startCommand(values, positionals, USAGE, ['checkpoint'])) return 0;
    const configFile = values.config ?? DEFAULT_CONFIG;
    if (values.config === undefined && !fs.existsSync(configFile))
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `--config is required here: the default ${DEFAULT_CONFIG} does not exist in ${process.cwd()}`,
      );
    const nBootText = values.n_bootstrap ?? values['n-bootstrap'];
    const limit = values.limit === undefined ? null : intOption('limit', values.limit);
    // The bootstrap flags are the config's validation settings, so the config recorded in results.json says what ran.
    const overrides = [...(values.set ?? [])];
    if (values.bootstrap) overrides.push('validation.use_bootstrap=true');
    if (nBootText !== undefined) overrides.push(`validation.n_bootstrap=${intOption('n_bootstrap', nBootText)}`);
    if (values.threads !== undefined) overrides.push(`training.threads=${intOption('threads', values.threads)}`);
    const { config: cfg } = loadConfig(configFile, { overrides });
    const v = cfg.validation;
    if (!cfg.data.webdataset_shards_val)
      throw new CtclipError(
        'CONFIG_ERROR',
        `${configFile}: data.webdataset_shards_val is not set (the shards to evaluate)`,
      );
    const output = values.output ?? 'results';
    const bootstrap = v.use_bootstrap
      ? { nResamples: v.n_bootstrap, seed: cfg.experiment.seed, level: v.bootstrap_level }
      : null;
    if (nBootText !== undefined && !bootstrap)
      process.stderr.write(
        `note: --n_bootstrap ${nBootText} has no effect without --bootstrap (or validation.use_bootstrap: true), as in the reference\n`,
      );

    const log = (...lines: string[]): void => {
      for (const l of lines) process.stdout.write(`${l}\n`);
    };
    const resolved = await resolveCheckpointArg(values.checkpoint!);
    if (resolved.shortcut) log(`Checkpoint ${values.checkpoint} → ${resolved.path}`);
    const threads = configureThreads(cfg.training.threads);
    const index = openIndex(cfg.data.webdataset_shards_val, { missingShards: cfg.data.missing_shards });
    const classNames = resolveClassNames(cfg, index);
    if (index.numClasses !== classNames.length) {
      throw new CtclipError(
        'CONFIG_ERROR',
        `the validation shards have ${index.numClasses} labels per sample but there are ${classNames.length} class names (${cfg.data.class_names ? 'data.class_names' : (cfg.data.labels_valid ?? 'the index')})`,
      );
    }
    const { model, tokenizer, checkpoint, report } = await loadInferenceModel(cfg, resolved.path, log);
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
      const { files, results } = await writeEvaluation(output, {
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
        `Wrote ${files.results}; ${path.basename(files.predictions)}, ${path.basename(files.perClass)}, ${path.basename(files.report)} in ${path.dirname(files.predictions)}`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  });
}
