/**
 * Child process for the checkpoint crash tests: starts a save and stops at a known point, announcing it on
 * stdout, so that the parent can SIGKILL it there.
 *   node checkpoint-child.js '{"dir": "...", "step": 20, "mode": "mid-part" | "before-commit"}'
 * mid-part:      the model part is being written (1 MiB chunks, the first one flushed), then the writer stalls.
 * before-commit: every file is written and fsynced; the temporary folder is about to be renamed into place.
 */
import * as fs from 'fs';
import { CheckpointManager } from '../../lib/checkpoint';

const args = JSON.parse(process.argv[2]) as { dir: string; step: number; mode: 'mid-part' | 'before-commit' };
const forever = () => new Promise<void>(() => setInterval(() => undefined, 1000));

const manager = new CheckpointManager({
  dir: args.dir,
  keepLastN: 1,
  bestMetric: 'weighted_auroc',
  onLog: () => undefined,
  hooks: {
    beforeCommit: async (tmpDir) => {
      if (args.mode !== 'before-commit') return;
      process.stdout.write(`COMMIT ${tmpDir}\n`);
      await forever();
    },
  },
});

void manager.save(
  args.step,
  {
    'model.safetensors': async (tmpPath) => {
      const fd = fs.openSync(tmpPath, 'w');
      const chunk = Buffer.alloc(1 << 20, 7);
      fs.writeSync(fd, chunk);
      fs.fsyncSync(fd);
      if (args.mode === 'mid-part') {
        process.stdout.write(`WRITING ${tmpPath}\n`);
        await forever();
      }
      fs.closeSync(fd);
    },
    'optimizer.safetensors': Buffer.alloc(1000, 1),
  },
  { metrics: { weighted_auroc: 0.99 } },
);
