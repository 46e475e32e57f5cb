/**
 * One trainer per run directory (lib/checkpoint/run-lock.ts): real `node lib/train.js` processes on one
 * `checkpoint.save_dir`. A second trainer started while the first runs exits 1 before it builds anything, naming
 * the first (pid, host, since); the first then finishes with files that are only its own. A lock left by a dead
 * trainer on this host is taken over without a flag; one held on another host is refused.
 */
import { expect } from 'chai';
import { createHash } from 'crypto';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RUN_LOCK_FILE } from '../../lib/checkpoint/run-lock';
import {
  checkpointDirs,
  describeRun,
  runTrain,
  startTrain,
  trainLosses,
  writeTrainConfig,
  trainSuite,
} from '../helpers/train-fixtures';

/** Every entry of a run directory (recursively) with the sha256 of its content. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(p, r);
      else out[r] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

function events(runDir: string): Array<{ type: string; step: number; path?: string }> {
  return fs
    .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number; path?: string });
}

function lockOf(fields: Record<string, unknown>): string {
  return JSON.stringify({
    format: 'ctclip-run-lock',
    version: 1,
    startedAt: '2025-01-31T12:00:00.000Z',
    command: 'node lib/train.js --config old.yaml',
    nonce: 'old',
    ...fields,
  });
}

describe('train: one trainer per run directory', function () {
  this.timeout(240_000);
  const suite = trainSuite('train-lock');

  function config(name: string, maxSteps: number): { cfg: string; runDir: string } {
    const runDir = path.join(suite.dir, name);
    const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
      training: { max_steps: maxSteps, max_epochs: null, save_every_n_steps: 2, warmup_steps: 2, threads: 1 },
      validation: { eval_every_n_steps: 2, eval_samples: 8 },
      checkpoint: { keep_last_n: 1 },
      logging: { log_every_n_steps: 1, use_tensorboard: false },
    });
    return { cfg, runDir };
  }

  it('a second trainer on a run directory in use exits 1 at once, naming the first; the first finishes with only its own files', async function () {
    const { cfg, runDir } = config('shared', 6);
    const first = startTrain(['--config', cfg]);
    let second;
    try {
      await first.waitForLine(/^Step 1\/6 /);
      // Frozen but alive: the second start is decided while the first certainly holds the lock.
      first.child.kill('SIGSTOP');
      const before = snapshot(runDir);
      second = await runTrain(['--config', cfg]);
      expect(second.code, describeRun(second)).to.equal(1);
      const lock = JSON.parse(fs.readFileSync(path.join(runDir, RUN_LOCK_FILE), 'utf8')) as {
        pid: number;
        host: string;
        startedAt: string;
        command: string;
      };
      expect(lock).to.include({ pid: first.child.pid, host: os.hostname() });
      expect(lock.command).to.contain('train.js --config');
      expect(second.stderr).to.contain(`run directory ${runDir} is in use by another training run`);
      expect(second.stderr).to.contain(
        `held by pid ${first.child.pid} on host ${os.hostname()} since ${lock.startedAt}`,
      );
      expect(second.stderr).to.contain('another checkpoint.save_dir');
      expect(second.stderr).to.not.contain('usage:');
      expect(second.stdout, 'stopped before building the model').to.not.contain('Model:');
      expect(snapshot(runDir), 'the second trainer wrote nothing').to.deep.equal(before);
    } finally {
      first.child.kill('SIGCONT');
    }
    const r = await first.done;
    expect(r.code, describeRun(r)).to.equal(0);
    expect([...trainLosses(runDir).keys()]).to.deep.equal([1, 2, 3, 4, 5, 6]); // throws on a step logged twice
    const ev = events(runDir);
    expect(ev.filter((e) => e.type === 'end')).to.have.length(1);
    expect(ev.filter((e) => e.type === 'resume')).to.have.length(0);
    // best.json names a checkpoint this run saved, and it exists (rotation kept it)
    const best = JSON.parse(fs.readFileSync(path.join(runDir, 'best.json'), 'utf8')) as { checkpoint: string };
    const saved = ev.filter((e) => e.type === 'checkpoint').map((e) => path.basename(e.path as string));
    expect(saved).to.include(best.checkpoint);
    expect(checkpointDirs(runDir).map((d) => path.basename(d))).to.include(best.checkpoint);
    expect(fs.existsSync(path.join(runDir, RUN_LOCK_FILE)), 'released at the end').to.equal(false);
  });

  it('a lock left by a dead trainer on this host is taken over without a flag; a lock held on another host is refused', async function () {
    const { cfg, runDir } = config('stale', 2);
    fs.mkdirSync(runDir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number;
    fs.writeFileSync(path.join(runDir, RUN_LOCK_FILE), lockOf({ pid: dead, host: os.hostname() }));
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stderr).to.contain(
      `warning: took over the stale run lock ${path.join(runDir, RUN_LOCK_FILE)} of pid ${dead} on host ${os.hostname()}`,
    );
    expect(r.stderr).to.contain(`process ${dead} is no longer running`);
    expect(fs.existsSync(path.join(runDir, RUN_LOCK_FILE))).to.equal(false);

    const other = config('other-host', 2);
    fs.mkdirSync(other.runDir, { recursive: true });
    fs.writeFileSync(path.join(other.runDir, RUN_LOCK_FILE), lockOf({ pid: 4242, host: 'gpu-node-17' }));
    const refused = await runTrain(['--config', other.cfg]);
    expect(refused.code, describeRun(refused)).to.equal(1);
    expect(refused.stderr).to.contain(
      'held by pid 4242 on host gpu-node-17 since 2025-01-31T12:00:00.000Z: node lib/train.js --config old.yaml',
    );
    expect(refused.stderr).to.contain(`delete ${path.join(other.runDir, RUN_LOCK_FILE)}`);
    expect(fs.readdirSync(other.runDir)).to.deep.equal([RUN_LOCK_FILE]);
  });
});
