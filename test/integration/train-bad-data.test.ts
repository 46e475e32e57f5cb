/**
 * Bad data through a real training run (`node lib/train.js`, the debug config on synthetic shards): a NaN label
 * and an all-NaN volume in the validation set, a volume with one +Inf voxel in the training set. The run
 * completes (the first validation used to die with exit 2 and the usage text), each bad sample is skipped with
 * a warning naming shard and key, and the per-reason counts reach metrics.jsonl and the run report.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { indexShards } from '../../lib/data/shard-index';
import { writeSynthDataset, type SynthResult } from '../../lib/data/synth';
import {
  DEMO_CLASSES,
  describeRun,
  fixedStepsTraining,
  runTrain,
  trainDataIn,
  trainerScratch,
  writeTrainConfig,
} from '../helpers/train-fixtures';

function overwrite(r: SynthResult, i: number, member: 'bin' | 'labels', data: Buffer, at = 0): string {
  const s = r.index.samples[i];
  const extent = member === 'bin' ? s.bin : s.labels!;
  const fd = fs.openSync(r.shardPaths[s.shard], 'r+');
  fs.writeSync(fd, data, 0, data.length, extent[0] + at);
  fs.closeSync(fd);
  return s.key;
}

/** Four steps, validated at the end, no checkpoints. */
const FOUR_STEPS = {
  training: fixedStepsTraining(4),
  validation: { eval_every_n_steps: 4, eval_every_n_epochs: null, eval_samples: null },
};

describe('train: bad samples in the training and validation data', function () {
  this.timeout(300_000);
  const scratch = trainerScratch('train-bad');

  it('completes, warns per bad sample, and reports the counts by reason in metrics.jsonl and report.html', async function () {
    const dir = scratch.dir;
    const shape: [number, number, number] = [32, 32, 12];
    const train = await writeSynthDataset({
      out: path.join(dir, 'train'),
      samples: 32,
      shape,
      shards: 2,
      seed: 1,
      classes: DEMO_CLASSES,
    });
    const valid = await writeSynthDataset({
      out: path.join(dir, 'valid'),
      samples: 8,
      shape,
      shards: 1,
      seed: 2,
      classes: DEMO_CLASSES,
    });
    const nanLabel = overwrite(valid, 2, 'labels', Buffer.from(Float32Array.of(0, NaN, 1, 0).buffer));
    const nanVolume = overwrite(valid, 5, 'bin', Buffer.alloc(valid.index.sampleBytes, Buffer.from([0x00, 0x7e])));
    const infVoxel = overwrite(train, 3, 'bin', Buffer.from([0x00, 0x7c]), 2 * 1000);
    await indexShards(train.pattern, { classNames: DEMO_CLASSES });
    await indexShards(valid.pattern, { classNames: DEMO_CLASSES });
    const data = trainDataIn(dir, train.pattern, valid.pattern);
    const runDir = path.join(dir, 'run');
    const cfg = writeTrainConfig(dir, data, runDir, FOUR_STEPS);

    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stdout).to.match(/data: 32 samples \(0 excluded at index time\)/);
    expect(r.stderr).to.match(
      new RegExp(
        `skipping bad sample: shard 'shard-000000\\.tar' key '${infVoxel}': non-finite volume: 1 of 12288 voxels .*first at element 1000: Infinity`,
      ),
    );
    expect(r.stderr).to.match(
      new RegExp(
        `skipping bad sample: shard 'shard-000000\\.tar' key '${nanVolume}': non-finite volume: 12288 of 12288 voxels`,
      ),
    );
    expect(r.stdout).to.match(
      /Bad samples: train 1 \(0 at index time, 1 while reading: non_finite_volume 1\); val 2 \(1 at index time, 1 while reading: bad_label 1, non_finite_volume 1\)/,
    );
    expect(fs.readFileSync(path.join(dir, 'valid', 'ctclip-index.json'), 'utf8')).to.contain(
      `"key":"${nanLabel}","reason":"bad label: class index 1 (\\"${DEMO_CLASSES[1]}\\") is NaN, expected 0 or 1","code":"bad_label"`,
    );

    const events = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>);
    const val = events.find((e) => e.type === 'val');
    expect(val?.n_samples).to.equal(6);
    const end = events[events.length - 1];
    expect(end.type).to.equal('end');
    expect(end.bad_samples).to.deep.equal({
      train: { excluded_at_index: 0, bad_at_read: 1, budget: 4, by_reason: { non_finite_volume: 1 } },
      val: { excluded_at_index: 1, bad_at_read: 1, budget: 4, by_reason: { bad_label: 1, non_finite_volume: 1 } },
    });
    const html = fs.readFileSync(path.join(runDir, 'report.html'), 'utf8');
    expect(html).to.match(
      /<tr data-reason="non_finite_volume"><td[^>]*>non_finite_volume<\/td><td>1<\/td><td>1<\/td><\/tr>/,
    );
    expect(html).to.match(/<tr data-reason="bad_label"><td[^>]*>bad_label<\/td><td>0<\/td><td>1<\/td><\/tr>/);

    // Past the budget (1: the index-time exclusion fits, the read-time NaN volume of the validation does not):
    // exit 1 naming the counts; the failed run's end event and report still carry the counts by reason.
    const strictDir = path.join(dir, 'strict');
    const strictCfg = writeTrainConfig(dir, data, strictDir, {
      data: { max_bad_samples: 1 },
      ...FOUR_STEPS,
    });
    const failed = await runTrain(['--config', strictCfg]);
    expect(failed.code, describeRun(failed)).to.equal(1);
    expect(failed.stderr).to.match(
      /2 bad samples exceed the error budget data\.max_bad_samples = 1 \(1 while reading \+ 1 excluded at index time; last: shard 'shard-000000\.tar' key '[^']+': non-finite volume/,
    );
    const last = JSON.parse(
      fs.readFileSync(path.join(strictDir, 'metrics.jsonl'), 'utf8').trim().split('\n').pop()!,
    ) as Record<string, any>;
    expect(last).to.deep.include({ type: 'end', status: 'failed', code: 'DATA_ERROR' });
    expect(last.bad_samples.val).to.deep.equal({
      excluded_at_index: 1,
      bad_at_read: 1,
      budget: 1,
      by_reason: { bad_label: 1, non_finite_volume: 1 },
    });
    expect(fs.readFileSync(path.join(strictDir, 'report.html'), 'utf8')).to.contain(
      'validation: 2 sample(s) lost (1 excluded at index time, 1 skipped while reading; budget 1)',
    );
  });
});
