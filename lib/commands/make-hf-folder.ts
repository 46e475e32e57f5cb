/**
 * `ctclip make-hf-folder --from WEIGHTS.safetensors --out DIR [--heads N] [--vocab vocab.txt] [--format both|safetensors|bin] [--no-extras]`
 *
 * Writes a tiny Hugging Face-style BERT folder (config.json, vocab.txt, model.safetensors with `bert.` keys and/or
 * a pytorch_model.bin written by our torch.save writer) from the text tower of our weights, so the HF-folder
 * import can be tried without downloads (lib/weights/hf-folder-writer.ts). Pure TypeScript: no addon needed.
 */
import { CtclipError } from '../errors';
import { writeHfBertFolder } from '../weights/hf-folder-writer';
import { intOption, parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip make-hf-folder --from WEIGHTS.safetensors --out DIR [--heads N] [--vocab FILE] [--format both|safetensors|bin] [--no-extras]

  --from FILE      CT-CLIP weights (text_transformer.* keys) or a BERT safetensors (bert.* keys)
  --out DIR        the folder to write (created)
  --heads N        num_attention_heads for config.json (default hidden_size/64, else 1)
  --vocab FILE     vocab.txt to copy (default: [PAD] [UNK] [CLS] [SEP] [MASK] then tok5, tok6, …)
  --format F       which weight files: both (default), safetensors, bin
  --no-extras      leave out the stale position_ids and the MLM/projection heads a CXR-BERT folder carries`;

export function run(argv: string[]): Promise<number> {
  return runCommand('make-hf-folder', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      from: { type: 'string' },
      out: { type: 'string' },
      heads: { type: 'string' },
      vocab: { type: 'string' },
      format: { type: 'string' },
      'no-extras': { type: 'boolean', default: false },
    });
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (positionals.length) throw new CtclipError('ARGUMENT_ERROR', `unexpected argument(s): ${positionals.join(' ')}`);
    if (!values.from) throw new CtclipError('ARGUMENT_ERROR', '--from is required');
    if (!values.out) throw new CtclipError('ARGUMENT_ERROR', '--out is required');
    const format = values.format ?? 'both';
    if (!['both', 'safetensors', 'bin'].includes(format))
      throw new CtclipError('ARGUMENT_ERROR', `--format must be both, safetensors or bin, got '${format}'`);
    const written = await writeHfBertFolder({
      from: values.from,
      out: values.out,
      heads: values.heads === undefined ? undefined : intOption('heads', values.heads),
      vocab: values.vocab,
      formats: format === 'both' ? ['safetensors', 'bin'] : [format as 'safetensors' | 'bin'],
      withExtras: !values['no-extras'],
    });
    for (const f of written) process.stdout.write(`wrote ${f}\n`);
    return 0;
  });
}
