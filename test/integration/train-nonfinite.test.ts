/**
 * Training that cannot make progress ends cleanly. Real `node lib/train.js` children on the tiny debug-derived
 * config:
 *  - every step non-finite from step 3 on (CTCLIP_TEST_FAULT non-finite-from=3): once
 *    training.max_consecutive_skipped_steps steps in a row were skipped the run stops with exit 1 and NON_FINITE,
 *    naming the shard file and key of every sample of the last skipped step, with the checkpoint of step 2 intact
 *    and nothing written after it, the `end` event (status failed) and the run report written (it used to skip
 *    forever);
 *  - more bad samples than data.max_bad_samples (sample JSON members corrupted after indexing): exit 1 with the
 *    loader's DATA_ERROR message, no stack trace, the `end` event and the run report written (it used to end in an
 *    unhandled rejection with a stack trace and nothing closed).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointManager } from '../../lib/checkpoint';
import { readMetricsJsonl } from '../../lib/logging/jsonl';
import {
  checkpointDirs,
  describeRun,
  runTrain,
  writeTrainConfig,
  trainSuite,
  fixedStepsTraining,
} from '../helpers/train-fixtures';

interface IndexFile {
  shards: { file: string; size: number; mtimeMs: number }[];
  samples: { shard: number; key: string; json: [number, number] }[];
}

function endEvent(runDir: string): Record<string, unknown> {
  const events = readMetricsJsonl(path.join(runDir, 'metrics.jsonl'));
  const last = events[events.length - 1] as unknown as Record<string, unknown>;
  expect(last.type, 'the last event of metrics.jsonl').to.equal('end');
  expect(events.filter((e) => e.type === 'end')).to.have.length(1);
  return last;
}

/** Lines of a stack trace ("    at fn (file:line)"). */
const STACK = /^\s+at .+[:(]/m;

describe('train: runs that cannot make progress end cleanly', function () {
  this.timeout(180_000);
  const suite = trainSuite('train-nonfinite');

  it('consecutive non-finite steps: exit 1 at training.max_consecutive_skipped_steps, naming the samples; the last checkpoint intact', async function () {
    const runDir = path.join(suite.dir, 'cap');
    const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
      training: {
        max_steps: 6,
        max_epochs: null,
        warmup_steps: 2,
        save_every_n_steps: 2,
        save_every_n_epochs: null,
        threads: 1,
        max_consecutive_skipped_steps: 3,
      },
      validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 8 },
      logging: { log_every_n_steps: 1 },
    });
    const r = await runTrain(['--config', cfg], { CTCLIP_TEST_FAULT: 'non-finite-from=3' });
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.stderr).to.not.match(STACK);
    for (let i = 1; i <= 3; i++) expect(r.stderr).to.contain(`warning: step 3 skipped: non-finite loss or gradients`);
    expect(r.stderr).to.contain('3 in a row (the run stops at training.max_consecutive_skipped_steps = 3)');
    const m =
      /^ctclip train: (3 consecutive training steps had a non-finite loss or gradient norm and were skipped \(training\.max_consecutive_skipped_steps = 3\); stopped before step 3\..*) \[NON_FINITE\]$/m.exec(
        r.stderr,
      );
    expect(m, describeRun(r)).to.not.equal(null);
    const message = (m as RegExpExecArray)[1];
    // every sample of the skipped step (data.batch_size 16 of the debug config): its shard file and key
    const named = [...message.matchAll(/(\S+\.tar) key '([^']+)'/g)];
    expect(named).to.have.length(16);
    for (const [, shard, key] of named) {
      expect(fs.existsSync(shard), shard).to.equal(true);
      expect(key).to.match(/^\d{6}_\d{6}$/);
    }
    expect(message).to.contain('used 16 sample(s)');
    expect(message).to.contain('The last checkpoint (step 2) is untouched.');

    // the checkpoint of step 2 is the last thing written, and it verifies
    expect(checkpointDirs(runDir).map((d) => path.basename(d))).to.deep.equal(['ckpt-step00000002']);
    expect(fs.readdirSync(runDir).filter((n) => n.startsWith('.tmp-'))).to.deep.equal([]);
    const manager = new CheckpointManager({ dir: runDir, keepLastN: 3, readOnly: true, onLog: () => undefined });
    const v = await manager.verify(path.join(runDir, 'ckpt-step00000002'));
    expect(v.ok, v.problems.join('; ')).to.equal(true);
    expect((await manager.resolve('latest'))?.path).to.equal(path.join(runDir, 'ckpt-step00000002'));
    const end = endEvent(runDir);
    expect(end).to.include({ step: 2, status: 'failed', code: 'NON_FINITE' });
    expect(end.error).to.equal(message);
    expect(fs.existsSync(path.join(runDir, 'report.html')), 'the run report').to.equal(true);
    expect(r.stdout).to.contain('Training failed at step 2/6');
  });

  it('more bad samples than data.max_bad_samples: exit 1 with the message, no stack trace, the end event and the report', async function () {
    // A private copy of the training shards whose JSON members of 3 samples are garbage (same size), with the index
    // updated to the new file times, so the index is current and the loader meets the damage while training.
    const train = path.join(suite.dir, 'bad-train');
    fs.cpSync(path.dirname(suite.data.trainPattern), train, { recursive: true });
    const indexFile = path.join(train, 'ctclip-index.json');
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as IndexFile;
    const victims = [3, 20, 41].map((i) => index.samples[i]);
    for (const s of victims) {
      const fd = fs.openSync(path.join(train, index.shards[s.shard].file), 'r+');
      fs.writeSync(fd, Buffer.alloc(s.json[1], 'x'), 0, s.json[1], s.json[0]);
      fs.closeSync(fd);
    }
    for (const sh of index.shards) {
      const st = fs.statSync(path.join(train, sh.file));
      sh.size = st.size;
      sh.mtimeMs = st.mtimeMs;
    }
    fs.writeFileSync(indexFile, JSON.stringify(index));
    const pattern = path.join(train, path.basename(suite.data.trainPattern));

    const runDir = path.join(suite.dir, 'bad-samples');
    const cfg = writeTrainConfig(suite.dir, { ...suite.data, trainPattern: pattern }, runDir, {
      data: { max_bad_samples: 1 },
      training: fixedStepsTraining(8),
      validation: { eval_every_n_steps: null, eval_every_n_epochs: null, eval_samples: 8 },
      logging: { log_every_n_steps: 1 },
    });
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.stderr, describeRun(r)).to.not.match(STACK);
    const m = /^ctclip train: (.*exceed the error budget data\.max_bad_samples = 1.*) \[DATA_ERROR\]$/m.exec(r.stderr);
    expect(m, describeRun(r)).to.not.equal(null);
    const victimKeys = victims.map((s) => s.key);
    expect(
      victimKeys.some((k) => (m as RegExpExecArray)[1].includes(`key '${k}'`)),
      'names the last bad sample',
    ).to.equal(true);
    const end = endEvent(runDir);
    expect(end).to.include({ status: 'failed', code: 'DATA_ERROR', error: (m as RegExpExecArray)[1] });
    expect(fs.existsSync(path.join(runDir, 'report.html')), 'the run report').to.equal(true);
    expect(checkpointDirs(runDir)).to.deep.equal([]);
  });
});
