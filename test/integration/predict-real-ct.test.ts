/**
 * `ctclip predict` on the real head CT (../shared/data/real-ct, HU NIfTI; skipped when absent) with a tiny
 * CT-CLIP whose input geometry is 32 × 32 × 12: preprocessed in memory (spacing 8, 8, 13.5 mm), 18 CT-RATE
 * probabilities in [0, 1], equal to the model API's zero-shot scores on the same preprocessed volume.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { CT_RATE_CLASSES } from '../../lib/data/classes';
import { encodePrompts, scoreVolumes } from '../../lib/zeroshot/zero-shot';
import { modelConfigFromConfig } from '../../lib/model/config';
import { CTClip } from '../../lib/model/ctclip';
import { preprocessVolumeFile } from '../../lib/preprocess/pipeline';
import { tensorFromBuffer } from '../../lib/tensor';
import { Tokenizer } from '../../lib/text/tokenizer';
import { buildWordPieceVocab, vocabToText } from '../../lib/text/vocab-builder';
import { saveWeights } from '../../lib/weights';
import { requireAddon } from '../helpers/native';
import { writeDebugConfig } from '../helpers/train-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');
const REAL_CT = path.resolve(repoRoot, '..', 'shared', 'data', 'real-ct', 'head_ct_promed0051_hu.nii.gz');

/** A tiny CT-CLIP config (32 × 32 × 12 input) with its own vocab, no data paths. */
export function writeTinyConfig(dir: string): string {
  const corpus = [
    ...CT_RATE_CLASSES.flatMap((c) => [`${c} is present.`, `${c} is not present.`]),
    'Head CT. No acute findings.',
  ];
  const vocab = path.join(dir, 'vocab.txt');
  fs.writeFileSync(vocab, vocabToText(buildWordPieceVocab(corpus, { vocabSize: 400 })));
  const file = path.join(dir, 'tiny.yaml');
  const sections = {
    experiment: { name: 'predict-test', seed: 7 },
    data: { labels_valid: null, class_names: null, webdataset_shards_train: null, webdataset_shards_val: null },
    model: { text_encoder: { vocab, path: null } },
    training: { threads: 2 },
  };
  writeDebugConfig(file, sections);
  return file;
}

describe('predict: ctclip predict on the real head CT (tiny model, 32×32×12)', function () {
  this.timeout(60_000);
  let dir: string;
  let cfgFile: string;
  let weights: string;
  let expected: Float32Array;

  before(async function () {
    requireAddon(this);
    if (!fs.existsSync(REAL_CT)) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-predict-'));
    cfgFile = writeTinyConfig(dir);
    const cfg = loadConfig(cfgFile).config;
    const tokenizer = Tokenizer.fromVocabFile(cfg.model.text_encoder.vocab!);
    const model = CTClip.create(modelConfigFromConfig(cfg, tokenizer.vocabSize));
    const sd = model.stateDict();
    weights = path.join(dir, 'tiny.safetensors');
    await saveWeights(weights, sd.names, sd.tensors);
    sd.tensors.forEach((t) => t.dispose());
    // The model API on the same preprocessing.
    const pre = await preprocessVolumeFile(REAL_CT, { spacing: [8, 8, 13.5], shape: [32, 32, 12] });
    const prompts = await encodePrompts(model, tokenizer, CT_RATE_CLASSES, {
      prompts: cfg.validation.prompts,
      maxLength: cfg.model.text_encoder.max_length,
    });
    const v = tensorFromBuffer(pre.volume, 'float16', [1, 32, 32, 12]);
    expected = await scoreVolumes(model, v, prompts, CT_RATE_CLASSES.length);
    v.dispose();
    prompts.dispose();
    model.dispose();
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  const predict = (...args: string[]) => {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'lib', 'cli.js'), 'predict', ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    return { ...r, seconds: (Date.now() - t0) / 1000 };
  };

  it('--json: 18 probabilities in [0, 1], the model geometry, equal to the model API', () => {
    const r = predict(REAL_CT, '--checkpoint', weights, '--config', cfgFile, '--spacing', '8,8,13.5', '--json');
    expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out.probabilities)).to.deep.equal([...CT_RATE_CLASSES]);
    CT_RATE_CLASSES.forEach((c, i) => {
      const p = out.probabilities[c];
      expect(p).to.be.within(0, 1);
      expect(p).to.be.closeTo(expected[i], 2e-6);
    });
    expect(out.study_id).to.equal('head_ct_promed0051_hu');
    expect(out.preprocess.shape).to.deep.equal([32, 32, 12]);
    expect(out.preprocess.stored_shape).to.deep.equal([256, 256, 108]);
    expect(out.preprocess.resampled_size).to.deep.equal([30, 30, 12]); // int(256 · 0.957 / 8), int(108 · 1.5 / 13.5)
    expect(out.preprocess.rescale.applied).to.equal(false);
    expect(out.checkpoint.path).to.equal(weights);
    expect(out.seconds.preprocess).to.be.a('number');
    console.log(
      `      predict wall time ${r.seconds.toFixed(2)} s (preprocess ${out.seconds.preprocess.toFixed(2)} s, model ${out.seconds.model.toFixed(2)} s)`,
    );
  });

  it('prints a table of the 18 classes without --json; bad arguments exit 2', () => {
    const r = predict(REAL_CT, '--checkpoint', weights, '--config', cfgFile, '--spacing', '8,8,13.5');
    expect(r.status, r.stderr).to.equal(0);
    const rows = r.stdout.split('\n').filter((l) => /^ {2}\S.*\s\d\.\d{4}$/.test(l));
    expect(rows).to.have.length(18);
    expect(r.stdout).to.match(/head_ct_promed0051_hu: stored 256×256×108 .* → 32×32×12/);
    expect(predict('--checkpoint', weights, '--config', cfgFile).status).to.equal(2);
    expect(predict(REAL_CT, '--checkpoint', weights, '--config', cfgFile, '--spacing', '8,8').status).to.equal(2);
    expect(predict(REAL_CT, '--checkpoint', weights, '--config', cfgFile, '--rescale', 'sometimes').status).to.equal(2);
    expect(predict(path.join(dir, 'missing.nii.gz'), '--checkpoint', weights, '--config', cfgFile).status).to.equal(1);
  });
});
