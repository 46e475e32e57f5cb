/**
 * `ctclip synth --out DIR --samples N --shape H,W,D --shards K --seed S [--classes 18 | a,b,…] [--vocab-size V]`
 *
 * Writes a synthetic CT-RATE-like dataset: canonical shards, our index, reports/labels/metadata CSVs and
 * vocab.txt (lib/data/synth.ts). Deterministic per arguments. Exit 0 on success, 2 for bad arguments.
 */
import { DEFAULT_PROMPTS } from '../config/schema';
import { CtclipError } from '../errors';
import { intOption, parseCommandArgs, runCommand, startCommand } from './common';
import { CT_RATE_CLASSES } from '../data/classes';
import { writeSynthDataset } from '../data/synth';

const USAGE = `usage: ctclip synth --out DIR --samples N --shape H,W,D --shards K --seed S [--classes 18|a,b,...] [--vocab-size V]

  --out DIR        output directory (created)
  --samples N      number of samples
  --shape H,W,D    volume shape (reference: 480,480,240)
  --shards K       number of shard files (default 1)
  --seed S         seed (default 0)
  --classes        18 (default) = the CT-RATE classes, or a comma-separated list of class names
  --vocab-size V   size of vocab.txt (default 4096)
  --positive-prompt T, --negative-prompt T
                   zero-shot prompt templates the reports contain ({p} = class name;
                   default '{p} is present.' / '{p} is not present.', as validation.prompts)
  --quiet          no progress output`;

function promptTemplate(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (!value.includes('{p}'))
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must contain {p} (the class name), got '${value}'`);
  return value;
}

export function run(argv: string[]): Promise<number> {
  return runCommand('synth', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      out: { type: 'string' },
      samples: { type: 'string' },
      shape: { type: 'string' },
      shards: { type: 'string' },
      seed: { type: 'string' },
      classes: { type: 'string' },
      'vocab-size': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'positive-prompt': { type: 'string' },
      'negative-prompt': { type: 'string' },
    });
    if (!startCommand(values, positionals, USAGE, ['out'])) return 0;
    const samples = intOption('samples', values.samples);
    const shapeParts = (values.shape ?? '').split(',');
    if (shapeParts.length !== 3 || !shapeParts.every((p) => /^\d+$/.test(p.trim()) && parseInt(p, 10) > 0)) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `--shape must be H,W,D (three positive integers), got '${values.shape ?? ''}'`,
      );
    }
    const shape = shapeParts.map((p) => parseInt(p, 10)) as [number, number, number];
    let classes: string[] = [...CT_RATE_CLASSES];
    if (values.classes !== undefined) {
      if (/^\d+$/.test(values.classes)) {
        const n = parseInt(values.classes, 10);
        if (n !== 18)
          throw new CtclipError(
            'ARGUMENT_ERROR',
            `--classes as a number must be 18 (the CT-RATE classes); give names for another set, got ${n}`,
          );
      } else {
        classes = values.classes
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        if (!classes.length)
          throw new CtclipError('ARGUMENT_ERROR', '--classes needs 18 or a comma-separated list of names');
      }
    }
    const quiet = values.quiet || !process.stderr.isTTY;
    const t0 = Date.now();
    const r = await writeSynthDataset({
      out: values.out,
      samples,
      shape,
      shards: intOption('shards', values.shards, 1),
      seed: intOption('seed', values.seed, 0, 0),
      classes,
      prompts: {
        positive: promptTemplate('positive-prompt', values['positive-prompt'], DEFAULT_PROMPTS.positive),
        negative: promptTemplate('negative-prompt', values['negative-prompt'], DEFAULT_PROMPTS.negative),
      },
      vocabSize: values['vocab-size'] !== undefined ? intOption('vocab-size', values['vocab-size']) : undefined,
      onProgress: quiet ? undefined : (d, n) => process.stderr.write(`\rsynth: ${d}/${n} samples`),
    });
    if (!quiet) process.stderr.write('\n');
    process.stdout.write(
      `wrote ${r.index.totalSamples} samples (${shape.join('×')} float16) in ${r.shardPaths.length} shard(s) to ${values.out} ` +
        `in ${((Date.now() - t0) / 1000).toFixed(1)} s\npattern: ${r.pattern}\nindex: ${r.indexPath}\n`,
    );
    return 0;
  });
}
