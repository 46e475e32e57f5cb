import { expect } from 'chai';
import { cleanReport } from '../../lib/data/report';

describe('data/report cleanReport', () => {
  it('keeps findings "\\n" impressions and removes only " \' ( )', () => {
    expect(cleanReport('Heart (normal) is "fine".\nNo \'acute\' finding.')).to.equal(
      'Heart normal is fine.\nNo acute finding.',
    );
  });
  it('blanks a part equal to "nan" or "Not given." (per part)', () => {
    expect(cleanReport('nan\nImpression.')).to.equal('\nImpression.');
    expect(cleanReport('Findings.\nNot given.')).to.equal('Findings.\n');
    expect(cleanReport('Not given.\nnan')).to.equal('\n');
    expect(cleanReport('Not given.')).to.equal('');
  });
  it('splits at the FIRST newline only and does not strip whitespace', () => {
    expect(cleanReport(' A. \nB.\nnan')).to.equal(' A. \nB.\nnan');
    expect(cleanReport('A.\n Not given.')).to.equal('A.\n Not given.');
    expect(cleanReport('nan ')).to.equal('nan ');
  });
  it('leaves other punctuation and unicode alone', () => {
    expect(cleanReport('5 mm [x], 3° – ok;\n`q`')).to.equal('5 mm [x], 3° – ok;\n`q`');
  });
});
