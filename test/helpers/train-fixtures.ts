/**
 * Helpers for the trainer's integration tests: synthetic data (written once per process and cached), configs
 * derived from configs/debug_config.yaml, and `node lib/train.js` children with their output captured.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeSynthDataset } from '../../lib/data/synth';
import { addonAvailable, loadAddon } from '../../lib/native';
import { repoRoot } from './fixtures';

/**
 * Skips a suite when the addon is not built, or is a stale build without the CT-CLIP model (npm run build:native);
 * in CI (CI=true) either is a failure, never a skip (as requireAddon).
 */
export function requireTrainer(ctx: Mocha.Context): void {
  const ok =
    addonAvailable() && typeof (loadAddon() as unknown as { createCTClip?: unknown }).createCTClip === 'function';
  if (ok) return;
  if (process.env.CI === 'true')
    throw new Error('the native addon is missing or predates the CT-CLIP model, but CI must run the trainer tests');
  ctx.skip();
}

export const TRAIN_JS = path.join(repoRoot, 'lib', 'train.js');

/** The demo's findings (scripts/demo.sh): structures several voxels large at 32×32×12. */
export const DEMO_CLASSES = ['Lung opacity', 'Atelectasis', 'Pleural effusion', 'Cardiomegaly'];

export interface TrainData {
  dir: string;
  trainPattern: string;
  valPattern: string;
  labelsCsv: string;
  vocab: string;
}

/** The data of a training and a validation split written by synth under dir/train and dir/valid. */
export function trainDataIn(dir: string, trainPattern: string, valPattern: string): TrainData {
  return {
    dir,
    trainPattern,
    valPattern,
    labelsCsv: path.join(dir, 'valid', 'labels.csv'),
    vocab: path.join(dir, 'train', 'vocab.txt'),
  };
}

const cache = new Map<string, Promise<TrainData>>();

/** Writes (once per process and argument set) a synthetic dataset like the demo's. */
export function trainData(opts: {
  train: number;
  val: number;
  seed?: number;
  shape?: [number, number, number];
  classes?: string[];
}): Promise<TrainData> {
  const key = JSON.stringify(opts);
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-train-data-'));
      const shape = opts.shape ?? [32, 32, 12];
      const seed = opts.seed ?? 1;
      const classes = opts.classes;
      const tr = await writeSynthDataset({
        out: path.join(dir, 'train'),
        samples: opts.train,
        shape,
        shards: 2,
        seed,
        classes,
      });
      const va = await writeSynthDataset({
        out: path.join(dir, 'valid'),
        samples: opts.val,
        shape,
        shards: 1,
        seed: seed + 1,
        classes,
      });
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      return trainDataIn(dir, tr.pattern, va.pattern);
    })();
    cache.set(key, p);
  }
  return p;
}

/** A config file inheriting configs/debug_config.yaml, pointed at `data`, with `extra` YAML appended (top-level sections merge). */
export function writeTrainConfig(
  dir: string,
  data: TrainData,
  saveDir: string,
  extra: Record<string, Record<string, unknown>> = {},
): string {
  const sections: Record<string, Record<string, unknown>> = {
    data: {
      webdataset_shards_train: data.trainPattern,
      webdataset_shards_val: data.valPattern,
      labels_valid: data.labelsCsv,
    },
    model: { text_encoder: { vocab: data.vocab } },
    checkpoint: { save_dir: saveDir },
  };
  for (const [k, v] of Object.entries(extra)) sections[k] = deepMerge(sections[k] ?? {}, v);
  const file = path.join(dir, `config-${path.basename(saveDir)}.yaml`);
  writeDebugConfig(file, sections);
  return file;
}

/** Writes `file`: configs/debug_config.yaml as `_base_`, then each section of `sections` as a YAML (JSON) line. */
export function writeDebugConfig(file: string, sections: Record<string, unknown>): void {
  fs.writeFileSync(
    file,
    `_base_: ${JSON.stringify(path.join(repoRoot, 'configs', 'debug_config.yaml'))}\n${Object.entries(sections)
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
      .join('\n')}\n`,
  );
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export interface TrainRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface StartedTrain {
  child: ChildProcess;
  done: Promise<TrainRun>;
  /** Resolves with the first stdout line matching `re`. */
  waitForLine(re: RegExp): Promise<string>;
}

/** Starts `node lib/train.js ...args`. */
export function startTrain(args: string[], env: NodeJS.ProcessEnv = {}): StartedTrain {
  const t0 = Date.now();
  const child = spawn(process.execPath, [TRAIN_JS, ...args], {
    cwd: repoRoot,
    env: { ...process.env, CI: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let pendingLine = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    stdout += chunk;
    pendingLine += chunk;
    const lines = pendingLine.split('\n');
    pendingLine = lines.pop() ?? '';
    for (const line of lines) {
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].re.test(line)) {
          waiters[i].resolve(line);
          waiters.splice(i, 1);
        }
      }
    }
  });
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<TrainRun>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: (Date.now() - t0) / 1000 }));
  });
  return {
    child,
    done,
    waitForLine: (re) =>
      new Promise((resolve, reject) => {
        const existing = stdout.split('\n').find((l) => re.test(l));
        if (existing !== undefined) return resolve(existing);
        waiters.push({ re, resolve });
        void done.then((r) =>
          reject(
            new Error(
              `the child exited (code ${r.code}, signal ${r.signal}) before printing a line matching ${re}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`,
            ),
          ),
        );
      }),
  };
}

export function runTrain(args: string[], env: NodeJS.ProcessEnv = {}): Promise<TrainRun> {
  return startTrain(args, env).done;
}

/** The `train` events of a run's metrics.jsonl as step → loss. */
export function trainLosses(runDir: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const ev = JSON.parse(line) as { type: string; step: number; loss?: number };
    if (ev.type === 'train') {
      if (out.has(ev.step)) throw new Error(`${runDir}/metrics.jsonl: step ${ev.step} logged twice`);
      out.set(ev.step, ev.loss as number);
    }
  }
  return out;
}

/** Checkpoint folders of a run dir, ascending by step. */
export function checkpointDirs(runDir: string): string[] {
  return fs
    .readdirSync(runDir)
    .filter((n) => /^ckpt-step\d+$/.test(n))
    .sort((a, b) => Number(a.slice(9)) - Number(b.slice(9)))
    .map((n) => path.join(runDir, n));
}

export function describeRun(r: TrainRun): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr.slice(-4000)}`;
}

/**
 * The usual setup of a trainer suite, registered as its before/after hooks: requires the trainer, writes (or
 * reuses) the 64 + 16 sample synthetic set, and makes a scratch folder `ctclip-<name>-…` removed after the suite.
 * Read `ctx.data` / `ctx.dir` inside the tests.
 */
export function trainSuite(name: string): { data: TrainData; dir: string } {
  const ctx = trainerScratch(name) as { data: TrainData; dir: string };
  before(async function () {
    ctx.data = await trainData({ train: 64, val: 16 });
  });
  return ctx;
}

/**
 * The scratch part of `trainSuite` for suites that write their own data: requires the trainer and makes the
 * folder `ctclip-<name>-…` before the suite, removes it after. Read `ctx.dir` inside the tests.
 */
export function trainerScratch(name: string): { dir: string } {
  const ctx = {} as { dir: string };
  before(function () {
    requireTrainer(this);
    ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), `ctclip-${name}-`));
  });
  after(() => {
    if (ctx.dir) fs.rmSync(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

/** `training` overrides for a run of exactly `steps` steps: warm-up 2, no periodic checkpoints, one thread. */
export function fixedStepsTraining(steps: number): Record<string, unknown> {
  return {
    max_steps: steps,
    max_epochs: null,
    warmup_steps: 2,
    save_every_n_steps: null,
    save_every_n_epochs: null,
    threads: 1,
  };
}
