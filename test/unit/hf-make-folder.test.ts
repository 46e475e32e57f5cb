/**
 * `ctclip make-hf-folder` takes what the weights cannot tell from the run's configuration: a config.yaml next to
 * the weights (as in every checkpoint folder) gives the head count, the vocabulary, the dropouts, casing and
 * max_length; without one, --heads and --vocab are required; a configuration or vocabulary that contradicts the
 * weights is refused, naming the key and both values. Pure TypeScript (a text tower written with lib/io).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../../lib/commands/make-hf-folder';
import { writeSafetensors, type SafetensorsTensor } from '../../lib/io/safetensors';
import { BERT_SPECIAL_TOKENS, HF_FOLDER_FILES } from '../helpers/expected-names';

const ROOT = path.resolve(__dirname, '..', '..');
const TOKENS = [...BERT_SPECIAL_TOKENS, 'lung', 'opacity', 'is', 'present', '.', '##s'];

/** A text tower of the debug config's sizes (hidden 64, 2 layers, intermediate 128, 80 positions). */
async function writeTower(file: string, vocabRows: number, hidden = 64): Promise<void> {
  const t = (...shape: number[]): SafetensorsTensor => ({
    dtype: 'F32',
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01),
  });
  const tensors: Array<[string, SafetensorsTensor]> = [
    ['text_transformer.embeddings.word_embeddings.weight', t(vocabRows, hidden)],
    ['text_transformer.embeddings.position_embeddings.weight', t(80, hidden)],
    ['text_transformer.embeddings.token_type_embeddings.weight', t(2, hidden)],
  ];
  for (const l of [0, 1]) {
    tensors.push([`text_transformer.encoder.layer.${l}.intermediate.dense.weight`, t(128, hidden)]);
    tensors.push([`text_transformer.encoder.layer.${l}.output.dense.weight`, t(hidden, 128)]);
  }
  tensors.push(['to_text_latent.weight', t(64, hidden)]);
  await writeSafetensors(file, tensors);
}

/** Runs the command in this process; returns the exit code and what it printed. */
async function makeFolder(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const orig = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  (process.stdout as { write: unknown }).write = (s: string) => ((out.stdout += s), true);
  (process.stderr as { write: unknown }).write = (s: string) => ((out.stderr += s), true);
  try {
    return { code: await run(argv), ...out };
  } finally {
    (process.stdout as { write: unknown }).write = orig.stdout;
    (process.stderr as { write: unknown }).write = orig.stderr;
  }
}

describe('make-hf-folder: the settings come from the run, not from guesses', () => {
  let dir: string;
  let ckpt: string;
  let vocab: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-make-hf-'));
    vocab = path.join(dir, 'vocab.txt');
    fs.writeFileSync(vocab, TOKENS.join('\n') + '\n');
    // A checkpoint-like folder: the weights and the run's config.yaml (the debug config: 4 heads, dropout 0).
    ckpt = path.join(dir, 'ckpt-step00000002');
    fs.mkdirSync(ckpt);
    await writeTower(path.join(ckpt, 'model.safetensors'), TOKENS.length);
    fs.writeFileSync(
      path.join(ckpt, 'config.yaml'),
      `_base_: ${JSON.stringify(path.join(ROOT, 'configs', 'debug_config.yaml'))}\nmodel: {text_encoder: {vocab: ${JSON.stringify(vocab)}, layer_norm_eps: 1.0e-7}}\n`,
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads heads, vocabulary, dropouts, eps, casing and max_length from the config.yaml next to the weights', async () => {
    const out = path.join(dir, 'hf');
    const r = await makeFolder('--from', path.join(ckpt, 'model.safetensors'), '--out', out);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include(`text encoder settings from ${path.join(ckpt, 'config.yaml')}; vocabulary ${vocab}`);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config).to.include({
      num_attention_heads: 4,
      hidden_dropout_prob: 0,
      attention_probs_dropout_prob: 0,
      layer_norm_eps: 1e-7,
      vocab_size: TOKENS.length,
      hidden_size: 64,
      num_hidden_layers: 2,
      intermediate_size: 128,
      max_position_embeddings: 80,
      pad_token_id: 0,
    });
    expect(fs.readFileSync(path.join(out, 'vocab.txt'), 'utf8')).to.equal(TOKENS.join('\n') + '\n');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8'))).to.include({
      tokenizer_class: 'BertTokenizer',
      do_lower_case: true,
      model_max_length: 80,
    });
    expect(fs.readdirSync(out).sort()).to.deep.equal(HF_FOLDER_FILES);
  });

  it('without a run config, --heads and --vocab are required (exit 2), and then used', async () => {
    const bare = path.join(dir, 'bare.safetensors');
    await writeTower(bare, TOKENS.length);
    const r = await makeFolder('--from', bare, '--out', path.join(dir, 'hf-bare'));
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include(
      'bare.safetensors: no run config (no config.yaml next to the weights, no --config), so --heads and --vocab must be given',
    );
    const ok = await makeFolder('--from', bare, '--out', path.join(dir, 'hf-bare'), '--heads', '8', '--vocab', vocab);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'hf-bare', 'config.json'), 'utf8'))).to.include({
      num_attention_heads: 8,
      hidden_dropout_prob: 0.1,
    });
  });

  it('refuses what contradicts the run: --heads, a vocabulary of another size, a config of other sizes', async () => {
    const heads = await makeFolder('--from', ckpt, '--out', path.join(dir, 'x1'), '--heads', '2');
    expect(heads.code).to.equal(2);
    expect(heads.stderr).to.include('--heads 2 contradicts model.text_encoder.num_attention_heads 4');

    const other = path.join(dir, 'other-vocab.txt');
    fs.writeFileSync(other, [...TOKENS, 'extra'].join('\n'));
    const wrongVocab = await makeFolder('--from', ckpt, '--out', path.join(dir, 'x2'), '--vocab', other);
    expect(wrongVocab.code).to.equal(1);
    expect(wrongVocab.stderr).to.include(
      `the word embedding has ${TOKENS.length} rows but ${path.join(ckpt, 'config.yaml')} gives a vocabulary of ${TOKENS.length + 1} tokens`,
    );

    const wide = path.join(dir, 'wide');
    fs.mkdirSync(wide);
    await writeTower(path.join(wide, 'model.safetensors'), TOKENS.length, 32);
    fs.copyFileSync(path.join(ckpt, 'config.yaml'), path.join(wide, 'config.yaml'));
    const sizes = await makeFolder('--from', path.join(wide, 'model.safetensors'), '--out', path.join(dir, 'x3'));
    expect(sizes.code).to.equal(1);
    expect(sizes.stderr).to.include('hidden_size is 32 in the weights but model.text_encoder.hidden_size is 64');
  });

  it('a run config whose vocabulary is gone names the key and asks for --vocab (exit 2)', async () => {
    const moved = path.join(dir, 'moved');
    fs.mkdirSync(moved);
    fs.copyFileSync(path.join(ckpt, 'model.safetensors'), path.join(moved, 'model.safetensors'));
    fs.writeFileSync(
      path.join(moved, 'config.yaml'),
      `_base_: ${JSON.stringify(path.join(ROOT, 'configs', 'debug_config.yaml'))}\nmodel: {text_encoder: {vocab: ${JSON.stringify(path.join(dir, 'gone.txt'))}}}\n`,
    );
    const r = await makeFolder('--from', path.join(moved, 'model.safetensors'), '--out', path.join(dir, 'x4'));
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include(
      `the run's vocabulary ${path.join(dir, 'gone.txt')} (model.text_encoder.vocab) does not exist`,
    );
    expect(r.stderr).to.include('--vocab');
  });
});
