/**
 * SIGINT / SIGTERM handling for the trainer: the first signal asks the loop to stop at the next step boundary
 * (the current native step finishes, a checkpoint is saved, the process exits 130 for SIGINT or 143 for SIGTERM,
 * the shell convention 128 + signal number); a second signal exits at once with the same code.
 *
 * During start-up (`duringStartup()` until `startupDone()`: loading, rendezvous, building the model) there is no
 * step to finish and nothing to save, so the first signal exits at once with that code: a worker stuck waiting for
 * the other ranks must not ignore the launcher's SIGTERM until it is killed.
 *
 * The same signal again within DUPLICATE_WINDOW_MS is taken as one delivery, not a second request: under SLURM,
 * `scancel` signals every process of the step, so a worker gets SIGTERM directly and once more forwarded by its
 * launcher, and must still save its interrupt checkpoint.
 */
export type StopSignalName = 'SIGINT' | 'SIGTERM';

export const SIGNAL_EXIT_CODES: Readonly<Record<StopSignalName, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Repeats of the first signal within this many ms are one delivery (see the module comment). */
export const DUPLICATE_WINDOW_MS = 1000;

export class StopSignals {
  private received: StopSignalName | null = null;
  private receivedAt = 0;
  private readonly handlers = new Map<StopSignalName, () => void>();
  private readonly waiters: Array<() => void> = [];
  private startup: ((code: number) => void) | null = null;

  constructor(private readonly log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {}

  /** Installs the handlers (idempotent). */
  install(): this {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      if (this.handlers.has(sig)) continue;
      const h = (): void => this.onSignal(sig);
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
    return this;
  }

  /**
   * From now until `startupDone()`, a signal exits at once through `exit` (see the module comment; a rendezvous
   * in progress needs lib/dist/group.ts exitNow, which does not wait for it).
   */
  duringStartup(exit: (code: number) => void = (code) => process.exit(code)): this {
    this.startup = exit;
    return this;
  }

  /** The first step is about to run: signals stop after the current step again. */
  startupDone(): void {
    this.startup = null;
  }

  /** Removes the handlers (default signal behaviour again). */
  dispose(): void {
    for (const [sig, h] of this.handlers) process.removeListener(sig, h);
    this.handlers.clear();
  }

  /** The first signal received, or null. */
  get signal(): StopSignalName | null {
    return this.received;
  }

  get stopRequested(): boolean {
    return this.received !== null;
  }

  /** The exit code for the signal received (0 when none). */
  get exitCode(): number {
    return this.received ? SIGNAL_EXIT_CODES[this.received] : 0;
  }

  /** A promise that settles on the first signal (for waits that should be interruptible). */
  whenStopped(): Promise<void> {
    if (this.received) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Simulates a signal (tests, early stopping): same effect as receiving it. */
  trigger(sig: StopSignalName): void {
    this.onSignal(sig);
  }

  private onSignal(sig: StopSignalName): void {
    if (this.startup) {
      this.log(
        `${sig} received during start-up (before the first step): nothing to save; exiting (exit ${SIGNAL_EXIT_CODES[sig]}).`,
      );
      this.startup(SIGNAL_EXIT_CODES[sig]);
      return;
    }
    if (this.received === sig && Date.now() - this.receivedAt < DUPLICATE_WINDOW_MS) {
      this.log(
        `${sig} received twice within ${DUPLICATE_WINDOW_MS} ms (e.g. from SLURM and from the launcher): treated as one; still stopping after the current step.`,
      );
      return;
    }
    if (this.received) {
      this.log(
        `${sig} received again: exiting immediately (exit ${SIGNAL_EXIT_CODES[this.received]}); the last saved checkpoint stays usable.`,
      );
      process.exit(SIGNAL_EXIT_CODES[this.received]);
    }
    this.received = sig;
    this.receivedAt = Date.now();
    this.log(
      `${sig} received: stopping after the current step and saving a checkpoint (send it again to exit immediately).`,
    );
    for (const w of this.waiters.splice(0)) w();
  }
}
