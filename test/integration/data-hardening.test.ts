/**
 * Hostile and damaged data, on real files: NaN/±Inf volumes and bad label values are bad samples (index time and
 * read time, training and validation, counted by reason within the error budget); samples lost at index time
 * (a shard cut at a sample boundary, empty and missing shards) are counted, and missing/empty shards are an error
 * unless `missing_shards: skip`; oversize report texts are refused before they are read; a damaged
 * `ctclip-index.json` is refused naming the file and the JSON path; a full disk under `shards index --out` and
 * `synth` names the file and leaves no temporary file.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { indexShards, openIndex, type ShardIndex } from '../../lib/data/shard-index';
import { EvalLoader, TrainLoader, type Batch, type LoaderStats } from '../../lib/data/loader';
import { scanTar } from '../../lib/data/tar-index';
import { writeSynthDataset } from '../../lib/data/synth';
import { expectRejects } from '../helpers/errors';
import { makeTmpDir, removeDir, sampleMembers, testVolume, writeTar } from '../helpers/data-fixtures';
import { repoRoot } from '../helpers/fixtures';

const SHAPE: [number, number, number] = [8, 8, 4];
const VOXELS = SHAPE[0] * SHAPE[1] * SHAPE[2];
const CLASSES = ['A', 'B', 'C', 'D'];
const C = CLASSES.length;

/** A finite volume with one voxel (or all voxels, element -1) set to the float16 pattern `bits`. */
function volumeWith(i: number, bits: number, element: number): Buffer {
  const v = testVolume(i, SHAPE);
  if (element < 0) for (let k = 0; k < VOXELS; k++) v.writeUInt16LE(bits, 2 * k);
  else v.writeUInt16LE(bits, 2 * element);
  return v;
}

/** Independent of lib: any float16 element with exponent bits 0x1f. */
function hasNonFinite(volumes: Buffer): boolean {
  for (let k = 0; k + 1 < volumes.length; k += 2) if ((volumes.readUInt16LE(k) & 0x7c00) === 0x7c00) return true;
  return false;
}

interface Drained {
  keys: string[];
  anyNonFinite: boolean;
  labels: number[];
}

async function drain(gen: AsyncGenerator<Batch>): Promise<Drained> {
  const out: Drained = { keys: [], anyNonFinite: false, labels: [] };
  for await (const b of gen) {
    out.keys.push(...b.keys);
    if (hasNonFinite(b.volumes)) out.anyNonFinite = true;
    out.labels.push(...b.labels);
    b.release();
  }
  return out;
}

function ctclip(args: string[], shell?: string) {
  const cli = path.join(repoRoot, 'lib', 'cli.js');
  if (shell)
    return spawnSync('bash', ['-c', `${shell}; exec "$0" "$@"`, process.execPath, cli, ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
  return spawnSync(process.execPath, [cli, ...args], { cwd: repoRoot, encoding: 'utf8' });
}

describe('data hardening: non-finite volumes are bad samples (training and validation)', () => {
  let dir: string;
  let index: ShardIndex;
  const bad: Record<string, RegExp> = {
    s02: /non-finite volume: 1 of 256 voxels are NaN\/±Inf \(0 NaN, 1 \+Inf, 0 -Inf; first at element 17: Infinity \(0x7c00\)\)/,
    s05: /non-finite volume: 1 of 256 voxels .*first at element 255: -Infinity \(0xfc00\)/,
    s07: /non-finite volume: 1 of 256 voxels .*\(1 NaN, 0 \+Inf, 0 -Inf; first at element 0: NaN \(0x7c01\)\)/,
    s08: /non-finite volume: 256 of 256 voxels are NaN\/±Inf \(256 NaN, 0 \+Inf, 0 -Inf; first at element 0: NaN \(0x7e00\)\)/,
  };

  before(async () => {
    dir = makeTmpDir('nonfinite');
    const members: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < 10; i++) {
      const key = `s${String(i).padStart(2, '0')}`;
      let bin: Buffer | undefined;
      if (i === 2) bin = volumeWith(i, 0x7c00, 17);
      if (i === 5) bin = volumeWith(i, 0xfc00, VOXELS - 1);
      if (i === 7) bin = volumeWith(i, 0x7c01, 0); // a signalling-NaN pattern
      if (i === 8) bin = volumeWith(i, 0x7e00, -1); // all NaN
      if (i === 9) {
        bin = volumeWith(i, 0x7bff, 3); // ±65504: the largest finite values
        bin.writeUInt16LE(0xfbff, 8);
      }
      members.push(...sampleMembers(key, i, SHAPE, C, bin ? { bin } : {}));
    }
    writeTar(path.join(dir, 'shard-000000.tar'), members);
    await indexShards(path.join(dir, 'shard-000000.tar'), { classNames: CLASSES });
    index = openIndex(path.join(dir, 'shard-000000.tar'));
  });
  after(() => removeDir(dir));

  it('validation: each is skipped with a warning naming shard, key and reason, counted as non_finite_volume', async () => {
    expect(index.samples).to.have.length(10); // the index never reads volumes
    const warnings: string[] = [];
    const ev = new EvalLoader(index, {
      batchSize: 3,
      evalSamples: null,
      seed: 0,
      maxBadSamples: 4,
      onWarning: (m) => warnings.push(m),
    });
    const got = await drain(ev.batches());
    await ev.close();
    expect(got.keys).to.deep.equal(['s00', 's01', 's03', 's04', 's06', 's09']);
    expect(got.anyNonFinite).to.equal(false);
    for (const [key, re] of Object.entries(bad)) {
      const w = warnings.find((x) => x.includes(`key '${key}'`));
      expect(w, `warning for ${key}`)
        .to.match(/^skipping bad sample: shard 'shard-000000\.tar' key '/)
        .and.match(re)
        .and.match(/\[non_finite_volume\]/);
    }
    const st: LoaderStats = ev.stats();
    expect(st.badSamples.byReason).to.deep.equal({ non_finite_volume: 4 });
    expect(st.badSamples.byEpoch.eval).to.equal(4);
    expect(st.badSamples.counted).to.equal(4);
  });

  it('training: replaced like any bad sample, never delivered; past the budget DATA_ERROR', async () => {
    const loader = new TrainLoader(index, { batchSize: 2, seed: 3, maxBadSamples: 4, onWarning: () => undefined });
    const got = await drain(loader.batches());
    expect(got.keys).to.have.length(10);
    expect(got.anyNonFinite).to.equal(false);
    for (const key of Object.keys(bad)) expect(got.keys).to.not.include(key);
    expect(loader.stats().badSamples.byReason).to.deep.equal({ non_finite_volume: 4 });
    await loader.close();
    const strict = new TrainLoader(index, { batchSize: 2, seed: 3, maxBadSamples: 3, onWarning: () => undefined });
    await expectRejects(
      () => drain(strict.batches()),
      'DATA_ERROR',
      '4 bad samples exceed the error budget data.max_bad_samples = 3',
    );
    await strict.close();
  });
});

describe('data hardening: label values (index time and read time)', () => {
  let dir: string;
  const labelsOf = (...v: number[]): Float32Array => Float32Array.from(v);

  before(() => {
    dir = makeTmpDir('labels');
  });
  after(() => removeDir(dir));

  it('index time: NaN, ±Inf, 0.5 and 2 are excluded as bad_label naming shard, key, class index and value', async () => {
    const members: Array<[string, Uint8Array]> = [
      ...sampleMembers('ok0', 0, SHAPE, C, { labels: labelsOf(0, 1, 1, 0) }),
      ...sampleMembers('nan', 1, SHAPE, C, { labels: labelsOf(0, NaN, 1, 0) }),
      ...sampleMembers('inf', 2, SHAPE, C, { labels: labelsOf(0, 0, 0, -Infinity) }),
      ...sampleMembers('half', 3, SHAPE, C, { labels: labelsOf(0, 0, 0.5, 1) }),
      ...sampleMembers('two', 4, SHAPE, C, { labels: labelsOf(2, 0, 0, Infinity) }),
      ...sampleMembers('ok1', 5, SHAPE, C, { labels: labelsOf(-0, 0, 0, 1) }),
    ];
    const file = path.join(dir, 'idx-000000.tar');
    writeTar(file, members);
    const { index } = await indexShards(file, { classNames: CLASSES });
    expect(index.samples.map((s) => s.key)).to.deep.equal(['ok0', 'ok1']);
    const reason = (key: string) => index.excluded.find((x) => x.key === key);
    expect(reason('nan')).to.deep.include({
      shard: 'idx-000000.tar',
      code: 'bad_label',
      reason: 'bad label: class index 1 ("B") is NaN, expected 0 or 1',
    });
    expect(reason('inf')?.reason).to.equal('bad label: class index 3 ("D") is -Infinity, expected 0 or 1');
    expect(reason('half')?.reason).to.equal('bad label: class index 2 ("C") is 0.5, expected 0 or 1');
    expect(reason('two')?.reason).to.equal(
      'bad label: class index 0 ("A") is 2, expected 0 or 1 (2 bad values in this sample)',
    );
    expect(index.totalExcluded).to.equal(4);
  });

  it('read time: a label changed after indexing is skipped as bad_label (validation) instead of reaching the metrics', async () => {
    const file = path.join(dir, 'read-000000.tar');
    writeTar(
      file,
      [0, 1, 2, 3].flatMap((i) => sampleMembers(`r${i}`, i, SHAPE, C)),
    );
    await indexShards(file, { classNames: CLASSES });
    const index = openIndex(file);
    const s = index.samples[2];
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from(labelsOf(0, 1, NaN, 0).buffer), 0, 16, s.labels![0]);
    fs.closeSync(fd);
    const warnings: string[] = [];
    const ev = new EvalLoader(index, { batchSize: 4, evalSamples: null, seed: 0, onWarning: (m) => warnings.push(m) });
    const got = await drain(ev.batches());
    await ev.close();
    expect(got.keys).to.deep.equal(['r0', 'r1', 'r3']);
    expect(got.labels.every((v) => v === 0 || v === 1)).to.equal(true);
    expect(warnings.join('\n')).to.match(
      /shard 'read-000000\.tar' key 'r2': bad label: class index 2 \("C"\) is NaN, expected 0 or 1 \[bad_label\]/,
    );
    expect(ev.stats().badSamples.byReason).to.deep.equal({ bad_label: 1 });
  });
});

describe('data hardening: samples lost at index time are counted; missing and empty shards', () => {
  let dir: string;
  const PER = 16;
  const pattern = (): string => path.join(dir, 'shard-{000000..000003}.tar');
  const shard = (k: number): string => path.join(dir, `shard-00000${k}.tar`);

  beforeEach(async () => {
    dir = makeTmpDir('lost');
    for (let k = 0; k < 4; k++)
      writeTar(
        shard(k),
        Array.from({ length: PER }, (_, i) => sampleMembers(`k${k}_${i}`, k * PER + i, SHAPE, C)).flat(),
      );
    await indexShards(pattern(), { classNames: CLASSES });
  });
  afterEach(() => removeDir(dir));

  /** Cuts shard k just before the header of its sample `keep` (a sample boundary: no member is cut). */
  async function cutAtSample(k: number, keep: number): Promise<void> {
    const scan = await scanTar(shard(k));
    const first = scan.members.find((m) => m.name === `k${k}_${keep}.bin`)!;
    fs.truncateSync(shard(k), first.headerOffset);
  }

  it('a shard cut at a sample boundary: exact count from the earlier index, an estimate without one; "N excluded" is the true count', async () => {
    await cutAtSample(1, 5); // 11 of 16 samples lost, no member cut
    const r = ctclip(['shards', 'index', pattern(), '--classes', CLASSES.join(',')]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/53 valid samples, 11 excluded or lost \(truncated_shard 11\)/);
    expect(r.stdout).to.match(
      /excluded shard-000001\.tar \*: scan stopped: truncated tar: the file ends at offset \d+ after member 'k1_4\.txt' without the end-of-archive blocks.*\[11 sample\(s\) lost\]/,
    );
    const index = openIndex(pattern());
    expect(index.totalExcluded).to.equal(11);
    expect(index.shards[1]).to.include({ samples: 5, lost: 11 });
    expect(index.excluded).to.deep.equal([
      { shard: 'shard-000001.tar', key: '*', reason: index.excluded[0].reason, code: 'truncated_shard', samples: 11 },
    ]);

    fs.rmSync(path.join(dir, 'ctclip-index.json'));
    const again = await indexShards(pattern(), { classNames: CLASSES });
    expect(again.index.excluded[0]).to.include({ code: 'truncated_shard', samples: 11, estimated: true }); // 16 (the other shards) − 5

    // The budget counts them: 11 lost > 10 refuses before any read; 11 fits.
    const idx = openIndex(pattern());
    expect(() => new TrainLoader(idx, { batchSize: 2, seed: 1, maxBadSamples: 10 })).to.throw(
      /11 samples were excluded or lost when .* was indexed \(truncated_shard 11; .*\), more than the error budget data\.max_bad_samples = 10/,
    );
    const ok = new TrainLoader(idx, { batchSize: 2, seed: 1, maxBadSamples: 11 });
    expect(ok.stats().badSamples).to.deep.include({
      excludedAtIndex: 11,
      counted: 11,
      byReason: { truncated_shard: 11 },
    });
    expect(ok.summary()).to.match(/^data: 53 samples \(11 excluded at index time: truncated_shard 11\)/);
    await ok.close();
  });

  it('a 0-byte shard is an error naming it; with missing_shards skip its samples count against the budget', async () => {
    fs.truncateSync(shard(2), 0);
    await indexShards(pattern(), { classNames: CLASSES });
    await expectRejects(
      () => openIndex(pattern()),
      'DATA_ERROR',
      "1 of 4 shard(s) of '",
      'is missing, empty or unreadable',
      "'shard-000002.tar' (empty shard file (0 bytes))",
      'data.missing_shards: skip',
    );
    const idx = openIndex(pattern(), { missingShards: 'skip' });
    expect(idx.samples).to.have.length(48);
    expect(idx.shards[2]).to.include({ empty: true, lost: PER }); // exact: the earlier index had 16
    expect(() => new TrainLoader(idx, { batchSize: 2, seed: 1, maxBadSamples: 15 })).to.throw(
      /16 samples were excluded or lost .*empty_shard 16/,
    );
    expect(new EvalLoader(idx, { batchSize: 2, seed: 1, maxBadSamples: 16 }).stats().badSamples.byReason).to.deep.equal(
      { empty_shard: 16 },
    );
  });

  it('3 of 4 shards missing: `shards index` exits 1 naming them (index still written), openIndex refuses, skip serves 25 %', async () => {
    for (const k of [1, 2, 3]) fs.rmSync(shard(k));
    const r = ctclip(['shards', 'index', pattern(), '--classes', CLASSES.join(',')]);
    expect(r.status, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.match(/16 valid samples, 48 excluded or lost \(missing_shard 48\), 3 missing shard\(s\)/);
    expect(r.stderr).to.match(
      /3 of 4 shard\(s\) of '.*' are missing, empty or unreadable .*'shard-000001\.tar' \(missing shard file\), 'shard-000002\.tar' \(missing shard file\), 'shard-000003\.tar' \(missing shard file\)/,
    );
    await expectRejects(() => openIndex(pattern()), 'DATA_ERROR', '3 of 4 shard(s)');
    const idx = openIndex(pattern(), { missingShards: 'skip' });
    expect(idx.samples).to.have.length(16);
    expect(idx.totalExcluded).to.equal(48);
    expect(() => new TrainLoader(idx, { batchSize: 2, seed: 1, maxBadSamples: 47 })).to.throw(
      /48 samples were excluded or lost .*missing_shard 48/,
    );
    expect(new TrainLoader(idx, { batchSize: 2, seed: 1 }).stats().badSamples.counted).to.equal(48); // within the default budget of 100
  });
});

describe('data hardening: report text size', () => {
  let dir: string;
  before(() => {
    dir = makeTmpDir('report');
  });
  after(() => removeDir(dir));

  it('a report above max_report_bytes is excluded at index time, and skipped at read time before it is read', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024 + 1);
    const file = path.join(dir, 'rep-000000.tar');
    writeTar(file, [
      ...sampleMembers('a', 0, SHAPE, C),
      ...sampleMembers('huge', 1, SHAPE, C, { txt: big }),
      ...sampleMembers('b', 2, SHAPE, C),
    ]);
    const { index: byDefault } = await indexShards(file, { classNames: CLASSES });
    expect(byDefault.samples.map((s) => s.key)).to.deep.equal(['a', 'b']);
    expect(byDefault.excluded).to.deep.equal([
      {
        shard: 'rep-000000.tar',
        key: 'huge',
        code: 'oversize_report',
        reason: "report text 'huge.txt' is 2097153 bytes, above the limit of 1048576 (data.max_report_bytes)",
      },
    ]);

    // An index built with a larger cap keeps it; a loader with the default cap refuses it unread.
    await indexShards(file, { classNames: CLASSES, maxReportBytes: 4 * 1024 * 1024 });
    const index = openIndex(file);
    expect(index.samples).to.have.length(3);
    const warnings: string[] = [];
    const ev = new EvalLoader(index, { batchSize: 3, seed: 0, onWarning: (m) => warnings.push(m) });
    const got = await drain(ev.batches());
    expect(got.keys).to.deep.equal(['a', 'b']);
    expect(warnings.join('\n')).to.match(
      /key 'huge': report text is 2097153 bytes, above the limit of 1048576 \(data\.max_report_bytes\) \[oversize_report\]/,
    );
    expect(ev.stats().bytesRead).to.be.below(64 * 1024); // two small samples: the 2 MiB text was never read
    expect(ev.stats().badSamples.byReason).to.deep.equal({ oversize_report: 1 });
    await ev.close();
    const roomy = new EvalLoader(index, { batchSize: 3, seed: 0, maxReportBytes: 4 * 1024 * 1024 });
    expect((await drain(roomy.batches())).keys).to.deep.equal(['a', 'huge', 'b']);
    await roomy.close();
  });
});

describe('data hardening: ctclip-index.json is validated', () => {
  let dir: string;
  let file: string;
  let indexPath: string;
  let original: Record<string, unknown>;

  before(async () => {
    dir = makeTmpDir('badindex');
    file = path.join(dir, 'v-000000.tar');
    writeTar(
      file,
      [0, 1, 2].flatMap((i) => sampleMembers(`v${i}`, i, SHAPE, C)),
    );
    indexPath = (await indexShards(file, { classNames: CLASSES })).indexPath;
    original = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as Record<string, unknown>;
  });
  after(() => removeDir(dir));

  function withIndex(edit: (j: Record<string, any>) => unknown): void {
    const j = JSON.parse(JSON.stringify(original)) as Record<string, any>;
    const replaced = edit(j);
    fs.writeFileSync(indexPath, typeof replaced === 'string' ? replaced : JSON.stringify(replaced ?? j));
  }

  it('refuses ill-typed, huge-shaped and inconsistent files with DATA_ERROR naming the file and the JSON path', async () => {
    const cases: Array<[(j: Record<string, any>) => unknown, string[]]> = [
      [(j) => void (j.samples[1].bin = 'abc'), ['invalid at samples[1].bin', '(found "abc")']],
      [(j) => void (j.samples[0].json[1] = -5), ['invalid at samples[0].json[1]', '(found -5)']],
      [(j) => void (j.shards = null), ['invalid at shards', '(found null)']],
      [(j) => void (j.volumeShape = [100000, 100000, 100000]), ['invalid at volumeShape[0]', '(found 100000)']],
      [
        (j) => void ((j.volumeShape = [4096, 4096, 4096]), (j.sampleBytes = 2 * 4096 ** 3)),
        ['invalid at sampleBytes', '(found 137438953472)'],
      ],
      [
        (j) => void (j.sampleBytes = 7),
        ['invalid at sampleBytes', 'expected volumeShape 8×8×4 × 2 bytes (float16) = 512', '(found 7)'],
      ],
      [(j) => void (j.classNames = ['A']), ['invalid at classNames', 'expected 4 names']],
      [() => '[1, 2, 3]', ['is not a ctclip shard index']],
      [() => '{"format": "ctclip-shard-index", "version": 1', ['is not valid JSON']],
    ];
    for (const [edit, fragments] of cases) {
      withIndex(edit);
      const e = await expectRejects(() => openIndex(file), 'DATA_ERROR', `'${indexPath}'`, ...fragments);
      expect(e.message).to.include(`rebuild it with: ctclip shards index '${file}'`);
    }
    // Too large to be ours: refused from its size, before it is read (a sparse file).
    fs.writeFileSync(indexPath, '');
    fs.truncateSync(indexPath, 300 * 1024 * 1024);
    await expectRejects(
      () => openIndex(file),
      'DATA_ERROR',
      `'${indexPath}' is 314572800 bytes, above the limit of 268435456`,
    );
  });

  it('a sample naming a shard the index does not list, or extents outside its shard, is excluded as bad_index_ref and counted', async () => {
    withIndex((j) => {
      j.samples[0].shard = 7;
      j.samples[2].txt[0] = 10 ** 9;
    });
    const index = openIndex(file);
    expect(index.samples.map((s) => s.key)).to.deep.equal(['v1']);
    expect(index.excluded.map((x) => [x.shard, x.key, x.code])).to.deep.equal([
      ['#7', 'v0', 'bad_index_ref'],
      ['v-000000.tar', 'v2', 'bad_index_ref'],
    ]);
    expect(index.excluded[0].reason).to.equal('bad index entry: names shard #7, but the index lists 1 shard(s)');
    expect(index.excluded[1].reason).to.match(
      /^bad index entry: 'txt' extent \[1000000000, \d+\] runs past the end of 'v-000000\.tar'/,
    );
    expect(index.totalExcluded).to.equal(2);
    const loader = new TrainLoader(index, { batchSize: 1, seed: 0 });
    expect(loader.stats().badSamples.byReason).to.deep.equal({ bad_index_ref: 2 });
    await loader.close();
  });
});

describe('data hardening: a full disk under `shards index --out` and `synth`', function () {
  this.timeout(60_000);
  let dir: string;
  let tiny: string;
  let mounted = false;
  let limit = ''; // `ulimit -f` fallback when a tmpfs cannot be mounted (not root)

  before(async () => {
    dir = makeTmpDir('fulldisk');
    tiny = path.join(dir, 'tiny');
    fs.mkdirSync(tiny);
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tiny]).status === 0;
    if (mounted) {
      // Fill it: every later write fails with ENOSPC.
      const fd = fs.openSync(path.join(tiny, 'filler'), 'w');
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).to.equal('ENOSPC');
      }
      fs.closeSync(fd);
    } else {
      limit = 'ulimit -f 2'; // 2 KiB per file: writes past it fail with EFBIG (Node ignores SIGXFSZ)
    }
  });
  after(() => {
    if (mounted) spawnSync('umount', [tiny]);
    removeDir(dir);
  });

  const leftovers = (d: string): string[] =>
    fs.existsSync(d) ? fs.readdirSync(d).filter((n) => n.includes('.tmp')) : [];

  it('shards index --out: exit 1, the index file named, no temporary file', async () => {
    const ds = await writeSynthDataset({
      out: path.join(dir, 'ds'),
      samples: 40,
      shape: [4, 4, 2],
      shards: 1,
      seed: 1,
    });
    const out = path.join(tiny, 'ctclip-index.json');
    const r = ctclip(['shards', 'index', ds.pattern, '--out', out], limit || undefined);
    expect(r.status, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr)
      .to.contain(`${out}: cannot write (`)
      .and.match(/ENOSPC|EFBIG/);
    expect(r.stderr).to.not.match(/\n\s+at /); // a message, not a stack trace
    expect(leftovers(tiny)).to.deep.equal([]);
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('synth: exit 1, the shard named, no temporary file', () => {
    const out = path.join(tiny, 'ds');
    const r = ctclip(
      ['synth', '--out', out, '--samples', '40', '--shape', '16,16,8', '--shards', '1', '--quiet'],
      limit || undefined,
    );
    expect(r.status, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr)
      .to.contain(`${path.join(out, 'shard-000000.tar')}: cannot write shard at offset`)
      .and.match(/ENOSPC|EFBIG/);
    expect(r.stderr).to.not.match(/\n\s+at /);
    expect(leftovers(out)).to.deep.equal([]);
  });
});
