/**
 * The library convenience wrappers (lib/api.ts, exported from the package root): createModel from a
 * run config, saveModel → loadModel round trip (bit-identical latents), encodeTexts against the tokenizer + raw
 * CTClip path, and zeroShot against the model's own pairwise softmax computed here from the latents.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../../lib/config/load';
import type { Config } from '../../lib/config/schema';
import * as api from '../../lib/index';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { Tokenizer } from '../../lib/text/tokenizer';
import { requireAddon } from '../helpers/native';
import { BERT_SPECIAL_TOKENS } from '../helpers/expected-names';
import { tinyRunModel } from '../helpers/tiny-configs';

const WORDS = [
  'lung',
  'opacity',
  'is',
  'present',
  'not',
  'atelectasis',
  'cardiomegaly',
  'effusion',
  'pleural',
  'no',
  '.',
];
const VOCAB = [...BERT_SPECIAL_TOKENS, ...WORDS];

function tinyConfig(vocab: string | null): Config {
  return parseConfig({
    experiment: { name: 'api', seed: 11 },
    model: tinyRunModel({ vocab, max_length: 10, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 }),
  });
}

/** (n, 16, 16, 4) float32 volumes, deterministic. */
function volumes(n: number): ReturnType<typeof tensorFromBuffer> {
  const data = new Float32Array(n * 16 * 16 * 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.5;
  return tensorFromBuffer(data, 'float32', [n, 16, 16, 4]);
}

describe('library model API (createModel / saveModel / loadModel / encodeTexts / zeroShot)', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-api-'));
    fs.writeFileSync(path.join(dir, 'vocab.txt'), `${VOCAB.join('\n')}\n`);
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('createModel builds the configured model with the config vocabulary; encodeTexts = tokenizer + encodeText', async () => {
    const cfg = tinyConfig(path.join(dir, 'vocab.txt'));
    const { model, tokenizer } = api.createModel(cfg);
    try {
      expect(tokenizer.vocabSize).to.equal(VOCAB.length);
      expect(model.config.dim_latent).to.equal(8);
      const texts = ['lung opacity is present.', 'no effusion.'];
      const latents = await api.encodeTexts(model, tokenizer, texts, 10);
      const t = readTensor(latents);
      latents.dispose();
      expect(t.shape).to.deep.equal([2, 8]);
      const { inputIds, attentionMask } = api.textTensors(tokenizer.encodeBatch(texts, 10));
      const direct = readTensor(await model.encodeText(inputIds, attentionMask));
      expect(Array.from(t.data as Float32Array)).to.deep.equal(Array.from(direct.data as Float32Array));
      for (let r = 0; r < 2; r++) {
        const row = (t.data as Float32Array).subarray(r * 8, r * 8 + 8);
        expect(Math.hypot(...row)).to.be.closeTo(1, 1e-5); // unit latents
      }
      // Passing a tokenizer overrides the config's vocabulary; a config without one and no tokenizer is an error.
      const other = api.createModel(tinyConfig(null), { tokenizer: Tokenizer.fromVocab(VOCAB) });
      other.model.dispose();
      expect(() => api.createModel(tinyConfig(null))).to.throw(/model\.text_encoder\.vocab/);
    } finally {
      model.dispose();
    }
  });

  it('saveModel → loadModel round-trips the weights exactly (same image latents)', async () => {
    const cfg = tinyConfig(path.join(dir, 'vocab.txt'));
    const { model } = api.createModel(cfg);
    const file = path.join(dir, 'model.safetensors');
    const vol = volumes(2);
    try {
      await api.saveModel(model, file, { note: 'api-test' });
      const header = JSON.parse(
        fs
          .readFileSync(file)
          .subarray(8, 8 + Number(fs.readFileSync(file).readBigUInt64LE(0)))
          .toString('utf8'),
      );
      expect(header.__metadata__).to.deep.include({ format: 'pt', note: 'api-test' });
      const names = model.stateDict();
      expect(
        Object.keys(header)
          .filter((k) => k !== '__metadata__')
          .sort(),
      ).to.deep.equal([...names.names].sort());
      names.tensors.forEach((x) => x.dispose());

      // A differently seeded model gives different latents until the weights are loaded.
      const loaded = await api.loadModel({ ...cfg, experiment: { ...cfg.experiment, seed: 99 } }, file);
      try {
        expect(loaded.checkpoint.path).to.equal(file);
        expect(loaded.checkpoint.sha256).to.match(/^[0-9a-f]{64}$/);
        const a = readTensor(await model.eval().encodeImage(vol));
        const b = readTensor(await loaded.model.encodeImage(vol));
        expect(a.shape).to.deep.equal([2, 8]);
        expect(Array.from(b.data as Float32Array)).to.deep.equal(Array.from(a.data as Float32Array));
      } finally {
        loaded.model.dispose();
      }
    } finally {
      vol.dispose();
      model.dispose();
    }
  });

  it('zeroShot gives P(present) = softmax over each (present, absent) prompt pair of scaled cosine similarities', async () => {
    const cfg = tinyConfig(path.join(dir, 'vocab.txt'));
    const { model, tokenizer } = api.createModel(cfg);
    const vol = volumes(3);
    const classes = ['lung opacity', 'atelectasis'];
    try {
      const z = await api.zeroShot(model, tokenizer, vol, classes, { maxLength: 10 });
      expect(z.numClasses).to.equal(2);
      expect(z.numSamples).to.equal(3);
      expect(z.rows.map((r) => r.length)).to.deep.equal([2, 2, 2]);

      // Independent expectation: latents from the raw model, the temperature from the state dict, softmax here.
      const img = readTensor(await model.encodeImage(vol)).data as Float32Array;
      const prompts = api.zeroShotPromptTexts(classes, api.DEFAULT_PROMPTS);
      expect(prompts).to.deep.equal([
        'lung opacity is present.',
        'lung opacity is not present.',
        'atelectasis is present.',
        'atelectasis is not present.',
      ]);
      const txt = readTensor(await api.encodeTexts(model, tokenizer, prompts, 10)).data as Float32Array;
      const sd = model.stateDict();
      const temperature = (readTensor(sd.tensors[sd.names.indexOf('temperature')]).data as Float32Array)[0];
      sd.tensors.forEach((x) => x.dispose());
      const scale = Math.exp(temperature);
      const dot = (i: number, j: number): number => {
        let s = 0;
        for (let k = 0; k < 8; k++) s += img[i * 8 + k] * txt[j * 8 + k];
        return s;
      };
      for (let i = 0; i < 3; i++) {
        for (let c = 0; c < 2; c++) {
          const pos = scale * dot(i, 2 * c);
          const neg = scale * dot(i, 2 * c + 1);
          const p = 1 / (1 + Math.exp(neg - pos));
          expect(z.rows[i][c], `sample ${i} class ${c}`).to.be.closeTo(p, 1e-5);
          expect(z.pPresent[i * 2 + c]).to.equal(z.rows[i][c]);
        }
      }
    } finally {
      vol.dispose();
      model.dispose();
    }
  });
});
