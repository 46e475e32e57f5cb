/**
 * The REAL trainer through the launcher: `node lib/launch.js --nproc_per_node 2 launch-train-worker.js --config …`
 * on a tiny debug-derived config (CPU, Gloo, 1 thread per rank). Needs the distributed trainer (WORLD_SIZE > 1 in
 * lib/commands/train.ts) and the native addon.
 *   - 2 workers to completion: exit 0, one metrics.jsonl line per step (only rank 0 logs), checkpoints by rank 0;
 *   - rank 1 SIGKILLed after step 5 on the first attempt: the launcher stops rank 0, restarts both with
 *     `--resume latest`, and the final model.safetensors equals the uninterrupted 2-worker run's bit for bit;
 *   - SIGINT to the launcher: forwarded to both ranks, a checkpoint is saved, exit 130, no restart.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort } from '../helpers/dist';
import { repoRoot } from '../helpers/fixtures';
import {
  checkpointDirs,
  requireTrainer,
  trainData,
  trainLosses,
  writeTrainConfig,
  type TrainData,
} from '../helpers/train-fixtures';

const LAUNCH_JS = path.join(repoRoot, 'lib', 'launch.js');
const WORKER_JS = path.join(repoRoot, 'test', 'helpers', 'launch-train-worker.js');
const TOTAL = 8;
const SAVE_EVERY = 2;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function show(r: Run): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout ---\n${r.stdout.slice(-5000)}\n--- stderr ---\n${r.stderr.slice(-5000)}`;
}

function startLaunch(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; done: Promise<Run>; waitFor(re: RegExp): Promise<void> } {
  const child = spawn(process.execPath, [LAUNCH_JS, ...args], {
    cwd: repoRoot,
    env: { ...process.env, CI: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => {
    stdout += c;
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].re.test(stdout)) {
        waiters[i].resolve();
        waiters.splice(i, 1);
      }
    }
  });
  child.stderr!.on('data', (c: string) => (stderr += c));
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    child,
    done,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        if (re.test(stdout)) return resolve();
        waiters.push({ re, resolve });
        void done.then((r) => reject(new Error(`the launcher exited before printing ${re}\n${show(r)}`)));
      }),
  };
}

describe('launch + train: 2 real trainer workers (distributed trainer)', function () {
  this.timeout(300_000);
  let data: TrainData;
  let dir: string;
  let refWeights: Buffer;
  let refLosses: Map<number, number>;

  function config(name: string, extra: Record<string, Record<string, unknown>> = {}): { cfg: string; runDir: string } {
    const runDir = path.join(dir, name);
    const cfg = writeTrainConfig(dir, data, runDir, {
      training: { max_steps: TOTAL, max_epochs: null, save_every_n_steps: SAVE_EVERY, warmup_steps: 2, threads: 1 },
      validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 16 },
      checkpoint: { keep_last_n: 3 },
      logging: { log_every_n_steps: 1, use_tensorboard: false },
      distributed: { backend: 'gloo', timeout_minutes: 2 },
      ...extra,
    });
    return { cfg, runDir };
  }

  /** The launcher's arguments: 2 workers with `options`, a free master port, the worker on `cfg`. */
  async function twoWorkers(cfg: string, ...options: string[]): Promise<string[]> {
    return ['--nproc_per_node', '2', ...options, '--master_port', String(await freePort()), WORKER_JS, '--config', cfg];
  }

  function finalModel(runDir: string): Buffer {
    const last = checkpointDirs(runDir).pop() as string;
    expect(path.basename(last)).to.equal(`ckpt-step${String(TOTAL).padStart(8, '0')}`);
    return fs.readFileSync(path.join(last, 'model.safetensors'));
  }

  before(async function () {
    requireTrainer(this);
    data = await trainData({ train: 64, val: 16 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-launch-train-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('2 workers run to completion: exit 0, every step logged once (by rank 0), checkpoints written', async function () {
    const { cfg, runDir } = config('reference');
    const r = await startLaunch(await twoWorkers(cfg)).done;
    expect(r.code, show(r)).to.equal(0);
    expect(r.stdout).to.match(new RegExp(`^\\[rank 0\\] Step ${TOTAL}/${TOTAL} `, 'm'));
    expect(r.stdout, 'only rank 0 logs steps').to.not.match(/^\[rank 1\] Step \d+\//m);
    refLosses = trainLosses(runDir); // throws when a step is logged twice
    expect([...refLosses.keys()]).to.deep.equal([...Array(TOTAL).keys()].map((k) => k + 1));
    refWeights = finalModel(runDir);
    const geometry = JSON.parse(
      fs.readFileSync(path.join(checkpointDirs(runDir).pop() as string, 'data_position.json'), 'utf8'),
    ) as Record<string, unknown>;
    expect(JSON.stringify(geometry)).to.match(/"worldSize":2/);
    expect(r.stderr).to.contain('[launch] all 2 worker(s) exited 0');
  });

  it('rank 1 SIGKILLed after step 5: all restart with --resume latest, final weights equal the uninterrupted run', async function () {
    expect(refWeights, 'the uninterrupted reference run (previous test) did not finish').to.not.equal(undefined);
    const { cfg, runDir } = config('killed');
    const r = await startLaunch(await twoWorkers(cfg, '--max_restarts', '1', '--grace_period', '5'), {
      LT_FIRST_ATTEMPT_FAULT: '1:kill-after-step=5',
    }).done;
    expect(r.code, show(r)).to.equal(0);
    expect(r.stdout).to.match(/^\[rank 1\] FAULT kill-after-step 5$/m);
    expect(r.stderr).to.match(/worker rank 1 \(local rank 1\) killed by SIGKILL on attempt 0/);
    expect(r.stderr).to.match(/restart 1\/1: starting all 2 worker\(s\) again with --resume latest/);
    // the newest checkpoint before the kill: step 4 (periodic), or 5 when rank 0 saved one on the SIGTERM
    expect(r.stdout, show(r)).to.match(/^\[rank 0\] Resumed from \S*ckpt-step0000000[45]: step [45],/m);
    expect(
      finalModel(runDir).equals(refWeights),
      'final model.safetensors bit-identical to the uninterrupted 2-worker run',
    ).to.equal(true);
    const losses = trainLosses(runDir);
    for (const [step, loss] of refLosses) expect(losses.get(step), `loss at step ${step}`).to.equal(loss);
  });

  it('SIGINT to the launcher: both ranks stop, a checkpoint is saved, exit 130, no restart', async function () {
    const { cfg, runDir } = config('sigint', {
      training: { max_steps: 2000, save_every_n_steps: null, save_every_n_epochs: null },
    });
    const s = startLaunch(await twoWorkers(cfg, '--max_restarts', '2'));
    await s.waitFor(/^\[rank 0\] Step 3\/2000 /m);
    s.child.kill('SIGINT');
    const r = await s.done;
    expect(r.code, show(r)).to.equal(130);
    expect(r.stderr).to.contain('[launch] SIGINT received: forwarding it to 2 worker(s)');
    expect(r.stderr).to.not.contain('restart 1/');
    const m = /^\[rank 0\] Training interrupted at step (\d+)\/2000/m.exec(r.stdout);
    expect(m, show(r)).to.not.equal(null);
    const step = Number((m as RegExpExecArray)[1]);
    const ckpts = checkpointDirs(runDir);
    expect(ckpts.map((d) => path.basename(d))).to.deep.equal([`ckpt-step${String(step).padStart(8, '0')}`]);
    const meta = JSON.parse(fs.readFileSync(path.join(ckpts[0], 'meta.json'), 'utf8')) as { kind: string };
    expect(meta.kind).to.equal('interrupt');
  });
});
