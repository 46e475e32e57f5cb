/**
 * The WordPiece vocabulary of a Hugging Face tokenizer.json (what transformers 5 saves instead of vocab.txt):
 * tokens in id order whatever the JSON order, gaps and duplicate ids refused, non-WordPiece models and
 * normalizers ctclip does not implement refused naming the field and value; a folder's vocabulary file.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { folderVocabFile } from '../../lib/text/folder-vocab';
import { Tokenizer } from '../../lib/text/tokenizer';
import { readTokenizerJsonVocab } from '../../lib/text/tokenizer-json';

const TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'lung', '##s', 'is', 'clear', '.', 'effusion'];

/** A tokenizer.json as transformers 5.18's BertTokenizer.save_pretrained writes it (the fields read here). */
function tokenizerJson(over: { model?: object; normalizer?: object | null; added?: object[]; vocab?: object } = {}) {
  const vocab = over.vocab ?? Object.fromEntries(TOKENS.map((t, i) => [t, i]));
  return {
    version: '1.0',
    added_tokens:
      over.added ?? ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t, id) => ({ id, content: t, special: true })),
    normalizer:
      over.normalizer === undefined
        ? { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true }
        : over.normalizer,
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
      ...(over.model ?? {}),
    },
  };
}

describe('text: tokenizer.json vocabulary (transformers 5 folders)', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-tokjson-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, value: unknown): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, JSON.stringify(value));
    return f;
  };
  const fails = (f: () => unknown, re: RegExp): void => {
    let err: (Error & { code?: string }) | undefined;
    try {
      f();
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err, 'an error').to.not.equal(undefined);
    expect(err!.code).to.equal('DATA_ERROR');
    expect(err!.message).to.match(re);
  };

  it('orders the tokens by id, whatever order the JSON object lists them in', () => {
    const shuffled = Object.fromEntries(
      TOKENS.map((t, i) => [t, i] as const)
        .slice()
        .reverse(),
    );
    const f = write('shuffled.json', tokenizerJson({ vocab: shuffled }));
    const v = readTokenizerJsonVocab(f);
    expect(v.tokens).to.deep.equal(TOKENS);
    expect(v.doLowerCase).to.equal(true);
    expect(v.maxInputCharsPerWord).to.equal(100);
  });

  it('a tokenizer from tokenizer.json encodes exactly as one from the same tokens as vocab.txt', () => {
    const json = write('tokenizer.json', tokenizerJson());
    const txt = path.join(dir, 'vocab.txt');
    fs.writeFileSync(txt, TOKENS.join('\n') + '\n');
    const a = Tokenizer.fromVocabFile(json, { doLowerCase: true });
    const b = Tokenizer.fromVocabFile(txt, { doLowerCase: true });
    expect(a.vocabSize).to.equal(TOKENS.length);
    for (const text of ['The lungs is CLEAR.', 'effusion [SEP] the xyz', 'Lüngs']) {
      expect(Array.from(a.encode(text, 12).inputIds), text).to.deep.equal(Array.from(b.encode(text, 12).inputIds));
    }
    expect(Tokenizer.readVocabTokens(json)).to.deep.equal(Tokenizer.readVocabTokens(txt));
  });

  it('refuses a gap in the ids, naming the token and the id', () => {
    const vocab = Object.fromEntries(TOKENS.map((t, i) => [t, i < 6 ? i : i + 1]));
    fails(
      () => readTokenizerJsonVocab(write('gap.json', tokenizerJson({ vocab }))),
      /gap\.json: 'model\.vocab\["effusion"\]' is 12; ids must be 0\.\.11 without gaps/,
    );
  });

  it('refuses two tokens with one id, and ids that are not non-negative integers', () => {
    const dup = { ...Object.fromEntries(TOKENS.slice(0, 11).map((t, i) => [t, i])), effusion: 5 };
    fails(
      () => readTokenizerJsonVocab(write('dup.json', tokenizerJson({ vocab: dup }))),
      /'model\.vocab\["effusion"\]' is 5; id 5 is also the id of "the"/,
    );
    const neg = { ...Object.fromEntries(TOKENS.slice(0, 11).map((t, i) => [t, i])), effusion: -1 };
    fails(
      () => readTokenizerJsonVocab(write('neg.json', tokenizerJson({ vocab: neg }))),
      /'model\.vocab\["effusion"\]' is -1; expected a non-negative integer id/,
    );
  });

  it('refuses a tokenizer that is not WordPiece, naming its type', () => {
    fails(
      () => readTokenizerJsonVocab(write('bpe.json', tokenizerJson({ model: { type: 'BPE', merges: [] } }))),
      /bpe\.json: 'model\.type' is "BPE"; only 'WordPiece' \(BERT\) tokenizers are supported/,
    );
    fails(
      () => readTokenizerJsonVocab(write('unigram.json', { model: { type: 'Unigram', vocab: [['a', 0]] } })),
      /'model\.type' is "Unigram"/,
    );
  });

  it('refuses normalizers, prefixes and added tokens ctclip does not implement', () => {
    fails(
      () => readTokenizerJsonVocab(write('nfc.json', tokenizerJson({ normalizer: { type: 'NFC' } }))),
      /'normalizer\.type' is "NFC"; expected 'BertNormalizer'/,
    );
    fails(
      () =>
        readTokenizerJsonVocab(
          write(
            'accents.json',
            tokenizerJson({ normalizer: { type: 'BertNormalizer', lowercase: true, strip_accents: false } }),
          ),
        ),
      /'normalizer\.strip_accents' is false; expected null or true/,
    );
    fails(
      () => readTokenizerJsonVocab(write('prefix.json', tokenizerJson({ model: { continuing_subword_prefix: '@@' } }))),
      /'model\.continuing_subword_prefix' is "@@"/,
    );
    fails(
      () =>
        readTokenizerJsonVocab(
          write('added.json', tokenizerJson({ added: [{ id: 12, content: '<new>', special: false }] })),
        ),
      /'added_tokens' is "<new>"; only the BERT special tokens/,
    );
  });

  it('reads lowercase from the normalizer; a contradicting do_lower_case is refused', () => {
    const f = write(
      'cased.json',
      tokenizerJson({
        normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, lowercase: false },
      }),
    );
    expect(readTokenizerJsonVocab(f).doLowerCase).to.equal(false);
    expect(Tokenizer.fromVocabFile(f, { doLowerCase: false }).doLowerCase).to.equal(false);
    fails(
      () => Tokenizer.fromVocabFile(f, { doLowerCase: true }),
      /cased\.json: 'normalizer\.lowercase' is false but the tokenizer was asked for do_lower_case true/,
    );
  });

  it('a folder’s vocabulary: vocab.txt first, else tokenizer.json, else none', () => {
    const folder = fs.mkdtempSync(path.join(dir, 'folder-'));
    expect(folderVocabFile(folder)).to.equal(null);
    fs.writeFileSync(path.join(folder, 'tokenizer.json'), JSON.stringify(tokenizerJson()));
    expect(folderVocabFile(folder)).to.equal(path.join(folder, 'tokenizer.json'));
    fs.writeFileSync(path.join(folder, 'vocab.txt'), TOKENS.join('\n'));
    expect(folderVocabFile(folder)).to.equal(path.join(folder, 'vocab.txt'));
  });
});
