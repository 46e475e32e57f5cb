/**
 * Fixture F (`../shared/fixtures/tokenizer`): every id and mask of HF `BertTokenizer(do_lower_case=True)` at
 * max_length 32 and 512 must match exactly, and `tokenize` must give the stored untruncated wordpieces.
 */
import { expect } from 'chai';
import { fixturePath, fixturesAvailable, readFixtureJson } from '../helpers/fixtures';
import { Tokenizer } from '../../lib/text/tokenizer';

interface TokenizerCase {
  text: string;
  max_length: number;
  input_ids: number[];
  attention_mask: number[];
  token_type_ids?: number[];
  wordpieces_untruncated: string[];
  n_wordpieces_untruncated: number;
}

interface TokenizerMeta {
  vocab_size: number;
  special_ids: Record<string, number>;
}

const CASE_FILES = ['cases_max32.json', 'cases_max512.json'];

describe('tokenizer: fixture F', function () {
  let tok: Tokenizer;

  before(function () {
    if (!fixturesAvailable()) this.skip();
    tok = Tokenizer.fromVocabFile(fixturePath('tokenizer', 'vocab.txt'));
  });

  it('has the vocabulary size and special ids of meta.json', function () {
    const meta = readFixtureJson<TokenizerMeta>('tokenizer', 'meta.json');
    expect(tok.vocabSize).to.equal(meta.vocab_size);
    expect(tok.padId).to.equal(meta.special_ids['[PAD]']);
    expect(tok.unkId).to.equal(meta.special_ids['[UNK]']);
    expect(tok.clsId).to.equal(meta.special_ids['[CLS]']);
    expect(tok.sepId).to.equal(meta.special_ids['[SEP]']);
    expect(tok.maskId).to.equal(meta.special_ids['[MASK]']);
  });

  for (const file of CASE_FILES) {
    describe(file, function () {
      let cases: TokenizerCase[] = [];
      before(function () {
        if (!fixturesAvailable()) this.skip();
        cases = readFixtureJson<TokenizerCase[]>('tokenizer', file);
      });

      it('tokenize() gives the untruncated wordpieces of every case', function () {
        const bad: string[] = [];
        for (const c of cases) {
          const got = tok.tokenize(c.text);
          if (JSON.stringify(got) !== JSON.stringify(c.wordpieces_untruncated)) {
            bad.push(
              `${JSON.stringify(c.text)}: got ${JSON.stringify(got)}, want ${JSON.stringify(c.wordpieces_untruncated)}`,
            );
          }
          expect(got.length).to.equal(c.n_wordpieces_untruncated);
        }
        expect(bad, bad.join('\n')).to.deep.equal([]);
      });

      it('encode() gives every input id and attention mask exactly', function () {
        for (const c of cases) {
          const enc = tok.encode(c.text, c.max_length);
          expect(Array.from(enc.inputIds), JSON.stringify(c.text)).to.deep.equal(c.input_ids);
          expect(Array.from(enc.attentionMask), JSON.stringify(c.text)).to.deep.equal(c.attention_mask);
          if (c.token_type_ids) expect(c.token_type_ids.every((t) => t === 0)).to.equal(true);
        }
      });

      it('encodeBatch() gives the same ids as int64 row-major arrays', function () {
        const L = cases[0].max_length;
        expect(cases.every((c) => c.max_length === L)).to.equal(true);
        const batch = tok.encodeBatch(
          cases.map((c) => c.text),
          L,
        );
        expect(batch.batchSize).to.equal(cases.length);
        expect(batch.maxLength).to.equal(L);
        expect(batch.inputIds).to.be.instanceOf(BigInt64Array);
        expect(batch.attentionMask).to.be.instanceOf(BigInt64Array);
        cases.forEach((c, b) => {
          const ids = Array.from(batch.inputIds.subarray(b * L, (b + 1) * L), Number);
          const mask = Array.from(batch.attentionMask.subarray(b * L, (b + 1) * L), Number);
          expect(ids, JSON.stringify(c.text)).to.deep.equal(c.input_ids);
          expect(mask, JSON.stringify(c.text)).to.deep.equal(c.attention_mask);
        });
      });
    });
  }
});
