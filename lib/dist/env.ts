/**
 * Where this process sits in a data-parallel job, from the environment a launcher sets:
 *  - torchrun (and `ctclip launch`): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
 *    TORCHELASTIC_RESTART_COUNT, and TORCHELASTIC_USE_AGENT_STORE=True when torchrun's agent hosts the store;
 *  - SLURM (srun one task per GPU, no launcher), used only when RANK is absent: SLURM_PROCID, SLURM_NTASKS,
 *    SLURM_LOCALID, SLURM_NTASKS_PER_NODE, master = MASTER_ADDR or the first host of SLURM_JOB_NODELIST;
 *  - otherwise a single process (rank 0 of 1).
 * Every malformed value is an ARGUMENT_ERROR naming the variable.
 */
import { CtclipError } from '../errors';

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  useAgentStore: boolean;
  restartCount: number;
  source: 'torchrun' | 'slurm' | 'single';
}

/** The rendezvous port when none is given (torchrun's default): MASTER_PORT, `ctclip launch --master_port`. */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, opts: { min: number; fallback?: number; max?: number }): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (opts.fallback === undefined)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `environment variable ${name} is required for a distributed run but is not set`,
      );
    return opts.fallback;
  }
  const v = Number(raw.trim());
  if (!Number.isSafeInteger(v) || v < opts.min || (opts.max !== undefined && v > opts.max)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `environment variable ${name}='${raw}': expected an integer >= ${opts.min}${opts.max !== undefined ? ` and <= ${opts.max}` : ''}`,
    );
  }
  return v;
}

/** The first host of a SLURM node list: `gpu01`, `gpu[01-04,07]`, `a,b`, `rack1-[3-5]`. */
export function firstSlurmHost(nodelist: string): string {
  const s = nodelist.trim();
  let depth = 0;
  let end = s.length;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '[') depth++;
    else if (s[i] === ']') depth--;
    else if (s[i] === ',' && depth === 0) {
      end = i;
      break;
    }
  }
  const first = s.slice(0, end);
  const m = /^(.*)\[([^\]]+)\](.*)$/.exec(first);
  if (!m) return first;
  const range = m[2].split(',')[0].split('-')[0];
  return `${m[1]}${range}${m[3]}`;
}

/** Reads the process's place in the job (see the module comment). */
export function distEnvFrom(env: Env = process.env): DistEnv {
  if (env.RANK !== undefined && env.RANK !== '') {
    const worldSize = intVar(env, 'WORLD_SIZE', { min: 1 });
    const rank = intVar(env, 'RANK', { min: 0 });
    if (rank >= worldSize)
      throw new CtclipError('ARGUMENT_ERROR', `RANK=${rank} must be smaller than WORLD_SIZE=${worldSize}`);
    const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', { min: 1, fallback: worldSize });
    const localRank = intVar(env, 'LOCAL_RANK', { min: 0, fallback: rank % localWorldSize });
    if (localRank >= localWorldSize)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `LOCAL_RANK=${localRank} must be smaller than LOCAL_WORLD_SIZE=${localWorldSize}`,
      );
    const multi = worldSize > 1;
    const masterAddr = env.MASTER_ADDR || (multi ? '' : '127.0.0.1');
    if (!masterAddr)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        'environment variable MASTER_ADDR is required for a distributed run (WORLD_SIZE > 1) but is not set',
      );
    return {
      rank,
      worldSize,
      localRank,
      localWorldSize,
      masterAddr,
      masterPort: intVar(env, 'MASTER_PORT', { min: 1, max: 65535, fallback: multi ? undefined : DEFAULT_MASTER_PORT }),
      useAgentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True',
      restartCount: intVar(env, 'TORCHELASTIC_RESTART_COUNT', { min: 0, fallback: 0 }),
      source: 'torchrun',
    };
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined) {
    const worldSize = intVar(env, 'SLURM_NTASKS', { min: 1 });
    const rank = intVar(env, 'SLURM_PROCID', { min: 0 });
    if (rank >= worldSize)
      throw new CtclipError('ARGUMENT_ERROR', `SLURM_PROCID=${rank} must be smaller than SLURM_NTASKS=${worldSize}`);
    const perNode = env.SLURM_NTASKS_PER_NODE ? Number.parseInt(env.SLURM_NTASKS_PER_NODE, 10) : NaN; // e.g. "4(x2)"
    const masterAddr =
      env.MASTER_ADDR ||
      (env.SLURM_JOB_NODELIST ? firstSlurmHost(env.SLURM_JOB_NODELIST) : worldSize > 1 ? '' : '127.0.0.1');
    if (!masterAddr)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        'SLURM run without MASTER_ADDR or SLURM_JOB_NODELIST: cannot find the master host',
      );
    return {
      rank,
      worldSize,
      localRank: intVar(env, 'SLURM_LOCALID', { min: 0, fallback: 0 }),
      localWorldSize: Number.isSafeInteger(perNode) && perNode > 0 ? perNode : 1,
      masterAddr,
      masterPort: intVar(env, 'MASTER_PORT', { min: 1, max: 65535, fallback: DEFAULT_MASTER_PORT }),
      useAgentStore: false,
      restartCount: intVar(env, 'SLURM_RESTART_COUNT', { min: 0, fallback: 0 }),
      source: 'slurm',
    };
  }
  return {
    rank: 0,
    worldSize: 1,
    localRank: 0,
    localWorldSize: 1,
    masterAddr: '127.0.0.1',
    masterPort: DEFAULT_MASTER_PORT,
    useAgentStore: false,
    restartCount: 0,
    source: 'single',
  };
}
