/**
 * A BERT folder saved by the venv's transformers (5.x: `save_pretrained` of a BertTokenizer writes tokenizer.json
 * and tokenizer_config.json, no vocab.txt; with transformers 4 the vocab.txt it also writes is removed, to give
 * that layout) used as `model.text_encoder.path`: the config file check passes with and without
 * `model.text_encoder.vocab`, the tokenizer read from tokenizer.json gives transformers' ids and the ids of the
 * vocab.txt route, and the text tower loaded from the folder gives transformers' [CLS] states (through the model's
 * projection: the text latents) to 1e-5. A one-step training run starts from the folder.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { encodeTexts, createModel } from '../../lib/api';
import { loadConfig } from '../../lib/config/load';
import { loadWeightsInto } from '../../lib/model/load-weights';
import { readTensor } from '../../lib/tensor';
import { requirePython, runPython } from '../helpers/python';
import { describeRun, runTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

const TEXTS = [
  'Lung opacity is present. Pleural effusion is not present.',
  'CARDIOMEGALY is present; atelectasis is NOT present!',
  'Bilateral pleural effusión (unremarkable otherwise) xyzzy [SEP] opacity',
];

/** The debug config's text tower (configs/debug_config.yaml): the folder must fit it. */
const BERT = {
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 80,
};

/**
 * argv: vocab.txt, folder, texts.json, max_length. Saves a seeded BertModel + BertTokenizer with save_pretrained,
 * then prints the files written, transformers' version, ids and [CLS] states of the texts.
 */
const SAVE = `
import json, os, sys, torch, transformers
from transformers import BertConfig, BertModel, BertTokenizer, BertTokenizerFast
vocab, folder, texts, max_length = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), int(sys.argv[4])
tok = BertTokenizerFast(vocab, do_lower_case=True)
torch.manual_seed(11)
cfg = BertConfig(vocab_size=len(tok), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **json.loads(sys.argv[5]))
model = BertModel(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        if n.endswith('bias') or 'LayerNorm' in n:
            p.add_(0.1 * torch.randn_like(p))
model.save_pretrained(folder)
tok.save_pretrained(folder)
written = sorted(os.listdir(folder))
# transformers < 5 also writes vocab.txt: removing it gives the layout transformers 5 writes.
if 'vocab.txt' in written:
    os.remove(os.path.join(folder, 'vocab.txt'))
tok = BertTokenizer.from_pretrained(folder)
model = BertModel.from_pretrained(folder).eval()
enc = tok(texts, padding='max_length', truncation=True, max_length=max_length, return_tensors='pt')
with torch.no_grad():
    cls = model(input_ids=enc['input_ids'], attention_mask=enc['attention_mask']).last_hidden_state[:, 0]
print(json.dumps({'version': transformers.__version__, 'written': written, 'files': sorted(os.listdir(folder)),
                  'ids': enc['input_ids'].tolist(), 'cls': cls.tolist()}))
`;

describe('world: a transformers 5 BERT folder (tokenizer.json, no vocab.txt) as model.text_encoder.path', function () {
  this.timeout(600_000);
  const suite = trainSuite('hf-v5');

  it('is accepted with or without model.text_encoder.vocab and gives transformers’ ids and [CLS] states', async function () {
    const py = requirePython(this, ['torch', 'transformers']);
    const folder = path.join(suite.dir, 'bert-v5');
    const textsFile = path.join(suite.dir, 'texts.json');
    fs.writeFileSync(textsFile, JSON.stringify(TEXTS));
    const hf = JSON.parse(runPython(py, SAVE, [suite.data.vocab, folder, textsFile, '80', JSON.stringify(BERT)])) as {
      version: string;
      written: string[];
      files: string[];
      ids: number[][];
      cls: number[][];
    };
    // transformers ≥ 5 writes no vocab.txt (5.18 here); with an older one the test removed it.
    if (Number(hf.version.split('.')[0]) >= 5)
      expect(hf.written, `transformers ${hf.version}`).to.not.include('vocab.txt');
    expect(hf.files).to.include('tokenizer.json').and.not.include('vocab.txt');

    const runDir = path.join(suite.dir, 'run');
    const viaFolder = writeTrainConfig(suite.dir, suite.data, runDir, {
      model: { text_encoder: { path: folder, vocab: null } },
      training: { max_steps: 1, max_epochs: null, save_every_n_steps: 1, warmup_steps: 0, threads: 1 },
      validation: { eval_every_n_steps: 1, eval_samples: 8 },
    });
    const viaVocab = writeTrainConfig(suite.dir, suite.data, path.join(suite.dir, 'run-vocab'), {
      model: { text_encoder: { path: folder } },
    });
    const results: Array<{ ids: number[][]; latents: Float32Array; projected: Float32Array }> = [];
    for (const file of [viaFolder, viaVocab]) {
      const cfg = loadConfig(file, { checkFiles: 'train' }).config;
      const { model, tokenizer } = createModel(cfg);
      const loaded = await loadWeightsInto(model, { kind: 'hf-bert', dir: folder });
      expect(loaded.unexpected, file).to.deep.equal([]);
      model.eval();
      const ids = TEXTS.map((t) => Array.from(tokenizer.encode(t, 80).inputIds));
      const lat = await encodeTexts(model, tokenizer, TEXTS, 80);
      const latents = readTensor(lat).data as Float32Array;
      lat.dispose();
      // transformers' [CLS] states through this model's own projection, normalised as ctclip does.
      const sd = model.stateDict();
      const w = readTensor(sd.tensors[sd.names.indexOf('to_text_latent.weight')]);
      sd.tensors.forEach((t) => t.dispose());
      model.dispose();
      const [dim, hidden] = w.shape;
      const wd = w.data as Float32Array;
      const projected = new Float32Array(TEXTS.length * dim);
      hf.cls.forEach((cls, i) => {
        let norm = 0;
        for (let j = 0; j < dim; j++) {
          let s = 0;
          for (let k = 0; k < hidden; k++) s += wd[j * hidden + k] * cls[k];
          projected[i * dim + j] = s;
          norm += s * s;
        }
        for (let j = 0; j < dim; j++) projected[i * dim + j] /= Math.max(Math.sqrt(norm), 1e-12);
      });
      results.push({ ids, latents, projected });
    }
    for (const [route, r] of [
      ['tokenizer.json', results[0]],
      ['vocab.txt', results[1]],
    ] as const) {
      expect(r.ids, `${route}: ids`).to.deep.equal(hf.ids);
      const maxDiff = Math.max(...Array.from(r.latents, (v, i) => Math.abs(v - r.projected[i])));
      expect(maxDiff, `${route}: max |ctclip − transformers| over the text latents`).to.be.at.most(1e-5);
    }
    expect(Array.from(results[0].latents)).to.deep.equal(Array.from(results[1].latents));

    // Training starts from the folder, with its vocabulary read from tokenizer.json.
    const trained = await runTrain(['--config', viaFolder]);
    expect(trained.code, describeRun(trained)).to.equal(0);
    expect(trained.stdout).to.include(`Text encoder initialised from ${folder}`);
  });
});
