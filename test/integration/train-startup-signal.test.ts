/**
 * A signal during start-up (before the first step) exits at once with 143 / 130: there is nothing to save, and a
 * launcher's SIGTERM must not wait for a step that does not exist yet. The worker is rank 0 of a 2-rank job whose
 * rank 1 never starts, so it sits in the rendezvous, telling on stderr that it is still waiting.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { freePort } from '../helpers/dist';
import { checkpointDirs, describeRun, startTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

describe('train: a signal during start-up exits at once', function () {
  this.timeout(120_000);
  const suite = trainSuite('train-startup-signal');

  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${sig} while waiting for the other ranks: exit ${code} within seconds, no checkpoint`, async function () {
      const runDir = path.join(suite.dir, sig);
      const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
        training: { max_steps: 4, max_epochs: null, threads: 1 },
        validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 8 },
        // 12 s: a "still waiting" line every 3 s (a quarter of it); the signal comes well before the timeout.
        distributed: { backend: 'gloo', timeout_minutes: 0.2 },
      });
      const child = startTrain(['--config', cfg], {
        RANK: '0',
        WORLD_SIZE: '2',
        LOCAL_RANK: '0',
        LOCAL_WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(await freePort()),
      });
      let stderr = '';
      child.child.stderr!.on('data', (c: string) => (stderr += c));
      await child.waitForLine(/^Joining a 2-rank job at 127\.0\.0\.1:\d+/);
      // Waiting in the rendezvous is never silent: the first "still waiting" line comes after 3 s.
      for (const t0 = Date.now(); !stderr.includes('still waiting to join') && Date.now() - t0 < 10_000;)
        await new Promise((res) => setTimeout(res, 100));
      const sent = Date.now();
      child.child.kill(sig);
      const r = await child.done;
      const seconds = (Date.now() - sent) / 1000;
      expect(r.code, describeRun(r)).to.equal(code);
      expect(seconds, `exited ${seconds} s after the signal`).to.be.below(5);
      expect(r.stderr).to.match(
        /rank 0\/2: still waiting to join the job through rank 0's rendezvous store at 127\.0\.0\.1:\d+ after \d+ s/,
      );
      expect(r.stderr).to.contain(
        `${sig} received during start-up (before the first step): nothing to save; exiting (exit ${code}).`,
      );
      expect(fs.existsSync(runDir) ? checkpointDirs(runDir) : [], 'no checkpoint').to.deep.equal([]);
      expect(fs.existsSync(path.join(runDir, 'run.lock')), 'no run lock left behind').to.equal(false);
    });
  }
});
