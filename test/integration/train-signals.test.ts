/**
 * SIGINT / SIGTERM: the trainer stops at the next step boundary, saves a checkpoint and exits 130 / 143; the run
 * then resumes from that checkpoint.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  checkpointDirs,
  describeRun,
  runTrain,
  startTrain,
  writeTrainConfig,
  trainSuite,
  fixedStepsTraining,
} from '../helpers/train-fixtures';

describe('train: SIGINT / SIGTERM', function () {
  this.timeout(180_000);
  const suite = trainSuite('train-signals');

  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${sig}: stops at the next step boundary, saves a checkpoint and exits ${code}`, async function () {
      const runDir = path.join(suite.dir, sig);
      const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
        training: fixedStepsTraining(2000),
        validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 8 },
        logging: { log_every_n_steps: 1 },
      });
      const child = startTrain(['--config', cfg]);
      await child.waitForLine(/^Step 3\/2000 /);
      child.child.kill(sig);
      const r = await child.done;
      expect(r.code, describeRun(r)).to.equal(code);
      expect(r.stderr).to.contain(`${sig} received: stopping after the current step and saving a checkpoint`);
      expect(fs.existsSync(path.join(runDir, 'run.lock')), 'the run lock is released').to.equal(false);
      const m = /Training interrupted at step (\d+)\/2000/.exec(r.stdout);
      expect(m, describeRun(r)).to.not.equal(null);
      const step = Number((m as RegExpExecArray)[1]);
      expect(step).to.be.at.least(3).and.below(2000);
      const ckpts = checkpointDirs(runDir);
      expect(ckpts.map((d) => path.basename(d))).to.deep.equal([`ckpt-step${String(step).padStart(8, '0')}`]);
      expect(r.stdout).to.contain(`Saved checkpoint: ${ckpts[0]}`);
      const meta = JSON.parse(fs.readFileSync(path.join(ckpts[0], 'meta.json'), 'utf8')) as { kind: string };
      expect(meta.kind).to.equal('interrupt');
      if (sig === 'SIGINT') {
        const resumed = await runTrain([
          '--config',
          cfg,
          '--resume',
          'latest',
          '--set',
          `training.max_steps=${step + 2}`,
          '--set',
          'validation.eval_samples=8',
        ]);
        expect(resumed.code, describeRun(resumed)).to.equal(0);
        expect(resumed.stdout).to.contain(`Resumed from ${ckpts[0]}: step ${step},`);
        expect(resumed.stdout).to.contain(`Step ${step + 2}/${step + 2} `);
      }
    });
  }
});
