/**
 * `node lib/train.js --config FILE [--resume latest|best|PATH] [--init-from WEIGHTS] [--debug] [--set k=v ...]
 * [--no-load-optimizer] [--threads N]` (also `ctclip train …`): trains CT-CLIP end to end (lib/train/trainer.ts).
 *
 * Exit codes: 0 done (or stopped on request), 1 runtime failure, 2 bad arguments or configuration (nothing heavy
 * ran), 130 interrupted by SIGINT, 143 interrupted by SIGTERM (a checkpoint was saved first; a second signal exits
 * at once; during start-up, before the first step, the first signal exits at once: there is nothing to save).
 *
 * `--debug` (as the reference's): no remote logging (use_wandb off), a progress line every step, the timing
 * breakdown on (every 100 steps), validation on 100 samples. Applied before any `--set`, so `--set` still wins.
 *
 * Data parallel: started by `ctclip launch` / `node lib/launch.js`, by `torchrun --no-python … node lib/train.js`,
 * or one SLURM task per rank, the process joins the job its environment describes (lib/dist/env.ts: RANK,
 * WORLD_SIZE, …; SLURM_* when RANK is absent) over c10d (`distributed.*` in the config); only rank 0 prints and
 * writes. See scripts/MULTI_GPU_GUIDE.md.
 *
 * Run directory: one trainer at a time (rank 0 holds `run.lock`, lib/checkpoint/run-lock.ts); a second one exits 1
 * naming the holder. Released at the end, after an error or a signal, and on exit.
 *
 * Test-only: `CTCLIP_TEST_FAULT` (lib/train/faults.ts: kill, ENOSPC and non-finite faults at chosen steps).
 */
import { intOption, parseCommandArgs, runCommand, startCommand } from './common';
import { loadConfig } from '../config/load';
import { CtclipError } from '../errors';
import { StopSignals } from '../train/signals';
import { distEnvFrom } from '../dist/env';
import { exitNow, ProcessGroup } from '../dist/group';
import { deviceForConfig, isCudaDevice, launchedLocalRank } from '../model/device';
import { parseFaults } from '../train/faults';
import { Trainer } from '../train/trainer';

export { parseFaults };

export const USAGE = `usage: ctclip train --config FILE [--resume latest|best|PATH] [--init-from WEIGHTS] [--debug]
                    [--set key.path=value ...] [--no-load-optimizer] [--threads N]

  --config FILE          YAML config (with _base_ inheritance)
  --resume WHICH         continue a run: 'latest' (the newest checkpoint whose checksums verify; starts fresh
                         when there is none, refuses when every one fails its checks), 'best', a checkpoint folder,
                         or a torch.save training checkpoint .pt (the original pipeline's: weights, AdamW state and
                         step carry over; what does not is listed)
  --init-from WEIGHTS    start a NEW run (step 0) from weights only: a checkpoint folder, a model.safetensors,
                         or a PyTorch .pt/.bin state dict (reference key names)
  --no-load-optimizer    with --resume: restore weights and run position, start AdamW and the loss scaler fresh
  --debug                no remote logging, a progress line every step, timing breakdown, 100 validation samples
  --set k=v              override a config value (repeatable; applied after --debug)
  --threads N            libtorch intra-op threads (default: training.threads, $CTCLIP_THREADS, the CPU count)

exit codes: 0 done · 1 runtime failure · 2 bad arguments/config · 130 SIGINT · 143 SIGTERM`;

/** The `--debug` overrides (reference train.py --debug, minus its worker settings). */
export const DEBUG_OVERRIDES = [
  'logging.use_wandb=false',
  'logging.log_every_n_steps=1',
  'logging.profile_timing=true',
  'validation.eval_samples=100',
];

export async function run(argv: string[]): Promise<number> {
  let signals: StopSignals | null = null;
  try {
    return await runCommand('train', USAGE, async () => {
      const { values, positionals } = parseCommandArgs(argv, {
        config: { type: 'string' },
        resume: { type: 'string' },
        'init-from': { type: 'string' },
        debug: { type: 'boolean', default: false },
        set: { type: 'string', multiple: true },
        'no-load-optimizer': { type: 'boolean', default: false },
        threads: { type: 'string' },
      });
      if (!startCommand(values, positionals, USAGE)) return 0;
      if (!values.config) throw new CtclipError('ARGUMENT_ERROR', '--config is required');
      if (values['no-load-optimizer'] && !values.resume)
        throw new CtclipError('ARGUMENT_ERROR', '--no-load-optimizer only makes sense with --resume');
      const overrides = [...(values.debug ? DEBUG_OVERRIDES : []), ...(values.set ?? [])];
      if (values.threads !== undefined) overrides.push(`training.threads=${intOption('threads', values.threads)}`);
      const faults = parseFaults(process.env.CTCLIP_TEST_FAULT);
      const { config } = loadConfig(values.config, { overrides, checkFiles: 'train' });
      if (values.debug) process.stdout.write(`Debug mode: ${DEBUG_OVERRIDES.join(', ')}\n`);
      // Until the first step, a signal exits at once (nothing to save; lib/train/signals.ts).
      signals = new StopSignals().install().duringStartup(exitNow);
      const env = distEnvFrom(process.env);
      let group: ProcessGroup | null = null;
      // The device first: it decides the c10d backend under distributed.backend 'auto' (NCCL on CUDA).
      const device = deviceForConfig(config, env.worldSize > 1 ? env.localRank : launchedLocalRank());
      if (env.worldSize > 1) {
        const d = config.distributed;
        if (env.rank === 0)
          process.stdout.write(
            `Joining a ${env.worldSize}-rank job at ${env.masterAddr}:${env.masterPort} (${env.source}${env.useAgentStore ? ', agent store' : ''}, restart ${env.restartCount})\n`,
          );
        group = await ProcessGroup.init(env, {
          backend: d.backend,
          timeoutMs: d.timeout_minutes * 60_000,
          cuda: isCudaDevice(device),
        });
        const store = group.storeAddress;
        if (store?.startsWith('*:')) {
          process.stderr.write(
            `warning: the rendezvous store listens on every interface (${store}): MASTER_ADDR '${env.masterAddr}' is a host name in a multi-node job; give the master's IP address on the private network to restrict it (docs/distributed.md)\n`,
          );
        } else if (store) {
          process.stdout.write(
            `Rendezvous store listening on ${store} (no authentication: keep it on a private network)\n`,
          );
        }
      }
      let trainer: Trainer | null = null;
      try {
        trainer = await Trainer.create({
          config,
          resume: values.resume ?? null,
          initFrom: values['init-from'] ?? null,
          loadOptimizer: !values['no-load-optimizer'],
          signals,
          faults,
          group,
          device,
        });
        signals.startupDone();
        const result = await trainer.fit();
        return result.exitCode;
      } finally {
        // The run lock is released at the end of fit(); after an error, here (and, failing all else, on exit).
        (trainer as Trainer | null)?.runLock?.release();
        group?.shutdown();
      }
    });
  } finally {
    (signals as StopSignals | null)?.dispose();
  }
}
