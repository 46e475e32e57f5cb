import { expect } from 'chai';
import { groupMembers, splitMemberName } from '../../lib/data/webdataset';
import type { TarMember } from '../../lib/data/tar-index';

const m = (name: string, offset = 0, size = 1): TarMember => ({ name, offset, size, headerOffset: 0 });

describe('data/webdataset grouping', () => {
  it('splits key and extension at the first dot of the basename, keeping the directory', () => {
    expect(splitMemberName('a/b.v1/000_001.seg.NII.gz')).to.deep.equal({ key: 'a/b.v1/000_001', ext: 'seg.nii.gz' });
    expect(splitMemberName('x.TXT')).to.deep.equal({ key: 'x', ext: 'txt' });
    expect(splitMemberName('noext')).to.equal(null);
    expect(splitMemberName('dir/__index__')).to.equal(null);
    expect(splitMemberName('__meta__')).to.equal(null);
  });

  it('groups adjacent members in any order', () => {
    const { samples, problems } = groupMembers([
      m('k1.txt'),
      m('k1.bin'),
      m('k1.JSON'),
      m('d/k2.json'),
      m('d/k2.bin'),
      m('__x__'),
      m('d/k2.txt'),
    ]);
    expect(problems).to.deep.equal([]);
    expect(samples.map((s) => s.key)).to.deep.equal(['k1', 'd/k2']);
    expect(Object.keys(samples[0].members).sort()).to.deep.equal(['bin', 'json', 'txt']);
  });

  it('reports a duplicate extension and a non-adjacent repeated key as problems of those samples', () => {
    const { samples, problems } = groupMembers([
      m('a.bin'),
      m('a.txt'),
      m('a.TXT'),
      m('b.bin'),
      m('c.bin'),
      m('b.txt'),
    ]);
    expect(samples.map((s) => s.key)).to.deep.equal(['b', 'c']);
    expect(problems.map((p) => p.key)).to.deep.equal(['a', 'b']);
    expect(problems[0].reason).to.match(/duplicate extension 'txt'/);
    expect(problems[1].reason).to.match(/adjacent/);
  });

  it('marks a sample with a truncated member', () => {
    const t = m('z.bin');
    t.truncated = true;
    const { samples, problems } = groupMembers([m('y.bin'), t]);
    expect(samples.map((s) => s.key)).to.deep.equal(['y']);
    expect(problems[0]).to.include({ key: 'z' });
    expect(problems[0].reason).to.match(/truncated/);
  });
});
