/**
 * `ctclip shards index <pattern> [--labels-csv F] [--classes a,b,…] [--out FILE] [--missing-shards error|skip]
 *  [--max-report-bytes N] [--json]`
 *
 * Scans the tar headers of the shards (no volume payloads are read), checks every sample (also its label
 * values and report size), and writes our index (`ctclip-index.json` next to the shards; never the reference's
 * manifest.json). Bad samples and lost samples are excluded and listed with the true count. Exit 0 when the
 * index was written (even with exclusions); 1 when no valid sample was found, when a shard of the pattern is
 * missing, empty or unreadable (unless --missing-shards skip; the index is written either way) or the index
 * cannot be written; 2 for bad arguments.
 */
import { CtclipError } from '../errors';
import {
  checkMissingShards,
  DEFAULT_MAX_REPORT_BYTES,
  indexShards,
  isUnusableShard,
  type MissingShardsPolicy,
} from '../data/shard-index';
import { formatReasonCounts } from '../data/loader';
import { intOption, parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip shards index <pattern> [--labels-csv FILE] [--classes a,b,...] [--out FILE]
                          [--missing-shards error|skip] [--max-report-bytes N] [--json]

  <pattern>        shard brace pattern, e.g. '/data/train/shard-{000000..000316}.tar' (quote it)
  --labels-csv F   take the class names from this labels CSV header (all columns but VolumeName/study_id)
  --classes LIST   class names, comma-separated, in label order (wins over --labels-csv)
  --out FILE       index file to write (default: <shard dir>/ctclip-index.json)
  --missing-shards error (default): a missing, empty or unreadable shard of the pattern is an error (exit 1,
                   the index is still written); skip: only a warning (as data.missing_shards)
  --max-report-bytes N
                   largest report text (txt member) kept, in bytes (default ${DEFAULT_MAX_REPORT_BYTES}, as
                   data.max_report_bytes); a larger one is excluded
  --json           print the summary as JSON`;

export function run(argv: string[]): Promise<number> {
  return runCommand('shards', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      'labels-csv': { type: 'string' },
      classes: { type: 'string' },
      out: { type: 'string' },
      'missing-shards': { type: 'string' },
      'max-report-bytes': { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    const [sub, pattern, ...extra] = positionals;
    if (sub !== 'index' || !pattern || extra.length) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `expected 'index <pattern>'${extra.length ? ` (unexpected: ${extra.join(' ')})` : ''}`,
      );
    }
    const classes = values.classes
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (values.classes !== undefined && (!classes || classes.length === 0)) {
      throw new CtclipError('ARGUMENT_ERROR', '--classes needs a comma-separated list of names');
    }
    const policy = (values['missing-shards'] ?? 'error') as MissingShardsPolicy;
    if (policy !== 'error' && policy !== 'skip')
      throw new CtclipError('ARGUMENT_ERROR', `--missing-shards must be 'error' or 'skip', got '${policy}'`);
    const maxReportBytes = intOption('max-report-bytes', values['max-report-bytes'], DEFAULT_MAX_REPORT_BYTES);
    const { index, indexPath } = await indexShards(pattern, {
      classNames: classes,
      labelsCsv: values['labels-csv'],
      indexPath: values.out,
      maxReportBytes,
    });
    if (values.json) {
      const { samples: _samples, ...summary } = index;
      process.stdout.write(JSON.stringify({ indexPath, ...summary }, null, 2) + '\n');
    } else {
      const missing = index.shards.filter((s) => s.missing).length;
      const unusable = index.shards.filter(isUnusableShard).length;
      const byReason: Record<string, number> = {};
      for (const x of index.excluded)
        if ((x.samples ?? 1) > 0)
          byReason[x.code ?? 'excluded'] = (byReason[x.code ?? 'excluded'] ?? 0) + (x.samples ?? 1);
      const estimated = index.excluded.some((x) => x.estimated)
        ? ' (some counts estimated: no earlier index of those shards)'
        : '';
      process.stdout.write(
        `indexed ${index.shards.length} shard(s): ${index.totalSamples} valid samples, ${index.totalExcluded} excluded or lost` +
          `${index.totalExcluded ? ` (${formatReasonCounts(byReason)})${estimated}` : ''}` +
          `${missing ? `, ${missing} missing shard(s)` : ''}${unusable > missing ? `, ${unusable - missing} empty or unreadable shard(s)` : ''}\n` +
          `volume ${index.volumeShape.join('×')} ${index.volumeDtype} (${index.sampleBytes} bytes), ${index.numClasses} classes` +
          ` (${index.classNamesSource})\nwrote ${indexPath}\n`,
      );
      for (const x of index.excluded.slice(0, 50)) {
        const n = x.key === '*' ? ` [${x.samples ?? '?'} sample(s) lost${x.estimated ? ', estimated' : ''}]` : '';
        process.stdout.write(`  excluded ${x.shard} ${x.key}: ${x.reason}${n}\n`);
      }
      if (index.excluded.length > 50) process.stdout.write(`  … ${index.excluded.length - 50} more in ${indexPath}\n`);
    }
    if (index.totalSamples === 0) {
      process.stderr.write(`ctclip shards: no valid samples in '${pattern}'\n`);
      return 1;
    }
    checkMissingShards(index, policy, pattern, indexPath);
    if (index.shards.some(isUnusableShard))
      process.stderr.write(
        `warning: missing, empty or unreadable shard(s) skipped (--missing-shards skip); see ${indexPath}\n`,
      );
    return 0;
  });
}
