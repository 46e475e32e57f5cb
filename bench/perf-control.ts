/**
 * The steady-state window of a step bench, for `perf record --control` (bench/profile.ts).
 *
 * bench/profile.ts starts the bench under `perf record -D -1 --control fifo:CTL,ACK` (events disabled) and puts the
 * two FIFO paths in $CTCLIP_PERF_CTL / $CTCLIP_PERF_ACK. The bench calls `perfWindow('enable')` after its warm-up
 * and `perfWindow('disable')` after its timed steps, so the profile holds the timed steps only: no start-up, model
 * construction, warm-up allocations or the matmul ceiling. scripts/reference-step.py speaks the same protocol, so
 * the reference is profiled over the same window. Without the variables both calls do nothing.
 */
import * as fs from 'fs';

export function perfWindow(command: 'enable' | 'disable'): void {
  const ctl = process.env.CTCLIP_PERF_CTL;
  const ack = process.env.CTCLIP_PERF_ACK;
  if (!ctl || !ack) return;
  fs.writeFileSync(ctl, `${command}\n`);
  // perf answers "ack\n" once the events are switched: wait for it so the window starts exactly here.
  const fd = fs.openSync(ack, 'r');
  try {
    const buf = Buffer.alloc(16);
    fs.readSync(fd, buf, 0, buf.length, null);
  } finally {
    fs.closeSync(fd);
  }
}
