/**
 * Hostile NIfTI files through real `ctclip predict` and `ctclip preprocess` processes (docs/limits.md,
 * "NIfTI volumes"), with a tiny CT-CLIP (32 × 32 × 12 input). Each child's peak RSS is reported by a
 * `--require`d hook and asserted far below what reading the hostile file would cost:
 *  - a 2 MB `.nii.gz` declaring 1024³ voxels (2 GiB int16): exit 1 naming the file, dim and limit;
 *  - 100³ voxels at 10 mm (a 1.2 G-voxel resampled grid): exit 1 naming dim, pixdim and the limit;
 *  - 1 GiB of zeros after the voxel data: predicted normally, the tail never inflated;
 *  - pixdim[3] = 0: exit 1 naming pixdim[3] = 0, unless --source-spacing gives the spacing;
 *  - a vocabulary named in the config that does not exist: exit 2 naming model.text_encoder.vocab.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CT_RATE_CLASSES } from '../../lib/data/classes';
import { loadConfig } from '../../lib/config/load';
import { modelConfigFromConfig } from '../../lib/model/config';
import { CTClip } from '../../lib/model/ctclip';
import type { PreprocessReport } from '../../lib/preprocess/dataset';
import { Tokenizer } from '../../lib/text/tokenizer';
import { buildWordPieceVocab, vocabToText } from '../../lib/text/vocab-builder';
import { saveWeights } from '../../lib/weights';
import { requireAddon } from '../helpers/native';
import { airNifti, writeAirVolume, writeGzipWithZeros, writeNiftiBomb } from '../helpers/nifti-bombs';
import { preprocessArgs } from '../helpers/data-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');

/** Peak RSS (MiB) of the child, from the line its exit hook prints on stderr. */
function peakMiB(stderr: string): number {
  const m = /CTCLIP_TEST_MAXRSS_KB (\d+)/.exec(stderr);
  if (!m) throw new Error(`no peak RSS line in: ${stderr}`);
  return Number(m[1]) / 1024;
}

describe('predict / preprocess: hostile NIfTI files (real processes, bounded memory)', function () {
  this.timeout(120_000);
  let dir: string;
  let cfgFile: string;
  let weights: string;
  let hook: string;
  let baselineMiB: number;

  const run = (cmd: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, ['--require', hook, path.join(repoRoot, 'lib', 'cli.js'), cmd, ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 100_000,
    });
    return { ...r, peak: r.status === null ? NaN : peakMiB(r.stderr) };
  };
  const predict = (...args: string[]) =>
    run('predict', ...args, '--checkpoint', weights, '--config', cfgFile, '--json');

  before(async function () {
    requireAddon(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-predict-limits-'));
    hook = path.join(dir, 'maxrss-hook.js');
    fs.writeFileSync(
      hook,
      "process.on('exit', () => process.stderr.write(`\\nCTCLIP_TEST_MAXRSS_KB ${process.resourceUsage().maxRSS}\\n`));\n",
    );
    const corpus = CT_RATE_CLASSES.flatMap((c) => [`${c} is present.`, `${c} is not present.`]);
    const vocab = path.join(dir, 'vocab.txt');
    fs.writeFileSync(vocab, vocabToText(buildWordPieceVocab(corpus, { vocabSize: 300 })));
    cfgFile = path.join(dir, 'tiny.yaml');
    const sections = {
      experiment: { name: 'predict-limits', seed: 7 },
      data: { labels_valid: null, class_names: null, webdataset_shards_train: null, webdataset_shards_val: null },
      model: { text_encoder: { vocab, path: null } },
      training: { threads: 1 },
    };
    fs.writeFileSync(
      cfgFile,
      `_base_: ${JSON.stringify(path.join(repoRoot, 'configs', 'debug_config.yaml'))}\n${Object.entries(sections)
        .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
        .join('\n')}\n`,
    );
    const cfg = loadConfig(cfgFile).config;
    const model = CTClip.create(modelConfigFromConfig(cfg, Tokenizer.fromVocabFile(vocab).vocabSize));
    const sd = model.stateDict();
    weights = path.join(dir, 'tiny.safetensors');
    await saveWeights(weights, sd.names, sd.tensors);
    sd.tensors.forEach((t) => t.dispose());
    model.dispose();
    // The reference point: a whole predict on a small ordinary volume.
    const ok = path.join(dir, 'ok.nii.gz');
    writeAirVolume(ok, [40, 40, 16], [2, 2, 4]);
    const r = predict(ok, '--spacing', '2.5,2.5,5');
    expect(r.status, r.stderr).to.equal(0);
    baselineMiB = r.peak;
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('a 2 MB .nii.gz declaring 1024³ voxels: exit 1 naming the file, dim and the limit, in the memory of an ordinary predict', () => {
    const file = path.join(dir, 'bomb.nii.gz');
    writeNiftiBomb(file, [1024, 1024, 1024]);
    const r = predict(file);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr)
      .to.contain(`${file}: NIfTI dim[1..3]: 1024×1024×1024 is 1,073,741,824 voxels`)
      .and.contain('over the limit of 536,870,912 voxels');
    expect(r.stdout).to.equal('');
    // Reading it took 14 GB before the limit; now no more than an ordinary predict (+ slack).
    expect(r.peak).to.be.below(baselineMiB + 100);
    // --max-voxels raises or lowers the cap; a bad value is exit 2.
    const small = path.join(dir, 'small.nii.gz');
    writeAirVolume(small, [40, 40, 16], [2, 2, 4]);
    const low = predict(small, '--spacing', '2.5,2.5,5', '--max-voxels', '1000');
    expect(low.status, low.stderr).to.equal(1);
    expect(low.stderr).to.contain('40×40×16 is 25,600 voxels').and.contain('over the limit of 1,000 voxels');
    expect(predict(small, '--max-voxels', 'lots').status).to.equal(2);
    expect(predict(small, '--max-voxels', '99999999999999999999').status).to.equal(2);
  });

  it('a resampled grid over the limit (100³ at 10 mm → 0.75×0.75×1.5 mm): exit 1 from the header, naming dim, pixdim and the limit', () => {
    const file = path.join(dir, 'coarse.nii.gz');
    writeAirVolume(file, [100, 100, 100], [10, 10, 10]);
    const r = predict(file);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.contain(
      `${file}: NIfTI dim[1..3] 100×100×100 at pixdim[1..3] 10 × 10 × 10 mm resamples to 1333×1333×666 = 1,183,408,074 voxels`,
    );
    expect(r.stderr).to.contain('over the limit of 536,870,912 resampled voxels');
    expect(r.peak).to.be.below(baselineMiB + 100); // resampling would take 4.4 GiB
    const low = predict(file, '--spacing', '40,40,80', '--max-resampled-voxels', '100');
    expect(low.status, low.stderr).to.equal(1);
    expect(low.stderr)
      .to.contain('resamples to 25×25×12 = 7,500 voxels')
      .and.contain('over the limit of 100 resampled voxels');
  });

  it('1 GiB of zeros after the voxel data: predicted as usual, the tail never inflated', () => {
    const file = path.join(dir, 'tail.nii.gz');
    writeGzipWithZeros(file, airNifti([40, 40, 16], [2, 2, 4], false), 2 ** 30);
    const r = predict(file, '--spacing', '2.5,2.5,5');
    expect(r.status, r.stderr).to.equal(0);
    expect(Object.keys(JSON.parse(r.stdout).probabilities)).to.have.length(18);
    expect(r.peak).to.be.below(baselineMiB + 100); // inflating the tail would take > 1 GiB
  });

  it('pixdim[3] = 0: exit 1 naming pixdim[3] and its value; --source-spacing overrides it', () => {
    const file = path.join(dir, 'pixdim0.nii.gz');
    writeAirVolume(file, [40, 40, 16], [2, 2, 0]);
    const r = predict(file, '--spacing', '2.5,2.5,5');
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr)
      .to.contain(`${file}: NIfTI pixdim[3]: 0 is not a usable voxel size`)
      .and.contain('--source-spacing');
    const o = predict(file, '--spacing', '2.5,2.5,5', '--source-spacing', '2,2,4');
    expect(o.status, o.stderr).to.equal(0);
    const out = JSON.parse(o.stdout);
    expect(out.preprocess.spacing_source).to.equal('override');
    expect(out.preprocess.source_spacing).to.deep.equal([2, 2, 4]);
    expect(out.preprocess.resampled_size).to.deep.equal([32, 32, 12]);
    expect(out.preprocess.warnings.join('\n')).to.contain('pixdim[3] = 0 is not a usable voxel size');
    expect(predict(file, '--source-spacing', '2,0,4').status).to.equal(2);
  });

  it('a vocabulary named in the config that does not exist: exit 2 naming the key, before the volume is read', () => {
    const file = path.join(dir, 'never-read.nii.gz');
    const r = predict(file, '--set', `model.text_encoder.vocab=${path.join(dir, 'missing-vocab.txt')}`);
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(
      `--set: model.text_encoder.vocab: '${path.join(dir, 'missing-vocab.txt')}' does not exist`,
    );
  });

  it('preprocess: the bomb volume fails (listed in the report) in bounded memory; the others are written', () => {
    const vol = path.join(dir, 'dataset');
    fs.mkdirSync(vol);
    writeNiftiBomb(path.join(vol, 'train_1_a_1.nii.gz'), [1024, 1024, 1024]);
    writeAirVolume(path.join(vol, 'train_2_a_1.nii.gz'), [20, 20, 8], [1, 1, 2]);
    writeAirVolume(path.join(vol, 'train_3_a_1.nii.gz'), [20, 20, 8], [1, 1, NaN]);
    const ids = ['train_1_a_1', 'train_2_a_1', 'train_3_a_1'];
    fs.writeFileSync(
      path.join(dir, 'reports.csv'),
      `VolumeName,Findings_EN,Impressions_EN\n${ids.map((id) => `${id}.nii.gz,x,y`).join('\n')}\n`,
    );
    fs.writeFileSync(
      path.join(dir, 'labels.csv'),
      `VolumeName,Cardiomegaly\n${ids.map((id) => `${id}.nii.gz,0`).join('\n')}\n`,
    );
    const out = path.join(dir, 'pre-out');
    const r = run(
      'preprocess',
      ...preprocessArgs(dir, out, { volumes: vol }),
      '--shape',
      '8,8,4',
      '--spacing',
      '2,2,4',
      '--quiet',
    );
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'preprocess_report.json'), 'utf8')) as PreprocessReport;
    expect(report.counts).to.include({ planned: 3, written: 1, failed: 2 });
    expect(report.volumes[0].error)
      .to.contain('NIfTI dim[1..3]: 1024×1024×1024')
      .and.contain('over the limit of 536,870,912 voxels');
    expect(report.volumes[2].error).to.contain('NIfTI pixdim[3]: NaN is not a usable voxel size');
    expect(r.peak).to.be.below(baselineMiB + 100);
    // A limit that is not a usable integer is a bad argument (exit 2), not a failure of every volume.
    const bad = run(
      'preprocess',
      ...preprocessArgs(dir, path.join(dir, 'pre-bad'), { volumes: vol }),
      '--max-resampled-voxels',
      '99999999999999999999',
      '--quiet',
    );
    expect(bad.status, bad.stderr).to.equal(2);
    expect(bad.stderr).to.contain('--max-resampled-voxels must be an integer');
  });
});
