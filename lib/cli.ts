#!/usr/bin/env node
/**
 * `ctclip <command> [...]`: the product's command line. Each command lives in lib/commands/<name>.ts and
 * exports `run(argv): Promise<exitCode>`; this file only dispatches (lazily, so `ctclip plan` never loads the
 * native addon).
 */
import { EXIT_USAGE, runAsMain } from './commands/common';

interface CommandEntry {
  summary: string;
  load: () => { run(argv: string[]): Promise<number> };
}

const COMMANDS: Record<string, CommandEntry> = {
  info: { summary: 'libtorch build/runtime, CUDA, collectives, threads', load: () => require('./commands/info') },
  plan: {
    summary: 'print the run plan (steps/epoch, warmup, eval/save cadence) for a config',
    load: () => require('./commands/plan'),
  },
  config: {
    summary:
      "write a config's ctclip-native form (the original pipeline's keys translated): 'ctclip config migrate IN.yaml'",
    load: () => require('./commands/config'),
  },
  synth: {
    summary: 'write a synthetic CT-RATE-like dataset (shards, index, CSVs, vocab)',
    load: () => require('./commands/synth'),
  },
  shards: {
    summary: "index WebDataset shards: 'ctclip shards index <pattern>'",
    load: () => require('./commands/shards'),
  },
  preprocess: {
    summary: 'CT-RATE NIfTI volumes + CSVs → canonical shards, index and preprocess_report.json',
    load: () => require('./commands/preprocess'),
  },
  'make-hf-folder': {
    summary: 'write a tiny Hugging Face BERT folder (config, vocab, safetensors/.bin) from our weights',
    load: () => require('./commands/make-hf-folder'),
  },
  train: {
    summary: 'train CT-CLIP: epochs by steps, validation, checkpoints, exact resume (--resume latest)',
    load: () => require('./commands/train'),
  },
  launch: {
    summary:
      'torchrun-style launcher: N workers per node with RANK/WORLD_SIZE/…, [rank N] output, restarts with --resume latest',
    load: () => require('./commands/launch'),
  },
  report: {
    summary: "write a training run's HTML report (loss/LR/metric curves, per-class AUROC) from RUN_DIR",
    load: () => require('./commands/report'),
  },
  infer: {
    summary:
      'zero-shot evaluation of a checkpoint on the validation shards → results.json, predictions.csv, per_class.csv, report.html',
    load: () => require('./commands/infer'),
  },
  embed: {
    summary:
      'image/text latents (optionally pre-projection image embeddings) of indexed shards → safetensors + JSON sidecar',
    load: () => require('./commands/embed'),
  },
  predict: {
    summary: 'zero-shot P(present) per class for one NIfTI study, preprocessed in memory (--json)',
    load: () => require('./commands/predict'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: ctclip <command> [options]   (ctclip <command> --help for details)\n\ncommands:\n${lines.join('\n')}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : EXIT_USAGE;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${(require('../package.json') as { version: string }).version}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`ctclip: unknown command '${name}'\n${usage()}\n`);
    return EXIT_USAGE;
  }
  return entry.load().run(rest);
}

if (require.main === module) runAsMain('ctclip', main);
