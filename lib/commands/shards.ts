/**
 * `ctclip shards index <pattern> [--labels-csv F] [--classes a,b,…] [--out FILE] [--json]`
 *
 * Scans the tar headers of the shards (no volume payloads are read), checks every sample, and writes our
 * index (`ctclip-index.json` next to the shards; never the reference's manifest.json). Bad samples and
 * missing shards are excluded and listed. Exit 0 when the index was written (even with exclusions), 1 when
 * no valid sample was found, 2 for bad arguments.
 */
import { CtclipError } from '../errors';
import { indexShards } from '../data/shard-index';
import { parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip shards index <pattern> [--labels-csv FILE] [--classes a,b,...] [--out FILE] [--json]

  <pattern>        shard brace pattern, e.g. '/data/train/shard-{000000..000316}.tar' (quote it)
  --labels-csv F   take the class names from this labels CSV header (all columns but VolumeName/study_id)
  --classes LIST   class names, comma-separated, in label order (wins over --labels-csv)
  --out FILE       index file to write (default: <shard dir>/ctclip-index.json)
  --json           print the summary as JSON`;

export function run(argv: string[]): Promise<number> {
  return runCommand('shards', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      'labels-csv': { type: 'string' },
      classes: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    const [sub, pattern, ...extra] = positionals;
    if (sub !== 'index' || !pattern || extra.length) {
      throw new CtclipError('ARGUMENT_ERROR', `expected 'index <pattern>'${extra.length ? ` (unexpected: ${extra.join(' ')})` : ''}`);
    }
    const classes = values.classes
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (values.classes !== undefined && (!classes || classes.length === 0)) {
      throw new CtclipError('ARGUMENT_ERROR', '--classes needs a comma-separated list of names');
    }
    const { index, indexPath } = await indexShards(pattern, { classNames: classes, labelsCsv: values['labels-csv'], indexPath: values.out });
    if (values.json) {
      const { samples: _samples, ...summary } = index;
      process.stdout.write(JSON.stringify({ indexPath, ...summary }, null, 2) + '\n');
    } else {
      const missing = index.shards.filter((s) => s.missing).length;
      process.stdout.write(
        `indexed ${index.shards.length} shard(s): ${index.totalSamples} valid samples, ${index.excluded.length} excluded` +
          `${missing ? `, ${missing} missing shard(s)` : ''}\n` +
          `volume ${index.volumeShape.join('×')} ${index.volumeDtype} (${index.sampleBytes} bytes), ${index.numClasses} classes` +
          ` (${index.classNamesSource})\nwrote ${indexPath}\n`,
      );
      for (const x of index.excluded.slice(0, 50)) process.stdout.write(`  excluded ${x.shard} ${x.key}: ${x.reason}\n`);
      if (index.excluded.length > 50) process.stdout.write(`  … ${index.excluded.length - 50} more in ${indexPath}\n`);
    }
    if (index.totalSamples === 0) {
      process.stderr.write(`ctclip shards: no valid samples in '${pattern}'\n`);
      return 1;
    }
    return 0;
  });
}
