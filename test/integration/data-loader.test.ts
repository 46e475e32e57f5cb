/**
 * Loaders over real files: W=2 ranks with prefetch/readers 2, exact epochs, metadata-only resume (also with
 * a changed world size), bad samples at read time (skip, deterministic replacement, per-epoch counts,
 * budget), the validation loader, memory accounting, and `ctclip synth` determinism.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { openIndex, type ShardIndex } from '../../lib/data/shard-index';
import { TrainLoader, EvalLoader, type Batch, type TrainLoaderOptions } from '../../lib/data/loader';
import type { DataPosition } from '../../lib/data/sampler';
import { writeSynthDataset, type SynthResult } from '../../lib/data/synth';
import { run as synthCommand } from '../../lib/commands/synth';
import { CT_RATE_CLASSES } from '../../lib/data/classes';
import { hasCode } from '../../lib/errors';
import { makeTmpDir, removeDir } from '../helpers/data-fixtures';

const SHAPE: [number, number, number] = [16, 16, 8];
const N = 23;

interface Seen {
  keys: string[];
  indices: number[];
  volumes: Buffer[];
  batchSizes: number[];
  positions: DataPosition[];
}

async function collect(gen: AsyncGenerator<Batch>, limit = Infinity): Promise<Seen> {
  const s: Seen = { keys: [], indices: [], volumes: [], batchSizes: [], positions: [] };
  let n = 0;
  for await (const b of gen) {
    s.keys.push(...b.keys);
    s.indices.push(...b.indices);
    s.volumes.push(Buffer.from(b.volumes)); // copy: the buffer goes back to the pool
    s.batchSizes.push(b.keys.length);
    s.positions.push(b.position);
    b.release();
    if (++n >= limit) break;
  }
  return s;
}

function directRead(index: ShardIndex, i: number): Buffer {
  const s = index.samples[i];
  const fd = fs.openSync(index.shardPaths[s.shard], 'r');
  try {
    const b = Buffer.alloc(s.bin[1]);
    fs.readSync(fd, b, 0, b.length, s.bin[0]);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

describe('data: loaders over synthetic shards', function () {
  let dir: string;
  let synth: SynthResult;
  let index: ShardIndex;
  const base: Omit<TrainLoaderOptions, 'rank' | 'worldSize'> = {
    batchSize: 2,
    gradAccumSteps: 2,
    seed: 5,
    prefetch: 2,
    readers: 2,
    onWarning: () => undefined,
  };

  before(async () => {
    dir = makeTmpDir('loader');
    synth = await writeSynthDataset({ out: path.join(dir, 'ds'), samples: N, shape: SHAPE, shards: 3, seed: 9 });
    index = openIndex(synth.pattern);
  });
  after(() => removeDir(dir));

  it('W=2 × prefetch 2 × readers 2: exactly S·A·B samples per rank, none twice, volumes byte-exact', async () => {
    const loaders = [0, 1].map((rank) => new TrainLoader(index, { ...base, worldSize: 2, rank }));
    const [a, b] = await Promise.all(loaders.map((l) => collect(l.batches({ epoch: 0, globalSamplePosition: 0 }))));
    const g = loaders[0].sampler.geometry; // N=23, B·W·A = 8 → S = 2, 16 used, 7 dropped
    expect(g.stepsPerEpoch).to.equal(2);
    expect(g.droppedPerEpoch).to.equal(7);
    for (const s of [a, b]) {
      expect(s.batchSizes).to.deep.equal([2, 2, 2, 2]);
      expect(s.indices).to.have.length(g.samplesPerRankPerEpoch);
    }
    const union = [...a.indices, ...b.indices];
    expect(new Set(union).size).to.equal(16);
    expect(a.positions[a.positions.length - 1]).to.deep.equal({ epoch: 1, globalSamplePosition: 0 });
    expect(a.positions[0]).to.deep.equal({ epoch: 0, globalSamplePosition: 4 });
    a.indices.forEach((idx, k) => {
      const vol = a.volumes[Math.floor(k / 2)].subarray((k % 2) * index.sampleBytes, ((k % 2) + 1) * index.sampleBytes);
      expect(vol.equals(directRead(index, idx)), `sample ${idx}`).to.equal(true);
    });
    const st = loaders[0].stats();
    expect(st.peakHeldBytes).to.be.at.most(st.expectedPeakBytes);
    expect(st.expectedPeakBytes).to.equal(2 * 2 * index.sampleBytes);
    expect(st.samplesRead).to.equal(8);
    await Promise.all(loaders.map((l) => l.close()));
  });

  it('different epochs give different orders; the same seed gives the same order; labels and reports line up', async () => {
    const l1 = new TrainLoader(index, { ...base, worldSize: 1 });
    const l2 = new TrainLoader(index, { ...base, worldSize: 1 });
    const e0 = await collect(l1.batches({ epoch: 0, globalSamplePosition: 0 }));
    const e1 = await collect(l1.batches({ epoch: 1, globalSamplePosition: 0 }));
    const again = await collect(l2.batches({ epoch: 0, globalSamplePosition: 0 }));
    expect(e0.indices).to.not.deep.equal(e1.indices);
    expect(again.indices).to.deep.equal(e0.indices);
    for await (const b of l2.batches({ epoch: 0, globalSamplePosition: 0 })) {
      for (let i = 0; i < b.keys.length; i++) {
        const n = Number(b.keys[i].split('_')[1]);
        expect(b.studyIds[i]).to.equal(synth.studyIds[n]);
        expect(Array.from(b.labels.subarray(i * 18, (i + 1) * 18))).to.deep.equal(
          Array.from(synth.labels.subarray(n * 18, (n + 1) * 18)),
        );
        expect(b.reports[i]).to.not.match(/["'()]/);
        expect(b.reports[i].split('\n')).to.have.length(2);
      }
      b.release();
    }
    await Promise.all([l1.close(), l2.close()]);
  });

  it('metadata-only resume: k batches + a fresh loader from the saved position = the uninterrupted run', async () => {
    for (const rank of [0, 1]) {
      const whole = new TrainLoader(index, { ...base, worldSize: 2, rank });
      const full = await collect(whole.batchesThrough({ epoch: 0, globalSamplePosition: 0 }, 1));
      await whole.close();
      const first = new TrainLoader(index, { ...base, worldSize: 2, rank });
      const head = await collect(first.batchesThrough({ epoch: 0, globalSamplePosition: 0 }, 1), 3);
      await first.close();
      const saved = JSON.parse(JSON.stringify(head.positions[2])) as DataPosition; // what a checkpoint stores
      expect(saved).to.deep.equal({ epoch: 0, globalSamplePosition: 12 });
      const second = new TrainLoader(index, { ...base, worldSize: 2, rank });
      const tail = await collect(second.batchesThrough(saved, 1));
      await second.close();
      expect([...head.keys, ...tail.keys]).to.deep.equal(full.keys);
      expect(Buffer.concat([...head.volumes, ...tail.volumes]).equals(Buffer.concat(full.volumes))).to.equal(true);
      expect(tail.positions[tail.positions.length - 1]).to.deep.equal({ epoch: 2, globalSamplePosition: 0 });
    }
  });

  it('resume with a changed world size: the union of the epoch never repeats a sample', async () => {
    const epoch = 3;
    const before: number[] = [];
    let saved: DataPosition = { epoch, globalSamplePosition: 0 };
    for (const rank of [0, 1]) {
      const l = new TrainLoader(index, { ...base, worldSize: 2, rank });
      const s = await collect(l.batches({ epoch, globalSamplePosition: 0 }), 1);
      await l.close();
      before.push(...s.indices);
      saved = s.positions[0];
    }
    expect(saved).to.deep.equal({ epoch, globalSamplePosition: 4 });
    const after: number[] = [];
    const counts: number[] = [];
    for (const rank of [0, 1, 2]) {
      const l = new TrainLoader(index, {
        batchSize: 1,
        gradAccumSteps: 1,
        seed: 5,
        worldSize: 3,
        rank,
        onWarning: () => undefined,
      });
      const s = await collect(l.batches(saved));
      counts.push(s.batchSizes.length);
      after.push(...s.indices);
      await l.close();
    }
    expect(new Set(counts).size).to.equal(1);
    expect(counts[0]).to.equal(Math.floor((21 - 4) / 3)); // L' = floor(23/3)·3 = 21
    const all = [...before, ...after];
    expect(new Set(all).size).to.equal(all.length);
  });

  it('validation loader: deterministic seeded subset, configurable batch size, partial last batch', async () => {
    const ev = new EvalLoader(index, { batchSize: 2, evalSamples: 5, seed: 3, prefetch: 1, readers: 2 });
    expect(ev.chosen).to.have.length(5);
    expect(ev.chosen).to.deep.equal([...ev.chosen].sort((x, y) => x - y));
    expect(ev.chosenStudyIds()).to.deep.equal(ev.chosen.map((i) => index.samples[i].studyId));
    const s = await collect(ev.batches());
    expect(s.batchSizes).to.deep.equal([2, 2, 1]);
    expect(s.indices).to.deep.equal(ev.chosen);
    const ev3 = new EvalLoader(index, { batchSize: 3, evalSamples: 5, seed: 3 });
    const again = await collect(ev3.batches());
    await ev3.close();
    expect(again.indices).to.deep.equal(ev.chosen);
    const all = new EvalLoader(index, { batchSize: 4, evalSamples: null, seed: 3, worldSize: 2, rank: 1 });
    expect(all.chosen).to.have.length(N);
    expect(all.mine).to.deep.equal(all.chosen.filter((_, k) => k % 2 === 1));
    await ev.close();
  });

  it('ctclip synth is deterministic per seed and writes CSVs, vocab and prompt sentences', async () => {
    const out1 = path.join(dir, 's1');
    const out2 = path.join(dir, 's2');
    const quiet = (fn: () => Promise<number>): Promise<number> => {
      const w = process.stdout.write.bind(process.stdout);
      const e = process.stderr.write.bind(process.stderr);
      process.stdout.write = (() => true) as typeof process.stdout.write;
      process.stderr.write = (() => true) as typeof process.stderr.write;
      return fn().finally(() => {
        process.stdout.write = w;
        process.stderr.write = e;
      });
    };
    for (const out of [out1, out2])
      expect(
        await quiet(() =>
          synthCommand([
            '--out',
            out,
            '--samples',
            '5',
            '--shape',
            '8,8,4',
            '--shards',
            '2',
            '--seed',
            '4',
            '--classes',
            '18',
          ]),
        ),
      ).to.equal(0);
    for (const f of [
      'shard-000000.tar',
      'shard-000001.tar',
      'reports.csv',
      'labels.csv',
      'metadata.csv',
      'vocab.txt',
    ]) {
      expect(fs.readFileSync(path.join(out1, f)).equals(fs.readFileSync(path.join(out2, f))), f).to.equal(true);
    }
    expect(fs.readFileSync(path.join(out1, 'labels.csv'), 'utf8').split('\n')[0]).to.equal(
      ['VolumeName', ...CT_RATE_CLASSES].join(','),
    );
    expect(fs.readFileSync(path.join(out1, 'reports.csv'), 'utf8').split('\n')[0]).to.equal(
      'VolumeName,Findings_EN,Impressions_EN',
    );
    const reports = fs.readFileSync(path.join(out1, 'reports.csv'), 'utf8');
    expect(reports).to.match(/Cardiomegaly is (not )?present\./);
    const vocab = fs.readFileSync(path.join(out1, 'vocab.txt'), 'utf8').split('\n');
    expect(vocab.slice(0, 5)).to.deep.equal(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect(vocab).to.include('cardiomegaly');
    expect(openIndex(path.join(out1, 'shard-{000000..000001}.tar')).totalSamples).to.equal(5);
    expect(await quiet(() => synthCommand(['--out', out1, '--samples', '5', '--shape', '8,8']))).to.equal(2);
  });
});

describe('data: bad samples at read time', function () {
  let dir: string;
  let synth: SynthResult;

  beforeEach(async () => {
    dir = makeTmpDir('bad');
    synth = await writeSynthDataset({ out: path.join(dir, 'ds'), samples: 20, shape: [8, 8, 4], shards: 2, seed: 2 });
  });
  afterEach(() => removeDir(dir));

  /** Corrupts (after the index was opened) the JSON of sample `i` in place, and truncates the last sample of shard 1. */
  function corrupt(index: ShardIndex): { badJson: string; truncated: string } {
    const bj = index.samples[3];
    const fd = fs.openSync(index.shardPaths[bj.shard], 'r+');
    fs.writeSync(fd, Buffer.alloc(bj.json[1], 0x7b), 0, bj.json[1], bj.json[0]); // '{{{{…'
    fs.closeSync(fd);
    const last = index.samples[index.samples.length - 1];
    fs.truncateSync(index.shardPaths[last.shard], last.bin[0] + 10);
    return { badJson: bj.key, truncated: last.key };
  }

  it('skips, warns with shard and key, replaces deterministically from the remainder, counts per epoch', async () => {
    const index = openIndex(synth.pattern);
    const { badJson, truncated } = corrupt(index);
    const runOnce = async (): Promise<{ seen: Seen; warnings: string[]; loader: TrainLoader }> => {
      const warnings: string[] = [];
      // N=20, B=3, W=1, A=2 → S=3, 18 used, remainder 2.
      const loader = new TrainLoader(index, {
        batchSize: 3,
        gradAccumSteps: 2,
        seed: 1,
        prefetch: 2,
        readers: 2,
        onWarning: (m) => warnings.push(m),
      });
      const seen = await collect(loader.batches({ epoch: 0, globalSamplePosition: 0 }));
      return { seen, warnings, loader };
    };
    const r1 = await runOnce();
    const r2 = await runOnce();
    const perm = Array.from(r1.loader.sampler.order(0));
    const used = perm.slice(0, 18);
    const badIdx = [3, index.samples.length - 1];
    const badInEpoch = badIdx.filter((i) => used.includes(i));
    expect(badInEpoch.length, 'the seed must put a bad sample in the trained part').to.be.at.least(1);
    // Replacements came from the dropped remainder (positions 18, 19).
    expect(r1.seen.indices.filter((i) => !used.includes(i)).every((i) => perm.slice(18).includes(i))).to.equal(true);
    expect(r1.seen.indices.filter((i) => !used.includes(i))).to.have.length(badInEpoch.length);
    expect(r1.seen.batchSizes).to.deep.equal([3, 3, 3, 3, 3, 3]);
    expect(new Set(r1.seen.indices).size).to.equal(18); // replacements never repeat a sample
    for (const i of badIdx) expect(r1.seen.indices).to.not.include(i);
    expect(r1.seen.indices).to.deep.equal(r2.seen.indices); // deterministic
    const st = r1.loader.stats();
    expect(st.badSamples.byEpoch['0']).to.equal(badInEpoch.length);
    expect(st.badSamples.duplicatedReplacements).to.equal(0);
    for (const w of r1.warnings) expect(w).to.match(/skipping bad sample: shard 'shard-00000[01]\.tar' key '/);
    if (badInEpoch.includes(3)) expect(r1.warnings.join('\n')).to.contain(`key '${badJson}': bad JSON`);
    if (badInEpoch.includes(index.samples.length - 1))
      expect(r1.warnings.join('\n')).to.contain(`key '${truncated}': I/O error: unexpected end of file`);
    await Promise.all([r1.loader.close(), r2.loader.close()]);
  });

  it('enforces the error budget with DATA_ERROR naming the count and the budget; a missing shard is skipped', async () => {
    const index = openIndex(synth.pattern);
    corrupt(index);
    // Both bad samples are in the permutation of epoch 0 with W=1, B=1 (S·A·B = 20 = N, no remainder).
    const loader = new TrainLoader(index, { batchSize: 1, seed: 1, maxBadSamples: 1, onWarning: () => undefined });
    try {
      await collect(loader.batches());
      expect.fail('should throw');
    } catch (e) {
      expect(hasCode(e, 'DATA_ERROR'), String(e)).to.equal(true);
      expect((e as Error).message).to.match(/2 bad samples exceed the error budget data\.max_bad_samples = 1/);
    }
    await loader.close();

    fs.rmSync(index.shardPaths[1]);
    const warnings: string[] = [];
    const ev = new EvalLoader(index, {
      batchSize: 4,
      evalSamples: null,
      seed: 0,
      maxBadSamples: 20,
      onWarning: (m) => warnings.push(m),
    });
    const s = await collect(ev.batches());
    const inShard0 = index.samples.filter((x) => x.shard === 0).length;
    expect(s.indices).to.have.length(inShard0 - 1); // sample 3 has bad JSON
    expect(ev.stats().badSamples.byEpoch.eval).to.equal(index.samples.length - inShard0 + 1);
    expect(warnings.some((w) => /shard-000001\.tar.*cannot open shard/.test(w))).to.equal(true);
    await ev.close();
  });
});
