/**
 * `ctclip plan --config FILE [--world-size W] [--samples N] [--set k=v ...]`: prints the run plan (steps per
 * epoch, total steps, warmup/eval/save cadences) exactly as `train` will use it, without loading the model.
 * N comes from the training shards' index unless --samples is given.
 *
 * Without --samples, the files the config names (shards, labels CSV, vocabulary, text-encoder folder) are checked
 * as `train` checks them: a missing one is exit 2 naming the key. `--samples N` plans a run whose data are
 * elsewhere (e.g. the full-size base config on a laptop): the files are not checked.
 */
import { loadConfig } from '../config/load';
import { CtclipError } from '../errors';
import { openIndex } from '../data/shard-index';
import { formatPlan, planRun } from '../plan';
import { intOption, parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip plan --config FILE [--world-size W] [--samples N] [--set key.path=value ...] [--json]

  --config FILE     YAML config (with _base_ inheritance)
  --world-size W    number of processes (default: $WORLD_SIZE or 1)
  --samples N       training samples (default: from the training shards' index); with --samples the files
                    the config names are not checked (planning without the data)
  --set k=v         override a config value (repeatable)
  --json            print the plan as JSON`;

export function run(argv: string[]): Promise<number> {
  return runCommand('plan', USAGE, async () => {
    const { values } = parseCommandArgs(argv, {
      config: { type: 'string' },
      'world-size': { type: 'string' },
      samples: { type: 'string' },
      set: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!values.config) throw new CtclipError('ARGUMENT_ERROR', '--config is required');
    const { config } = loadConfig(values.config, {
      overrides: values.set ?? [],
      checkFiles: values.samples === undefined ? 'plan' : undefined,
    });
    const worldSize = intOption('world-size', values['world-size'] ?? process.env.WORLD_SIZE, 1);
    let samples: number;
    if (values.samples !== undefined) {
      samples = intOption('samples', values.samples, undefined, 0);
    } else {
      const pattern = config.data.webdataset_shards_train;
      if (!pattern)
        throw new CtclipError(
          'CONFIG_ERROR',
          `${values.config}: data.webdataset_shards_train is not set (or pass --samples N)`,
        );
      samples = openIndex(pattern, { verify: false, missingShards: config.data.missing_shards }).totalSamples;
    }
    const plan = planRun(config, { samples, worldSize });
    if (values.json) process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    else process.stdout.write(`${formatPlan(plan).join('\n')}\n`);
    return 0;
  });
}
