/**
 * The training run's metrics sink (RunLog: metrics.jsonl + TensorBoard) and the test fault spec parser.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { listEventFiles, readEvents, readMetricsJsonl, readScalars, SESSION_LOG_START } from '../../lib/logging';
import { RunLog } from '../../lib/logging/run-log';
import { Faults, parseFaults } from '../../lib/train/faults';

describe('logging: RunLog', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-runlog-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('train/val/checkpoint/end records go to metrics.jsonl in order; finite numbers to TensorBoard (rss_gb jsonl only)', () => {
    const log = RunLog.open(dir, { tensorboardDir: path.join(dir, 'tb') });
    log.train(1, 0.5, { loss: 2, lr: 1e-4, grad_norm: NaN, rss_gb: 1.5 });
    log.val(
      1,
      0.5,
      { macro_auroc: 0.75, macro_f1: NaN },
      { Atelectasis: 0.5, Emphysema: NaN },
      { n_samples: 4, per_class: { Atelectasis: { auroc: 0.5 } } },
    );
    log.event('checkpoint', 1, 0.5, { path: 'p', kind: 'eval', best: true });
    log.event('end', 1, 0.5, { status: 'completed' });
    log.close();
    log.train(2, 1, { loss: 1 }); // after close: dropped
    const events = readMetricsJsonl(path.join(dir, 'metrics.jsonl')).map(({ time: _time, ...e }) => e);
    expect(events).to.deep.equal([
      { type: 'train', step: 1, epoch: 0.5, loss: 2, lr: 1e-4, grad_norm: null, rss_gb: 1.5 },
      {
        type: 'val',
        step: 1,
        epoch: 0.5,
        macro_auroc: 0.75,
        macro_f1: null,
        n_samples: 4,
        per_class: { Atelectasis: { auroc: 0.5 } },
      },
      { type: 'checkpoint', step: 1, epoch: 0.5, path: 'p', kind: 'eval', best: true },
      { type: 'end', step: 1, epoch: 0.5, status: 'completed' },
    ]);
    const scalars = readScalars(path.join(dir, 'tb'));
    expect([...scalars.keys()].sort()).to.deep.equal([
      'train/epoch',
      'train/loss',
      'train/lr',
      'val/macro_auroc',
      'val/per_class_auroc/Atelectasis',
    ]);
    expect(scalars.get('train/loss')!.map((x) => [x.step, x.value])).to.deep.equal([[1, 2]]);
  });

  it("a resume's TensorBoard file starts with the restart after the resumed step: each step once", () => {
    const tb = path.join(dir, 'tb');
    let log = RunLog.open(dir, { tensorboardDir: tb });
    for (let s = 1; s <= 5; s++) log.train(s, 0, { loss: s });
    log.close();
    log = RunLog.open(dir, { resumeStep: 3, tensorboardDir: tb });
    for (let s = 4; s <= 6; s++) log.train(s, 0, { loss: 10 * s });
    log.close();
    const resumedFile = listEventFiles(tb)[1];
    expect(readEvents(resumedFile).find((e) => e.sessionStatus === SESSION_LOG_START)?.step).to.equal(4);
    expect(
      readScalars(tb)
        .get('train/loss')!
        .map((p) => [p.step, p.value]),
    ).to.deep.equal([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 40],
      [5, 50],
      [6, 60],
    ]);
  });

  it('a resume keeps the records up to the step; RunLog.none() writes nothing', () => {
    let log = RunLog.open(dir);
    log.train(1, 0, { loss: 1 });
    log.train(2, 0, { loss: 2 });
    log.close();
    log = RunLog.open(dir, { resumeStep: 1 });
    log.close();
    expect(readMetricsJsonl(path.join(dir, 'metrics.jsonl')).map((e) => `${e.type}@${e.step}`)).to.deep.equal([
      'train@1',
      'resume@1',
    ]);
    expect(fs.existsSync(path.join(dir, 'tb'))).to.equal(false);
    const none = RunLog.none();
    none.train(1, 0, { loss: 1 });
    none.event('end', 1, 0, {});
    none.close();
  });
});

describe('train: test faults (CTCLIP_TEST_FAULT)', () => {
  it('parses every kind and refuses anything else, naming the item', () => {
    expect(parseFaults(undefined)).to.deep.equal({});
    expect(
      parseFaults('kill-after-step=3, kill-before-commit=4,enospc=5,non-finite=6,non-finite-from=7'),
    ).to.deep.equal({
      killAfterStep: 3,
      killBeforeCommitStep: 4,
      enospcStep: 5,
      nonFiniteStep: 6,
      nonFiniteFromStep: 7,
    });
    expect(() => parseFaults('kill=3')).to.throw(/CTCLIP_TEST_FAULT: cannot parse 'kill=3'/);
  });

  it('non-finite fires on the first attempt at its step only; non-finite-from on every attempt from its step', () => {
    const once = new Faults({ nonFiniteStep: 2 });
    expect([1, 2, 2, 3].map((k) => once.nonFiniteAt(k))).to.deep.equal([false, true, false, false]);
    const from = new Faults({ nonFiniteFromStep: 2 });
    expect([1, 2, 2, 3].map((k) => from.nonFiniteAt(k))).to.deep.equal([false, true, true, true]);
  });

  it("enospc makes only the save of its step fail with ENOSPC; without kill-before-commit the hooks are the caller's", () => {
    const f = new Faults({ enospcStep: 4 });
    expect(f.beforeModelWrite(3)).to.equal(undefined);
    expect(f.beforeModelWrite(4)).to.throw(/ENOSPC/);
    const hooks = { beforeCommit: () => undefined };
    expect(f.checkpointHooks(hooks)).to.equal(hooks);
  });
});
