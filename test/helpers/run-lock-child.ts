/**
 * A child process for test/unit/run-lock.test.ts: takes the lock of run directory argv[2], prints `LOCKED <pid>`,
 * then ends as argv[3] says, without calling release() itself:
 *   exit    process.exit(3)
 *   throw   an uncaught error
 *   signal  StopSignals installed (as the trainer's); on SIGINT/SIGTERM it sets the exit code and returns
 *   hold    waits until killed (SIGKILL leaves the lock behind)
 */
import { RunLock } from '../../lib/checkpoint/run-lock';
import { StopSignals } from '../../lib/train/signals';

const [dir, mode] = process.argv.slice(2);
RunLock.acquire(dir, { command: `run-lock-child ${mode}` });
if (mode === 'exit') process.exit(3);
if (mode === 'throw') throw new Error('child failed on purpose');
if (mode === 'signal') {
  const signals = new StopSignals(() => undefined).install();
  const keepAlive = setInterval(() => undefined, 1 << 30);
  void signals.whenStopped().then(() => {
    clearInterval(keepAlive);
    process.exitCode = signals.exitCode;
  });
}
if (mode === 'hold') setInterval(() => undefined, 1 << 30);
process.stdout.write(`LOCKED ${process.pid}\n`); // after the handlers are installed
