/**
 * The real launcher (`node lib/launch.js`) as a child process, supervising test/helpers/launch-worker.js: the
 * torchrun environment per rank, `[rank N] ` output, restart of all workers with `--resume latest` after a failure
 * (exit code or SIGKILL), giving up after --max_restarts, SIGINT/SIGTERM forwarding without restart, the grace
 * period's SIGKILL, and bad arguments.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { repoRoot } from '../helpers/fixtures';

const LAUNCH_JS = path.join(repoRoot, 'lib', 'launch.js');
const WORKER_JS = path.join(repoRoot, 'test', 'helpers', 'launch-worker.js');

interface LaunchRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Started {
  child: ChildProcess;
  done: Promise<LaunchRun>;
  waitFor(re: RegExp, count?: number): Promise<RegExpMatchArray[]>;
}

function startLaunch(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(process.execPath, [LAUNCH_JS, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const checks: Array<() => void> = [];
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => {
    stdout += c;
    for (const f of [...checks]) f();
  });
  child.stderr!.on('data', (c: string) => (stderr += c));
  const done = new Promise<LaunchRun>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    child,
    done,
    waitFor: (re, count = 1) =>
      new Promise((resolve, reject) => {
        const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
        const check = (): void => {
          const all = [...stdout.matchAll(g)];
          if (all.length >= count) {
            checks.splice(checks.indexOf(check), 1);
            resolve(all);
          }
        };
        checks.push(check);
        check();
        void done.then((r) =>
          reject(new Error(`launcher exited (${r.code}/${r.signal}) before ${count}× ${re}\n${show(r)}`)),
        );
      }),
  };
}

function show(r: LaunchRun): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout ---\n${r.stdout.slice(-3000)}\n--- stderr ---\n${r.stderr.slice(-3000)}`;
}

interface WorkerReport {
  rank: number;
  env: Record<string, string | null>;
  argv: string[];
  pid: number;
}

/** The `[rank N] ENV {...}` lines, in order of appearance. */
function reports(stdout: string): WorkerReport[] {
  return [...stdout.matchAll(/^\[rank (\d+)\] ENV (.*)$/gm)].map((m) => ({
    rank: Number(m[1]),
    ...(JSON.parse(m[2]) as Omit<WorkerReport, 'rank'>),
  }));
}

function attempts(stdout: string, attempt: number): WorkerReport[] {
  return reports(stdout)
    .filter((r) => r.env.TORCHELASTIC_RESTART_COUNT === String(attempt))
    .sort((a, b) => a.rank - b.rank);
}

/** The signal markers the workers wrote (not their ready markers), sorted. */
function signalMarkers(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('ready-'))
    .sort();
}

describe('launch: the launcher supervising real worker processes', function () {
  this.timeout(20_000);
  let markers: string;

  beforeEach(() => {
    markers = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-launch-'));
  });
  afterEach(() => fs.rmSync(markers, { recursive: true, force: true }));

  it('2 workers: distinct torchrun environments, [rank N]-prefixed stdout and stderr, exit 0', async () => {
    const r = await startLaunch(['--nproc_per_node', '2', '--master_port', '29611', WORKER_JS, '--config', 'x.yaml'], {
      CTCLIP_THREADS: '',
      OMP_NUM_THREADS: '',
      TORCHELASTIC_USE_AGENT_STORE: 'True',
    }).done;
    expect(r.code, show(r)).to.equal(0);
    const ws = attempts(r.stdout, 0);
    expect(ws.map((w) => w.rank)).to.deep.equal([0, 1]);
    const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    for (const w of ws) {
      expect(w.env).to.deep.equal({
        RANK: String(w.rank),
        WORLD_SIZE: '2',
        LOCAL_RANK: String(w.rank),
        LOCAL_WORLD_SIZE: '2',
        GROUP_RANK: '0',
        GROUP_WORLD_SIZE: '1',
        ROLE_NAME: 'default',
        ROLE_RANK: String(w.rank),
        ROLE_WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: '29611',
        TORCHELASTIC_RESTART_COUNT: '0',
        TORCHELASTIC_MAX_RESTARTS: '0',
        TORCHELASTIC_RUN_ID: 'none',
        TORCHELASTIC_USE_AGENT_STORE: null,
        CTCLIP_THREADS: String(Math.max(1, Math.floor(cpus / 2))),
        OMP_NUM_THREADS: '',
      });
      expect(w.argv).to.deep.equal(['--config', 'x.yaml']);
    }
    expect(ws[0].pid).to.not.equal(ws[1].pid);
    // every worker line carries its prefix; the launcher's own lines are on stderr
    for (const line of r.stdout.trimEnd().split('\n')) expect(line).to.match(/^\[rank [01]\] /);
    expect(r.stderr).to.match(/^\[rank 0\] hello from rank 0$/m);
    expect(r.stderr).to.match(/^\[rank 1\] hello from rank 1$/m);
    expect(r.stderr.match(/CTCLIP_THREADS=\d+ per worker/g)).to.have.length(1);
    expect(r.stderr).to.contain('[launch] all 2 worker(s) exited 0');
  });

  it('multi-node ranks: --nnodes 2 --node_rank 1 gives this node ranks 2 and 3 of 4; a partial last line is flushed', async () => {
    const r = await startLaunch(
      ['--nproc_per_node', '2', '--nnodes', '2', '--node_rank', '1', '--master_addr', 'head-node', WORKER_JS],
      { LW_PLAN: '{"*":{"*":"partial"}}', CTCLIP_THREADS: '3' },
    ).done;
    expect(r.code, show(r)).to.equal(0);
    const ws = attempts(r.stdout, 0);
    expect(
      ws.map((w) => [
        w.env.RANK,
        w.env.LOCAL_RANK,
        w.env.WORLD_SIZE,
        w.env.GROUP_RANK,
        w.env.MASTER_ADDR,
        w.env.CTCLIP_THREADS,
      ]),
    ).to.deep.equal([
      ['2', '0', '4', '1', 'head-node', '3'],
      ['3', '1', '4', '1', 'head-node', '3'],
    ]);
    expect(r.stdout).to.match(/^\[rank 2\] no newline at the end$/m);
    expect(r.stdout).to.match(/^\[rank 3\] no newline at the end$/m);
    expect(r.stderr).to.contain('CTCLIP_THREADS=3 per worker (from the environment)');
  });

  it('a worker failing on attempt 0: the others are stopped, all restart with TORCHELASTIC_RESTART_COUNT=1 and --resume latest, exit 0', async () => {
    const plan = { '0': { '1': 'exit-after-ready:3', '*': 'sleep' } };
    const r = await startLaunch(['--nproc_per_node', '2', '--max_restarts', '2', WORKER_JS, '--config', 'x.yaml'], {
      LW_PLAN: JSON.stringify(plan),
      LW_MARKERS: markers,
    }).done;
    expect(r.code, show(r)).to.equal(0);
    expect(signalMarkers(markers)).to.deep.equal(['rank0-attempt0-SIGTERM']); // rank 0 was stopped with SIGTERM
    expect(r.stderr).to.match(/worker rank 1 \(local rank 1\) exit code 3 on attempt 0/);
    expect(r.stderr).to.match(
      /restart 1\/2: starting all 2 worker\(s\) again with --resume latest \(TORCHELASTIC_RESTART_COUNT=1\)/,
    );
    const second = attempts(r.stdout, 1);
    expect(second.map((w) => w.rank)).to.deep.equal([0, 1]);
    for (const w of second) {
      expect(w.argv).to.deep.equal(['--config', 'x.yaml', '--resume', 'latest']);
      expect(w.env.TORCHELASTIC_MAX_RESTARTS).to.equal('2');
    }
    expect(attempts(r.stdout, 2)).to.deep.equal([]);
    expect(r.stderr).to.contain('all 2 worker(s) exited 0 (after 1 restart(s))');
  });

  it('an existing --resume is kept as is on restart', async () => {
    const r = await startLaunch(['--nproc_per_node', '1', '--max_restarts', '1', WORKER_JS, '--resume', 'best'], {
      LW_PLAN: '{"0":{"0":"exit:1"}}',
    }).done;
    expect(r.code, show(r)).to.equal(0);
    expect(attempts(r.stdout, 1)[0].argv).to.deep.equal(['--resume', 'best']);
  });

  it('failures beyond --max_restarts: exit 1 with a message naming the failed rank', async () => {
    const r = await startLaunch(['--nproc_per_node', '2', '--max_restarts', '1', WORKER_JS], {
      LW_PLAN: '{"*":{"0":"exit-after-ready:5","*":"sleep"}}',
      LW_MARKERS: markers,
    }).done;
    expect(r.code, show(r)).to.equal(1);
    expect(attempts(r.stdout, 0)).to.have.length(2);
    expect(attempts(r.stdout, 1)).to.have.length(2);
    expect(attempts(r.stdout, 2)).to.have.length(0);
    expect(r.stderr).to.match(
      /worker rank 0 \(local rank 0\) exit code 5 on attempt 1; no restarts left \(--max_restarts 1\): giving up, exit 1/,
    );
    expect(signalMarkers(markers)).to.deep.equal(['rank1-attempt0-SIGTERM', 'rank1-attempt1-SIGTERM']);
  });

  it('SIGKILL of one worker (by its pid) counts as a failure: all restart', async () => {
    const s = startLaunch(['--nproc_per_node', '2', '--max_restarts', '1', WORKER_JS], {
      LW_PLAN: '{"0":{"*":"sleep"}}',
      LW_MARKERS: markers,
    });
    const ready = await s.waitFor(/^\[rank (\d)\] READY pid=(\d+)$/m, 2);
    const rank1 = ready.find((m) => m[1] === '1') as RegExpMatchArray;
    process.kill(Number(rank1[2]), 'SIGKILL');
    const r = await s.done;
    expect(r.code, show(r)).to.equal(0);
    expect(r.stderr).to.match(/worker rank 1 \(local rank 1\) killed by SIGKILL on attempt 0/);
    expect(signalMarkers(markers)).to.deep.equal(['rank0-attempt0-SIGTERM']);
    expect(attempts(r.stdout, 1).map((w) => w.argv)).to.deep.equal([
      ['--resume', 'latest'],
      ['--resume', 'latest'],
    ]);
  });

  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${sig} to the launcher: forwarded once to every worker, no restart, exit ${code}`, async () => {
      const s = startLaunch(['--nproc_per_node', '2', '--max_restarts', '3', WORKER_JS], {
        LW_PLAN: '{"*":{"*":"sleep"}}',
        LW_MARKERS: markers,
      });
      await s.waitFor(/READY pid=/, 2);
      s.child.kill(sig);
      const r = await s.done;
      expect(r.code, show(r)).to.equal(code);
      expect(signalMarkers(markers)).to.deep.equal([`rank0-attempt0-${sig}`, `rank1-attempt0-${sig}`]);
      expect(r.stdout.match(new RegExp(`got ${sig}, exiting ${code}`, 'g'))).to.have.length(2);
      expect(attempts(r.stdout, 1)).to.deep.equal([]);
      expect(r.stderr).to.contain(`${sig} received: forwarding it to 2 worker(s)`);
      expect(r.stderr).to.contain(`interrupted by ${sig}: workers stopped, exit ${code}`);
      expect(r.stderr).to.not.contain('restart 1/');
    });
  }

  it('a second signal SIGKILLs workers that are still running', async () => {
    const s = startLaunch(['--nproc_per_node', '2', WORKER_JS], {
      LW_PLAN: '{"*":{"*":"ignore-term"}}',
      LW_MARKERS: markers,
    });
    await s.waitFor(/READY pid=/, 2);
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    s.child.kill('SIGTERM');
    const r = await s.done;
    expect(r.code, show(r)).to.equal(143);
    expect(r.stderr).to.contain('SIGTERM received again: killing the workers (SIGKILL)');
    expect(signalMarkers(markers)).to.deep.equal(['rank0-attempt0-SIGTERM', 'rank1-attempt0-SIGTERM']);
  });

  it('a worker that ignores SIGTERM after a failure is SIGKILLed when the grace period is over', async () => {
    const t0 = Date.now();
    const r = await startLaunch(['--nproc_per_node', '2', '--grace_period', '1', WORKER_JS], {
      LW_PLAN: '{"0":{"0":"exit-after-ready:2","*":"ignore-term"}}',
      LW_MARKERS: markers,
    }).done;
    expect(r.code, show(r)).to.equal(1);
    expect(r.stderr).to.contain('grace period over: SIGKILL to rank(s) 1');
    expect(signalMarkers(markers)).to.deep.equal(['rank1-attempt0-SIGTERM']);
    expect(Date.now() - t0).to.be.below(8000);
  });

  it('`ctclip launch` is the same command (help: exit 0 with the exit-code table; a run through lib/cli.js)', async () => {
    const cli = path.join(repoRoot, 'lib', 'cli.js');
    const help = spawnSync(process.execPath, [cli, 'launch', '--help'], { encoding: 'utf8' });
    expect(help.status).to.equal(0);
    expect(help.stdout).to.contain('usage: ctclip launch');
    expect(help.stdout).to.match(/130 SIGINT .* 143 SIGTERM/);
    const r = spawnSync(process.execPath, [cli, 'launch', '--nproc_per_node', '2', WORKER_JS, '--help'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).to.equal(0);
    // --help after the worker script belongs to the worker
    expect(attempts(r.stdout, 0).map((w) => w.argv)).to.deep.equal([['--help'], ['--help']]);
  });

  it('bad arguments: exit 2 with the reason and the usage; nothing is started', async () => {
    for (const [args, msg] of [
      [['--nproc_per_node', '0', WORKER_JS], "--nproc_per_node must be an integer >= 1, got '0'"],
      [['--nnodes', '2', '--node_rank', '2', WORKER_JS], '--node_rank must be < --nnodes (2), got 2'],
      [['--master_port', '70000', WORKER_JS], '--master_port must be an integer in 1..65535'],
      [['--nproc_per_node', '2', 'no-such-worker.js'], "worker script 'no-such-worker.js' does not exist"],
      [['--nproc_per_node', '2'], 'missing the worker script'],
    ] as const) {
      const r = await startLaunch([...args]).done;
      expect(r.code, show(r)).to.equal(2);
      expect(r.stderr).to.contain(`ctclip launch: ${msg}`);
      expect(r.stderr).to.contain('exit codes: 0 all workers succeeded');
      expect(r.stdout).to.equal('');
    }
  });
});
