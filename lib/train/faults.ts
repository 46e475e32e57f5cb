/**
 * Test-only fault injection for the trainer, in one place: `CTCLIP_TEST_FAULT` (read by `ctclip train`) is a
 * comma-separated list of
 *
 *   kill-after-step=N     SIGKILL right after optimizer step N (before its validation/checkpoint)
 *   kill-before-commit=N  SIGKILL inside the save of step N, after every file is written and before the rename
 *   enospc=N              the save of step N fails with ENOSPC while writing the model part
 *   non-finite=N          the first attempt at optimizer step N gets a non-finite gradient (it must be skipped)
 *   non-finite-from=N     every attempt at step N and later does (the run ends by the skipped-step cap)
 *
 * The integration tests (train-resume, train-nonfinite, train-distributed) use them to crash or fail a real run
 * at deterministic points.
 */
import * as path from 'path';
import type { CheckpointManagerOptions } from '../checkpoint';
import { CtclipError } from '../errors';

/** Test-only fault injection (set through CTCLIP_TEST_FAULT by `ctclip train`; see the module comment). */
export interface FaultInjection {
  /** SIGKILL this process right after optimizer step N (before its validation/checkpoint). */
  killAfterStep?: number;
  /** SIGKILL this process inside the save of step N, after every file is written and before the rename. */
  killBeforeCommitStep?: number;
  /** Make the save of step N fail with ENOSPC while writing the model part. */
  enospcStep?: number;
  /** Make the first attempt at optimizer step N non-finite (native injectNonFiniteGrad): it must be skipped. */
  nonFiniteStep?: number;
  /** Make EVERY attempt at optimizer step N and later non-finite (the run can only end by the skipped-step cap). */
  nonFiniteFromStep?: number;
}

/** Parses CTCLIP_TEST_FAULT (ARGUMENT_ERROR naming the item it cannot parse). */
export function parseFaults(text: string | undefined): FaultInjection {
  const faults: FaultInjection = {};
  if (!text) return faults;
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(kill-after-step|kill-before-commit|enospc|non-finite|non-finite-from)=(\d+)$/.exec(item);
    if (!m)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `CTCLIP_TEST_FAULT: cannot parse '${item}' (expected kill-after-step=N, kill-before-commit=N, enospc=N, non-finite=N or non-finite-from=N)`,
      );
    const n = Number(m[2]);
    if (m[1] === 'kill-after-step') faults.killAfterStep = n;
    else if (m[1] === 'kill-before-commit') faults.killBeforeCommitStep = n;
    else if (m[1] === 'non-finite') faults.nonFiniteStep = n;
    else if (m[1] === 'non-finite-from') faults.nonFiniteFromStep = n;
    else faults.enospcStep = n;
  }
  return faults;
}

/** The checks the trainer makes at its fault points (all no-ops without a fault). */
export class Faults {
  private injectedNonFinite = false;

  constructor(readonly spec: FaultInjection = {}) {}

  /** Whether this attempt at optimizer step `k` gets a non-finite gradient (`non-finite` fires once). */
  nonFiniteAt(k: number): boolean {
    const f = this.spec;
    const inject =
      (f.nonFiniteStep === k && !this.injectedNonFinite) ||
      (f.nonFiniteFromStep !== undefined && k >= f.nonFiniteFromStep);
    if (inject) this.injectedNonFinite = true;
    return inject;
  }

  /** `kill-after-step`: SIGKILL right after optimizer step `k`. */
  afterStep(k: number): void {
    if (this.spec.killAfterStep === k) {
      process.stdout.write(`FAULT kill-after-step ${k}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  }

  /** `enospc`: what the save of `step` calls before writing the model part (undefined: nothing). */
  beforeModelWrite(step: number): (() => void) | undefined {
    if (this.spec.enospcStep !== step) return undefined;
    return () => {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected by CTCLIP_TEST_FAULT)`), {
        code: 'ENOSPC',
      });
    };
  }

  /** The CheckpointManager hooks: the caller's, plus `kill-before-commit`. */
  checkpointHooks(user: CheckpointManagerOptions['hooks']): CheckpointManagerOptions['hooks'] {
    const killStep = this.spec.killBeforeCommitStep;
    const beforeCommit = user?.beforeCommit;
    if (killStep === undefined) return user;
    return {
      beforeCommit: async (tmpDir: string) => {
        if (beforeCommit) await beforeCommit(tmpDir);
        const m = /^\.tmp-ckpt-step(\d+)-/.exec(path.basename(tmpDir));
        if (m && Number(m[1]) === killStep) {
          process.stdout.write(`FAULT kill-before-commit ${killStep} ${tmpDir}\n`);
          process.kill(process.pid, 'SIGKILL');
          await new Promise(() => undefined);
        }
      },
    };
  }
}
