import { expect } from 'chai';
import { expandBraces, expandShardPattern } from '../../lib/data/brace';
import { hasCode } from '../../lib/errors';

describe('data/brace', () => {
  it('expands an inclusive zero-padded range, in order', () => {
    const names = expandBraces('/d/shard-{000000..000316}.tar');
    expect(names).to.have.length(317);
    expect(names[0]).to.equal('/d/shard-000000.tar');
    expect(names[9]).to.equal('/d/shard-000009.tar');
    expect(names[316]).to.equal('/d/shard-000316.tar');
  });

  it('keeps padding from either bound and counts down for descending ranges', () => {
    expect(expandBraces('s{8..010}')).to.deep.equal(['s008', 's009', 's010']);
    expect(expandBraces('s{3..1}')).to.deep.equal(['s3', 's2', 's1']);
    expect(expandBraces('s{0..6..3}')).to.deep.equal(['s0', 's3', 's6']);
    expect(expandBraces('{9..11}')).to.deep.equal(['9', '10', '11']);
  });

  it('expands lists and products in the order written (not sorted)', () => {
    expect(expandBraces('{valid,train}/s-{0..1}.tar')).to.deep.equal([
      'valid/s-0.tar',
      'valid/s-1.tar',
      'train/s-0.tar',
      'train/s-1.tar',
    ]);
    expect(expandBraces('a{b,c{d,e}}f')).to.deep.equal(['abf', 'acdf', 'acef']);
    expect(expandBraces('{a..c}')).to.deep.equal(['a', 'b', 'c']);
  });

  it('leaves literal braces and plain names alone', () => {
    expect(expandBraces('/d/plain.tar')).to.deep.equal(['/d/plain.tar']);
    expect(expandBraces('/d/{x}/s-{1..2}.tar')).to.deep.equal(['/d/{x}/s-1.tar', '/d/{x}/s-2.tar']);
  });

  it('refuses compressed shards with a message saying to decompress', () => {
    for (const p of ['/d/shard-{0..2}.tar.gz', '/d/s.tgz']) {
      try {
        expandShardPattern(p);
        expect.fail('should throw');
      } catch (e) {
        expect(hasCode(e, 'ARGUMENT_ERROR')).to.equal(true);
        expect((e as Error).message)
          .to.match(/decompress/i)
          .and.match(/uncompressed tar/);
      }
    }
  });
});
