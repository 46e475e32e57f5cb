/**
 * `ctclip make-hf-folder` as the README shows it, checked by transformers itself: a tiny real run of the debug
 * config (4 heads at hidden size 64, dropout 0, the synthetic dataset's vocabulary), its checkpoint turned into a
 * folder, then `BertTokenizer.from_pretrained` + `BertModel.from_pretrained` on the folder give the same token ids
 * and the same text latents (the [CLS] hidden state through the checkpoint's `to_text_latent`, L2-normalised) as
 * ctclip's own tokenizer and `encodeTexts` on the checkpoint.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { encodeTexts, loadModel } from '../../lib/api';
import { loadConfig } from '../../lib/config/load';
import { readTensor } from '../../lib/tensor';
import { repoRoot } from '../helpers/fixtures';
import { requirePython, runPython } from '../helpers/python';
import { checkpointDirs, describeRun, runTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

/** Reports with in-vocabulary words, unknown words, upper case, accents and punctuation, and one over max_length. */
const TEXTS = [
  'Lung opacity is present. Pleural effusion is not present.',
  'CARDIOMEGALY is present; atelectasis is NOT present!',
  'Bilateral pleural effusión with basal atelectasis (unremarkable otherwise).',
  'xyzzy qwerty [SEP] opacity',
  Array.from({ length: 60 }, (_, i) => `Finding ${i} is present.`).join(' '),
];

/** argv: folder, weights, max_length, texts.json. Prints {ids, latents, config} as transformers computes them. */
const TRANSFORMERS = `
import json, sys, torch
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizer
folder, weights, max_length, texts = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(open(sys.argv[4]))
tok = BertTokenizer.from_pretrained(folder)
enc = tok(texts, padding='max_length', truncation=True, max_length=max_length, return_tensors='pt')
model = BertModel.from_pretrained(folder).eval()
with torch.no_grad():
    cls = model(input_ids=enc['input_ids'], attention_mask=enc['attention_mask']).last_hidden_state[:, 0]
    latents = torch.nn.functional.normalize(cls @ load_file(weights)['to_text_latent.weight'].T, dim=-1)
print(json.dumps({'ids': enc['input_ids'].tolist(), 'latents': latents.tolist(),
                  'config': json.load(open(folder + '/config.json'))}))
`;

describe('world: make-hf-folder → transformers BertModel / BertTokenizer', function () {
  this.timeout(600_000);
  const suite = trainSuite('hf-folder');

  it('the folder of a real run gives ctclip’s token ids and text latents (≤ 1e-5) in transformers', async function () {
    const py = requirePython(this, ['torch', 'transformers', 'safetensors']);
    const runDir = path.join(suite.dir, 'run');
    const cfgFile = writeTrainConfig(suite.dir, suite.data, runDir, {
      training: { max_steps: 2, max_epochs: null, save_every_n_steps: 2, warmup_steps: 1, threads: 1 },
      validation: { eval_every_n_steps: 2, eval_samples: 8 },
    });
    const trained = await runTrain(['--config', cfgFile]);
    expect(trained.code, describeRun(trained)).to.equal(0);
    const ckpt = checkpointDirs(runDir).pop()!;

    // As the README shows it: only --from and --out; everything else comes from the run.
    const out = path.join(suite.dir, 'hf');
    const made = spawnSync(
      process.execPath,
      [path.join(repoRoot, 'lib', 'cli.js'), 'make-hf-folder', '--from', runDir, '--out', out],
      {
        encoding: 'utf8',
      },
    );
    expect(made.status, made.stderr).to.equal(0);
    expect(made.stdout).to.include(`text encoder settings from ${path.join(ckpt, 'config.yaml')}`);

    const cfg = loadConfig(cfgFile).config;
    const te = cfg.model.text_encoder;
    const { model, tokenizer } = await loadModel(cfg, runDir, { device: 'cpu' });
    const latents = await encodeTexts(model, tokenizer, TEXTS, te.max_length);
    const ours = readTensor(latents).data as Float32Array;
    latents.dispose();
    model.dispose();
    const ids = TEXTS.map((t) => Array.from(tokenizer.encode(t, te.max_length).inputIds));

    const textsFile = path.join(suite.dir, 'texts.json');
    fs.writeFileSync(textsFile, JSON.stringify(TEXTS));
    const hf = JSON.parse(
      runPython(py, TRANSFORMERS, [out, path.join(ckpt, 'model.safetensors'), String(te.max_length), textsFile]),
    ) as { ids: number[][]; latents: number[][]; config: Record<string, unknown> };

    expect(hf.config).to.include({
      num_attention_heads: te.num_attention_heads,
      hidden_dropout_prob: te.hidden_dropout_prob,
      attention_probs_dropout_prob: te.attention_probs_dropout_prob,
      vocab_size: tokenizer.vocabSize,
    });
    expect(hf.ids).to.deep.equal(ids);
    const dim = cfg.model.dim_latent;
    let maxDiff = 0;
    hf.latents.forEach((row, i) =>
      row.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - ours[i * dim + j])))),
    );
    expect(maxDiff, 'max |transformers − ctclip| over the text latents').to.be.at.most(1e-5);
  });
});
