/** RFC 4180 CSV parsing for the CT-RATE CSVs, and the report/metadata cell rules. */
import { expect } from 'chai';
import { csvTableFromText, pandasStr, parseCsv } from '../../lib/io/csv';
import { parseXYSpacing, sampleJson, studyIdOf } from '../../lib/preprocess/dataset';

const rows = (t: string): string[][] => parseCsv(t).map((r) => r.fields);

describe('preprocess: CSV', () => {
  it('splits plain fields, keeps empty fields and a missing final newline', () => {
    expect(rows('a,b,c\n1,,3\n,,\nx')).to.deep.equal([['a', 'b', 'c'], ['1', '', '3'], ['', '', ''], ['x']]);
  });

  it('handles quoted fields with commas, newlines and doubled quotes', () => {
    const t =
      'VolumeName,Findings_EN,Impressions_EN\r\n' +
      'train_1_a_1.nii.gz,"Lungs clear, no ""nodule"".\nHeart normal.","None."\r\n' +
      'train_2_a_1.nii.gz,,"x,\r\ny"\n';
    const r = parseCsv(t);
    expect(r.map((x) => x.fields)).to.deep.equal([
      ['VolumeName', 'Findings_EN', 'Impressions_EN'],
      ['train_1_a_1.nii.gz', 'Lungs clear, no "nodule".\nHeart normal.', 'None.'],
      ['train_2_a_1.nii.gz', '', 'x,\r\ny'],
    ]);
    // Line numbers are where each record starts.
    expect(r.map((x) => x.line)).to.deep.equal([1, 2, 4]);
  });

  it('strips a BOM, accepts CR-only and skips blank lines', () => {
    expect(rows('\uFEFFa,b\r1,2\r\r\n\n3,4\n')).to.deep.equal([
      ['a', 'b'],
      ['1', '2'],
      ['3', '4'],
    ]);
  });

  it('keeps a quote inside an unquoted field literally; "" is an empty field', () => {
    expect(rows('ab"c,""\n')).to.deep.equal([['ab"c', '']]);
  });

  it('reports an unterminated quote with file and line', () => {
    expect(() => parseCsv('a,b\n1,"open\nmore', 'r.csv')).to.throw(/r\.csv: line 2: unterminated quoted field/);
  });

  it('tables: required columns, get() by name, short rows', () => {
    const t = csvTableFromText(' VolumeName ,X\nv1,1\nv2\n', 'm.csv', ['VolumeName']);
    expect(t.header).to.deep.equal(['VolumeName', 'X']);
    expect(t.get(t.rows[0], 'X')).to.equal('1');
    expect(t.get(t.rows[1], 'X')).to.equal('');
    expect(() => csvTableFromText('a,b\n', 'm.csv', ['ZSpacing'])).to.throw(/m\.csv: missing column 'ZSpacing'/);
    expect(() => csvTableFromText('', 'e.csv')).to.throw(/e\.csv: empty CSV/);
  });

  it('report cells: pandas NaN cells become "nan" (the reference stage-1 text)', () => {
    expect(pandasStr('')).to.equal('nan');
    expect(pandasStr('NA')).to.equal('nan');
    expect(pandasStr(undefined)).to.equal('nan');
    expect(pandasStr('Not given.')).to.equal('Not given.');
    expect(pandasStr(' ')).to.equal(' ');
  });

  it('XYSpacing strings, study ids, the stored JSON', () => {
    expect(parseXYSpacing('[0.75, 0.75]')).to.equal(0.75);
    expect(parseXYSpacing('[0.703125 0.703125]')).to.equal(0.703125);
    expect(parseXYSpacing('0.6')).to.equal(0.6);
    expect(parseXYSpacing('n/a')).to.be.NaN;
    expect(studyIdOf('train_1_a_1.nii.gz')).to.equal('train_1_a_1');
    expect(studyIdOf('/x/valid_2_b_3.nii')).to.equal('valid_2_b_3');
    expect(sampleJson('valid_1_a_1', [480, 480, 240])).to.equal(
      '{"study_id": "valid_1_a_1", "volume_shape": [480, 480, 240], "volume_dtype": "float16"}',
    );
    expect(JSON.parse(sampleJson('a"b', [1, 2, 3])).study_id).to.equal('a"b');
  });
});
