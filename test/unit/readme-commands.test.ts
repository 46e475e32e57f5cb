/**
 * Every shell command in README.md's code blocks must be exercised somewhere, and this file says where.
 *
 * The commands are the code-block lines that start with `npm`, `node`, `npx`, `ctclip`, `bash`, `torchrun` or
 * `sbatch` (a `$ ` prompt is dropped, `\` continuations are joined, trailing `# comments` removed). Each one must be
 * a key of COVERAGE, which maps it to how it is exercised:
 *
 * - `demo`: scripts/demo.sh (run by `npm run demo` and, shortened, by CI) contains the command (`ctclip X` written
 *   as `node lib/cli.js X`) as a command line, not inside an echo;
 * - `test`: the test file runs the same (sub)command: it must exist, contain `mentions` (how it invokes the
 *   command) and every `--flag` the README command uses (unless the entry lists the flags it checks in `flags`);
 * - `npm-script`: a package.json script of that name exists, and the files it runs exist; `exercisedBy` names where
 *   it runs (CI, or a test that must mention it);
 * - `bash -n`: the script parses (`bash -n` runs here) and a dry-run test (`DRY_RUN=1`) exists that mentions it;
 * - `external`: a command of another tool (torchrun) whose contract with ours is tested in `file`.
 *
 * A README command without an entry fails with the command and the instruction to add one.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../..');
const read = (rel: string): string => fs.readFileSync(path.join(ROOT, rel), 'utf8');

type Coverage =
  | { by: 'demo' }
  | { by: 'test'; file: string; mentions: string[]; flags?: string[] }
  | { by: 'npm-script'; script: string; exercisedBy: string; mentions?: string[] }
  | { by: 'bash -n'; script: string; dryRunTest: string }
  | { by: 'external'; file: string; mentions: string[]; why: string };

const PUBLISHED_INFER =
  'node lib/inference.js --checkpoint CT-CLIP_v2.pt --config configs/inference_config.yaml ' +
  '--set "data.webdataset_shards_val=/data/ct-rate/valid-shards/shard-{000000..000030}.tar" ' +
  '--set data.labels_valid=/data/ct-rate/dataset/multi_abnormality_labels/valid_predicted_labels.csv ' +
  '--output results/ct-clip-v2 --bootstrap --n_bootstrap 1000';
const PREPROCESS_TRAIN =
  'ctclip preprocess --volumes /data/ct-rate/dataset/train_fixed --split train ' +
  '--reports /data/ct-rate/dataset/radiology_text_reports/train_reports.csv ' +
  '--metadata /data/ct-rate/dataset/metadata/train_metadata.csv ' +
  '--labels /data/ct-rate/dataset/multi_abnormality_labels/train_predicted_labels.csv --out /data/ct-rate/train-shards';
const PREPROCESS_VALID =
  'ctclip preprocess --volumes /data/ct-rate/dataset/valid_fixed --split valid ' +
  '--reports /data/ct-rate/dataset/radiology_text_reports/validation_reports.csv ' +
  '--metadata /data/ct-rate/dataset/metadata/validation_metadata.csv ' +
  '--labels /data/ct-rate/dataset/multi_abnormality_labels/valid_predicted_labels.csv --out /data/ct-rate/valid-shards';

const PREPROCESS: Coverage = {
  by: 'test',
  file: 'test/integration/preprocess-cli.test.ts',
  mentions: ["'preprocess'"],
  // --metadata comes from the preprocessArgs helper's option (test/helpers), the other flags are spelled out.
  flags: ['--volumes', '--split', '--reports', '--labels', '--out', '{ metadata: true }'],
};
const TRAIN: Coverage = {
  by: 'test',
  file: 'test/integration/train-resume.test.ts',
  mentions: ['lib/train.js', 'runTrain('],
};
const INFER: Coverage = {
  by: 'test',
  file: 'test/integration/infer-cli.test.ts',
  mentions: ["node('lib/inference.js'"],
};

/** README command → where it is exercised. Keep in step with README.md (the test says what to add). */
const COVERAGE: Record<string, Coverage> = {
  // Quick start and development
  'npm run demo': {
    by: 'npm-script',
    script: 'demo',
    exercisedBy: 'CI (.ci/run runs CTCLIP_DEMO_QUICK=1 npm run demo)',
  },
  'npm test': { by: 'npm-script', script: 'test', exercisedBy: 'CI (.ci/run runs npm test)' },
  'npm run test:unit': {
    by: 'npm-script',
    script: 'test:unit',
    exercisedBy: 'developers; runs the same mocha files as npm test',
  },
  'npm run build:native': {
    by: 'npm-script',
    script: 'build:native',
    exercisedBy: 'npm run build, i.e. npm test and npm run demo',
  },
  'npm run docs:config': {
    by: 'npm-script',
    script: 'docs:config',
    exercisedBy: 'test/unit/config-reference.test.ts',
    mentions: ['npm run docs:config'],
  },
  'npm run bench': { by: 'npm-script', script: 'bench', exercisedBy: 'developers (benchmarks are never timed tests)' },

  // What the demo shows (all in scripts/demo.sh)
  'node lib/cli.js info': { by: 'demo' },
  'node lib/cli.js plan --config configs/debug_config.yaml': { by: 'demo' },
  'node lib/cli.js plan --config configs/base_config.yaml --samples 29500 --world-size 8': { by: 'demo' },
  'node lib/train.js --config configs/debug_config.yaml': { by: 'demo' },
  'node lib/train.js --config configs/debug_config.yaml --resume latest --set training.max_epochs=20': TRAIN,

  // Commands example
  'node lib/cli.js plan --config configs/base_config.yaml --samples 29500': {
    by: 'test',
    file: 'test/integration/cli.test.ts',
    mentions: ["runCtclip(['plan'"],
  },

  // Training on CT-RATE, step by step
  [PREPROCESS_TRAIN]: PREPROCESS,
  [PREPROCESS_VALID]: PREPROCESS,
  "ctclip shards index '/data/ct-rate/train-shards/shard-{000000..000316}.tar'": {
    by: 'test',
    file: 'test/integration/data-index.test.ts',
    mentions: ["shardsCommand(['index'"],
  },
  "ctclip shards index '/data/ct-rate/valid-shards/shard-{000000..000060}.tar' --labels-csv /data/ct-rate/dataset/multi_abnormality_labels/valid_predicted_labels.csv":
    {
      by: 'test',
      file: 'test/integration/data-index.test.ts',
      mentions: ["shardsCommand(['index'"],
    },
  'ctclip plan --config my.yaml': { by: 'test', file: 'test/integration/cli.test.ts', mentions: ["runCtclip(['plan'"] },
  'node lib/train.js --config my.yaml': TRAIN,
  'node lib/train.js --config my.yaml --resume latest': TRAIN,
  'node lib/inference.js --checkpoint runs/ct-rate-base --config my.yaml --output results/ct-rate-base --bootstrap --n_bootstrap 1000':
    INFER,
  'ctclip report runs/ct-rate-base': {
    by: 'test',
    file: 'test/integration/logging-report.test.ts',
    mentions: ["runCtclip(['report'"],
  },

  // Evaluation
  'node lib/inference.js --checkpoint runs/ctclip/ckpt-step00003687 --config configs/inference_config.yaml --output results/ --bootstrap --n_bootstrap 1000':
    INFER,
  "ctclip embed --checkpoint runs/ctclip --config my.yaml --shards 'data/valid/shard-{000000..000060}.tar' --out embeddings.safetensors [--limit 100] [--with-image-embeddings]":
    {
      by: 'test',
      file: 'test/integration/infer-cli.test.ts',
      mentions: ["ctclip('embed'"],
    },
  'ctclip predict valid_1_a_1.nii.gz --checkpoint CT-CLIP_v2.pt --config configs/base_config.yaml [--json]': {
    by: 'test',
    file: 'test/integration/predict-real-ct.test.ts',
    mentions: ["'predict'"],
  },
  [PUBLISHED_INFER]: INFER,

  // Multi-GPU and multi-node
  'node lib/launch.js --nproc_per_node 4 lib/train.js --config my.yaml': {
    by: 'test',
    file: 'test/integration/launch.test.ts',
    mentions: ["path.join(repoRoot, 'lib', 'launch.js')", "'--nproc_per_node'"],
  },
  'torchrun --no-python --nproc_per_node 4 node lib/train.js --config my.yaml': {
    by: 'test',
    file: 'test/world/torchrun.test.ts',
    mentions: ["'--no-python'", "'--nproc_per_node'", "path.join(repoRoot, 'lib', 'train.js')"],
  },
  'bash scripts/train_multi_gpu.sh 4 --resume latest': {
    by: 'bash -n',
    script: 'scripts/train_multi_gpu.sh',
    dryRunTest: 'test/integration/launch-scripts.test.ts',
  },
  'sbatch scripts/train_slurm_multi_node.sh': {
    by: 'bash -n',
    script: 'scripts/train_slurm_multi_node.sh',
    dryRunTest: 'test/integration/launch-scripts.test.ts',
  },
};

const PREFIX = /^(npm|node|npx|ctclip|bash|torchrun|sbatch)\s/;

/** The shell commands of README.md's code blocks (see the module comment). */
export function readmeCommands(markdown: string): string[] {
  const out: string[] = [];
  let inBlock = false;
  let pending: string | null = null;
  for (const raw of markdown.split('\n')) {
    if (/^\s*```/.test(raw)) {
      inBlock = !inBlock;
      pending = null;
      continue;
    }
    if (!inBlock) continue;
    let line = raw.trim().replace(/\s+#\s.*$/, '');
    if (pending === null) {
      line = line.replace(/^\$\s+/, '');
      if (!PREFIX.test(line)) continue;
    }
    const continued = line.endsWith('\\');
    const text = continued ? line.slice(0, -1).trim() : line;
    pending = pending === null ? text : `${pending} ${text}`;
    if (!continued) {
      out.push(pending.replace(/\s+/g, ' ').trim());
      pending = null;
    }
  }
  return out;
}

/** The `--flags` a command uses (optional `[--flag]` ones included). */
function flagsOf(command: string): string[] {
  return [...new Set(command.match(/(?<![\w-])--[a-z][a-z0-9_-]*/g) ?? [])];
}

/** Lines of a shell script that run something (comments, echo/printf lines dropped), continuations joined. */
function scriptCommandLines(script: string): string[] {
  return script
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !/^(echo|printf)\b/.test(l));
}

describe('README commands are all exercised (test/unit/readme-commands.test.ts)', () => {
  const commands = readmeCommands(read('README.md'));

  it('finds the commands of the README code blocks', () => {
    expect(commands).to.include('npm run demo');
    expect(commands).to.include('npm test');
    expect(commands.length).to.be.greaterThan(10);
    // The extractor itself: prompts, continuations and comments.
    const sample = [
      '```bash',
      'ctclip a --x 1 \\',
      '  --y 2   # note',
      'echo no',
      '```',
      '```console',
      '$ node lib/cli.js info',
      'output',
      '```',
      'npm outside',
    ].join('\n');
    expect(readmeCommands(sample)).to.deep.equal(['ctclip a --x 1 --y 2', 'node lib/cli.js info']);
  });

  it('every README command has an entry in COVERAGE', () => {
    const missing = commands.filter((c) => !(c in COVERAGE));
    if (missing.length) {
      expect.fail(
        `README.md has ${missing.length} command(s) that no test exercises:\n${missing.map((c) => `  ${c}`).join('\n')}\n` +
          'Add each to COVERAGE in test/unit/readme-commands.test.ts, mapped to the demo, the test that runs it, its npm ' +
          'script, or a bash -n / dry-run check (or fix the command in README.md if it is wrong).',
      );
    }
  });

  it('COVERAGE has no entries for commands the README no longer has', () => {
    const stale = Object.keys(COVERAGE).filter((c) => !commands.includes(c));
    expect(stale, 'remove these COVERAGE entries (the README no longer has them)').to.deep.equal([]);
  });

  it('each mapping is real: the demo runs it, the test file invokes it with its flags, the script exists and parses', () => {
    const demo = scriptCommandLines(read('scripts/demo.sh'));
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const problems: string[] = [];
    for (const command of commands) {
      const c = COVERAGE[command];
      if (!c) continue;
      switch (c.by) {
        case 'demo': {
          const asRun = command.replace(/^ctclip /, 'node lib/cli.js ');
          if (!demo.some((l) => l === asRun || l.startsWith(`${asRun} `)))
            problems.push(`${command}: scripts/demo.sh does not run it`);
          break;
        }
        case 'test': {
          if (!fs.existsSync(path.join(ROOT, c.file))) {
            problems.push(`${command}: ${c.file} does not exist`);
            break;
          }
          const text = read(c.file);
          for (const m of [...c.mentions, ...(c.flags ?? flagsOf(command))]) {
            if (!text.includes(m)) problems.push(`${command}: ${c.file} does not contain ${m}`);
          }
          break;
        }
        case 'npm-script': {
          const body = pkg.scripts[c.script];
          if (!body) {
            problems.push(`${command}: package.json has no "${c.script}" script`);
            break;
          }
          for (const f of body.match(/(?:scripts|bench)\/[\w./-]+\.(?:sh|js)/g) ?? []) {
            const src = f.replace(/^bench\/(.*)\.js$/, 'bench/$1.ts');
            if (!fs.existsSync(path.join(ROOT, src)))
              problems.push(`${command}: the script runs ${f}, which does not exist`);
          }
          if (c.mentions) {
            const file = c.exercisedBy;
            for (const m of c.mentions)
              if (!read(file).includes(m)) problems.push(`${command}: ${file} does not mention ${m}`);
          }
          break;
        }
        case 'bash -n': {
          const r = spawnSync('bash', ['-n', path.join(ROOT, c.script)], { encoding: 'utf8' });
          if (r.status !== 0) problems.push(`${command}: bash -n ${c.script} failed: ${r.stderr}`);
          const t = fs.existsSync(path.join(ROOT, c.dryRunTest)) ? read(c.dryRunTest) : '';
          if (!t.includes(path.basename(c.script)) || !t.includes('DRY_RUN'))
            problems.push(`${command}: ${c.dryRunTest} has no DRY_RUN test of ${c.script}`);
          break;
        }
        case 'external': {
          const t = fs.existsSync(path.join(ROOT, c.file)) ? read(c.file) : '';
          for (const m of c.mentions)
            if (!t.includes(m)) problems.push(`${command}: ${c.file} does not contain ${m} (${c.why})`);
          break;
        }
      }
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });
});
