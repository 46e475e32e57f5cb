/**
 * Preprocessing end to end on real data: the real head CT (../shared/data/real-ct, HU NIfTI; skipped when absent)
 * goes through `ctclip preprocess` (small --shape and --spacing matching a tiny model's image_size/frames) →
 * shards → our index → TrainLoader → ONE training step of a tiny CT-CLIP (`CTClip.trainStep`) with a finite,
 * positive loss and a finite gradient norm, and the weights move. The output geometry is asserted.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { CT_RATE_CLASSES } from '../../lib/data/classes';
import { TrainLoader } from '../../lib/data/loader';
import { openIndex } from '../../lib/data/shard-index';
import { modelConfigFromConfig } from '../../lib/model/config';
import { CTClip, textTensors } from '../../lib/model/ctclip';
import type { PreprocessReport } from '../../lib/preprocess/dataset';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { Tokenizer } from '../../lib/text/tokenizer';
import { buildWordPieceVocab, vocabToText } from '../../lib/text/vocab-builder';
import { requireAddon } from '../helpers/native';
import { preprocessArgs } from '../helpers/data-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');
const REAL_CT = path.resolve(repoRoot, '..', 'shared', 'data', 'real-ct', 'head_ct_promed0051_hu.nii.gz');

function csv(rows: (string | number)[][]): string {
  return (
    rows
      .map((r) => r.map((c) => (/[",\n]/.test(String(c)) ? `"${String(c).replace(/"/g, '""')}"` : String(c))).join(','))
      .join('\n') + '\n'
  );
}

describe('preprocess → train step: real head CT → ctclip preprocess → shards → index → loader → one CT-CLIP step', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () {
    requireAddon(this);
    if (!fs.existsSync(REAL_CT)) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-pre-step-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('preprocesses to 32×32×12 and trains one step with a finite loss', async () => {
    // Two studies (the same scan under two CT-RATE names, different reports) so the contrastive loss is not trivial.
    const reports: Record<string, [string, string]> = {
      train_1_a_1: ['Head CT. Skull base and vertex included.', 'No acute intracranial findings.'],
      train_1_a_2: ['Head CT, second reconstruction. Bone window.', 'Not given.'],
    };
    for (const id of Object.keys(reports)) {
      const d = path.join(dir, 'vol', 'train_1', 'train_1_a');
      fs.mkdirSync(d, { recursive: true });
      fs.symlinkSync(REAL_CT, path.join(d, `${id}.nii.gz`));
    }
    fs.writeFileSync(
      path.join(dir, 'reports.csv'),
      csv([
        ['VolumeName', 'Findings_EN', 'Impressions_EN'],
        ...Object.entries(reports).map(([id, [f, i]]) => [`${id}.nii.gz`, f, i]),
      ]),
    );
    fs.writeFileSync(
      path.join(dir, 'labels.csv'),
      csv([
        ['VolumeName', ...CT_RATE_CLASSES],
        ...Object.keys(reports).map((id, k) => [`${id}.nii.gz`, ...CT_RATE_CLASSES.map((_, c) => (c + k) % 2)]),
      ]),
    );
    const out = path.join(dir, 'shards');
    const r = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'lib', 'cli.js'),
        'preprocess',
        ...preprocessArgs(dir, out),
        '--split',
        'train',
        '--shape',
        '32,32,12',
        '--spacing',
        '8,8,13.5',
        '--quiet',
      ],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);

    // Geometry: 256×256×108 at 0.957, 0.957, 1.5 mm → int(256·0.957/8) = 30, int(108·1.5/13.5) = 12 → pad to 32×32×12.
    const report = JSON.parse(fs.readFileSync(path.join(out, 'preprocess_report.json'), 'utf8')) as PreprocessReport;
    expect(report.volumes).to.have.length(2);
    for (const v of report.volumes) {
      expect(v.meta!.storedShape).to.deep.equal([256, 256, 108]);
      expect(v.meta!.spacingSource).to.equal('nifti');
      expect(v.meta!.resampledSize).to.deep.equal([30, 30, 12]);
      expect(v.meta!.shape).to.deep.equal([32, 32, 12]);
      expect(v.meta!.rescale.applied).to.equal(false);
    }

    const index = openIndex(report.pattern);
    expect(index.volumeShape).to.deep.equal([32, 32, 12]);
    expect(index.samples.map((s) => s.studyId).sort()).to.deep.equal(Object.keys(reports).sort());
    expect(index.classNames).to.deep.equal([...CT_RATE_CLASSES]);

    // A tiny CT-CLIP with image_size 32, frames 12 (configs/debug_config.yaml) and a vocab over these reports.
    const vocab = path.join(dir, 'vocab.txt');
    fs.writeFileSync(vocab, vocabToText(buildWordPieceVocab(Object.values(reports).flat(), { vocabSize: 200 })));
    const cfgFile = path.join(dir, 'tiny.yaml');
    fs.writeFileSync(
      cfgFile,
      `_base_: ${JSON.stringify(path.join(repoRoot, 'configs', 'debug_config.yaml'))}\n` +
        `data: ${JSON.stringify({ webdataset_shards_train: report.pattern, webdataset_shards_val: null, labels_valid: null })}\n` +
        `model: ${JSON.stringify({ text_encoder: { vocab, path: null, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 } })}\n`,
    );
    const cfg = loadConfig(cfgFile).config;
    expect([
      cfg.model.image_encoder.image_size,
      cfg.model.image_encoder.image_size,
      cfg.model.image_encoder.frames,
    ]).to.deep.equal([32, 32, 12]);
    const tokenizer = Tokenizer.fromVocabFile(vocab, { doLowerCase: cfg.model.text_encoder.do_lower_case });
    const model = CTClip.create(modelConfigFromConfig(cfg, tokenizer.vocabSize));
    const loader = new TrainLoader(index, { batchSize: 2, seed: cfg.experiment.seed });
    try {
      const sd0 = model.stateDict();
      const snapshot = Float32Array.from(
        readTensor(sd0.tensors[sd0.names.indexOf('to_visual_latent.weight')]).data as Float32Array,
      );
      sd0.tensors.forEach((t) => t.dispose());
      let steps = 0;
      for await (const batch of loader.batches()) {
        expect(batch.volumeShape).to.deep.equal([32, 32, 12]);
        expect(batch.studyIds.slice().sort()).to.deep.equal(Object.keys(reports).sort());
        expect(batch.reports).to.include('Head CT, second reconstruction. Bone window.\n'); // cleaned: 'Not given.' → ''
        const volumes = tensorFromBuffer(batch.volumes, 'float16', [2, 32, 32, 12]);
        const { inputIds, attentionMask } = textTensors(
          tokenizer.encodeBatch(batch.reports, cfg.model.text_encoder.max_length),
        );
        model.train();
        const res = await model.trainStep({ inputIds, attentionMask, volumes }, cfg.training.learning_rate);
        [volumes, inputIds, attentionMask].forEach((t) => t.dispose());
        batch.release();
        expect(res.skipped).to.equal(false);
        expect(Number.isFinite(res.loss), `loss ${res.loss}`).to.equal(true);
        expect(res.loss).to.be.greaterThan(0); // two pairs: log-softmax over 2 is never exactly 0
        expect(Number.isFinite(res.gradNorm)).to.equal(true);
        expect(res.gradNorm).to.be.greaterThan(0);
        steps++;
        break;
      }
      expect(steps).to.equal(1);
      const sd = model.stateDict();
      const after = readTensor(sd.tensors[sd.names.indexOf('to_visual_latent.weight')]).data as Float32Array;
      sd.tensors.forEach((t) => t.dispose());
      expect(after.some((x, i) => x !== snapshot[i])).to.equal(true);
    } finally {
      await loader.close();
      model.dispose();
    }
  });
});
