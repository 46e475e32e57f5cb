/**
 * W&B without the wandb package: the sync-hint fallback, the run id kept in the run folder, and the sidecar's
 * failure handling with real processes (the shipped sidecar script under a python3 that has no wandb, a missing
 * interpreter, a process that never reads its input). The live path, with the real wandb, is test/world/wandb.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startWandb, wandbPlan, wandbRunId, WANDB_RUN_FILE } from '../../lib/logging/wandb';
import { probeWandb, WandbSidecar, type WandbInitArgs } from '../../lib/logging/wandb-sidecar';
import { expectRejects } from '../helpers/errors';

/** python3 when it exists and cannot import wandb (the fallback cases need one); null otherwise. */
function pythonWithoutWandb(): string | null {
  const r = spawnSync('python3', ['-c', 'import wandb'], { stdio: 'ignore' });
  return r.error || r.status === 0 ? null : 'python3';
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const INIT: WandbInitArgs = {
  project: 'p',
  entity: null,
  group: null,
  job_type: null,
  name: 'n',
  mode: 'offline',
  dir: os.tmpdir(),
  id: 'abc12345',
  resume: null,
  config: { a: 1 },
};

describe('logging/wandb', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-wandb-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the fallback forces TensorBoard on and prints the exact sync command', () => {
    const plan = wandbPlan('/runs/exp 1', {
      use_tensorboard: false,
      use_wandb: true,
      wandb: { project: 'ctclip', entity: null },
    });
    expect(plan.useTensorboard).to.equal(true);
    expect(plan.command).to.equal("wandb sync --sync-tensorboard --project ctclip '/runs/exp 1/tensorboard'");
    expect(plan.lines).to.deep.equal([
      'W&B: the TensorBoard event files of this run can be uploaded with wandb.',
      'W&B: logging.use_wandb is true, so TensorBoard logging is turned on.',
      'W&B: to upload this run (during or after training), run:',
      "    wandb sync --sync-tensorboard --project ctclip '/runs/exp 1/tensorboard'",
    ]);
    const withEntity = wandbPlan('runs/a', {
      use_tensorboard: true,
      use_wandb: true,
      wandb: { project: 'p', entity: 'lab' },
    });
    expect(withEntity.command).to.equal('wandb sync --sync-tensorboard --project p --entity lab runs/a/tensorboard');
    expect(withEntity.lines).to.have.length(3);
  });

  it('does nothing when use_wandb is false', () => {
    expect(wandbPlan('r', { use_tensorboard: false, use_wandb: false })).to.deep.equal({
      useTensorboard: false,
      lines: [],
      command: null,
    });
    expect(wandbPlan('r', { use_tensorboard: true, use_wandb: false }).useTensorboard).to.equal(true);
  });

  it('the run id: a new one (kept in wandb_run.json) for a new run, the kept one on a resume', async () => {
    const file = path.join(dir, WANDB_RUN_FILE);
    const id = wandbRunId(dir, false);
    expect(id).to.match(/^[a-z0-9]{8}$/);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.deep.equal({ id });
    expect(wandbRunId(dir, true)).to.equal(id);
    const fresh = wandbRunId(dir, false);
    expect(fresh).to.not.equal(id);
    expect(wandbRunId(dir, true)).to.equal(fresh);
    fs.rmSync(file);
    const noFile = wandbRunId(dir, true); // a resume of a run that never had W&B: a new id
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.deep.equal({ id: noFile });
    fs.writeFileSync(file, '{"id": "has space"}');
    await expectRejects(() => wandbRunId(dir, true), 'DATA_ERROR', file, 'must be a W&B run id', '"has space"');
    fs.writeFileSync(file, '{');
    await expectRejects(() => wandbRunId(dir, true), 'DATA_ERROR', `${file}: not valid JSON`);
  });

  it('probe: an interpreter that is missing, or has no wandb, gives the reason', function () {
    const missing = probeWandb(path.join(dir, 'no-python'));
    expect(missing.ok).to.equal(false);
    expect(missing.ok === false && missing.reason)
      .to.include(path.join(dir, 'no-python'))
      .and.include('ENOENT');
    const py = pythonWithoutWandb();
    if (!py) this.skip();
    const probe = probeWandb(py);
    expect(probe).to.deep.equal({
      ok: false,
      reason: "python3 cannot import wandb (ModuleNotFoundError: No module named 'wandb')",
    });
  });

  it('startWandb without wandb logs why and the sync hint, writes no run id, and keeps the hint for the end', function () {
    const py = pythonWithoutWandb();
    if (!py) this.skip();
    const lines: string[] = [];
    const logging = { use_tensorboard: false, use_wandb: true, wandb: { project: 'p' } };
    const session = startWandb(dir, logging, {
      resume: false,
      config: {},
      experimentName: 'x',
      log: (...l) => lines.push(...l),
      python: py,
    });
    const plan = wandbPlan(dir, logging);
    expect(session.sidecar).to.equal(null);
    expect(lines).to.deep.equal([
      "W&B: no live logging: python3 cannot import wandb (ModuleNotFoundError: No module named 'wandb').",
      ...plan.lines,
    ]);
    expect(session.endLines).to.deep.equal(plan.lines);
    expect(fs.existsSync(path.join(dir, WANDB_RUN_FILE))).to.equal(false);
  });

  it("mode 'disabled' (logging.wandb.mode or $WANDB_MODE) starts nothing and says so", () => {
    const lines: string[] = [];
    const opts = { resume: false, config: {}, experimentName: 'x', log: (...l: string[]) => lines.push(...l) };
    const logging = { use_tensorboard: false, use_wandb: true, wandb: { project: 'p', mode: 'disabled' } };
    const saved = process.env.WANDB_MODE;
    delete process.env.WANDB_MODE;
    try {
      expect(startWandb(dir, logging, { ...opts, python: path.join(dir, 'no-python') })).to.deep.equal({
        sidecar: null,
        endLines: [],
      });
      process.env.WANDB_MODE = 'disabled';
      startWandb(dir, { ...logging, wandb: { project: 'p', mode: 'online' } }, opts);
    } finally {
      if (saved === undefined) delete process.env.WANDB_MODE;
      else process.env.WANDB_MODE = saved;
    }
    expect(lines).to.deep.equal([
      'W&B: mode disabled (logging.wandb.mode): nothing is sent to W&B.',
      'W&B: mode disabled ($WANDB_MODE): nothing is sent to W&B.',
    ]);
    expect(fs.existsSync(path.join(dir, WANDB_RUN_FILE))).to.equal(false);
  });

  it('a sidecar whose wandb.init fails warns once, with the fallback, and drops every later record', async function () {
    const py = pythonWithoutWandb();
    if (!py) this.skip();
    const warnings: string[][] = [];
    const sidecar = WandbSidecar.start(py, INIT, { warn: (...l) => warnings.push(l), fallback: ['hint'] });
    await until(() => sidecar.pid === undefined, 'the sidecar to exit');
    expect(warnings).to.deep.equal([
      ["W&B: live logging stopped: wandb.init failed: ModuleNotFoundError: No module named 'wandb'.", 'hint'],
    ]);
    expect(sidecar.stopped).to.equal(true);
    sidecar.log(1, { 'train/loss': 1 });
    sidecar.summary({ x: 1 });
    sidecar.finish(0);
    expect(warnings).to.have.length(1);
  });

  it('an interpreter that cannot be run is one warning', async () => {
    const warnings: string[][] = [];
    const python = path.join(dir, 'no-python');
    const sidecar = WandbSidecar.start(python, INIT, { warn: (...l) => warnings.push(l) });
    await until(() => warnings.length > 0, 'the warning');
    sidecar.log(1, { x: 1 });
    sidecar.finish(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(warnings).to.have.length(1);
    expect(warnings[0][0]).to.match(/^W&B: live logging stopped: cannot run .*no-python: spawn .*ENOENT\.$/);
  });

  it('a sidecar keeps the process alive only after finish(): a trainer that never finishes it still exits', () => {
    const stuck = path.join(dir, 'stuck');
    fs.writeFileSync(stuck, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    const script = `
      const { WandbSidecar } = require(${JSON.stringify(path.resolve(__dirname, '../../lib/logging/wandb-sidecar'))});
      const s = WandbSidecar.start(${JSON.stringify(stuck)}, ${JSON.stringify(INIT)}, { warn: console.error });
      s.log(1, { x: 1 });
      console.log(s.pid);`;
    // stderr to a file: the sidecar inherits it, and a pipe would stay open while the sidecar lives.
    const errFile = path.join(dir, 'stderr');
    const errFd = fs.openSync(errFile, 'w');
    const r = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', errFd],
    });
    fs.closeSync(errFd);
    const pid = Number(r.stdout.trim());
    try {
      expect(r.error, 'the node process exited by itself').to.equal(undefined);
      expect(r.status).to.equal(0);
      expect(fs.readFileSync(errFile, 'utf8')).to.equal('');
    } finally {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    }
  });

  it('a sidecar that never reads: records past the bound are dropped, and finish() stops waiting after its timeout', async () => {
    // An "interpreter" that ignores its arguments and sleeps, never reading the pipe.
    const stuck = path.join(dir, 'stuck');
    fs.writeFileSync(stuck, '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    const warnings: string[] = [];
    const sidecar = WandbSidecar.start(stuck, INIT, {
      warn: (...l) => warnings.push(...l),
      maxPendingBytes: 1 << 20,
      finishTimeoutMs: 200,
    });
    const pid = sidecar.pid as number;
    try {
      const big = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`val/per_class_auroc/class ${i}`, 0.5]));
      const bytes = JSON.stringify({ type: 'log', step: 1, data: big }).length;
      const n = Math.ceil((4 << 20) / bytes); // 4 MiB of records against a 1 MiB bound
      for (let s = 1; s <= n; s++) sidecar.log(s, big);
      expect(warnings).to.deep.equal([]);
      sidecar.finish(0);
      expect(warnings).to.have.length(1);
      const dropped = Number(/^W&B: (\d+) record\(s\) were dropped/.exec(warnings[0])?.[1]);
      // The queue holds the bound (plus one record) and the kernel's socket buffer a little more; the rest of the
      // 4 MiB is dropped.
      expect(dropped).to.be.within(Math.floor(n / 2), n - Math.floor((1 << 20) / bytes));
      await until(() => warnings.length === 2, 'the finish timeout');
      expect(warnings[1]).to.equal(
        `W&B: the wandb client (pid ${pid}) is still finishing after 0.2 s; it goes on in the background.`,
      );
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});
