/**
 * Fixture-independent tests of the WordPiece tokenizer on a hand-made vocabulary: HF `BertTokenizer`
 * semantics for punctuation, accents, CJK, control chars, `##` splitting, [UNK], truncation and padding.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CtclipError } from '../../lib/errors';
import { Rng } from '../../lib/rng';
import { Tokenizer } from '../../lib/text/tokenizer';
import { basicTokenize, isPunctuation } from '../../lib/text/basic-tokenizer';
import { buildWordPieceVocab } from '../../lib/text/vocab-builder';
import { BERT_SPECIAL_TOKENS } from '../helpers/expected-names';

const VOCAB = [
  ...BERT_SPECIAL_TOKENS,
  'the',
  'is',
  'a',
  'nod',
  '##ule',
  '##s',
  'lung',
  '.',
  ',',
  '(',
  ')',
  '-',
  "'",
  '$',
  '[',
  ']',
  'cls',
  'cafe',
  'naive',
  'muller',
  '胸',
  '部',
  'ct',
  'x',
  '##x',
  '🙂',
  '##🙂',
  'i',
  'strasse',
  'straße',
  'ground',
  'glass',
  'αβγ',
  'fi',
  '##brosis',
  '—',
  '##ct',
];

function expectCtclipError(fn: () => unknown, code: string, messagePart?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a throw').to.be.instanceOf(CtclipError);
  expect((caught as CtclipError).code).to.equal(code);
  if (messagePart !== undefined) expect((caught as CtclipError).message).to.include(messagePart);
}

describe('tokenizer: basic tokenisation and WordPiece', function () {
  const tok = Tokenizer.fromVocab(VOCAB);

  it('exposes vocabulary size and special ids', function () {
    expect(tok.vocabSize).to.equal(VOCAB.length);
    expect([tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId]).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it('splits punctuation, including ASCII symbols that Unicode does not call punctuation', function () {
    expect(tok.tokenize('nodule, (lung).')).to.deep.equal(['nod', '##ule', ',', '(', 'lung', ')', '.']);
    expect(tok.tokenize('a$the')).to.deep.equal(['a', '$', 'the']);
    expect(['$', '+', '<', '=', '>', '^', '`', '|', '~', '—', '«', '“'].every(isPunctuation)).to.equal(true);
    expect(['°', '±', '×', 'a', '1', '²'].some(isPunctuation)).to.equal(false);
    expect(basicTokenize('ground-glass')).to.deep.equal(['ground', '-', 'glass']);
  });

  it('lower-cases and strips accents (precomposed and combining forms)', function () {
    expect(tok.tokenize('Café NAÏVE Müller')).to.deep.equal(['cafe', 'naive', 'muller']);
    expect(tok.tokenize('cafe\u0301')).to.deep.equal(['cafe']);
    // Python str.lower: İ → i + U+0307, and the dot (Mn) is then stripped.
    expect(tok.tokenize('İS İ')).to.deep.equal(['is', 'i']);
    // Greedy longest match: "is" wins over "i", and "##tanbul" is missing, so the whole word is [UNK].
    expect(tok.tokenize('İstanbul')).to.deep.equal(['[UNK]']);
    // ß has no single-char lowercase change and no decomposition: it stays.
    expect(tok.tokenize('Straße')).to.deep.equal(['straße']);
    expect(tok.tokenize('ΑΒΓ')).to.deep.equal(['αβγ']);
  });

  it('keeps case and accents with doLowerCase false', function () {
    const cased = Tokenizer.fromVocab([...VOCAB, 'Café'], { doLowerCase: false });
    expect(cased.tokenize('Café cafe Cafe')).to.deep.equal(['Café', 'cafe', '[UNK]']);
  });

  it('puts spaces around CJK ideographs, but not around kana or Hangul', function () {
    expect(tok.tokenize('胸部CT')).to.deep.equal(['胸', '部', 'ct']);
    // Hangul syllables decompose into (non-Mn) jamo under NFD, as in Python; kana stay as they are.
    expect(basicTokenize('はい폐결절')).to.deep.equal(['はい폐결절'.normalize('NFD')]);
    expect(basicTokenize('a\u{20000}b')).to.deep.equal(['a', '\u{20000}', 'b']);
  });

  it('drops control, format and replacement chars, and maps whitespace to spaces', function () {
    expect(tok.tokenize('lu\u0000ng')).to.deep.equal(['lung']);
    expect(tok.tokenize('lu\u200bng lu\ufffdng lu\u0007ng')).to.deep.equal(['lung', 'lung', 'lung']);
    expect(tok.tokenize('the\tis\na\r\nlung\u00a0the\u3000is')).to.deep.equal(['the', 'is', 'a', 'lung', 'the', 'is']);
    expect(tok.tokenize('')).to.deep.equal([]);
    expect(tok.tokenize(' \t\n ')).to.deep.equal([]);
  });

  it('splits words greedily, longest match first, with ## continuations', function () {
    expect(tok.tokenize('nodules')).to.deep.equal(['nod', '##ule', '##s']);
    expect(tok.tokenize('Fibrosis')).to.deep.equal(['fi', '##brosis']);
  });

  it('turns a word with an unmatched stretch into one [UNK], leaving its neighbours alone', function () {
    expect(tok.tokenize('nodz the')).to.deep.equal(['[UNK]', 'the']);
    expect(tok.tokenize('zzz.')).to.deep.equal(['[UNK]', '.']);
  });

  it('applies the 100-character limit in code points', function () {
    expect(tok.tokenize('x'.repeat(100))).to.deep.equal(['x', ...Array(99).fill('##x')]);
    expect(tok.tokenize('x'.repeat(101))).to.deep.equal(['[UNK]']);
    // 100 astral chars are 200 UTF-16 units but only 100 code points: still split, never cut mid-pair.
    expect(tok.tokenize('🙂'.repeat(100))).to.deep.equal(['🙂', ...Array(99).fill('##🙂')]);
    expect(tok.tokenize('🙂'.repeat(101))).to.deep.equal(['[UNK]']);
  });

  it('keeps exact special-token literals and treats other casings as text', function () {
    expect(tok.tokenize('[CLS] the[SEP]is [MASK]')).to.deep.equal(['[CLS]', 'the', '[SEP]', 'is', '[MASK]']);
    expect(tok.tokenize('[cls]')).to.deep.equal(['[', 'cls', ']']);
    const enc = tok.encode('[PAD] the', 6);
    expect(Array.from(enc.inputIds)).to.deep.equal([2, 0, 5, 3, 0, 0]);
    expect(Array.from(enc.attentionMask)).to.deep.equal([1, 1, 1, 1, 0, 0]);
  });

  it('encodes [CLS] … [SEP] with padding and an attention mask', function () {
    const enc = tok.encode('the lung', 6);
    expect(enc.inputIds).to.be.instanceOf(Int32Array);
    expect(Array.from(enc.inputIds)).to.deep.equal([2, 5, 11, 3, 0, 0]);
    expect(Array.from(enc.attentionMask)).to.deep.equal([1, 1, 1, 1, 0, 0]);
    expect(Array.from(tok.encode('', 4).inputIds)).to.deep.equal([2, 3, 0, 0]);
  });

  it('truncates to maxLength − 2 wordpieces, cutting inside a word if needed', function () {
    expect(Array.from(tok.encode('the nodules is', 4).inputIds)).to.deep.equal([2, 5, 8, 3]);
    expect(Array.from(tok.encode('the nodules is', 5).attentionMask)).to.deep.equal([1, 1, 1, 1, 1]);
    expect(Array.from(tok.encode('the is', 2).inputIds)).to.deep.equal([2, 3]);
    const exact = tok.encode('the is a', 5);
    expect(Array.from(exact.inputIds)).to.deep.equal([2, 5, 6, 7, 3]);
  });

  it('encodes batches as int64 row-major arrays matching encode()', function () {
    const texts = ['the lung', 'nodules, the lung is a nod', '', '胸部 CT (x)'];
    const L = 7;
    const batch = tok.encodeBatch(texts, L);
    expect(batch.inputIds).to.be.instanceOf(BigInt64Array);
    expect(batch.attentionMask).to.be.instanceOf(BigInt64Array);
    expect(batch.inputIds.length).to.equal(texts.length * L);
    expect([batch.batchSize, batch.maxLength]).to.deep.equal([4, 7]);
    texts.forEach((t, b) => {
      const one = tok.encode(t, L);
      expect(Array.from(batch.inputIds.subarray(b * L, (b + 1) * L), Number)).to.deep.equal(Array.from(one.inputIds));
      expect(Array.from(batch.attentionMask.subarray(b * L, (b + 1) * L), Number)).to.deep.equal(
        Array.from(one.attentionMask),
      );
    });
    expect(tok.encodeBatch([], L).inputIds.length).to.equal(0);
  });

  it('pads with the [PAD] id even when it is not 0', function () {
    const swapped = Tokenizer.fromVocab(['[UNK]', '[PAD]', '[CLS]', '[SEP]', 'the']);
    expect(swapped.maskId).to.equal(-1);
    expect(Array.from(swapped.encode('the', 5).inputIds)).to.deep.equal([2, 4, 3, 1, 1]);
    expect(Array.from(swapped.encodeBatch(['the', ''], 4).inputIds, Number)).to.deep.equal([2, 4, 3, 1, 2, 3, 1, 1]);
    // [MASK] is a special token even when missing from the vocabulary: it encodes as [UNK].
    expect(Array.from(swapped.encode('[MASK]', 3).inputIds)).to.deep.equal([2, 0, 3]);
  });

  it('keeps results right with a tiny word cache, and bounds it', function () {
    const small = Tokenizer.fromVocab(VOCAB, { cacheSize: 2 });
    const text = 'the lung is a nodules the lung';
    for (let i = 0; i < 3; i++)
      expect(Array.from(small.encode(text, 12).inputIds)).to.deep.equal(Array.from(tok.encode(text, 12).inputIds));
    expect(small.cachedWords).to.be.at.most(2);
  });

  it('rejects bad maxLength values with ARGUMENT_ERROR', function () {
    for (const L of [1, 0, -3, 2.5, NaN]) {
      expectCtclipError(() => tok.encode('the', L), 'ARGUMENT_ERROR');
      expectCtclipError(() => tok.encodeBatch(['the'], L), 'ARGUMENT_ERROR');
    }
  });

  it('rejects vocabularies without the required special tokens', function () {
    expectCtclipError(() => Tokenizer.fromVocab(['[PAD]', '[CLS]', '[SEP]', 'the']), 'DATA_ERROR', '[UNK]');
    expectCtclipError(() => Tokenizer.fromVocab([]), 'ARGUMENT_ERROR');
  });
});

describe('tokenizer: vocab.txt files', function () {
  let dir: string;
  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-tok-'));
  });
  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads one token per line, with LF or CRLF endings', function () {
    for (const eol of ['\n', '\r\n']) {
      const p = path.join(dir, `vocab${eol.length}.txt`);
      fs.writeFileSync(p, VOCAB.join(eol) + eol);
      const t = Tokenizer.fromVocabFile(p);
      expect(t.vocabSize).to.equal(VOCAB.length);
      expect(t.tokenize('Nodules')).to.deep.equal(['nod', '##ule', '##s']);
      expect(t.idToTokenString(8)).to.equal('nod');
    }
  });

  it('throws IO_ERROR naming the path for a missing or empty file', function () {
    const missing = path.join(dir, 'nope.txt');
    expectCtclipError(() => Tokenizer.fromVocabFile(missing), 'IO_ERROR', missing);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    expectCtclipError(() => Tokenizer.fromVocabFile(empty), 'IO_ERROR', empty);
  });
});

describe('tokenizer: batch speed', function () {
  it('tokenizes 1000 reports of ~150 words at max_length 512 quickly', function () {
    const rng = new Rng(1234);
    const lexicon = [
      'the',
      'there',
      'is',
      'no',
      'a',
      'of',
      'in',
      'and',
      'with',
      'right',
      'left',
      'upper',
      'lower',
      'lobe',
      'nodule',
      'mm',
      'pleural',
      'effusion',
      'consolidation',
      'ground-glass',
      'opacity',
      'emphysema',
      'atelectasis',
      'mediastinal',
      'lymphadenopathy',
      'trachea',
      'bronchi',
      'patent',
      'heart',
      'size',
      'normal',
      'calcified',
      'non-calcified',
      'segment',
      'posterior',
      'anterior',
      'bilateral',
      'mild',
      'moderate',
      'severe',
      'thickening',
      'septal',
      'aorta',
      'pericardial',
      'hiatal',
      'hernia',
      'arterial',
      'wall',
      'calcification',
      'mosaic',
      'attenuation',
      'bronchiectasis',
    ];
    const reports: string[] = [];
    for (let r = 0; r < 1000; r++) {
      const words: string[] = [];
      for (let w = 0; w < 150; w++) {
        let word = lexicon[rng.int(lexicon.length)];
        if (rng.nextFloat() < 0.1) word = `${(rng.nextFloat() * 20).toFixed(1)}`;
        if (rng.nextFloat() < 0.08) word += '.';
        else if (rng.nextFloat() < 0.05) word += ',';
        words.push(word);
      }
      reports.push(words.join(' '));
    }
    const vocab = buildWordPieceVocab(reports.slice(0, 100), { vocabSize: 300 });
    const tok = Tokenizer.fromVocab(vocab);
    const t0 = process.hrtime.bigint();
    const batch = tok.encodeBatch(reports, 512);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const cold = Tokenizer.fromVocab(vocab);
    const t1 = process.hrtime.bigint();
    for (const r of reports) cold.tokenize(r);
    const msUncached = Number(process.hrtime.bigint() - t1) / 1e6;
    // Reported, not asserted tightly: CI machines vary. The bound only catches pathological slowdowns.
    console.log(
      `      encodeBatch(1000 × ~150 words, L=512): ${ms.toFixed(1)} ms; uncached tokenize(): ${msUncached.toFixed(1)} ms`,
    );
    expect(batch.inputIds.length).to.equal(1000 * 512);
    expect(Array.from(batch.inputIds).some((id) => id === BigInt(tok.unkId))).to.equal(false);
    expect(ms).to.be.below(5000);
  });
});
