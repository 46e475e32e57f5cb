/**
 * The real torchrun (from the world Python's torch 2.x) starting the trainer:
 * `torchrun --no-python --nproc_per_node 2 --master_port P node lib/train.js --config C`, with each addon:
 *   - the default build (libtorch 1.13 in CI), whose libtorch speaks the legacy TCPStore protocol while torchrun's
 *     agent store speaks the validated one (docs/distributed.md, "torchrun's agent store");
 *   - the torch 2.x build ($CTCLIP_ADDON_TORCH2), the same torch as torchrun.
 * Each runs to completion, and its final weights equal a `ctclip launch` run of the same config and seed bit for
 * bit (the same addon, 1 thread per rank: the step is deterministic; test/integration/launch-train.test.ts).
 * Plus the agent store's classic (non-libuv) server, USE_LIBUV=0, with the default build.
 */
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort, taggedJson } from '../helpers/dist';
import { repoRoot } from '../helpers/fixtures';
import { pythonBin, requirePython } from '../helpers/python';
import { checkpointDirs, requireTrainer, trainData, writeTrainConfig, type TrainData } from '../helpers/train-fixtures';

const TRAIN_JS = path.join(repoRoot, 'lib', 'train.js');
const LAUNCH_JS = path.join(repoRoot, 'lib', 'launch.js');
const DIST_CHILD = path.join(repoRoot, 'test', 'helpers', 'dist-child.js');
const STEPS = 4;
const RUN_TIMEOUT_MS = 240_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  seconds: number;
}

function show(r: Run): string {
  return `exit ${r.code} signal ${r.signal} after ${r.seconds} s\n${r.out.slice(-6000)}`;
}

/** Runs `cmd args` to its end (killed after RUN_TIMEOUT_MS), stdout and stderr together. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const t0 = Date.now();
  const child = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, CI: '1', ...env }, stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, seconds: (Date.now() - t0) / 1000 });
    }),
  );
}

/** The addon file of a build, or null when it is not there (the test then skips; in strict mode it fails). */
function addonOf(build: 'default' | 'torch2'): string | null {
  const file =
    build === 'default'
      ? (process.env.CTCLIP_ADDON ?? path.join(repoRoot, 'build', 'Release', 'ctclip.node'))
      : process.env.CTCLIP_ADDON_TORCH2;
  return file && fs.existsSync(file) ? path.resolve(file) : null;
}

describe('world: the real torchrun starts the trainer', function () {
  this.timeout(2 * RUN_TIMEOUT_MS + 60_000);
  let data: TrainData;
  let dir: string;
  let torchrun: string;

  before(async function () {
    torchrun = path.join(pythonBin(requirePython(this, ['torch'])), 'torchrun');
    requireTrainer(this);
    data = await trainData({ train: 64, val: 16 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-torchrun-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function config(name: string): { cfg: string; runDir: string } {
    const runDir = path.join(dir, name);
    const cfg = writeTrainConfig(dir, data, runDir, {
      training: { max_steps: STEPS, max_epochs: null, save_every_n_steps: STEPS, warmup_steps: 2, threads: 1 },
      validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 8 },
      logging: { log_every_n_steps: 1, use_tensorboard: false },
      distributed: { backend: 'gloo', timeout_minutes: 2 },
    });
    return { cfg, runDir };
  }

  function finalModel(runDir: string): Buffer {
    const last = checkpointDirs(runDir).pop();
    expect(last && path.basename(last)).to.equal(`ckpt-step${String(STEPS).padStart(8, '0')}`);
    return fs.readFileSync(path.join(last as string, 'model.safetensors'));
  }

  for (const build of ['default', 'torch2'] as const) {
    it(`${build} build: 2 workers to completion; weights equal ctclip launch's with the same seed`, async function () {
      const addon = addonOf(build);
      if (!addon) {
        if (process.env.CTCLIP_WORLD_STRICT === '1')
          throw new Error(`world test prerequisite missing: the ${build} addon build (CTCLIP_ADDON_TORCH2)`);
        this.skip();
      }
      const env = { CTCLIP_ADDON: addon as string };
      const viaTorchrun = config(`torchrun-${build}`);
      const t = await run(
        torchrun,
        [
          '--no-python',
          '--nproc_per_node',
          '2',
          '--master_port',
          String(await freePort()),
          process.execPath,
          TRAIN_JS,
          '--config',
          viaTorchrun.cfg,
        ],
        env,
      );
      expect(t.code, show(t)).to.equal(0);
      expect(t.out).to.match(/Joining a 2-rank job at 127\.0\.0\.1:\d+ \(torchrun, agent store, restart 0\)/);
      expect(t.out).to.match(new RegExp(`^Step ${STEPS}/${STEPS} `, 'm'));

      const viaLaunch = config(`launch-${build}`);
      const l = await run(
        process.execPath,
        [
          LAUNCH_JS,
          '--nproc_per_node',
          '2',
          '--master_port',
          String(await freePort()),
          TRAIN_JS,
          '--config',
          viaLaunch.cfg,
        ],
        env,
      );
      expect(l.code, show(l)).to.equal(0);
      expect(
        finalModel(viaTorchrun.runDir).equals(finalModel(viaLaunch.runDir)),
        'final model.safetensors bit-identical to the ctclip launch run',
      ).to.equal(true);
    });
  }

  it("default build with the agent store's classic server (USE_LIBUV=0): the collectives run", async function () {
    const addon = addonOf('default');
    if (!addon) this.skip();
    const r = await run(
      torchrun,
      ['--no-python', '--nproc_per_node', '2', '--master_port', String(await freePort()), process.execPath, DIST_CHILD],
      { CTCLIP_ADDON: addon as string, USE_LIBUV: '0', DIST_SCENARIO: 'collectives', DIST_TIMEOUT_MS: '60000' },
    );
    expect(r.code, show(r)).to.equal(0);
    const results = r.out
      .split('\n')
      .filter((line) => line.startsWith('RESULT '))
      .map((line) => taggedJson<{ rank: number; allReduce: number[] }>(line, 'RESULT')!);
    expect(results.map((x) => x.rank).sort()).to.deep.equal([0, 1]);
    for (const x of results) expect(x.allReduce).to.deep.equal([3, 30, -1]);
  });
});
