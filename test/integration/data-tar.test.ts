/**
 * Hand-made shards written by the system GNU tar (an independent writer): odd member order, directory
 * prefixes, GNU long names, pax and ustar-prefix names, a directory entry, a `__…__` member, and a
 * reference-style manifest.json next to them. Also checks that GNU tar reads what our writer writes.
 */
import { expect } from 'chai';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { scanTar } from '../../lib/data/tar-index';
import { indexShards, openIndex } from '../../lib/data/shard-index';
import { EvalLoader } from '../../lib/data/loader';
import { hasCode } from '../../lib/errors';
import { makeTmpDir, removeDir, sampleMembers, testVolume, writeTar } from '../helpers/data-fixtures';

const SHAPE: [number, number, number] = [4, 3, 2];
const C = 3;

function hasGnuTar(): boolean {
  try {
    return /GNU tar/.test(execFileSync('tar', ['--version'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

describe('data: hand-made tar (system GNU tar)', function () {
  let dir: string;
  const longDir = 'very/' + 'deeply_nested_directory_name/'.repeat(5) + 'scans.v2';
  // [member dir, key base, member order]
  const layout: Array<[string, string, string[]]> = [
    ['', 's000', ['txt', 'json', 'bin', 'labels']],
    ['pt.dir', 's001', ['labels', 'bin', 'txt', 'json']],
    [longDir, 's002', ['json', 'txt', 'labels', 'bin']],
  ];

  before(function () {
    if (!hasGnuTar()) this.skip();
    dir = makeTmpDir('tar');
    const src = path.join(dir, 'src');
    for (const [i, [sub, base]] of layout.entries()) {
      fs.mkdirSync(path.join(src, sub), { recursive: true });
      for (const [name, data] of sampleMembers(base, i, SHAPE, C, { txt: `Findings ${i} (x).\nNot given.` })) {
        // Upper-case one extension: extensions are lower-cased when grouping.
        fs.writeFileSync(
          path.join(src, sub, i === 1 && name.endsWith('.txt') ? name.replace(/\.txt$/, '.TXT') : name),
          data,
        );
      }
    }
    fs.writeFileSync(path.join(src, '__meta__'), 'not a sample');
    const members = (fmt: string): string[] => {
      const list = ['__meta__'];
      for (const [i, [sub, base, order]] of layout.entries()) {
        if (fmt === 'gnu' && i === 1) list.push(sub); // a directory entry (type '5'), skipped by the reader
        for (const ext of order) list.push(path.posix.join(sub, `${base}.${i === 1 && ext === 'txt' ? 'TXT' : ext}`));
      }
      return list;
    };
    for (const [k, fmt] of ['gnu', 'pax', 'ustar'].entries()) {
      execFileSync('tar', [
        '--format',
        fmt,
        '--no-recursion',
        '-cf',
        path.join(dir, `shard-${String(k).padStart(6, '0')}.tar`),
        '-C',
        src,
        ...members(fmt),
      ]);
    }
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ total_samples: 7463, num_shards: 3 }));
  });

  after(() => dir && removeDir(dir));

  it('scans names and payload offsets that match the files, for gnu, pax and ustar formats', async () => {
    for (let k = 0; k < 3; k++) {
      const file = path.join(dir, `shard-00000${k}.tar`);
      const scan = await scanTar(file);
      expect(scan.problem, `shard ${k}`).to.equal(undefined);
      const names = scan.members.map((m) => m.name);
      expect(names).to.include(`${longDir}/s002.bin`);
      expect(names).to.include('pt.dir/s001.TXT');
      expect(names.some((n) => n.endsWith('pt.dir') || n.endsWith('pt.dir/'))).to.equal(false);
      const fd = fs.openSync(file, 'r');
      try {
        for (const m of scan.members) {
          const buf = Buffer.alloc(m.size);
          fs.readSync(fd, buf, 0, m.size, m.offset);
          expect(buf.equals(fs.readFileSync(path.join(dir, 'src', m.name))), m.name).to.equal(true);
        }
      } finally {
        fs.closeSync(fd);
      }
    }
  });

  it('refuses to train from the reference manifest.json alone, naming the command', () => {
    try {
      openIndex(path.join(dir, 'shard-{000000..000002}.tar'));
      expect.fail('should throw');
    } catch (e) {
      expect(hasCode(e, 'DATA_ERROR')).to.equal(true);
      expect((e as Error).message)
        .to.match(/manifest\.json/)
        .and.match(/total_samples=7463/)
        .and.match(/ctclip shards index/);
    }
  });

  it('indexes and reads every sample correctly, leaving manifest.json untouched', async () => {
    const manifestBefore = fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8');
    const pattern = path.join(dir, 'shard-{000000..000002}.tar');
    const { index, indexPath } = await indexShards(pattern, { classNames: ['a', 'b', 'c'] });
    expect(path.basename(indexPath)).to.equal('ctclip-index.json');
    expect(index.excluded).to.deep.equal([]);
    expect(index.totalSamples).to.equal(9);
    expect(index.shards.map((s) => s.samples)).to.deep.equal([3, 3, 3]);
    expect(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).to.equal(manifestBefore);

    const opened = openIndex(pattern);
    const loader = new EvalLoader(opened, { batchSize: 2, seed: 0, evalSamples: null, prefetch: 2, readers: 2 });
    const seen: string[] = [];
    for await (const b of loader.batches()) {
      for (let i = 0; i < b.keys.length; i++) {
        const k = layout.findIndex(([sub, base]) => b.keys[i] === (sub ? `${sub}/${base}` : base));
        expect(k, b.keys[i]).to.be.at.least(0);
        expect(
          b.volumes.subarray(i * opened.sampleBytes, (i + 1) * opened.sampleBytes).equals(testVolume(k, SHAPE)),
        ).to.equal(true);
        expect(b.studyIds[i]).to.equal(`study_${k}`);
        expect(b.reports[i]).to.equal(`Findings ${k} x.\n`);
        expect(Array.from(b.labels.subarray(i * C, (i + 1) * C))).to.deep.equal(
          [0, 1, 2].map((c) => ((k + c) % 3 === 0 ? 1 : 0)),
        );
        seen.push(b.keys[i]);
      }
      expect(b.volumeShape).to.deep.equal(SHAPE);
      b.release();
    }
    await loader.close();
    expect(seen).to.have.length(9);
  });

  it('GNU tar lists and extracts what our writer writes (including a GNU long name)', () => {
    const file = path.join(dir, 'ours.tar');
    const long = 'x/'.repeat(60) + 'k.bin';
    writeTar(file, [
      ['a.txt', Buffer.from('hello')],
      [long, Buffer.from([1, 2, 3])],
    ]);
    const listing = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).to.deep.equal(['a.txt', long]);
    const out = path.join(dir, 'extract');
    fs.mkdirSync(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    expect(fs.readFileSync(path.join(out, 'a.txt'), 'utf8')).to.equal('hello');
    expect([...fs.readFileSync(path.join(out, long))]).to.deep.equal([1, 2, 3]);
  });
});
