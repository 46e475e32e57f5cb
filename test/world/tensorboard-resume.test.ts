/**
 * TensorBoard after `--resume`, read by the real `tensorboard` package's EventAccumulator: a run killed after a
 * checkpoint leaves points past that checkpoint in its event file (here: killed inside a later save, after that
 * step's validation flushed the file); the resumed run's file starts with the restart
 * (SessionLog START), so TensorBoard shows every step once, with the resumed run's values (metrics.jsonl).
 */
import { expect } from 'chai';
import * as path from 'path';
import { readMetricsJsonl } from '../../lib/logging';
import { requirePython, runPython } from '../helpers/python';
import { describeRun, runTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

/** Prints {tag: [[step, value], …]} of every scalar tag EventAccumulator loads from the folder argv[1]. */
const ACCUMULATE = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}))
`;

describe('world: TensorBoard after --resume (EventAccumulator)', function () {
  this.timeout(600_000);
  const suite = trainSuite('tb-resume');

  it('a run killed inside the save of step 10 (last checkpoint 8) and resumed shows every step once, with the resumed values', async function () {
    const py = requirePython(this, ['tensorboard']);
    const runDir = path.join(suite.dir, 'run');
    const cfg = writeTrainConfig(suite.dir, suite.data, runDir, {
      training: { max_steps: 12, max_epochs: null, save_every_n_steps: 4, warmup_steps: 2, threads: 1 },
      // Validation at 5, 10 and 12 flushes the event file: the killed process's steps 9 and 10 are on disk.
      validation: { eval_every_n_steps: 5, eval_samples: 8 },
      logging: { log_every_n_steps: 1, use_tensorboard: true },
    });
    const killed = await runTrain(['--config', cfg], { CTCLIP_TEST_FAULT: 'kill-before-commit=10' });
    expect(killed.signal, describeRun(killed)).to.equal('SIGKILL');
    const before = JSON.parse(runPython(py, ACCUMULATE, [path.join(runDir, 'tensorboard')])) as Record<
      string,
      [number, number][]
    >;
    expect(before['train/loss'].map(([s]) => s)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(before['val/weighted_auroc'].map(([s]) => s)).to.deep.equal([5, 10]);

    const resumed = await runTrain(['--config', cfg, '--resume', 'latest']);
    expect(resumed.code, describeRun(resumed)).to.equal(0);
    const scalars = JSON.parse(runPython(py, ACCUMULATE, [path.join(runDir, 'tensorboard')])) as Record<
      string,
      [number, number][]
    >;
    const events = readMetricsJsonl(path.join(runDir, 'metrics.jsonl'));
    const trainLoss = new Map(events.filter((e) => e.type === 'train').map((e) => [e.step, e.loss as number]));
    const valAuroc = new Map(events.filter((e) => e.type === 'val').map((e) => [e.step, e.weighted_auroc as number]));
    expect([...trainLoss.keys()]).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(scalars['train/loss'].map(([s]) => s)).to.deep.equal([...trainLoss.keys()]);
    for (const [step, value] of scalars['train/loss'])
      expect(value, `train/loss at step ${step}`).to.equal(Math.fround(trainLoss.get(step) as number));
    expect(scalars['val/weighted_auroc'].map(([s]) => s)).to.deep.equal([5, 10, 12]);
    for (const [step, value] of scalars['val/weighted_auroc'])
      expect(value, `val/weighted_auroc at step ${step}`).to.equal(Math.fround(valAuroc.get(step) as number));
    for (const [tag, points] of Object.entries(scalars)) {
      const steps = points.map(([s]) => s);
      expect(steps, `${tag}: each step once, in order`).to.deep.equal([...new Set(steps)].sort((a, b) => a - b));
    }
  });
});
