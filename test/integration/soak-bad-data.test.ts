/**
 * Soak: the debug config trains on a synthetic set in which 5 % of the samples carry each class of corruption
 * a real corpus shows — NaN / ±Inf volumes, bad label values, members cut short by a truncated shard, and report
 * texts over `data.max_report_bytes` — in the training and the validation split alike (20 % bad in all, every
 * bad sample with exactly one defect).
 *
 * The run must train to completion with a finite loss at every step (no step skipped), count the excluded
 * samples exactly, per reason, in the index, metrics.jsonl (`end.bad_samples`) and report.html, and drop no
 * clean sample: the index keeps exactly the clean samples plus the NaN volumes (which only reading can find),
 * the reader skips exactly those NaN volumes, and validation scores exactly the clean validation samples.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { excludedCount, indexShards, type ExcludedSample, type ShardIndexFile } from '../../lib/data/shard-index';
import { defaultSynthReport, writeSynthDataset, type SynthResult } from '../../lib/data/synth';
import { Rng } from '../../lib/rng';
import {
  DEMO_CLASSES,
  describeRun,
  runTrain,
  trainDataIn,
  trainerScratch,
  writeTrainConfig,
} from '../helpers/train-fixtures';

const PER_SHARD = 20;
/** The default data.max_report_bytes (1 MiB): the oversize reports are a little larger. */
const MAX_REPORT_BYTES = 1024 * 1024;

type Defect = 'non_finite_volume' | 'bad_label' | 'truncated' | 'oversize_report';

interface Plan {
  /** Sample index → its defect. */
  defects: Map<number, Defect>;
  /** Keys per defect, and the clean keys. */
  keys: Record<Defect, string[]>;
  clean: string[];
}

/**
 * Which samples get which defect: the last sample of every shard is cut short (a truncated shard can only lose its
 * tail), and three disjoint random sets of the same size (5 %) get the other defects.
 */
function planDefects(samples: number, shards: number, seed: number): Map<number, Defect> {
  const defects = new Map<number, Defect>();
  for (let k = 0; k < shards; k++) defects.set((k + 1) * PER_SHARD - 1, 'truncated');
  const rest = Array.from(Rng.derive(seed, 'soak').permutation(samples)).filter((i) => !defects.has(i));
  const each = samples / PER_SHARD; // 5 %
  (['non_finite_volume', 'bad_label', 'oversize_report'] as const).forEach((d, j) => {
    for (const i of rest.slice(j * each, (j + 1) * each)) defects.set(i, d);
  });
  return defects;
}

function keyOf(i: number): string {
  return `${String(Math.floor(i / PER_SHARD)).padStart(6, '0')}_${String(i).padStart(6, '0')}`;
}

/** Writes a split of `samples` samples in samples/20 shards with 5 % of each defect; returns what went where. */
async function writeCorruptSplit(
  out: string,
  samples: number,
  seed: number,
): Promise<{ split: SynthResult; plan: Plan }> {
  const shards = samples / PER_SHARD;
  const defects = planDefects(samples, shards, seed);
  let next = 0;
  const split = await writeSynthDataset({
    out,
    samples,
    shape: [32, 32, 12],
    shards,
    seed,
    classes: DEMO_CLASSES,
    // Called once per sample, in order: pad the chosen reports past the limit with words the reports use.
    reportFn: (labels, classNames, rng, prompts) => {
      const r = defaultSynthReport(labels, classNames, rng, prompts);
      if (defects.get(next++) !== 'oversize_report') return r;
      return {
        findings: r.findings,
        impressions: `${r.impressions} ${'No acute findings. '.repeat(Math.ceil(MAX_REPORT_BYTES / 19))}`,
      };
    },
  });
  const byKey = new Map(split.index.samples.map((s) => [s.key, s]));
  const fds = split.shardPaths.map((p) => fs.openSync(p, 'r+'));
  try {
    for (const [i, d] of defects) {
      const s = byKey.get(keyOf(i));
      if (d === 'oversize_report') {
        expect(s, `sample ${i}: synth already excluded the oversize report`).to.equal(undefined);
        continue;
      }
      expect(s, `sample ${i}`).to.not.equal(undefined);
      const fd = fds[s!.shard];
      if (d === 'non_finite_volume') {
        // One NaN voxel, one +Inf, one -Inf, or a whole volume of NaN (float16 bits, little-endian).
        const bits = [0x7e00, 0x7c00, 0xfc00][i % 4];
        const bytes =
          bits === undefined
            ? Buffer.alloc(s!.bin[1], Buffer.from([0x00, 0x7e]))
            : Buffer.from([bits & 0xff, bits >> 8]);
        fs.writeSync(
          fd,
          bytes,
          0,
          bytes.length,
          s!.bin[0] + (bits === undefined ? 0 : 2 * ((i * 977) % (32 * 32 * 12))),
        );
      } else if (d === 'bad_label') {
        const values = Float32Array.of(0, 1, 0, 1);
        values[i % 4] = [NaN, 0.5, 2, Infinity][(i >> 2) % 4];
        fs.writeSync(fd, Buffer.from(values.buffer), 0, 16, s!.labels![0]);
      } else {
        // The shard ends halfway through this sample's volume (no end-of-archive blocks either).
        fs.ftruncateSync(fd, s!.bin[0] + Math.floor(s!.bin[1] / 2));
      }
    }
  } finally {
    fds.forEach((fd) => fs.closeSync(fd));
  }
  // The shards changed since synth indexed them: index them again, as `ctclip shards index` would.
  const { index } = await indexShards(split.pattern, { classNames: DEMO_CLASSES });
  const keys: Record<Defect, string[]> = { non_finite_volume: [], bad_label: [], truncated: [], oversize_report: [] };
  const clean: string[] = [];
  for (let i = 0; i < samples; i++) {
    const d = defects.get(i);
    (d ? keys[d] : clean).push(keyOf(i));
  }
  return { split: { ...split, index }, plan: { defects, keys, clean } };
}

/**
 * Excluded sample keys of an index by reason code. A truncated shard also gets a shard-level entry (key '*') for
 * the samples lost after the cut: none here, the cut is in the last sample. Those are returned apart.
 */
function excludedByReason(index: ShardIndexFile): { samples: Record<string, string[]>; shards: ExcludedSample[] } {
  const samples: Record<string, string[]> = {};
  for (const x of index.excluded) if (x.key !== '*') (samples[x.code ?? 'excluded'] ??= []).push(x.key);
  return { samples, shards: index.excluded.filter((x) => x.key === '*') };
}

describe('soak: training through 5 % of every kind of corrupt sample', function () {
  this.timeout(600_000);
  const scratch = trainerScratch('soak');

  it('trains to completion, finite loss at every step, exact per-reason counts, no clean sample dropped', async function () {
    const dir = scratch.dir;
    const train = await writeCorruptSplit(path.join(dir, 'train'), 640, 11);
    const valid = await writeCorruptSplit(path.join(dir, 'valid'), 160, 12);

    // Index time finds all but the NaN volumes, each under its reason, and keeps every clean sample.
    for (const [name, { split, plan }] of [
      ['train', train],
      ['valid', valid],
    ] as const) {
      const n = plan.clean.length / 16; // 5 % of the split
      const { samples: ex, shards } = excludedByReason(split.index);
      expect(
        shards.map((x) => [x.code, excludedCount(x)]),
        `${name} shard-level entries`,
      ).to.deep.equal(split.shardPaths.map(() => ['truncated_shard', 0]));
      expect(Object.keys(ex).sort(), name).to.deep.equal(['bad_label', 'oversize_report', 'truncated_member']);
      expect(ex.bad_label.sort(), `${name} bad labels`).to.deep.equal(plan.keys.bad_label);
      expect(ex.oversize_report.sort(), `${name} oversize reports`).to.deep.equal(plan.keys.oversize_report);
      expect(ex.truncated_member.sort(), `${name} truncated`).to.deep.equal(plan.keys.truncated);
      expect(split.index.samples.map((s) => s.key).sort(), `${name} kept`).to.deep.equal(
        [...plan.clean, ...plan.keys.non_finite_volume].sort(),
      );
      expect(plan.keys.non_finite_volume).to.have.length(n);
    }

    const data = trainDataIn(dir, train.split.pattern, valid.split.pattern);
    const runDir = path.join(dir, 'run');
    // The debug config's own schedule (12 epochs, validation and a checkpoint every 2); the budget admits the 20 %.
    const cfg = writeTrainConfig(dir, data, runDir, {
      data: { max_bad_samples: 200 },
      logging: { log_every_n_steps: 1 },
    });
    const r = await runTrain(['--config', cfg]);
    expect(r.code, describeRun(r)).to.equal(0);
    expect(r.stdout).to.contain(
      'data: 544 samples (96 excluded at index time: bad_label 32, oversize_report 32, truncated_member 32)',
    );
    expect(r.stdout).to.contain('validation: 136 of 136 samples');

    // The reader skips exactly the NaN / ±Inf volumes, naming each (train and validation alike), nothing else.
    // (A sample met again, in a later epoch or validation, is skipped as known bad without being read.)
    const warnings = [...r.stderr.matchAll(/skipping bad sample: shard '[^']+' key '([^']+)': .*\[([a-z_]+)\]/g)];
    expect(new Set(warnings.map((m) => m[2]))).to.deep.equal(new Set(['non_finite_volume']));
    const skipped = new Set(warnings.map((m) => m[1]));
    expect([...skipped].sort()).to.deep.equal(
      [...train.plan.keys.non_finite_volume, ...valid.plan.keys.non_finite_volume].sort(),
    );

    const events = fs
      .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, any>);
    const steps = events.filter((e) => e.type === 'train');
    expect(steps.map((e) => e.step)).to.deep.equal(Array.from({ length: 408 }, (_, i) => i + 1)); // 544 / 16 × 12 epochs
    for (const e of steps) {
      expect(Number.isFinite(e.loss), `step ${e.step} loss ${e.loss}`).to.equal(true);
      expect(e.skipped_steps, `step ${e.step}`).to.equal(0);
    }
    const vals = events.filter((e) => e.type === 'val');
    expect(vals.map((e) => e.n_samples)).to.deep.equal([128, 128, 128, 128, 128, 128]); // every clean validation sample, each time

    const end = events[events.length - 1];
    expect(end).to.deep.include({ type: 'end', status: 'completed' });
    expect(end.bad_samples).to.deep.equal({
      train: {
        excluded_at_index: 96,
        bad_at_read: 32,
        budget: 200,
        by_reason: { bad_label: 32, oversize_report: 32, truncated_member: 32, non_finite_volume: 32 },
      },
      val: {
        excluded_at_index: 24,
        bad_at_read: 8,
        budget: 200,
        by_reason: { bad_label: 8, oversize_report: 8, truncated_member: 8, non_finite_volume: 8 },
      },
    });

    // The run report lists every reason with its train and validation counts.
    const html = fs.readFileSync(path.join(runDir, 'report.html'), 'utf8');
    for (const reason of ['bad_label', 'oversize_report', 'truncated_member', 'non_finite_volume']) {
      expect(html, reason).to.match(
        new RegExp(`<tr data-reason="${reason}"><td[^>]*>${reason}</td><td>32</td><td>8</td></tr>`),
      );
    }
  });
});
