/**
 * Hugging Face BERT folder import, round trip: `ctclip make-hf-folder` writes a CXR-BERT-like folder from fixture
 * C's weights (bert.* keys, stale position_ids, MLM/projection heads; model.safetensors and our own
 * pytorch_model.bin), and `importHfBertFolder` gives back config.json's text-encoder fields and exactly the
 * fixture's text_transformer.* tensors, with the extras dropped and reported.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { main } from '../../lib/cli';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import { type TensorHandle } from '../../lib/tensor';
import { importHfBertFolder, parseHfBertConfig } from '../../lib/weights';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { HF_FOLDER_FILES } from '../helpers/expected-names';
import { caseCMeta, expectSameTensors, tmpDir } from '../helpers/weights-fixtures';

describe('weights: Hugging Face BERT folder', function () {
  let dir: string;
  let text: { names: string[]; tensors: TensorHandle[] };
  before(async function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    dir = tmpDir('hf');
    const all = await loadSafetensors(fixturePath('ctclip_tiny', 'weights.safetensors'));
    const idx = all.names.map((n, i) => [n, i] as const).filter(([n]) => n.startsWith('text_transformer.'));
    text = { names: idx.map(([n]) => n), tensors: idx.map(([, i]) => all.tensors[i]) };
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('make-hf-folder writes config.json, vocab.txt, tokenizer_config.json, model.safetensors and pytorch_model.bin', async () => {
    const out = path.join(dir, 'cxr-bert-tiny');
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    (process.stdout as { write: unknown }).write = (s: string) => (writes.push(s), true);
    let code: number;
    try {
      code = await main([
        'make-hf-folder',
        '--from',
        fixturePath('ctclip_tiny', 'weights.safetensors'),
        '--out',
        out,
        '--heads',
        '2',
        // The fixture has no run config next to it: the vocabulary and the dropout are given.
        '--vocab',
        'synthetic',
        '--dropout',
        '0.25',
        '--with-extras',
      ]);
    } finally {
      (process.stdout as { write: unknown }).write = orig;
    }
    expect(code).to.equal(0);
    expect(fs.readdirSync(out).sort()).to.deep.equal(HF_FOLDER_FILES);
    expect(writes.join('')).to.include('pytorch_model.bin');
  });

  for (const variant of ['model.safetensors', 'pytorch_model.bin']) {
    it(`imports the folder through ${variant}: config fields, tensors bit-identical, extras dropped`, async () => {
      const src = path.join(dir, 'cxr-bert-tiny');
      const folder = path.join(dir, `only-${variant}`);
      fs.mkdirSync(folder, { recursive: true });
      for (const f of ['config.json', 'vocab.txt', variant]) fs.copyFileSync(path.join(src, f), path.join(folder, f));
      const r = await importHfBertFolder(folder, { strict: true });
      const b = caseCMeta().bert_config;
      expect(r.textEncoderConfig).to.deep.equal({
        vocab_size: b.vocab_size,
        hidden_size: b.hidden_size,
        num_hidden_layers: b.num_hidden_layers,
        num_attention_heads: b.num_attention_heads,
        intermediate_size: b.intermediate_size,
        max_position_embeddings: b.max_position_embeddings,
        hidden_dropout_prob: 0.25,
        attention_probs_dropout_prob: 0.25,
        layer_norm_eps: 1e-12,
      });
      expect(r.vocabPath).to.equal(path.join(folder, 'vocab.txt'));
      expect(r.weightsFiles).to.deep.equal([path.join(folder, variant)]);
      // BertModel order, our names.
      expect(r.names).to.deep.equal(
        caseCMeta()
          .state_dict_keys.map((k) => k.key)
          .filter((k) => k.startsWith('text_transformer.')),
      );
      expectSameTensors(r, text, variant);
      expect(r.report.dropped.map((d) => d.key)).to.deep.equal([
        'bert.embeddings.position_ids',
        'cls.predictions.bias',
        'cls.predictions.transform.dense.weight',
        'cls.predictions.transform.dense.bias',
        'cls.predictions.transform.LayerNorm.weight',
        'cls.predictions.transform.LayerNorm.bias',
        'cls.predictions.decoder.weight',
        'cls_projection_head.dense_to_hidden.weight',
        'cls_projection_head.dense_to_hidden.bias',
      ]);
      expect(r.report.missing).to.deep.equal([]);
      expect(r.report.unexpected).to.deep.equal([]);
      expect(r.report.renamed[0]).to.deep.equal({
        from: 'bert.embeddings.word_embeddings.weight',
        to: 'text_transformer.embeddings.word_embeddings.weight',
      });
    });
  }

  it('a folder without a pooler (CXR-BERT) imports; strict still passes, the pooler is reported as unused', async () => {
    const folder = path.join(dir, 'no-pooler');
    // Un-prefixed keys this time (some exports have no 'bert.' prefix), and no pooler.
    const { writeSafetensors } = await import('../../lib/io/safetensors');
    const { readSafetensors } = await import('../../lib/io/safetensors');
    const src = await readSafetensors(path.join(dir, 'cxr-bert-tiny', 'model.safetensors'));
    const kept = [...src.tensors]
      .filter(([n]) => !n.includes('pooler'))
      .map(([n, t]) => [n.replace(/^bert\./, ''), t] as const);
    fs.mkdirSync(folder, { recursive: true });
    await writeSafetensors(path.join(folder, 'model.safetensors'), kept);
    for (const f of ['config.json', 'vocab.txt'])
      fs.copyFileSync(path.join(dir, 'cxr-bert-tiny', f), path.join(folder, f));
    const r = await importHfBertFolder(folder, { strict: true });
    expect(r.report.missingUnused).to.deep.equal([
      'text_transformer.pooler.dense.weight',
      'text_transformer.pooler.dense.bias',
    ]);
    expect(r.names.length).to.equal(text.names.length - 2);
  });

  it('the vocabulary: tokenizer.json when there is no vocab.txt (transformers 5); none at all is a note', async () => {
    const src = path.join(dir, 'cxr-bert-tiny');
    const folder = path.join(dir, 'v5');
    fs.mkdirSync(folder, { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(src, f), path.join(folder, f));
    const bare = await importHfBertFolder(folder, { strict: true });
    expect(bare.vocabPath).to.equal(null);
    expect(bare.report.notes).to.include(
      "no vocab.txt or tokenizer.json in the folder: the tokenizer's vocabulary must come from elsewhere (model.text_encoder.vocab)",
    );
    bare.tensors.forEach((t) => t.dispose());
    // The synthetic vocabulary as transformers 5 writes it, one token more than config.json's vocab_size.
    const tokens = fs.readFileSync(path.join(src, 'vocab.txt'), 'utf8').split('\n').filter(Boolean);
    const tokenizerJson = (list: string[]) =>
      JSON.stringify({
        normalizer: { type: 'BertNormalizer', lowercase: true },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        model: { type: 'WordPiece', vocab: Object.fromEntries(list.map((t, i) => [t, i])) },
      });
    fs.writeFileSync(path.join(folder, 'tokenizer.json'), tokenizerJson([...tokens, 'extra']));
    let err: (Error & { code?: string }) | undefined;
    try {
      await importHfBertFolder(folder);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).to.equal('DATA_ERROR');
    expect(err?.message).to.equal(
      `${path.join(folder, 'tokenizer.json')}: ${tokens.length + 1} tokens but config.json vocab_size is ${tokens.length}`,
    );
    fs.writeFileSync(path.join(folder, 'tokenizer.json'), tokenizerJson(tokens));
    const v5 = await importHfBertFolder(folder, { strict: true });
    expect(v5.vocabPath).to.equal(path.join(folder, 'tokenizer.json'));
    expectSameTensors(v5, text, 'v5');
  });

  it('config.json problems are DATA_ERRORs naming the file and key; a missing weights file is an IO_ERROR', async () => {
    const folder = path.join(dir, 'bad');
    fs.mkdirSync(folder, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'cxr-bert-tiny', 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...cfg, hidden_act: 'relu' }));
    expect(() => parseHfBertConfig(path.join(folder, 'config.json'))).to.throw(
      /config\.json: 'hidden_act' must be 'gelu'/,
    );
    fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...cfg, num_attention_heads: 3 }));
    expect(() => parseHfBertConfig(path.join(folder, 'config.json'))).to.throw(
      /'num_attention_heads' must be a divisor of hidden_size 32/,
    );
    fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(cfg));
    fs.copyFileSync(path.join(dir, 'cxr-bert-tiny', 'vocab.txt'), path.join(folder, 'vocab.txt'));
    let err: (Error & { code?: string }) | undefined;
    try {
      await importHfBertFolder(folder);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).to.equal('IO_ERROR');
    expect(err?.message).to.include('no model.safetensors or pytorch_model.bin');
  });
});
