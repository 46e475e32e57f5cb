/**
 * Every config file of the original Python pipeline's repository — each `*.yaml` under configs/ at its seed-era
 * commit and at HEAD, listed with `git ls-tree` — loads in ctclip with the meaning the original's code gives it,
 * or fails naming what cannot be honoured:
 *  - load: every leaf key of the file (merged with its `_base_` files as the original merges them) is either
 *    named in a warning / translation note, or present in the resolved config with the same value;
 *  - plan: `ctclip plan --samples 29500` gives the original trainer's numbers, computed here with its formulas
 *    (steps per epoch (N // B) // A, int(epochs × S), steps keys winning over epochs keys, its defaults); on the
 *    seed-era base config exactly "Training duration: 20.00 epochs = 147500 steps" and 7375 steps/epoch;
 *  - migrate: `ctclip config migrate` output loads back to the same resolved config with no warnings;
 *  - a file that does not load must fail (exit 2) on a `_base_` file its revision does not have.
 *
 * The repository is CTCLIP_MODERN_REPO (its git dir or a clone with history). Without it the test skips with a
 * message (CI cannot fetch it); nothing of it is committed here: the files are read at test time.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { loadConfig, type LoadedConfig } from '../../lib/config/load';

const ROOT = path.resolve(__dirname, '..', '..');
/** The seed-era commit and the latest. */
const REVISIONS = ['82183a7', 'HEAD'];
/** The dataset size the original's base config comments on (~29500 samples ÷ batch 4 ≈ 147,500 steps). */
const SAMPLES = 29500;

type Tree = { [key: string]: unknown };

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function git(repo: string, args: string[]): string {
  const bare = fs.existsSync(path.join(repo, 'HEAD')) && fs.existsSync(path.join(repo, 'objects'));
  const r = spawnSync('git', [...(bare ? [`--git-dir=${repo}`] : ['-C', repo]), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} in ${repo} failed: ${r.stderr}`);
  return r.stdout;
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'lib/cli.js'), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The original's merge_configs: mappings merge key by key, anything else is replaced. */
function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  return out;
}

/** The file merged with its `_base_` chain, the way the original's load_config does. */
function originalTree(file: string): Tree {
  const tree = (YAML.parse(fs.readFileSync(file, 'utf8')) ?? {}) as Tree;
  const base = tree._base_;
  delete tree._base_;
  return typeof base === 'string' ? merge(originalTree(path.resolve(path.dirname(file), base)), tree) : tree;
}

function leaves(node: unknown, prefix: string, out: Array<[string, unknown]> = []): Array<[string, unknown]> {
  if (isTree(node) && Object.keys(node).length > 0) {
    for (const [k, v] of Object.entries(node)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, node]);
  return out;
}

function valueAt(tree: unknown, key: string): unknown {
  let node = tree;
  for (const k of key.split('.')) node = isTree(node) ? node[k] : undefined;
  return node;
}

/** The original trainer's run numbers for N samples (its formulas and defaults, see the file comment). */
function originalPlan(tree: Tree, samples: number) {
  const get = (key: string, d: unknown): unknown => valueAt(tree, key) ?? d;
  const B = get('data.batch_size', null) as number;
  const A = get('training.gradient_accumulation_steps', null) as number;
  const S = Math.floor(Math.floor(samples / B) / A);
  const maxStepsKey = valueAt(tree, 'training.max_steps');
  const maxSteps =
    maxStepsKey != null ? (maxStepsKey as number) : Math.floor((get('training.max_epochs', null) as number) * S);
  const cadence = (stepsKey: string, epochsKey: string): number => {
    const steps = valueAt(tree, stepsKey);
    return steps != null ? (steps as number) : Math.floor((get(epochsKey, 1.0) as number) * S);
  };
  const warmupSteps = valueAt(tree, 'training.warmup_steps');
  return {
    stepsPerEpoch: S,
    maxSteps,
    warmupSteps: warmupSteps != null ? warmupSteps : Math.floor((get('training.warmup_epochs', 0) as number) * S),
    evalEvery: cadence('validation.eval_every_n_steps', 'validation.eval_every_n_epochs'),
    saveEvery: cadence('training.save_every_n_steps', 'training.save_every_n_epochs'),
  };
}

describe("world: the original pipeline's configs in ctclip", function () {
  let repo: string;
  let dir: string;
  const files: Array<{ rev: string; rel: string; file: string }> = [];

  before(function () {
    const r = process.env.CTCLIP_MODERN_REPO;
    if (!r) {
      // The repository cannot be fetched in CI; everything else of this feature is covered by test/unit/config-*.
      console.log("      skipped: set CTCLIP_MODERN_REPO to the original pipeline's git dir or clone to run this test");
      this.skip();
    }
    repo = r;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-original-configs-'));
    for (const rev of REVISIONS) {
      const listed = git(repo, ['ls-tree', '-r', '--name-only', rev, 'configs/'])
        .split('\n')
        .filter((p) => p.endsWith('.yaml'));
      expect(listed, `no configs/*.yaml at ${rev}`).to.not.be.empty;
      for (const rel of listed) {
        const file = path.join(dir, rev, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, git(repo, ['show', `${rev}:${rel}`]));
        files.push({ rev, rel, file });
      }
    }
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists the config files of both revisions', function () {
    expect(files.filter((f) => f.rev === REVISIONS[0]).map((f) => f.rel)).to.include('configs/base_config.yaml');
    expect(files.filter((f) => f.rev === 'HEAD')).to.not.be.empty;
  });

  it('loads each with its meaning, or fails on a _base_ file its revision lacks', function () {
    for (const { rev, rel, file } of files) {
      const where = `${rev}:${rel}`;
      let loaded: LoadedConfig;
      try {
        loaded = loadConfig(file, { warn: () => {} });
      } catch (e) {
        // The only accepted failure: a _base_ that does not exist at that revision (the original fails there too).
        const base = (YAML.parse(fs.readFileSync(file, 'utf8')) as Tree)._base_;
        expect(base, `${where}: ${(e as Error).message}`).to.be.a('string');
        const baseRel = path.posix.join(path.posix.dirname(rel), base as string);
        expect(
          files.some((f) => f.rev === rev && f.rel === baseRel),
          `${where}: ${(e as Error).message}`,
        ).to.equal(false);
        expect((e as { code?: string }).code).to.equal('CONFIG_ERROR');
        expect((e as Error).message).to.contain(`(the _base_ of ${file})`);
        const r = cli(['plan', '--config', file, '--samples', String(SAMPLES)]);
        expect(r.status, where).to.equal(2);
        continue;
      }
      expect(loaded.original, `${where} is recognised as the original's format`).to.equal(true);
      const resolved = loaded.config as unknown as Tree;
      // A key is accounted for by a note on it (or on its section), or by a note that wrote it (e.g. num_workers 0
      // also sets prefetch_factor, which the original does not use then).
      const noted = (key: string): boolean =>
        loaded.notes.some(
          (n) => key === n.key || key.startsWith(`${n.key}.`) || (n.to ?? '').split(', ').includes(key),
        );
      for (const [key, value] of leaves(originalTree(file), '')) {
        if (noted(key)) continue;
        expect(valueAt(resolved, key), `${where}: ${key} is neither translated nor carried over`).to.deep.equal(value);
      }
      // Every note names its key in the warnings.
      for (const n of loaded.notes) expect(loaded.warnings.join('\n'), where).to.contain(`  ${n.key}: `);
    }
  });

  it("plans each with the original trainer's numbers", function () {
    for (const { rev, rel, file } of files) {
      const r = cli(['plan', '--config', file, '--samples', String(SAMPLES), '--json']);
      if (r.status === 2 && r.stderr.includes('(the _base_ of')) continue; // the failure the load test checks
      expect(r.status, `${rev}:${rel}: ${r.stderr}`).to.equal(0);
      const plan = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(plan, `${rev}:${rel}`).to.include(originalPlan(originalTree(file), SAMPLES));
    }
  });

  it('prints the seed-era base config\'s "Training duration: 20.00 epochs = 147500 steps"', function () {
    const base = files.find((f) => f.rev === REVISIONS[0] && f.rel === 'configs/base_config.yaml')!;
    const r = cli(['plan', '--config', base.file, '--samples', String(SAMPLES)]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('Dataset: 29500 samples / batch_size 4 = 7375 steps/epoch\n');
    expect(r.stdout).to.contain('Training duration: 20.00 epochs = 147500 steps\n');
  });

  it('migrates each to a ctclip config that loads back to the same resolved config', function () {
    for (const { rev, rel, file } of files) {
      const r = cli(['config', 'migrate', file]);
      if (r.status === 2 && r.stderr.includes('(the _base_ of')) continue;
      expect(r.status, `${rev}:${rel}: ${r.stderr}`).to.equal(0);
      const out = path.join(dir, 'migrated', rev, rel);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      fs.writeFileSync(out, r.stdout);
      const seen: string[] = [];
      const again = loadConfig(out, { warn: (m) => seen.push(m) });
      expect(seen, `${rev}:${rel} migrated`).to.deep.equal([]);
      expect(again.config, `${rev}:${rel} migrated`).to.deep.equal(loadConfig(file, { warn: () => {} }).config);
    }
  });
});
