/**
 * scripts/train_multi_gpu.sh and scripts/train_slurm_multi_node.sh: bash syntax, and the exact commands they would
 * run (DRY_RUN=1) — the GPU count from the argument, from a fake `nvidia-smi -L`, or 1 without it; on a fake
 * 2-node SLURM allocation (a fake `scontrol` first on PATH) each task gets its own --node_rank and the same master.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { repoRoot } from '../helpers/fixtures';

const MULTI_GPU = path.join(repoRoot, 'scripts', 'train_multi_gpu.sh');
const SLURM = path.join(repoRoot, 'scripts', 'train_slurm_multi_node.sh');
const BASH = execFileSync('bash', ['-c', 'command -v bash'], { encoding: 'utf8' }).trim();

/** The words of a `printf '%q '`-quoted command line (enough of bash's quoting for these tests: backslash escapes). */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === ' ') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

describe('launch scripts (DRY_RUN)', function () {
  this.timeout(20_000);
  let bin: string;

  /** A PATH holding only the tools the scripts need (so a real nvidia-smi/scontrol/srun cannot interfere), plus fakes. */
  function pathWith(fakes: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(bin, 'path-'));
    for (const tool of ['dirname', 'grep', 'head', 'cat']) {
      const real = execFileSync(BASH, ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      fs.symlinkSync(real, path.join(dir, tool));
    }
    for (const [name, body] of Object.entries(fakes)) {
      fs.writeFileSync(path.join(dir, name), `#!${BASH}\n${body}\n`, { mode: 0o755 });
    }
    return dir;
  }

  function run(
    script: string,
    args: string[],
    env: Record<string, string>,
  ): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(BASH, [script, ...args], {
      encoding: 'utf8',
      env: { HOME: os.homedir(), DRY_RUN: '1', ...env },
      cwd: repoRoot,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  before(() => {
    bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-launch-scripts-'));
  });
  after(() => fs.rmSync(bin, { recursive: true, force: true }));

  it('both scripts pass bash -n', () => {
    for (const s of [MULTI_GPU, SLURM]) {
      const r = spawnSync(BASH, ['-n', s], { encoding: 'utf8' });
      expect(r.status, `${s}: ${r.stderr}`).to.equal(0);
    }
  });

  describe('scripts/train_multi_gpu.sh', () => {
    it('NUM_GPUS from the argument; the rest goes to lib/train.js after --config', () => {
      const r = run(MULTI_GPU, ['3', '--set', 'training.max_steps=10', '--set', 'a=b c'], {
        PATH: pathWith({}),
        CONFIG: 'configs/debug_config.yaml',
        MAX_RESTARTS: '2',
      });
      expect(r.status, r.stderr).to.equal(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).to.have.length(1);
      expect(words(lines[0])).to.deep.equal([
        'node',
        path.join(repoRoot, 'lib', 'launch.js'),
        '--nproc_per_node',
        '3',
        '--max_restarts',
        '2',
        path.join(repoRoot, 'lib', 'train.js'),
        '--config',
        'configs/debug_config.yaml',
        '--set',
        'training.max_steps=10',
        '--set',
        'a=b c',
      ]);
    });

    it('NUM_GPUS from nvidia-smi -L, else 1; the default config is configs/base_config.yaml', () => {
      const smi = pathWith({ 'nvidia-smi': 'for i in 0 1 2 3; do echo "GPU $i: NVIDIA H200 (UUID: GPU-$i)"; done' });
      const four = words(run(MULTI_GPU, [], { PATH: smi }).stdout.trim());
      expect(option(four, '--nproc_per_node')).to.equal('4');
      expect(option(four, '--config')).to.equal(path.join(repoRoot, 'configs', 'base_config.yaml'));
      const none = run(MULTI_GPU, ['--resume', 'latest'], { PATH: pathWith({}) });
      expect(none.status, none.stderr).to.equal(0);
      const one = words(none.stdout.trim());
      expect(option(one, '--nproc_per_node')).to.equal('1');
      expect(one.slice(-2)).to.deep.equal(['--resume', 'latest']);
    });
  });

  describe('scripts/train_slurm_multi_node.sh', () => {
    // the batch step's own environment has SLURM_PROCID=0 / SLURM_NODEID=0: the tasks must not inherit them
    const slurmEnv = (PATH: string): Record<string, string> => ({
      PATH,
      SLURM_JOB_NODELIST: 'gpu-[07-08]',
      SLURM_NNODES: '2',
      SLURM_JOB_ID: '4242',
      SLURM_PROCID: '0',
      SLURM_NODEID: '0',
      GPUS_PER_NODE: '8',
    });

    it('each task runs the launcher with its own --node_rank and the same master address and port', () => {
      const r = run(
        SLURM,
        ['--set', 'training.max_steps=100'],
        slurmEnv(
          pathWith({
            scontrol: '[ "$1 $2" = "show hostnames" ] || exit 3\necho gpu-07\necho gpu-08',
            srun: 'echo "srun must not run in DRY_RUN" >&2; exit 9',
          }),
        ),
      );
      expect(r.status, r.stderr).to.equal(0);
      const tasks = r.stdout.trim().split('\n');
      expect(tasks).to.have.length(2);
      for (const [i, line] of tasks.entries()) {
        expect(line.startsWith(`task ${i}: `), line).to.equal(true);
        const argv = words(line.slice(`task ${i}: `.length));
        expect(argv.slice(0, 2)).to.deep.equal(['node', path.join(repoRoot, 'lib', 'launch.js')]);
        expect(option(argv, '--node_rank')).to.equal(String(i));
        expect(option(argv, '--nnodes')).to.equal('2');
        expect(option(argv, '--nproc_per_node')).to.equal('8');
        expect(option(argv, '--master_addr')).to.equal('gpu-07');
        expect(option(argv, '--master_port')).to.equal(String(29500 + (4242 % 1000)));
        expect(option(argv, '--run_id')).to.equal('4242');
        const script = argv.indexOf(path.join(repoRoot, 'lib', 'train.js'));
        expect(argv.slice(script + 1)).to.deep.equal([
          '--config',
          path.join(repoRoot, 'configs', 'base_config.yaml'),
          '--set',
          'training.max_steps=100',
        ]);
      }
      expect(r.stderr).to.contain('2 node(s) × 8 worker(s), master gpu-07:');
    });

    it('MASTER_ADDR / MASTER_PORT override scontrol and the job-derived port', () => {
      const r = run(SLURM, [], {
        ...slurmEnv(pathWith({ scontrol: 'exit 7' })),
        MASTER_ADDR: '10.1.2.3',
        MASTER_PORT: '31000',
      });
      expect(r.status, r.stderr).to.equal(0);
      const tasks = r.stdout
        .trim()
        .split('\n')
        .map((l) => words(l.replace(/^task \d+: /, '')));
      expect(
        tasks.map((a) => [option(a, '--node_rank'), option(a, '--master_addr'), option(a, '--master_port')]),
      ).to.deep.equal([
        ['0', '10.1.2.3', '31000'],
        ['1', '10.1.2.3', '31000'],
      ]);
    });

    it('outside an allocation: a clear error, non-zero exit', () => {
      const r = run(SLURM, [], { PATH: pathWith({}) });
      expect(r.status).to.not.equal(0);
      expect(r.stderr).to.contain('not inside a SLURM allocation');
      expect(r.stdout).to.equal('');
    });
  });
});
