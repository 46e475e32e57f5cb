/**
 * What every `ctclip <command>` shares: argument parsing with util.parseArgs, and one mapping from errors to
 * exit codes (documented in the README):
 *   0 success · 1 runtime failure (data, I/O, native) · 2 bad arguments or configuration (nothing heavy ran).
 */
import { parseArgs, type ParseArgsConfig } from 'util';
import { CtclipError } from '../errors';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Error codes that mean "the user asked for something invalid" → exit 2. */
const USAGE_CODES = new Set([
  'ARGUMENT_ERROR',
  'CONFIG_ERROR',
  'PLAN_ERROR',
  'ERR_PARSE_ARGS_UNKNOWN_OPTION',
  'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
  'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL',
]);

export type Options = NonNullable<ParseArgsConfig['options']>;

type OptionValue<T> = T extends { type: 'boolean' }
  ? T extends { multiple: true }
    ? boolean[]
    : boolean
  : T extends { multiple: true }
    ? string[]
    : string;

/** The parsed values of an options table (absent options are undefined). */
export type ParsedValues<O extends Options> = { [K in keyof O]?: OptionValue<O[K]> } & { help?: boolean };

/** parseArgs with `--help` added; positionals allowed; unknown options are errors (exit 2). */
export function parseCommandArgs<O extends Options>(
  argv: string[],
  options: O,
): { values: ParsedValues<O>; positionals: string[] } {
  const parsed = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...options, help: { type: 'boolean', short: 'h', default: false } },
  });
  return { values: parsed.values as ParsedValues<O>, positionals: parsed.positionals };
}

/**
 * The start every command shares: prints `usage` and returns false for --help (exit 0); refuses missing
 * `required` options and positional arguments (ARGUMENT_ERROR naming them) — or, with `operand` (e.g. 'RUN_DIR'),
 * requires exactly one; true to go on, with the required options known to be set.
 */
export function startCommand<V extends { help?: boolean }, K extends keyof V & string = never>(
  values: V,
  positionals: string[],
  usage: string,
  required: readonly K[] = [],
  operand?: string,
): values is V & { [P in K]-?: NonNullable<V[P]> } {
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return false;
  }
  if (operand !== undefined) {
    if (positionals.length === 0) throw new CtclipError('ARGUMENT_ERROR', `${operand} is required`);
    if (positionals.length > 1)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `expected one ${operand}, got ${positionals.length}: ${positionals.join(' ')}`,
      );
  } else if (positionals.length)
    throw new CtclipError('ARGUMENT_ERROR', `unexpected argument(s): ${positionals.join(' ')}`);
  for (const k of required) if (!values[k]) throw new CtclipError('ARGUMENT_ERROR', `--${k} is required`);
  return true;
}

/**
 * Runs a command body and turns errors into an exit code with a message on stderr:
 * usage errors print the usage text too; CtclipErrors print their message; anything else is a bug (stack).
 */
export async function runCommand(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== undefined && USAGE_CODES.has(code)) {
      const argumentProblem = code !== 'CONFIG_ERROR' && code !== 'PLAN_ERROR';
      process.stderr.write(`ctclip ${name}: ${(e as Error).message}\n${argumentProblem ? `${usage}\n` : ''}`);
      return EXIT_USAGE;
    }
    if (e instanceof CtclipError || (e instanceof Error && code !== undefined)) {
      process.stderr.write(`ctclip ${name}: ${e.message}${code ? ` [${code}]` : ''}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`ctclip ${name}: unexpected error: ${e instanceof Error ? e.stack : String(e)}\n`);
    return EXIT_FAILURE;
  }
}

/**
 * Runs an entry point's `run(argv)` as the process's main function: its result becomes the exit code; an error
 * that escaped `runCommand` is printed with its stack and exits 2 for an ARGUMENT_ERROR, else 1.
 */
export function runAsMain(name: string, run: (argv: string[]) => Promise<number>): void {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${name}: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = (e as { code?: string }).code === 'ARGUMENT_ERROR' ? EXIT_USAGE : EXIT_FAILURE;
    },
  );
}

/**
 * A choice option: `text`, or the default `choices[0]` when not given; ARGUMENT_ERROR listing the choices (in the
 * given order) when it is none of them.
 */
export function choiceOption<T extends string>(name: string, text: string | undefined, choices: readonly T[]): T {
  const value = text ?? choices[0];
  if (!(choices as readonly string[]).includes(value)) {
    const list = `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}`;
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be ${list}, got '${value}'`);
  }
  return value as T;
}

/** A number option value (undefined when not given), or ARGUMENT_ERROR naming the option. */
export function numberOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v))
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be a number, got '${text}'`);
  return v;
}

/** A float option list `--name a,b,c` (exactly `count` finite numbers), or ARGUMENT_ERROR naming it. */
export function numberList(name: string, text: string | undefined, count: number): number[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',').map((s) => s.trim());
  const v = parts.map(Number);
  if (parts.length !== count || parts.some((p) => p === '') || !v.every(Number.isFinite)) {
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be ${count} comma-separated numbers, got '${text}'`);
  }
  return v;
}

/** A `numberList` of numbers > 0 (a spacing in mm), or ARGUMENT_ERROR naming it. */
export function positiveList(name: string, text: string | undefined, count: number): number[] | undefined {
  const v = numberList(name, text, count);
  if (v && !v.every((x) => x > 0)) throw new CtclipError('ARGUMENT_ERROR', `--${name} must be positive, got '${text}'`);
  return v;
}

/** A positive integer option value, or ARGUMENT_ERROR naming the option. */
export function intOption(name: string, text: string | undefined, fallback?: number, min = 1): number {
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new CtclipError('ARGUMENT_ERROR', `--${name} is required`);
  }
  if (!/^\d+$/.test(text.trim()) || parseInt(text, 10) < min) {
    throw new CtclipError('ARGUMENT_ERROR', `--${name} must be an integer >= ${min}, got '${text}'`);
  }
  return parseInt(text, 10);
}
