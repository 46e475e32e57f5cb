/**
 * `ctclip config migrate IN.yaml [--set key.path=value ...]`: writes IN's ctclip-native form to stdout — the
 * resolved config with every key, `_base_` files merged, the original Python pipeline's keys translated, and
 * comments naming the source keys (lib/config/migrate.ts). Warnings go to stderr; a key that cannot be honoured
 * is exit 2 naming it. Usage: `ctclip config migrate old.yaml > new.yaml`.
 */
import { migrateConfig } from '../config/migrate';
import { CtclipError } from '../errors';
import { parseCommandArgs, runCommand } from './common';

const USAGE = `usage: ctclip config migrate IN.yaml [--set key.path=value ...] > OUT.yaml

  migrate IN.yaml   write IN's ctclip-native form to stdout: every key resolved (_base_ merged, \${VAR}
                    expanded, the original pipeline's keys translated), with comments naming the source keys;
                    warnings (ignored keys) go to stderr
  --set k=v         override a config value first (repeatable, ctclip key names)`;

export function run(argv: string[]): Promise<number> {
  return runCommand('config', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, { set: { type: 'string', multiple: true } });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const [sub, ...rest] = positionals;
    if (sub !== 'migrate') {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        sub === undefined ? 'a subcommand is required (migrate)' : `unknown subcommand '${sub}' (expected migrate)`,
      );
    }
    if (rest.length !== 1) {
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `migrate takes one IN.yaml, got ${rest.length}${rest.length ? `: ${rest.join(' ')}` : ''}`,
      );
    }
    const { text } = migrateConfig(rest[0], {
      overrides: values.set ?? [],
      warn: (m) => process.stderr.write(`warning: ${m}\n`),
    });
    process.stdout.write(text);
    return 0;
  });
}
