/**
 * The run-directory lock (lib/checkpoint/run-lock.ts) on real files with real processes: exclusive, naming its
 * holder; stale locks (dead pid, reused pid, rebooted host, requeued SLURM job) taken over without a flag; live
 * holders, other hosts and unreadable lock files refused; released on exit, on an uncaught error and on a signal,
 * but never when it was taken over by someone else.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  inspectRunLock,
  judgeRunLock,
  ownRunLockInfo,
  parseRunLock,
  processStartTicks,
  RunLock,
  RUN_LOCK_FILE,
  type RunLockInfo,
} from '../../lib/checkpoint/run-lock';
import { hasCode } from '../../lib/errors';

const CHILD = path.join(__dirname, '..', 'helpers', 'run-lock-child.js');

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

/** The pid of a process that has exited (spawned and waited for). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  expect(r.status).to.equal(0);
  return r.pid as number;
}

function writeLock(dir: string, over: Partial<RunLockInfo>): RunLockInfo {
  const info: RunLockInfo = { ...ownRunLockInfo({ command: 'node lib/train.js --config other.yaml' }), ...over };
  fs.writeFileSync(path.join(dir, RUN_LOCK_FILE), JSON.stringify(info));
  return info;
}

function startChild(
  dir: string,
  mode: string,
): {
  child: ChildProcess;
  locked: Promise<void>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
} {
  const child = spawn(process.execPath, [CHILD, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d.toString()));
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d.toString();
      if (out.includes('LOCKED')) resolve();
    });
    child.on('exit', () => reject(new Error(`child exited before locking: ${err}`)));
  });
  locked.catch(() => undefined); // awaited only by the modes that keep running
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr: err })),
  );
  return { child, locked, done };
}

describe('run-directory lock', function () {
  this.timeout(30_000);
  let dir: string;
  const lockFile = (): string => path.join(dir, RUN_LOCK_FILE);
  const holder = (): RunLockInfo => parseRunLock(fs.readFileSync(lockFile(), 'utf8')) as RunLockInfo;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-run-lock-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is exclusive: the lock file names pid, host, start time and command; a second acquire names the holder', () => {
    const lock = RunLock.acquire(dir, { command: 'node lib/train.js --config a.yaml' });
    try {
      const h = holder();
      expect(h).to.include({ pid: process.pid, host: os.hostname(), command: 'node lib/train.js --config a.yaml' });
      expect(Date.parse(h.startedAt)).to.be.closeTo(Date.now(), 60_000);
      const err = catchError(() => RunLock.acquire(dir, { command: 'second' }));
      expect(hasCode(err, 'IO_ERROR')).to.equal(true);
      expect(err.message).to.contain(`run directory ${dir} is in use by another training run`);
      expect(err.message).to.contain(
        `held by pid ${process.pid} on host ${os.hostname()} since ${h.startedAt}: node lib/train.js --config a.yaml`,
      );
      expect(err.message).to.contain('another checkpoint.save_dir');
      expect(err.message).to.contain(`delete ${lockFile()}`);
    } finally {
      lock.release();
    }
    expect(fs.existsSync(lockFile())).to.equal(false);
    RunLock.acquire(dir).release();
    expect(fs.readdirSync(dir)).to.deep.equal([]); // no temporary files left
  });

  it('a live process on this host holds it; a dead pid on this host is taken over without a flag', async () => {
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    try {
      const start = processStartTicks(live.pid as number);
      writeLock(dir, { pid: live.pid as number, processStart: start, nonce: 'live' });
      const err = catchError(() => RunLock.acquire(dir));
      expect(err.message).to.contain(`held by pid ${live.pid} on host ${os.hostname()}`);
      expect(err.message).to.contain(`process ${live.pid} is still running`);
      expect(holder().nonce).to.equal('live'); // untouched
    } finally {
      live.kill('SIGKILL');
    }
    const pid = deadPid();
    writeLock(dir, { pid, nonce: 'dead' });
    const warnings: string[] = [];
    const lock = RunLock.acquire(dir, { onWarn: (m) => warnings.push(m) });
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.contain(`took over the stale run lock ${lockFile()} of pid ${pid} on host ${os.hostname()}`);
    expect(warnings[0]).to.contain(`process ${pid} is no longer running`);
    expect(holder()).to.include({ pid: process.pid, nonce: lock.info.nonce });
    lock.release();
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('another host, another pid namespace or an unreadable file: refused, naming the holder or the file', () => {
    writeLock(dir, { host: 'gpu-node-17', pid: 4242, startedAt: '2025-01-31T12:00:00.000Z' });
    let err = catchError(() => RunLock.acquire(dir));
    expect(err.message).to.contain('held by pid 4242 on host gpu-node-17 since 2025-01-31T12:00:00.000Z');
    expect(err.message).to.contain('it is held on another host (gpu-node-17)');
    const self = ownRunLockInfo();
    if (self.pidNamespace) {
      writeLock(dir, { pid: deadPid(), pidNamespace: 'pid:[1]' });
      expect(() => RunLock.acquire(dir)).to.throw(/another pid namespace/);
    }
    fs.writeFileSync(lockFile(), 'locked by hand\n');
    err = catchError(() => RunLock.acquire(dir));
    expect(hasCode(err, 'IO_ERROR')).to.equal(true);
    expect(err.message).to.contain(`${lockFile()} is not a ctclip run lock`);
    // bounded read of a hostile lock file
    fs.writeFileSync(lockFile(), Buffer.alloc(1 << 20, 0x20));
    expect(() => RunLock.acquire(dir)).to.throw(/more than a run lock can be/);
    expect(fs.statSync(lockFile()).size).to.equal(1 << 20);
  });

  it('stale by pid reuse, by reboot and by a requeued SLURM job; the same SLURM restart still holds it', () => {
    const self = ownRunLockInfo({ env: { SLURM_JOB_ID: '77', SLURM_RESTART_COUNT: '2' } });
    const other = (over: Partial<RunLockInfo>): RunLockInfo => ({ ...self, pid: 999_999, nonce: 'x', ...over });
    // pid alive but started at another time: reused
    expect(
      judgeRunLock(
        other({ pid: process.pid, processStart: '1' }),
        self,
        () => true,
        () => '2',
      ).stale,
    ).to.equal(true);
    expect(
      judgeRunLock(
        other({ processStart: '2' }),
        self,
        () => true,
        () => '2',
      ).stale,
    ).to.equal(false);
    if (self.bootId)
      expect(judgeRunLock(other({ bootId: 'another-boot' }), self, () => true).why).to.contain('rebooted');
    expect(
      judgeRunLock(other({ host: 'elsewhere', slurmJobId: '77', slurmRestartCount: 1 }), self, () => true).stale,
    ).to.equal(true);
    expect(
      judgeRunLock(other({ host: 'elsewhere', slurmJobId: '77', slurmRestartCount: 2 }), self, () => true).stale,
    ).to.equal(false);
    expect(
      judgeRunLock(other({ host: 'elsewhere', slurmJobId: '78', slurmRestartCount: 0 }), self, () => true).stale,
    ).to.equal(false);
    expect(inspectRunLock(dir, self)).to.deep.equal({ state: 'free' });
  });

  it('release removes only its own lock', () => {
    const lock = RunLock.acquire(dir);
    writeLock(dir, { nonce: 'someone-else' });
    lock.release();
    expect(holder().nonce).to.equal('someone-else');
  });

  for (const mode of ['exit', 'throw', 'signal'] as const) {
    it(`is released when its process ends: ${mode === 'exit' ? 'process.exit' : mode === 'throw' ? 'an uncaught error' : 'SIGTERM (trainer signal handling)'}`, async () => {
      const c = startChild(dir, mode);
      if (mode === 'signal') {
        await c.locked;
        expect(holder().pid).to.equal(c.child.pid);
        c.child.kill('SIGTERM');
      }
      const r = await c.done;
      expect(r.code, r.stderr).to.equal(mode === 'exit' ? 3 : mode === 'throw' ? 1 : 143);
      if (mode === 'throw') expect(r.stderr).to.contain('child failed on purpose');
      expect(fs.existsSync(lockFile())).to.equal(false);
    });
  }

  it('a SIGKILLed holder leaves its lock behind, which the next acquire on this host takes over', async () => {
    const c = startChild(dir, 'hold');
    await c.locked;
    const err = catchError(() => RunLock.acquire(dir));
    expect(err.message).to.contain(`held by pid ${c.child.pid}`);
    expect(err.message).to.contain('run-lock-child hold');
    c.child.kill('SIGKILL');
    await c.done;
    expect(holder().pid).to.equal(c.child.pid);
    const warnings: string[] = [];
    RunLock.acquire(dir, { onWarn: (m) => warnings.push(m) }).release();
    expect(warnings.join('\n')).to.contain(`of pid ${c.child.pid}`);
  });
});
