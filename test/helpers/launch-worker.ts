/**
 * A worker program for the launcher's tests (test/integration/launch.test.ts), run as `node launch-worker.js …args`
 * by lib/commands/launch.ts. It prints one line `ENV {json}` (the torchrun variables, CTCLIP_THREADS, its argv and pid) on
 * stdout and `hello from rank N` on stderr, then acts as told by LW_PLAN, a JSON object
 * `{ "<attempt>|*": { "<rank>|*": action } }` (attempt = TORCHELASTIC_RESTART_COUNT; default action 'exit:0'):
 *   exit:N         exit with code N
 *   exit-after-ready:N  wait until every other rank of this attempt is sleeping (its ready marker exists), then
 *                  exit with code N (so the others have their signal handlers installed when the launcher stops them)
 *   partial        write 'no newline at the end' without a newline to stdout, then exit 0
 *   sleep          write the marker `$LW_MARKERS/ready-rank<R>-attempt<A>`, print 'READY pid=P', wait for SIGINT/SIGTERM; on one, write the marker file
 *                  `$LW_MARKERS/rank<R>-attempt<A>-<SIG>` and exit 128 + signal number (130 / 143)
 *   ignore-term    like sleep, but SIGTERM is only recorded in a marker (the launcher must SIGKILL it)
 * A sleeping worker exits 99 by itself after 60 s, so nothing outlives a broken test.
 */
import * as fs from 'fs';
import * as path from 'path';

const VARS = [
  'RANK',
  'WORLD_SIZE',
  'LOCAL_RANK',
  'LOCAL_WORLD_SIZE',
  'GROUP_RANK',
  'GROUP_WORLD_SIZE',
  'ROLE_NAME',
  'ROLE_RANK',
  'ROLE_WORLD_SIZE',
  'MASTER_ADDR',
  'MASTER_PORT',
  'TORCHELASTIC_RESTART_COUNT',
  'TORCHELASTIC_MAX_RESTARTS',
  'TORCHELASTIC_RUN_ID',
  'TORCHELASTIC_USE_AGENT_STORE',
  'CTCLIP_THREADS',
  'OMP_NUM_THREADS',
];

const env: Record<string, string | null> = {};
for (const v of VARS) env[v] = process.env[v] ?? null;
const rank = process.env.RANK ?? '?';
const attempt = process.env.TORCHELASTIC_RESTART_COUNT ?? '0';
process.stdout.write(`ENV ${JSON.stringify({ env, argv: process.argv.slice(2), pid: process.pid })}\n`);
process.stderr.write(`hello from rank ${rank}\n`);

const plan = JSON.parse(process.env.LW_PLAN ?? '{}') as Record<string, Record<string, string>>;
const forAttempt = plan[attempt] ?? plan['*'] ?? {};
const action = forAttempt[rank] ?? forAttempt['*'] ?? 'exit:0';

function marker(sig: string): void {
  const dir = process.env.LW_MARKERS;
  if (dir) fs.writeFileSync(path.join(dir, `rank${rank}-attempt${attempt}-${sig}`), `${process.pid}\n`);
}

if (action.startsWith('exit:')) {
  process.exitCode = Number(action.slice(5));
} else if (action.startsWith('exit-after-ready:')) {
  const code = Number(action.slice('exit-after-ready:'.length));
  const others = Number(process.env.LOCAL_WORLD_SIZE ?? '1') - 1;
  const dir = process.env.LW_MARKERS as string;
  const poll = setInterval(() => {
    if (
      fs.readdirSync(dir).filter((n) => n.startsWith('ready-') && n.endsWith(`-attempt${attempt}`)).length >= others
    ) {
      clearInterval(poll);
      process.exit(code);
    }
  }, 20);
} else if (action === 'partial') {
  process.stdout.write('no newline at the end');
} else if (action === 'sleep' || action === 'ignore-term') {
  const timer = setTimeout(() => process.exit(99), 60_000);
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(sig, () => {
      marker(sig);
      if (action === 'ignore-term' && sig === 'SIGTERM') return;
      clearTimeout(timer);
      process.stdout.write(`got ${sig}, exiting ${code}\n`);
      process.exitCode = code;
    });
  }
  if (process.env.LW_MARKERS)
    fs.writeFileSync(path.join(process.env.LW_MARKERS, `ready-rank${rank}-attempt${attempt}`), '');
  process.stdout.write(`READY pid=${process.pid}\n`);
} else {
  process.stderr.write(`launch-worker: unknown action '${action}'\n`);
  process.exitCode = 42;
}
