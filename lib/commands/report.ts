/**
 * `ctclip report RUN_DIR [--out FILE]`: writes the run's HTML report (`RUN_DIR/report.html` by default) from
 * `RUN_DIR/metrics.jsonl`, or from `RUN_DIR/tensorboard/` event files when there is no metrics.jsonl, and prints
 * its path. See docs/logging.md.
 */
import { writeRunReport } from '../logging/run-report';
import { parseCommandArgs, runCommand, startCommand } from './common';

const USAGE = `usage: ctclip report RUN_DIR [--out FILE]

  RUN_DIR      a training run directory (with metrics.jsonl and/or tensorboard/)
  --out FILE   where to write the report (default: RUN_DIR/report.html)`;

export function run(argv: string[]): Promise<number> {
  return runCommand('report', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, { out: { type: 'string' } });
    if (!startCommand(values, positionals, USAGE, [], 'RUN_DIR')) return 0;
    const out = await writeRunReport(positionals[0], { out: values.out });
    process.stdout.write(`Report written: ${out}\n`);
    return 0;
  });
}
