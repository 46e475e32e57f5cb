/**
 * Data-parallel training end to end: `node lib/train.js` as 2 ranks on 127.0.0.1 (Gloo) with the torchrun environment.
 * The debug config (dropout on, gradient accumulation 2) trains, validates (sharded over the ranks, gathered to
 * rank 0: every chosen study once), checkpoints (rank 0 writes); a rank that dies makes the other fail within
 * distributed.timeout_minutes naming it; `--resume latest` on both ranks then ends with the same weights and
 * losses as the uninterrupted 2-rank run.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { requireGloo } from '../helpers/native';
import { freePort, killAll, startRanks, type RankRun } from '../helpers/dist';
import {
  checkpointDirs,
  requireTrainer,
  TRAIN_JS,
  trainData,
  trainLosses,
  writeTrainConfig,
  type TrainData,
} from '../helpers/train-fixtures';

const TOTAL = 12;

describe('train: data parallel over c10d', function () {
  this.timeout(400_000);
  let data: TrainData;
  let dir: string;
  let runs: RankRun[] = [];

  function config(name: string): { cfg: string; runDir: string } {
    const runDir = path.join(dir, name);
    const cfg = writeTrainConfig(dir, data, runDir, {
      data: { batch_size: 4, val_batch_size: 4, num_workers: 2 },
      training: {
        max_steps: TOTAL,
        max_epochs: null,
        save_every_n_steps: 4,
        warmup_steps: 3,
        threads: 1,
        gradient_accumulation_steps: 2,
      },
      validation: { eval_every_n_steps: 6, eval_samples: 14 },
      checkpoint: { keep_last_n: 0 },
      logging: { log_every_n_steps: 1, use_tensorboard: false, profile_timing: 4 },
      model: { text_encoder: { hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 } },
      distributed: { timeout_minutes: 0.1 },
    });
    return { cfg, runDir };
  }

  async function train(args: string[], env: (rank: number) => Record<string, string> = () => ({})): Promise<RankRun[]> {
    const port = await freePort();
    runs = startRanks([TRAIN_JS, ...args], 2, port, (r) => ({ CI: '1', ...env(r) }));
    await Promise.all(runs.map((r) => r.done));
    return runs;
  }

  function finalModel(runDir: string): Buffer {
    const last = checkpointDirs(runDir).pop() as string;
    expect(path.basename(last)).to.equal(`ckpt-step${String(TOTAL).padStart(8, '0')}`);
    return fs.readFileSync(path.join(last, 'model.safetensors'));
  }

  let ref: { runDir: string; losses: Map<number, number>; model: Buffer; rank0: string; rank1: string };

  before(async function () {
    requireTrainer(this);
    requireGloo(this);
    data = await trainData({ train: 64, val: 16 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-train-dist-'));
    const { cfg, runDir } = config('reference');
    const r = await train(['--config', cfg]);
    for (const x of r) expect(x.child.exitCode, `rank ${x.rank}:\n${x.stdout}\n${x.stderr}`).to.equal(0);
    ref = { runDir, losses: trainLosses(runDir), model: finalModel(runDir), rank0: r[0].stdout, rank1: r[1].stdout };
  });
  afterEach(() => killAll(runs));
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('trains 2 ranks to the end: plan for W=2, progress and validation on rank 0 only, every chosen study validated once', function () {
    expect(ref.rank0).to.match(/Data parallel: 2 ranks \(gloo/);
    // 64 samples / (B 4 × W 2 × A 2) = 4 steps per epoch
    expect(ref.rank0).to.match(/Step 1\/12 \(Epoch 0\.25\)/);
    expect(ref.rank0).to.match(/Step 6 - val \| macro_auroc: /);
    expect(ref.rank1).to.not.match(/Step \d+\/12/);
    // logging.profile_timing: the per-phase breakdown from the native step, averaged over the 4 steps since the last one
    const block = ref.rank0.split('Timing (mean over the last 4 steps):')[1] ?? '';
    for (const phase of [
      'data',
      'tokenize',
      'forward_spatial',
      'forward_temporal',
      'forward_text',
      'heads',
      'backward',
      'allreduce',
      'optimizer',
      'total',
    ]) {
      expect(block, `profile phase ${phase}`).to.match(new RegExp(`\\n  ${phase} +\\d+\\.\\d\\d ms +\\d+\\.\\d%`));
    }
    expect(ref.losses.size).to.equal(TOTAL);
    const vals = fs
      .readFileSync(path.join(ref.runDir, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; n_samples?: number; step: number })
      .filter((m) => m.type === 'val');
    expect(vals.map((v) => v.step)).to.deep.equal([6, 12]);
    for (const v of vals) expect(v.n_samples).to.equal(14);
    expect(checkpointDirs(ref.runDir).map((d) => path.basename(d))).to.deep.equal(
      [4, 6, 8, 12].map((s) => `ckpt-step${String(s).padStart(8, '0')}`),
    );
  });

  it('only rank 0 takes the run lock; a run directory in use stops every rank at once, before any model is built', async function () {
    // The reference run above succeeded with both ranks on one directory: a second taker would have been refused.
    expect(fs.existsSync(path.join(ref.runDir, 'run.lock')), 'released at the end').to.equal(false);
    const { cfg, runDir } = config('locked');
    fs.mkdirSync(runDir, { recursive: true });
    // held by a live process on this host: this test process
    const lock = JSON.stringify({
      format: 'ctclip-run-lock',
      version: 1,
      pid: process.pid,
      host: os.hostname(),
      startedAt: '2025-01-31T12:00:00.000Z',
      command: 'mocha',
      nonce: 'test',
    });
    fs.writeFileSync(path.join(runDir, 'run.lock'), lock);
    const r = await train(['--config', cfg]);
    for (const x of r) {
      expect(x.child.exitCode, `rank ${x.rank}:\n${x.stdout}\n${x.stderr}`).to.equal(1);
      expect(x.stdout, `rank ${x.rank} built no model`).to.not.contain('Model:');
    }
    expect(r[0].stderr).to.contain(
      `is in use by another training run: ${path.join(runDir, 'run.lock')} is held by pid ${process.pid} on host ${os.hostname()}`,
    );
    expect(r[1].stderr).to.contain(`rank 0 could not lock the run directory ${runDir}`);
    expect(fs.readdirSync(runDir)).to.deep.equal(['run.lock']);
    expect(fs.readFileSync(path.join(runDir, 'run.lock'), 'utf8')).to.equal(lock);
  });

  it('a dead rank makes the other fail fast naming it; --resume latest on both ranks reproduces the uninterrupted run', async function () {
    const { cfg, runDir } = config('killed');
    // Rank 1 SIGKILLs itself right after step 7; rank 0 fails at the next collective.
    const r = await train(['--config', cfg], (rank): Record<string, string> =>
      rank === 1 ? { CTCLIP_TEST_FAULT: 'kill-after-step=7' } : {},
    );
    expect(r[1].child.signalCode).to.equal('SIGKILL');
    expect(r[0].child.exitCode, r[0].stdout + r[0].stderr).to.equal(1);
    expect(r[0].stderr).to.match(/DIST_(ERROR|TIMEOUT)|rank 0\/2: .*(failed|timed out).*rank 1/);
    expect(r[0].stderr).to.include('rank 1');
    expect(path.basename(checkpointDirs(runDir).pop() as string)).to.equal('ckpt-step00000006');

    const resumed = await train(['--config', cfg, '--resume', 'latest']);
    for (const x of resumed) expect(x.child.exitCode, `rank ${x.rank}:\n${x.stdout}\n${x.stderr}`).to.equal(0);
    expect(resumed[0].stdout).to.match(/Resumed from .*ckpt-step00000006/);
    const losses = trainLosses(runDir);
    for (const [step, loss] of ref.losses) expect(losses.get(step), `loss at step ${step}`).to.equal(loss);
    expect(
      finalModel(runDir).equals(ref.model),
      'final model.safetensors bit-identical to the uninterrupted run',
    ).to.equal(true);
  });
});
