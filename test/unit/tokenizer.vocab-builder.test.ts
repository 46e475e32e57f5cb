/** Tests of the deterministic WordPiece vocabulary builder used to write the demo's vocab.txt. */
import { expect } from 'chai';
import * as fs from 'fs';
import { CtclipError } from '../../lib/errors';
import { buildWordPieceVocab, vocabToText } from '../../lib/text/vocab-builder';
import { Tokenizer } from '../../lib/text/tokenizer';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';

const CORPUS = [
  'There is a 3.5 mm nodule in the right upper lobe.',
  'No pleural effusion. No pleural thickening.',
  'Ground-glass opacity in the left lower lobe (series 4).',
  'Café-au-lait naïve 胸部CT “quoted” text.',
  'The the THE nodule nodules.',
];

describe('vocab builder', function () {
  it('puts specials first, then characters, then ## characters, then words by frequency', function () {
    const vocab = buildWordPieceVocab(CORPUS, { vocabSize: 1000 });
    expect(vocab.slice(0, 5)).to.deep.equal(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    const firstHash = vocab.findIndex((t) => t.startsWith('##'));
    const chars = vocab.slice(5, firstHash);
    expect(chars.every((c) => [...c].length === 1)).to.equal(true);
    expect(chars).to.include.members(['.', '(', 'a', 'e', '胸', '“', '3']);
    expect(chars).to.not.include('é'); // accents are stripped before counting
    const cps = chars.map((c) => c.codePointAt(0)!);
    expect(cps).to.deep.equal([...cps].sort((x, y) => x - y));
    const words = vocab.slice(vocab.findIndex((t, i) => i > firstHash && !t.startsWith('##')));
    // "the" ×5 is the most frequent word; then ties (e.g. "in", "lobe", "no", "nodule", "pleural" ×2) alphabetically.
    expect(words[0]).to.equal('the');
    expect(words.slice(1, 6)).to.deep.equal(['in', 'lobe', 'no', 'nodule', 'pleural']);
    expect(new Set(vocab).size).to.equal(vocab.length);
  });

  it('is deterministic and respects vocabSize and minFrequency', function () {
    const a = buildWordPieceVocab(CORPUS, { vocabSize: 80 });
    const b = buildWordPieceVocab([...CORPUS], { vocabSize: 80 });
    expect(a).to.deep.equal(b);
    expect(a.length).to.equal(80);
    const frequent = buildWordPieceVocab(CORPUS, { vocabSize: 1000, minFrequency: 2 });
    expect(frequent).to.include('nodule');
    expect(frequent).to.not.include('series');
  });

  it('tokenizes its own corpus without [UNK]', function () {
    const vocab = buildWordPieceVocab(CORPUS, { vocabSize: 70 });
    const tok = Tokenizer.fromVocab(vocab);
    for (const text of CORPUS) expect(tok.tokenize(text)).to.not.include('[UNK]');
    expect(Tokenizer.fromVocab(vocabToText(vocab).split('\n').slice(0, -1)).vocabSize).to.equal(vocab.length);
  });

  it("tokenizes fixture F's training corpus without [UNK]", function () {
    if (!fixturesAvailable()) this.skip();
    const corpus = fs
      .readFileSync(fixturePath('tokenizer', 'training_corpus.txt'), 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const vocab = buildWordPieceVocab(corpus, { vocabSize: 1500 });
    expect(vocab.length).to.be.at.most(1500);
    const tok = Tokenizer.fromVocab(vocab);
    for (const text of corpus) expect(tok.tokenize(text), text).to.not.include('[UNK]');
  });

  it('rejects a vocabSize too small for the alphabet, and bad options', function () {
    const tooSmall = () => buildWordPieceVocab(CORPUS, { vocabSize: 10 });
    expect(tooSmall).to.throw(CtclipError).with.property('code', 'ARGUMENT_ERROR');
    expect(() => buildWordPieceVocab(CORPUS, { vocabSize: 0 }))
      .to.throw(CtclipError)
      .with.property('code', 'ARGUMENT_ERROR');
    expect(() => buildWordPieceVocab(CORPUS, { vocabSize: 100, minFrequency: 0 }))
      .to.throw(CtclipError)
      .with.property('code', 'ARGUMENT_ERROR');
  });
});
