/**
 * Checkpoints that survive anything, and resume that reproduces the uninterrupted run exactly.
 * Real `node lib/train.js` children on a tiny debug-derived config (CPU, fp32, 1 thread, dropout on), killed with
 * SIGKILL at deterministic points through CTCLIP_TEST_FAULT (lib/train/faults.ts), then resumed with `--resume latest`.
 * The reference is an uninterrupted run of the same config: per-step losses (metrics.jsonl) must be equal and the
 * final model.safetensors bit-identical.
 */
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CheckpointManager } from '../../lib/checkpoint';
import { decodeSafetensors } from '../../lib/io/safetensors';
import { writeTorchSave } from '../../lib/weights/torch-save';
import { Rng } from '../../lib/rng';
import {
  checkpointDirs,
  describeRun,
  runTrain,
  trainData,
  trainLosses,
  writeTrainConfig,
  type TrainData,
  requireTrainer,
} from '../helpers/train-fixtures';

const TOTAL = 24;
const SAVE_EVERY = 4;

describe('train: checkpoints and exact resume', function () {
  this.timeout(300_000);
  let data: TrainData;
  let dir: string;
  let refDir: string;
  let refLosses: Map<number, number>;
  let refWeights: Buffer;
  let refOptimizer: Buffer;

  function config(name: string): { cfg: string; runDir: string } {
    const runDir = path.join(dir, name);
    const cfg = writeTrainConfig(dir, data, runDir, {
      training: { max_steps: TOTAL, max_epochs: null, save_every_n_steps: SAVE_EVERY, warmup_steps: 4, threads: 1 },
      validation: { eval_every_n_steps: 12, eval_samples: 16 },
      checkpoint: { keep_last_n: 3 },
      logging: { log_every_n_steps: 1, use_tensorboard: false },
      model: { text_encoder: { hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 } },
    });
    return { cfg, runDir };
  }

  function finalWeights(runDir: string): { model: Buffer; optimizer: Buffer } {
    const last = checkpointDirs(runDir).pop() as string;
    expect(path.basename(last)).to.equal(`ckpt-step${String(TOTAL).padStart(8, '0')}`);
    return {
      model: fs.readFileSync(path.join(last, 'model.safetensors')),
      optimizer: fs.readFileSync(path.join(last, 'optimizer.safetensors')),
    };
  }

  function expectSameAsReference(runDir: string): void {
    const losses = trainLosses(runDir);
    expect([...losses.keys()]).to.deep.equal([...refLosses.keys()]);
    for (const [step, loss] of refLosses) expect(losses.get(step), `loss at step ${step}`).to.equal(loss);
    const w = finalWeights(runDir);
    expect(w.model.equals(refWeights), 'final model.safetensors bit-identical').to.equal(true);
    expect(w.optimizer.equals(refOptimizer), 'final optimizer.safetensors bit-identical').to.equal(true);
  }

  before(async function () {
    requireTrainer(this);
    data = await trainData({ train: 64, val: 16 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-train-resume-'));
    const { cfg, runDir } = config('reference');
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    refDir = runDir;
    refLosses = trainLosses(runDir);
    expect(refLosses.size).to.equal(TOTAL);
    const w = finalWeights(runDir);
    refWeights = w.model;
    refOptimizer = w.optimizer;
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the uninterrupted run is deterministic: a second run gives the same losses and weights', async function () {
    const { cfg, runDir } = config('again');
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    expectSameAsReference(runDir);
  });

  it('SIGKILL at a seeded pseudo-random step, then --resume latest: same per-step losses, bit-identical final weights', async function () {
    const k = SAVE_EVERY + 1 + new Rng(20250).int(TOTAL - SAVE_EVERY - 2); // in [5, 22]: after the first checkpoint
    const { cfg, runDir } = config(`kill-${k}`);
    const killed = await runTrain(['--config', cfg], { CTCLIP_TEST_FAULT: `kill-after-step=${k}` });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    expect(killed.stdout).to.contain(`FAULT kill-after-step ${k}`);
    const expectedFrom = Math.floor((k - 1) / SAVE_EVERY) * SAVE_EVERY; // the save of step k itself never ran
    const resumed = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.match(
      new RegExp(`Resumed from \\S*ckpt-step${String(expectedFrom).padStart(8, '0')}: step ${expectedFrom},`),
    );
    expectSameAsReference(runDir);
    const events = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number });
    expect(events.filter((e) => e.type === 'resume').map((e) => e.step)).to.deep.equal([expectedFrom]);
  });

  it('SIGKILL between the file writes and the rename: resume uses the previous checkpoint and cleans the leftover', async function () {
    const { cfg, runDir } = config('kill-commit');
    const killed = await runTrain(['--config', cfg], { CTCLIP_TEST_FAULT: `kill-before-commit=${2 * SAVE_EVERY}` });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    const names = fs.readdirSync(runDir);
    expect(names.filter((n) => n.startsWith('.tmp-ckpt-step00000008-'))).to.have.length(1);
    expect(names).to.not.include('ckpt-step00000008');
    expect(names).to.include('ckpt-step00000004');
    const resumed = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.match(/Resumed from \S*ckpt-step00000004: step 4,/);
    expect(resumed.stdout).to.match(/Removed leftover of an interrupted checkpoint write: \S*\.tmp-ckpt-step00000008-/);
    expect(fs.readdirSync(runDir).filter((n) => n.startsWith('.tmp-'))).to.deep.equal([]);
    expectSameAsReference(runDir);
  });

  it('a bit-flipped or truncated newest checkpoint is skipped with a warning', async function () {
    const runDir = path.join(dir, 'corrupt');
    fs.cpSync(refDir, runDir, { recursive: true });
    const cfg = config('corrupt').cfg;
    const ckpts = checkpointDirs(runDir).map((d) => path.basename(d));
    expect(ckpts.slice(-3)).to.deep.equal(['ckpt-step00000016', 'ckpt-step00000020', 'ckpt-step00000024']);
    // newest: one flipped bit in the weights; the one before: a truncated optimizer part
    const model24 = path.join(runDir, 'ckpt-step00000024', 'model.safetensors');
    const bytes = fs.readFileSync(model24);
    bytes[bytes.length - 5] ^= 0x01;
    fs.writeFileSync(model24, bytes);
    const opt20 = path.join(runDir, 'ckpt-step00000020', 'optimizer.safetensors');
    fs.truncateSync(opt20, fs.statSync(opt20).size - 100);
    const resumed = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stderr, describeRun(resumed)).to.match(
      /warning: skipping corrupt checkpoint \S*ckpt-step00000024: .*model\.safetensors/,
    );
    expect(resumed.stderr, describeRun(resumed)).to.match(
      /warning: skipping (corrupt )?checkpoint \S*ckpt-step00000020: .*optimizer\.safetensors: size \d+ bytes, manifest says \d+ \(truncated/,
    );
    expect(resumed.stdout).to.match(/Resumed from \S*ckpt-step00000016: step 16,/);
    expectSameAsReference(runDir);
  });

  it('ENOSPC while saving: a clear error, exit 1, and the previous checkpoint intact and resumable', async function () {
    const { cfg, runDir } = config('enospc');
    const failed = await runTrain(['--config', cfg], { CTCLIP_TEST_FAULT: `enospc=${2 * SAVE_EVERY}` });
    expect(failed.code, describeRun(failed)).to.equal(1);
    expect(failed.stderr).to.match(/no space left on device/);
    expect(failed.stderr).to.match(/ckpt-step00000008.*model\.safetensors/);
    expect(failed.stderr).to.contain('Nothing was committed; earlier checkpoints are intact.');
    expect(fs.existsSync(path.join(runDir, 'run.lock')), 'the run lock is released after the error').to.equal(false);
    const names = fs.readdirSync(runDir);
    expect(names.filter((n) => n.startsWith('ckpt-step'))).to.deep.equal(['ckpt-step00000004']);
    expect(names.filter((n) => n.startsWith('.tmp-'))).to.deep.equal([]);
    const manager = new CheckpointManager({ dir: runDir, keepLastN: 3, readOnly: true, onLog: () => undefined });
    const v = await manager.verify(path.join(runDir, 'ckpt-step00000004'));
    expect(v.ok, v.problems.join('; ')).to.equal(true);
    const resumed = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.match(/Resumed from \S*ckpt-step00000004: step 4,/);
    expectSameAsReference(runDir);
  });

  it('--no-load-optimizer: the weights and run position are restored, AdamW starts fresh', async function () {
    const runDir = path.join(dir, 'no-opt');
    fs.cpSync(refDir, runDir, { recursive: true });
    for (const d of checkpointDirs(runDir)) if (!d.endsWith('ckpt-step00000016')) fs.rmSync(d, { recursive: true });
    const cfg = config('no-opt').cfg;
    const r = await runTrain(['--config', cfg, '--resume', 'latest', '--no-load-optimizer']);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stdout).to.match(
      /Resumed from \S*ckpt-step00000016: step 16, .*\(--no-load-optimizer: AdamW moments and loss scaler start fresh\)/,
    );
    const losses = trainLosses(runDir);
    // step 17 runs on the restored weights, data and dropout stream: the same loss; later steps use fresh moments
    expect(losses.get(17)).to.equal(refLosses.get(17));
    expect(losses.get(18)).to.not.equal(refLosses.get(18));
    expect(finalWeights(runDir).model.equals(refWeights)).to.equal(false);
  });

  it('--init-from starts a new run from weights only: our checkpoint folder, or a PyTorch torch.save file', async function () {
    const last = checkpointDirs(refDir).pop() as string;
    const a = config('init-ours');
    // Four steps of a new run on `cfg` from the weights in `from`.
    const initFrom = (cfg: string, from: string) =>
      runTrain([
        '--config',
        cfg,
        '--init-from',
        from,
        '--set',
        'training.max_steps=4',
        '--set',
        'training.warmup_steps=2',
      ]);
    const ours = await initFrom(a.cfg, last);
    expect(ours.code, describeRun(ours)).to.equal(0);
    expect(ours.stdout).to.contain(`Initialised the model from ${path.join(last, 'model.safetensors')}`);
    expect(ours.stdout).to.contain('a new run starts at step 0');
    const oursLosses = trainLosses(a.runDir);
    expect([...oursLosses.keys()]).to.deep.equal([1, 2, 3, 4]);
    expect(oursLosses.get(1)).to.not.equal(refLosses.get(1)); // trained weights, not the seeded init

    // the same weights as a torch.save zip (reference key names, under model_state_dict)
    const st = decodeSafetensors(fs.readFileSync(path.join(last, 'model.safetensors')));
    const dtypes: Record<string, 'float32' | 'int64'> = { F32: 'float32', I64: 'int64' };
    const entries = [...st.tensors].map(([name, t]) => {
      const dtype = dtypes[t.dtype];
      if (!dtype) throw new Error(`unexpected dtype ${t.dtype} for ${name}`);
      return { name, dtype, shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
    });
    const pt = path.join(dir, 'weights.pt');
    writeTorchSave(pt, entries, { wrapper: 'model_state_dict', extra: { epoch: 1 } });
    const b = config('init-pt');
    const fromPt = await initFrom(b.cfg, pt);
    expect(fromPt.code, describeRun(fromPt)).to.equal(0);
    expect(fromPt.stdout).to.contain(`Initialised the model from ${pt}`);
    const ptLosses = trainLosses(b.runDir);
    for (const step of [1, 2, 3, 4]) expect(ptLosses.get(step), `step ${step}`).to.equal(oursLosses.get(step));
    const bad = await runTrain(['--config', b.cfg, '--init-from', path.join(dir, 'nope.pt')]);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain('no such file or folder');
    // Weights of another size: the error names the config setting that would make them fit.
    const misfit = await runTrain(['--config', b.cfg, '--init-from', pt, '--set', 'model.dim_latent=24']);
    expect(misfit.code, describeRun(misfit)).to.equal(1);
    expect(misfit.stderr)
      .to.contain('the weights do not fit the configured model')
      .and.match(/set in the config: .*model\.dim_latent: \d+ in the weights, 24 configured/);
  });

  it('gradient accumulation (A = 2): a run killed and resumed matches its uninterrupted run', async function () {
    const extra = ['--set', 'training.gradient_accumulation_steps=2'];
    const a = config('accum-ref');
    const ref = await runTrain(['--config', a.cfg, ...extra]);
    expect(ref.code, describeRun(ref)).to.equal(0);
    expect(ref.stdout).to.contain(
      'Dataset: 64 samples / (batch_size 16 × 1 ranks × 2 accumulation steps) = 2 steps/epoch',
    );
    const refA = trainLosses(a.runDir);
    expect(refA.size).to.equal(TOTAL);
    expect(refA.get(1)).to.not.equal(refLosses.get(1)); // the mean over two micro-batches, not one batch
    const b = config('accum-kill');
    const killed = await runTrain(['--config', b.cfg, ...extra], { CTCLIP_TEST_FAULT: 'kill-after-step=10' });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    const resumed = await runTrain(['--config', b.cfg, ...extra, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.match(/Resumed from \S*ckpt-step00000008: step 8,/);
    const losses = trainLosses(b.runDir);
    expect([...losses]).to.deep.equal([...refA]);
    const last = (d: string) => fs.readFileSync(path.join(checkpointDirs(d).pop() as string, 'model.safetensors'));
    expect(last(b.runDir).equals(last(a.runDir))).to.equal(true);
    const pos = JSON.parse(
      fs.readFileSync(path.join(checkpointDirs(b.runDir).pop() as string, 'data_position.json'), 'utf8'),
    ) as { microBatches: number; epoch: number; globalSamplePosition: number };
    expect(pos.microBatches).to.equal(2 * TOTAL);
    expect(pos).to.include({ epoch: TOTAL / 2, globalSamplePosition: 0 });
  });

  it('a non-finite step is skipped: its batch is consumed, the LR schedule does not advance', async function () {
    const { cfg, runDir } = config('non-finite');
    const r = await runTrain(
      [
        '--config',
        cfg,
        '--set',
        'training.max_steps=6',
        '--set',
        'training.save_every_n_steps=null',
        '--set',
        'validation.eval_every_n_steps=null',
      ],
      { CTCLIP_TEST_FAULT: 'non-finite=3' },
    );
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stderr).to.match(
      /warning: step 3 skipped: non-finite loss or gradients .*the LR schedule does not advance \(1 skipped so far\)/,
    );
    const events = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number; lr?: number; skipped_steps?: number });
    const train = events.filter((e) => e.type === 'train');
    expect(train.map((e) => e.step)).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(train.map((e) => e.skipped_steps)).to.deep.equal([0, 0, 1, 1, 1, 1]);
    expect(train[2].lr).to.equal(1e-3 * (3 / 4)); // step 3 (retried) still runs at the warmup LR of step 3
    const pos = JSON.parse(
      fs.readFileSync(path.join(checkpointDirs(runDir).pop() as string, 'data_position.json'), 'utf8'),
    ) as { microBatches: number };
    expect(pos.microBatches).to.equal(7); // six steps plus the skipped one
    const sched = JSON.parse(
      fs.readFileSync(path.join(checkpointDirs(runDir).pop() as string, 'schedule.json'), 'utf8'),
    ) as { optimizerStep: number; skippedSteps: number };
    expect(sched).to.include({ optimizerStep: 6, skippedSteps: 1 });
  });

  it('resume with a changed batch size continues the interrupted epoch after the saved position', async function () {
    const { cfg, runDir } = config('geometry');
    const sets = [
      '--set',
      'training.save_every_n_steps=3',
      '--set',
      'validation.eval_every_n_steps=null',
      '--set',
      'training.max_steps=10',
    ];
    const killed = await runTrain(['--config', cfg, ...sets], { CTCLIP_TEST_FAULT: 'kill-after-step=5' });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    const pos3 = JSON.parse(fs.readFileSync(path.join(runDir, 'ckpt-step00000003', 'data_position.json'), 'utf8')) as {
      epoch: number;
      globalSamplePosition: number;
    };
    expect(pos3).to.include({ epoch: 0, globalSamplePosition: 48 });
    const resumed = await runTrain(['--config', cfg, ...sets, '--resume', 'latest', '--set', 'data.batch_size=8']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    expect(resumed.stdout).to.contain(
      'Note: the data geometry changed since the checkpoint (batch 16 → 8, world size 1 → 1, accumulation 1 → 1)',
    );
    expect(resumed.stdout).to.contain('Dataset: 64 samples / batch_size 8 = 8 steps/epoch');
    // the rest of epoch 0 is positions 48..63: two batches of 8, then epoch 1 with the new geometry
    const pos = (step: number) =>
      JSON.parse(
        fs.readFileSync(path.join(runDir, `ckpt-step${String(step).padStart(8, '0')}`, 'data_position.json'), 'utf8'),
      ) as { epoch: number; globalSamplePosition: number };
    expect(pos(6)).to.include({ epoch: 1, globalSamplePosition: 8 });
    expect(pos(9)).to.include({ epoch: 1, globalSamplePosition: 32 });
    expect([...trainLosses(runDir).keys()]).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('--resume latest without any checkpoint starts fresh and says so; --resume best without one exits 2', async function () {
    const { cfg, runDir } = config('fresh');
    const r = await runTrain([
      '--config',
      cfg,
      '--resume',
      'latest',
      '--set',
      'training.max_steps=4',
      '--set',
      'training.save_every_n_steps=null',
      '--set',
      'validation.eval_every_n_steps=null',
    ]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stdout).to.contain(`No checkpoint found in ${runDir}: starting fresh`);
    const empty = path.join(dir, 'empty');
    const cfg2 = config('empty').cfg;
    const b = await runTrain(['--config', cfg2, '--resume', 'best']);
    expect(b.code, describeRun(b)).to.equal(2);
    expect(b.stderr).to.contain(`there is no best checkpoint in ${empty}`);
  });

  /** Every file under `d` with its bytes' sha256 (to show that nothing was written). */
  function tree(d: string, rel = '', out: Record<string, string> = {}): Record<string, string> {
    for (const e of fs.readdirSync(path.join(d, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) tree(d, r, out);
      else
        out[r] = createHash('sha256')
          .update(fs.readFileSync(path.join(d, r)))
          .digest('hex');
    }
    return out;
  }

  it('--resume latest refuses when every checkpoint fails its checks: exit 1 listing each and why, nothing overwritten', async function () {
    const runDir = path.join(dir, 'all-corrupt');
    fs.cpSync(refDir, runDir, { recursive: true });
    const cfg = config('all-corrupt').cfg;
    const ckpts = checkpointDirs(runDir);
    expect(ckpts.length).to.be.at.least(3);
    // every checkpoint damaged: flipped bytes in the weights, and one without its manifest
    for (const c of ckpts) {
      const f = path.join(c, 'model.safetensors');
      const bytes = fs.readFileSync(f);
      bytes[bytes.length - 3] ^= 0x10;
      fs.writeFileSync(f, bytes);
    }
    fs.rmSync(path.join(ckpts[0], 'manifest.json'));
    const before = tree(runDir);
    const r = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.stderr).to.contain(`no usable checkpoint in ${runDir}: all ${ckpts.length} fail their checks`);
    for (const c of ckpts) expect(r.stderr).to.contain(`\n  ${c}: `);
    expect(r.stderr).to.match(/model\.safetensors: sha256/);
    expect(r.stderr).to.contain('manifest.json');
    expect(r.stderr).to.contain('start a new run in another directory (checkpoint.save_dir)');
    expect(r.stderr).to.not.contain('usage:');
    expect(r.stdout).to.not.contain('starting fresh');
    expect(tree(runDir), 'checkpoints, pointers and metrics.jsonl untouched').to.deep.equal(before);
  });

  for (const [key, value, expected] of [
    ['globalSamplePosition', 1_000_000, 'an integer in [0, 64]'],
    ['epoch', 1.5, 'an integer in [0, 2^53]'],
  ] as const) {
    it(`a tampered data_position.json (${key} ${value}) with its manifest checksum updated: exit 1 naming the file and the key`, async function () {
      const runDir = path.join(dir, `tampered-${key}`);
      fs.cpSync(refDir, runDir, { recursive: true });
      for (const d of checkpointDirs(runDir)) if (!d.endsWith('ckpt-step00000016')) fs.rmSync(d, { recursive: true });
      const ckpt = path.join(runDir, 'ckpt-step00000016');
      const file = path.join(ckpt, 'data_position.json');
      const dp = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
      dp[key] = value;
      const text = `${JSON.stringify(dp, null, 2)}\n`;
      fs.writeFileSync(file, text);
      const manifestFile = path.join(ckpt, 'manifest.json');
      const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as {
        files: Record<string, { size: number; sha256: string }>;
      };
      manifest.files['data_position.json'] = {
        size: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
      };
      fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2));
      const v = await new CheckpointManager({
        dir: runDir,
        keepLastN: 0,
        readOnly: true,
        onLog: () => undefined,
      }).verify(ckpt);
      expect(v.ok, 'the checksums match').to.equal(true);
      const r = await runTrain(['--config', config(`tampered-${key}`).cfg, '--resume', 'latest']);
      expect(r.code, describeRun(r)).to.equal(1);
      expect(r.stderr).to.contain(`${file}: "${key}" must be ${expected}, got ${value}`);
      expect(r.stderr).to.contain('[DATA_ERROR]');
      expect(r.stderr).to.not.contain('usage:');
    });
  }
});
