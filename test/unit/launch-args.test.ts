/**
 * lib/commands/launch.ts, the pure parts: splitting the command line at the worker script, option validation, the torchrun
 * environment of each worker, CTCLIP_THREADS, `--resume latest` on restarts, exit codes and line prefixing.
 */
import { expect } from 'chai';
import * as path from 'path';
import {
  LAUNCH_EXIT,
  LinePrefixer,
  describeExit,
  isFailure,
  launchExitCode,
  parseLaunchArgs,
  resolveLaunchOptions,
  splitLaunchArgv,
  threadsChoice,
  torchrunEnv,
  workerArgs,
  workerEnv,
  type ResolvedLaunchOptions,
} from '../../lib/commands/launch';
import { expectRejects } from '../helpers/errors';

const SCRIPT = path.resolve(__dirname, '..', '..', 'lib', 'train.js');

function parse(argv: string[]): ResolvedLaunchOptions {
  const r = parseLaunchArgs(argv);
  if ('help' in r) throw new Error('unexpected --help');
  return r;
}

describe('launch: command line', () => {
  it('options stop at the first positional: the rest (options included) belong to the worker', () => {
    expect(
      splitLaunchArgv(['--nproc_per_node', '2', 'lib/train.js', '--config', 'c.yaml', '--nproc_per_node', '9']),
    ).to.deep.equal({
      launcherArgs: ['--nproc_per_node', '2'],
      script: 'lib/train.js',
      scriptArgs: ['--config', 'c.yaml', '--nproc_per_node', '9'],
    });
    expect(splitLaunchArgv(['--nproc_per_node=2', '--max_restarts', '1', 'w.js'])).to.deep.equal({
      launcherArgs: ['--nproc_per_node=2', '--max_restarts', '1'],
      script: 'w.js',
      scriptArgs: [],
    });
  });

  it("'--' ends the options too, so a script named like an option works", () => {
    expect(splitLaunchArgv(['--nnodes', '1', '--', 'w.js', '--', 'x'])).to.deep.equal({
      launcherArgs: ['--nnodes', '1'],
      script: 'w.js',
      scriptArgs: ['--', 'x'],
    });
    expect(splitLaunchArgv(['--nnodes', '1'])).to.deep.equal({
      launcherArgs: ['--nnodes', '1'],
      script: null,
      scriptArgs: [],
    });
  });

  it('parses every option, with torchrun defaults, and accepts the dash spellings', () => {
    const d = parse([SCRIPT, '--config', 'c.yaml']);
    expect(d).to.deep.equal({
      nprocPerNode: 1,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      maxRestarts: 0,
      monitorInterval: 0.1,
      gracePeriod: 10,
      runId: 'none',
      script: SCRIPT,
      args: ['--config', 'c.yaml'],
    });
    const o = parse([
      '--nproc-per-node',
      '4',
      '--nnodes=3',
      '--node_rank',
      '2',
      '--master_addr',
      '10.0.0.1',
      '--master-port',
      '12345',
      '--max_restarts',
      '2',
      '--monitor_interval',
      '0.5',
      '--grace_period',
      '3',
      '--run_id',
      'job7',
      SCRIPT,
    ]);
    expect(o).to.deep.include({
      nprocPerNode: 4,
      nnodes: 3,
      nodeRank: 2,
      masterAddr: '10.0.0.1',
      masterPort: 12345,
      maxRestarts: 2,
      monitorInterval: 0.5,
      gracePeriod: 3,
      runId: 'job7',
      args: [],
    });
    expect(parseLaunchArgs(['--help'])).to.deep.equal({ help: true });
  });

  it('rejects bad values with ARGUMENT_ERROR naming the option', async () => {
    await expectRejects(() => parse(['--nproc_per_node', '0', SCRIPT]), 'ARGUMENT_ERROR', '--nproc_per_node', "'0'");
    await expectRejects(() => parse(['--nproc_per_node', '1.5', SCRIPT]), 'ARGUMENT_ERROR', '--nproc_per_node');
    await expectRejects(() => parse(['--nproc_per_node', 'two', SCRIPT]), 'ARGUMENT_ERROR', '--nproc_per_node');
    await expectRejects(
      () => parse(['--nnodes', '2', '--node_rank', '2', SCRIPT]),
      'ARGUMENT_ERROR',
      '--node_rank must be < --nnodes (2)',
    );
    await expectRejects(() => parse(['--master_port', '0', SCRIPT]), 'ARGUMENT_ERROR', '--master_port', '1..65535');
    await expectRejects(() => parse(['--master_port', '65536', SCRIPT]), 'ARGUMENT_ERROR', '--master_port');
    await expectRejects(() => parse(['--max_restarts=-1', SCRIPT]), 'ARGUMENT_ERROR', '--max_restarts');
    await expectRejects(() => parse(['--monitor_interval', '0', SCRIPT]), 'ARGUMENT_ERROR', '--monitor_interval');
    await expectRejects(() => parse(['--nproc_per_node', '2']), 'ARGUMENT_ERROR', 'missing the worker script');
    await expectRejects(
      () => parse(['--nproc_per_node', '2', '/nonexistent/worker.js']),
      'ARGUMENT_ERROR',
      "'/nonexistent/worker.js' does not exist",
    );
    await expectRejects(() => parse(['--bogus', '1', SCRIPT]), 'ERR_PARSE_ARGS_UNKNOWN_OPTION');
  });

  it('the programmatic options are validated the same way', async () => {
    await expectRejects(
      () => resolveLaunchOptions({ nprocPerNode: 2, nnodes: 1, nodeRank: 1, script: SCRIPT }),
      'ARGUMENT_ERROR',
      '--node_rank',
    );
    await expectRejects(
      () => resolveLaunchOptions({ nprocPerNode: -1, script: SCRIPT }),
      'ARGUMENT_ERROR',
      '--nproc_per_node',
    );
    expect(resolveLaunchOptions({ nprocPerNode: 2, script: 'not-checked.js' }, false).script).to.equal(
      'not-checked.js',
    );
  });
});

describe('launch: worker environment', () => {
  const o = resolveLaunchOptions({
    nprocPerNode: 4,
    nnodes: 3,
    nodeRank: 2,
    masterAddr: 'node-a',
    masterPort: 29555,
    maxRestarts: 5,
    runId: 'r1',
    script: SCRIPT,
  });

  it('RANK = node_rank·nproc + local, WORLD_SIZE = nnodes·nproc, and the other torchrun variables', () => {
    expect(torchrunEnv(o, 3, 2)).to.deep.equal({
      RANK: '11',
      WORLD_SIZE: '12',
      LOCAL_RANK: '3',
      LOCAL_WORLD_SIZE: '4',
      GROUP_RANK: '2',
      GROUP_WORLD_SIZE: '3',
      ROLE_NAME: 'default',
      ROLE_RANK: '11',
      ROLE_WORLD_SIZE: '12',
      MASTER_ADDR: 'node-a',
      MASTER_PORT: '29555',
      TORCHELASTIC_RESTART_COUNT: '2',
      TORCHELASTIC_MAX_RESTARTS: '5',
      TORCHELASTIC_RUN_ID: 'r1',
    });
    const ranks = [0, 1, 2].flatMap((node) =>
      [0, 1, 2, 3].map((l) => Number(torchrunEnv({ ...o, nodeRank: node }, l, 0).RANK)),
    );
    expect(ranks).to.deep.equal([...Array(12).keys()]);
  });

  it('inherits the environment, overrides stale torchrun values, never sets TORCHELASTIC_USE_AGENT_STORE', () => {
    const env = workerEnv(
      { PATH: '/bin', RANK: '7', TORCHELASTIC_USE_AGENT_STORE: 'True', NCCL_DEBUG: 'INFO' },
      o,
      0,
      0,
      '3',
    );
    expect(env.PATH).to.equal('/bin');
    expect(env.NCCL_DEBUG).to.equal('INFO');
    expect(env.RANK).to.equal('8');
    expect(env.CTCLIP_THREADS).to.equal('3');
    expect(env).to.not.have.property('TORCHELASTIC_USE_AGENT_STORE');
  });

  it('gives workers one malloc arena (MALLOC_ARENA_MAX=1) unless the environment chooses', () => {
    expect(workerEnv({ PATH: '/bin' }, o, 0, 0, '1').MALLOC_ARENA_MAX).to.equal('1');
    expect(workerEnv({ MALLOC_ARENA_MAX: '4' }, o, 1, 0, '1').MALLOC_ARENA_MAX).to.equal('4');
  });

  it('CTCLIP_THREADS: ⌊CPUs / nproc⌋ (at least 1), unless CTCLIP_THREADS or OMP_NUM_THREADS is set', () => {
    expect(threadsChoice({}, 16, 4).value).to.equal('4');
    expect(threadsChoice({}, 16, 3).value).to.equal('5');
    expect(threadsChoice({}, 2, 8).value).to.equal('1');
    expect(threadsChoice({}, 16, 4).message).to.contain('16 CPUs / 4 workers');
    expect(threadsChoice({ CTCLIP_THREADS: '7', OMP_NUM_THREADS: '2' }, 16, 4)).to.deep.include({ value: '7' });
    expect(threadsChoice({ OMP_NUM_THREADS: '2' }, 16, 4)).to.deep.include({ value: '2' });
    expect(threadsChoice({ OMP_NUM_THREADS: '2' }, 16, 4).message).to.contain('OMP_NUM_THREADS');
    expect(threadsChoice({ CTCLIP_THREADS: '' }, 16, 4).value).to.equal('4');
    expect(threadsChoice({ OMP_NUM_THREADS: '4,2' }, 16, 8).value).to.equal('2'); // nested OpenMP syntax: not a count
  });

  it('restarts append --resume latest unless the args already resume', () => {
    expect(workerArgs(['--config', 'c'], 0)).to.deep.equal(['--config', 'c']);
    expect(workerArgs(['--config', 'c'], 1)).to.deep.equal(['--config', 'c', '--resume', 'latest']);
    expect(workerArgs(['--config', 'c'], 3)).to.deep.equal(['--config', 'c', '--resume', 'latest']);
    expect(workerArgs(['--resume', 'best', '--config', 'c'], 2)).to.deep.equal(['--resume', 'best', '--config', 'c']);
    expect(workerArgs(['--resume=/x/ckpt', '--config', 'c'], 1)).to.deep.equal(['--resume=/x/ckpt', '--config', 'c']);
  });
});

describe('launch: exit codes and output', () => {
  it('maps outcomes to 0 / 1 / 130 / 143 (2 is for bad arguments)', () => {
    expect(launchExitCode('success')).to.equal(0);
    expect(launchExitCode('failed')).to.equal(1);
    expect(launchExitCode('interrupted', 'SIGINT')).to.equal(130);
    expect(launchExitCode('interrupted', 'SIGTERM')).to.equal(143);
    expect(LAUNCH_EXIT).to.deep.equal({ ok: 0, failed: 1, usage: 2, SIGINT: 130, SIGTERM: 143 });
  });

  it('a worker fails when it exits non-zero or is killed by a signal', () => {
    expect(isFailure(0, null)).to.equal(false);
    expect(isFailure(1, null)).to.equal(true);
    expect(isFailure(143, null)).to.equal(true);
    expect(isFailure(null, 'SIGKILL')).to.equal(true);
    expect(describeExit(3, null)).to.equal('exit code 3');
    expect(describeExit(null, 'SIGKILL')).to.equal('killed by SIGKILL');
  });

  it('prefixes complete lines and buffers a partial one until its newline or the flush', () => {
    const p = new LinePrefixer('[rank 1] ');
    expect(p.push('a')).to.equal('');
    expect(p.push('b\nc\nd')).to.equal('[rank 1] ab\n[rank 1] c\n');
    expect(p.push('\n')).to.equal('[rank 1] d\n');
    expect(p.push('\n')).to.equal('[rank 1] \n');
    expect(p.flush()).to.equal('');
    expect(p.push('tail')).to.equal('');
    expect(p.flush()).to.equal('[rank 1] tail\n');
    expect(p.flush()).to.equal('');
  });
});
