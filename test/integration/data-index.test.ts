/**
 * Index-time checks: every corruption kind is excluded with a reason; openIndex refuses missing or stale
 * indexes with the command that builds them; the `ctclip shards index` command.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { indexShards, openIndex, type ExcludedSample } from '../../lib/data/shard-index';
import { scanTar } from '../../lib/data/tar-index';
import { run as shardsCommand } from '../../lib/commands/shards';
import { hasCode } from '../../lib/errors';
import { makeTmpDir, removeDir, sampleMembers, writeTar } from '../helpers/data-fixtures';

const SHAPE: [number, number, number] = [4, 4, 2];
const C = 4;

async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  let out = '';
  let err = '';
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

describe('data: shard index (corruption at index time)', () => {
  let dir: string;
  let pattern: string;
  const reasonOf = (excluded: ExcludedSample[], key: string): string =>
    excluded.find((x) => x.key === key)?.reason ?? '(not excluded)';

  before(() => {
    dir = makeTmpDir('index');
    const s0: Array<[string, Uint8Array]> = [
      ...sampleMembers('good0', 0, SHAPE, C),
      ...sampleMembers('short_bin', 1, SHAPE, C, { bin: Buffer.alloc(10) }),
      ...sampleMembers('bad_json', 2, SHAPE, C, { json: '{"study_id": "x", ' }),
      ...sampleMembers('no_txt', 3, SHAPE, C, { txt: null }),
      ...sampleMembers('dtype', 4, SHAPE, C, {
        json: { study_id: 's4', volume_shape: SHAPE, volume_dtype: 'float17' },
      }),
      ...sampleMembers('labels17', 5, SHAPE, C, { labels: new Float32Array(C + 1) }),
      ...sampleMembers('good1', 6, SHAPE, C, {}, ['txt', 'labels', 'json', 'bin']),
      ...sampleMembers('dup', 7, SHAPE, C),
      ['dup.TXT', Buffer.from('again')],
      ...sampleMembers('other_shape', 8, [4, 4, 1], C, {
        bin: Buffer.alloc(32),
        json: { study_id: 's8', volume_shape: [4, 4, 1], volume_dtype: 'float16' },
      }),
      ...sampleMembers('no_labels', 9, SHAPE, C, { labels: null }),
      ...sampleMembers('shape_json', 10, SHAPE, C, {
        json: { study_id: 's10', volume_shape: [4, 4], volume_dtype: 'float16' },
      }),
    ];
    writeTar(path.join(dir, 'shard-000000.tar'), s0);
    const s1 = [...sampleMembers('t_good', 11, SHAPE, C), ...sampleMembers('t_cut', 12, SHAPE, C)];
    const f1 = path.join(dir, 'shard-000001.tar');
    writeTar(f1, s1);
    // shard-000002 is missing; shard-000003 is fine; shard-000004 is gzip data under a .tar name.
    writeTar(path.join(dir, 'shard-000003.tar'), [
      ...sampleMembers('k0', 13, SHAPE, C),
      ...sampleMembers('k1', 14, SHAPE, C),
    ]);
    fs.writeFileSync(
      path.join(dir, 'shard-000004.tar'),
      zlib.gzipSync(fs.readFileSync(path.join(dir, 'shard-000003.tar'))),
    );
    pattern = path.join(dir, 'shard-{000000..000004}.tar');
  });

  after(() => removeDir(dir));

  it('detects a truncated tar and keeps the members before the cut', async () => {
    const f1 = path.join(dir, 'shard-000001.tar');
    const scan = await scanTar(f1);
    const bin = scan.members.find((m) => m.name === 't_cut.bin')!;
    fs.truncateSync(f1, bin.offset + 7);
    const cut = await scanTar(f1);
    expect(cut.problem?.reason).to.match(/truncated tar/);
    expect(cut.members[cut.members.length - 1]).to.include({ name: 't_cut.bin', truncated: true });
  });

  it('excludes every kind of bad sample with a reason and keeps the good ones', async () => {
    const { index } = await indexShards(pattern, { classNames: ['A', 'B', 'C', 'D'] });
    const x = index.excluded;
    expect(reasonOf(x, 'short_bin')).to.match(
      /wrong payload size: '\.bin' has 10 bytes, volume_shape \[4,4,2\] × float16 needs 64/,
    );
    expect(reasonOf(x, 'bad_json')).to.match(/^bad JSON/);
    expect(reasonOf(x, 'no_txt')).to.match(/missing member '\.txt'/);
    expect(reasonOf(x, 'dtype')).to.match(/unknown volume_dtype 'float17'/);
    expect(reasonOf(x, 'labels17')).to.match(/wrong label count: .* 20 bytes \(5 float32\), expected 4 classes/);
    expect(reasonOf(x, 'dup')).to.match(/duplicate extension 'txt'/);
    expect(reasonOf(x, 'other_shape')).to.match(/differs from the dataset's \[4,4,2\]/);
    expect(reasonOf(x, 'no_labels')).to.match(/missing member '\.labels'/);
    expect(reasonOf(x, 'shape_json')).to.match(/volume_shape must be three positive integers/);
    expect(reasonOf(x, 't_cut')).to.match(/truncated tar/);
    const missing = x.find((e) => e.shard === 'shard-000002.tar');
    // No earlier index: the lost count is estimated from the typical shard (shard-000000 holds 11 keys).
    expect(missing).to.deep.equal({
      shard: 'shard-000002.tar',
      key: '*',
      reason: 'missing shard file',
      code: 'missing_shard',
      samples: 11,
      estimated: true,
    });
    expect(x.find((e) => e.shard === 'shard-000004.tar')).to.deep.include({ key: '*' });
    expect(x.find((e) => e.shard === 'shard-000004.tar')?.reason).to.match(/gzip-compressed; decompress/);
    expect(x.find((e) => e.shard === 'shard-000001.tar' && e.key === '*')?.reason).to.match(
      /scan stopped: truncated tar/,
    );
    expect(index.samples.map((s) => s.key)).to.deep.equal(['good0', 'good1', 't_good', 'k0', 'k1']);
    expect(index.shards.map((s) => s.samples)).to.deep.equal([2, 1, 0, 2, 0]);
    expect(index.shards[2].missing).to.equal(true);
    expect(index.shards[4].problem).to.match(/gzip/);
    expect(index.volumeShape).to.deep.equal(SHAPE);
    expect(index.classNames).to.deep.equal(['A', 'B', 'C', 'D']);
    expect(index.totalSamples).to.equal(5);
    // Member extents point at the right bytes (good1 had the odd order txt, labels, json, bin).
    const good1 = index.samples[1];
    const fd = fs.openSync(path.join(dir, 'shard-000000.tar'), 'r');
    const j = Buffer.alloc(good1.json[1]);
    fs.readSync(fd, j, 0, j.length, good1.json[0]);
    fs.closeSync(fd);
    expect(JSON.parse(j.toString()).study_id).to.equal('study_6');
    expect(good1.studyId).to.equal('study_6');
  });

  it('openIndex serves the pattern and subsets of it; refuses stale, uncovered and missing indexes', async () => {
    const expectDataError = (fn: () => unknown, re: RegExp): void => {
      try {
        fn();
        expect.fail('should throw');
      } catch (e) {
        expect(hasCode(e, 'DATA_ERROR'), String(e)).to.equal(true);
        expect((e as Error).message)
          .to.match(re)
          .and.match(/ctclip shards index/);
      }
    };
    const idx = openIndex(pattern, { missingShards: 'skip' });
    expect(idx.samples).to.have.length(5);
    expectDataError(
      () => openIndex(pattern),
      /2 of 5 shard\(s\) .* missing, empty or unreadable.*'shard-000002\.tar' \(missing shard file\).*'shard-000004\.tar' \(.*gzip/,
    );
    const sub = openIndex(path.join(dir, 'shard-{000003,000000}.tar'));
    expect(sub.samples.map((s) => s.key)).to.deep.equal(['k0', 'k1', 'good0', 'good1']);
    expect(sub.samples.map((s) => s.shard)).to.deep.equal([0, 0, 1, 1]);
    expect(sub.shardPaths.map((p) => path.basename(p))).to.deep.equal(['shard-000003.tar', 'shard-000000.tar']);

    expectDataError(() => openIndex(path.join(dir, 'shard-{000003..000005}.tar')), /does not cover/);
    const f3 = path.join(dir, 'shard-000003.tar');
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(f3, t, t);
    expectDataError(() => openIndex(pattern), /stale: .*shard-000003\.tar/);
    expect(openIndex(pattern, { verify: false, missingShards: 'skip' }).samples).to.have.length(5);
    expectDataError(() => openIndex(path.join(dir, 'nowhere', 'shard-{0..1}.tar')), /no ctclip shard index/);
  });

  it('ctclip shards index: writes the index, reports exclusions, refuses bad arguments', async () => {
    const csv = path.join(dir, 'labels.csv');
    fs.writeFileSync(csv, 'VolumeName,Alpha,"Beta, b",Gamma,Delta\nx.nii.gz,0,1,0,1\n');
    // A missing shard is an error by default (the index is still written), a warning with --missing-shards skip.
    const refused = await captureStdout(() => shardsCommand(['index', pattern, '--labels-csv', csv]));
    expect(refused.code).to.equal(1);
    expect(refused.err)
      .to.match(/shard-000002\.tar' \(missing shard file\)/)
      .and.match(/--missing-shards skip/);
    const ok = await captureStdout(() =>
      shardsCommand(['index', pattern, '--labels-csv', csv, '--missing-shards', 'skip']),
    );
    expect(ok.code).to.equal(0);
    expect(ok.out)
      .to.match(/5 valid samples/)
      .and.match(/excluded shard-000000\.tar short_bin: wrong payload size/)
      .and.match(/1 missing shard/);
    expect(openIndex(pattern, { missingShards: 'skip' }).classNames).to.deep.equal([
      'Alpha',
      'Beta, b',
      'Gamma',
      'Delta',
    ]);
    const usage = await captureStdout(() => shardsCommand(['index']));
    expect(usage.code).to.equal(2);
    expect(usage.err).to.match(/usage: ctclip shards index/);
    const gz = await captureStdout(() => shardsCommand(['index', path.join(dir, 'shard-{0..1}.tar.gz')]));
    expect(gz.code).to.equal(2);
    expect(gz.err).to.match(/decompress/i);
    const none = await captureStdout(() =>
      shardsCommand(['index', path.join(dir, 'shard-000002.tar'), '--out', path.join(dir, 'other-index.json')]),
    );
    expect(none.code).to.equal(1);
    const bad = await captureStdout(() => shardsCommand(['index', pattern, '--out', path.join(dir, 'manifest.json')]));
    expect(bad.code).to.equal(2);
    expect(bad.err).to.match(/manifest\.json/);
  });
});
