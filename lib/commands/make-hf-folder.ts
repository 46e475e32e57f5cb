/**
 * `ctclip make-hf-folder --from CHECKPOINT --out DIR [--config RUN.yaml] [--vocab FILE] [--heads N] [--dropout P]
 *  [--format both|safetensors|bin] [--with-extras]`
 *
 * Writes a Hugging Face BERT folder of the text tower of our weights (lib/weights/hf-folder-writer.ts) that
 * transformers' `BertModel` / `BertTokenizer.from_pretrained` load as the model ctclip trained: the head count,
 * the vocabulary, the dropouts, the LayerNorm epsilon, lower-casing and max_length come from the run's
 * configuration (the checkpoint's config.yaml, or --config), because the tensor shapes cannot tell them and a
 * wrong value loads without any error. Without a run configuration, --heads and --vocab are required. Pure
 * TypeScript: no addon needed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { CtclipError } from '../errors';
import { readSafetensorsHeader } from '../io/safetensors';
import { vocabFile } from '../model/factory';
import { resolveWeights } from '../model/inference-model';
import { Tokenizer } from '../text/tokenizer';
import { writeHfBertFolder, type HfFolderOptions } from '../weights/hf-folder-writer';
import { choiceOption, intOption, parseCommandArgs, runCommand, startCommand } from './common';

const USAGE = `usage: ctclip make-hf-folder --from CHECKPOINT --out DIR [--config RUN.yaml] [--vocab FILE] [--heads N] [--dropout P] [--format both|safetensors|bin] [--with-extras]

  --from X         a checkpoint folder, a run directory (its latest checkpoint) or a weights file
                   (text_transformer.* or bert.* keys); a config.yaml next to the weights is the run's config
  --out DIR        the folder to write (created)
  --config FILE    the run's config (default: the checkpoint's config.yaml); heads, vocabulary, dropouts,
                   layer_norm_eps, do_lower_case and max_length come from its model.text_encoder
  --vocab FILE     the vocabulary (vocab.txt or tokenizer.json) instead of the config's; required without a config
                   ('synthetic': [PAD] [UNK] [CLS] [SEP] [MASK] tok5 tok6 …, for import tests only)
  --heads N        num_attention_heads; required without a config (the shapes cannot tell it)
  --dropout P      hidden and attention dropout of config.json without a config (default 0.1, BertConfig's)
  --format F       which weight files: both (default), safetensors, bin
  --with-extras    add a stale position_ids and made-up MLM/projection heads, as a CXR-BERT folder carries
                   (import tests only: an import must ignore them; they are no trained heads)`;

/** The run configuration of the weights: --config, else config.yaml in the checkpoint folder or next to the file. */
function runConfigFile(explicit: string | undefined, weightsFile: string, checkpointDir: string | null): string | null {
  if (explicit) return explicit;
  for (const dir of [checkpointDir, path.dirname(weightsFile)]) {
    if (dir && fs.existsSync(path.join(dir, 'config.yaml'))) return path.join(dir, 'config.yaml');
  }
  return null;
}

/**
 * The text-encoder settings a run config fixes, checked against the weights' shapes (a config of another run
 * would otherwise write a folder that loads but computes something else).
 */
async function fromRunConfig(
  cfg: Config,
  configFile: string,
  weightsFile: string,
  vocabArg: string | undefined,
): Promise<
  Pick<
    HfFolderOptions,
    'heads' | 'vocab' | 'doLowerCase' | 'maxLength' | 'hiddenDropout' | 'attentionDropout' | 'layerNormEps'
  >
> {
  const te = cfg.model.text_encoder;
  const vocab = vocabArg ?? vocabFile(cfg);
  if (!fs.existsSync(vocab)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `${configFile}: the run's vocabulary ${vocab} (model.text_encoder.${te.vocab ? 'vocab' : 'path'}${path.isAbsolute(vocab) ? '' : `, relative to the working directory: ${path.resolve(vocab)}`}) does not exist; pass the vocabulary the run used with --vocab`,
    );
  }
  // The embedding was sized by the tokenizer when vocab_size is null: a vocabulary of another size is not the run's.
  const tokens = Tokenizer.readVocabTokens(vocab).length;
  const { tensors } = await readSafetensorsHeader(weightsFile);
  const shapeOf = (suffix: string): number[] | undefined =>
    tensors.find((t) => t.name === `text_transformer.${suffix}` || t.name === `bert.${suffix}`)?.shape;
  const rows = shapeOf('embeddings.word_embeddings.weight')?.[0];
  const wantRows = te.vocab_size ?? tokens;
  if (rows !== undefined && rows !== wantRows) {
    throw new CtclipError(
      'DATA_ERROR',
      `${weightsFile}: the word embedding has ${rows} rows but ${configFile} gives ${te.vocab_size !== null ? `model.text_encoder.vocab_size ${te.vocab_size}` : `a vocabulary of ${tokens} tokens (${vocab})`}: not this run's configuration or vocabulary`,
    );
  }
  const checks: Array<[string, number, number | undefined]> = [
    ['hidden_size', te.hidden_size, shapeOf('embeddings.word_embeddings.weight')?.[1]],
    ['max_position_embeddings', te.max_position_embeddings, shapeOf('embeddings.position_embeddings.weight')?.[0]],
    ['intermediate_size', te.intermediate_size, shapeOf('encoder.layer.0.intermediate.dense.weight')?.[0]],
  ];
  for (const [key, want, got] of checks) {
    if (got !== undefined && got !== want)
      throw new CtclipError(
        'DATA_ERROR',
        `${weightsFile}: ${key} is ${got} in the weights but model.text_encoder.${key} is ${want} in ${configFile}: not this run's configuration`,
      );
  }
  return {
    heads: te.num_attention_heads,
    vocab,
    doLowerCase: te.do_lower_case,
    maxLength: te.max_length,
    hiddenDropout: te.hidden_dropout_prob,
    attentionDropout: te.attention_probs_dropout_prob,
    layerNormEps: te.layer_norm_eps,
  };
}

export function run(argv: string[]): Promise<number> {
  return runCommand('make-hf-folder', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      from: { type: 'string' },
      out: { type: 'string' },
      config: { type: 'string' },
      heads: { type: 'string' },
      vocab: { type: 'string' },
      dropout: { type: 'string' },
      format: { type: 'string' },
      'with-extras': { type: 'boolean', default: false },
    });
    if (!startCommand(values, positionals, USAGE, ['from', 'out'])) return 0;
    const format = choiceOption('format', values.format, ['both', 'safetensors', 'bin']);
    // resolveWeights words its argument errors for --checkpoint; here the argument is --from.
    const weights = await resolveWeights(values.from).catch((e: unknown) => {
      if ((e as CtclipError).code !== 'ARGUMENT_ERROR') throw e;
      throw new CtclipError('ARGUMENT_ERROR', (e as Error).message.replace(/^--checkpoint /, '--from '), { cause: e });
    });
    const configFile = runConfigFile(values.config, weights.file, weights.checkpointDir);
    let settings: Omit<HfFolderOptions, 'from' | 'out' | 'formats' | 'withExtras'>;
    if (configFile) {
      const { config } = loadConfig(configFile, { warn: () => undefined });
      settings = await fromRunConfig(config, configFile, weights.file, values.vocab);
      if (values.heads !== undefined && intOption('heads', values.heads) !== settings.heads)
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `--heads ${values.heads} contradicts model.text_encoder.num_attention_heads ${settings.heads} in ${configFile}, the head count the weights were trained with`,
        );
      if (values.dropout !== undefined)
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `--dropout is only for weights without a run config; ${configFile} sets model.text_encoder.hidden_dropout_prob and attention_probs_dropout_prob`,
        );
      process.stdout.write(`text encoder settings from ${configFile}; vocabulary ${settings.vocab}\n`);
    } else {
      const lacking = (['heads', 'vocab'] as const).filter((k) => values[k] === undefined);
      if (lacking.length)
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `${weights.file}: no run config (no config.yaml next to the weights, no --config), so ${lacking.map((k) => `--${k}`).join(' and ')} must be given: the weights do not tell the head count or the vocabulary`,
        );
      const dropout = values.dropout === undefined ? 0.1 : Number(values.dropout);
      if (!(dropout >= 0 && dropout < 1))
        throw new CtclipError('ARGUMENT_ERROR', `--dropout must be a probability in [0, 1), got '${values.dropout}'`);
      settings = {
        heads: intOption('heads', values.heads),
        vocab: values.vocab!,
        hiddenDropout: dropout,
        attentionDropout: dropout,
      };
    }
    const written = await writeHfBertFolder({
      ...settings,
      from: weights.file,
      out: values.out,
      formats: format === 'both' ? ['safetensors', 'bin'] : [format as 'safetensors' | 'bin'],
      withExtras: values['with-extras'],
    });
    for (const f of written) process.stdout.write(`wrote ${f}\n`);
    return 0;
  });
}
