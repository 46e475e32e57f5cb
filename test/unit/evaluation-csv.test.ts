/** RFC 4180 CSV writing/parsing and the two CSV tables of the evaluation output. */
import { expect } from 'chai';
import { CSV_EOL, csvField, csvRecord, formatCsv, type CsvCell } from '../../lib/io/csv';
import { parseCsv } from '../../lib/results';
import { predictionsCsv, predictionsHeader } from '../../lib/results/predictions';
import { perClassCsv } from '../../lib/results/per-class';
import { buildEvaluationResults } from '../../lib/results/results';

describe('evaluation: CSV', function () {
  it('quotes exactly the fields that need it and doubles inner quotes (RFC 4180)', function () {
    const fields: Array<[string, string]> = [
      ['plain', 'plain'],
      ['a,b', '"a,b"'],
      ['say "hi"', '"say ""hi"""'],
      ['A<b>&"c"', '"A<b>&""c"""'],
      ['two\nlines', '"two\nlines"'],
      ['cr\rhere', '"cr\rhere"'],
      [' padded', '" padded"'],
      ['', ''],
    ];
    for (const [text, field] of fields) expect(csvField(text), JSON.stringify(text)).to.equal(field);
    expect(csvRecord(['x', 'y,z', 1])).to.equal('x,"y,z",1');
  });

  it('writes numbers in shortest round-trip form and NaN/Infinity/null as empty cells', function () {
    const fields: Array<[CsvCell, string]> = [
      [0.1, '0.1'],
      [1e-7, '1e-7'],
      [1 / 3, '0.3333333333333333'],
      [NaN, ''],
      [Infinity, ''],
      [-Infinity, ''],
      [null, ''],
      [undefined, ''],
      [0, '0'],
    ];
    for (const [value, field] of fields) expect(csvField(value), String(value)).to.equal(field);
    expect(Number(csvField(1 / 3))).to.equal(1 / 3);
  });

  it('ends every record with CRLF', function () {
    expect(CSV_EOL).to.equal('\r\n');
    expect(
      formatCsv([
        ['a', 'b'],
        [1, NaN],
      ]),
    ).to.equal('a,b\r\n1,\r\n');
  });

  it('parses hand-written RFC 4180 text, including quoted commas, quotes and line breaks', function () {
    const text = 'h1,h2,h3\r\n"a,b","say ""x""",3\r\n"multi\r\nline",,last\nplain,"",x';
    expect(parseCsv(text)).to.deep.equal([
      ['h1', 'h2', 'h3'],
      ['a,b', 'say "x"', '3'],
      ['multi\r\nline', '', 'last'],
      ['plain', '', 'x'],
    ]);
  });

  it('round-trips awkward strings through formatCsv → parseCsv', function () {
    const rows = [
      ['A<b>&"c"', 'x,y', '"', '""', 'a\nb', ' s ', ''],
      ['1', '2', '3', '4', '5', '6', '7'],
    ];
    expect(parseCsv(formatCsv(rows))).to.deep.equal(rows);
  });

  it('rejects malformed CSV with DATA_ERROR naming the line', function () {
    expect(() => parseCsv('a,"b\n'))
      .to.throw(/line 1: unterminated/)
      .with.property('code', 'DATA_ERROR');
    expect(() => parseCsv('a,b\nx"y,z\n')).to.throw(/line 2: stray double quote/);
    expect(() => parseCsv('"a"b,c\n')).to.throw(/after a closing quote/);
  });
});

describe('evaluation: predictions.csv and per_class.csv', function () {
  const classNames = ['A<b>&"c"', 'x,y', 'none'];
  const scores = [
    [0.9, 0.2, 0.5],
    [0.1, 0.8, 0.25],
    [0.4, 0.3, 1 / 3],
    [0.7, 0.6, 0.1],
  ];
  const labels = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 0],
    [1, 1, 0],
  ];
  const studyIds = ['s1', 'id "2"', 'id,3', 's4'];

  it('predictions header: study_id, one probability column per class, then one label:<class> column per class', function () {
    expect(predictionsHeader(classNames)).to.deep.equal([
      'study_id',
      'A<b>&"c"',
      'x,y',
      'none',
      'label:A<b>&"c"',
      'label:x,y',
      'label:none',
    ]);
  });

  it('refuses class names that would produce duplicate columns', function () {
    expect(() => predictionsHeader(['study_id']))
      .to.throw(/column name "study_id" would appear twice/)
      .with.property('code', 'ARGUMENT_ERROR');
    // 'label:a' as a probability column collides with the label column of class 'a'.
    expect(() => predictionsHeader(['a', 'label:a'])).to.throw(/column name "label:a" would appear twice/);
  });

  it('predictions.csv parses back to the exact ids, probabilities and labels', function () {
    const rows = parseCsv(predictionsCsv(studyIds, classNames, scores, labels));
    expect(rows).to.have.length(5);
    expect(rows[0]).to.deep.equal(predictionsHeader(classNames));
    for (let i = 0; i < 4; i++) {
      expect(rows[i + 1][0]).to.equal(studyIds[i]);
      expect(rows[i + 1].slice(1, 4).map(Number)).to.deep.equal(scores[i]);
      expect(rows[i + 1].slice(4).map(Number)).to.deep.equal(labels[i]);
    }
  });

  it('per_class.csv: one row per class, empty cells for the single-valued class, hand-checked values', function () {
    const results = buildEvaluationResults({ studyIds, classNames, scores, labels });
    const csv = perClassCsv(results);
    expect(csv.slice(0, csv.indexOf('\r\n'))).to.equal(
      'class,auroc,auprc,f1,f1_threshold,precision,recall,specificity,accuracy,f1_at_threshold,support,n_negative,tp,fp,tn,fn',
    );
    const rows = parseCsv(csv);
    const header = rows[0];
    expect(rows.map((r) => r[0])).to.deep.equal(['class', ...classNames]);
    const col = (row: string[], name: string) => row[header.indexOf(name)];
    // Class 0: positives {0.9, 0.7}, negatives {0.1, 0.4}: perfectly separated.
    expect(Number(col(rows[1], 'auroc'))).to.equal(1);
    expect(Number(col(rows[1], 'support'))).to.equal(2);
    // At 0.5: predicted positive {0.9, 0.7} → tp 2, fp 0, tn 2, fn 0.
    expect([col(rows[1], 'tp'), col(rows[1], 'fp'), col(rows[1], 'tn'), col(rows[1], 'fn')]).to.deep.equal([
      '2',
      '0',
      '2',
      '0',
    ]);
    // Class 1: positives {0.8, 0.6}, negatives {0.2, 0.3} → 1.
    expect(Number(col(rows[2], 'auroc'))).to.equal(1);
    // Class 2 has no positives: every metric cell empty, counts present.
    for (const m of header.slice(1, header.indexOf('support'))) expect(col(rows[3], m), m).to.equal('');
    expect(col(rows[3], 'support')).to.equal('0');
    expect(col(rows[3], 'n_negative')).to.equal('4');
  });

  it('per_class.csv adds <metric>_ci_lower/upper columns when bootstrapped', function () {
    const results = buildEvaluationResults({
      studyIds,
      classNames,
      scores,
      labels,
      bootstrap: { nResamples: 20, seed: 3, level: 0.9, perClassMetrics: ['auroc', 'auprc'] },
    });
    const rows = parseCsv(perClassCsv(results));
    expect(rows[0].slice(-4)).to.deep.equal(['auroc_ci_lower', 'auroc_ci_upper', 'auprc_ci_lower', 'auprc_ci_upper']);
    const iv = results.bootstrap!.per_class['x,y'].auroc!;
    expect(Number(rows[2][rows[0].indexOf('auroc_ci_lower')])).to.equal(iv.lower);
    expect(rows[3][rows[0].indexOf('auroc_ci_upper')]).to.equal('');
  });
});
