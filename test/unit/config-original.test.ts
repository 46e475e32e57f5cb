/**
 * Configs in the original Python pipeline's format (a `model.clip` section, `*.type` tags): each key is
 * translated with the meaning the original's code gave it, ignored keys are named in one warning per file, and a
 * value that cannot be honoured is an error naming the key and the ctclip equivalent. The YAML here is written
 * for these tests, in that format.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { isOriginalFormat } from '../../lib/config/original';
import { writeText as write } from '../helpers/data-fixtures';
import { errorOf } from '../helpers/errors';

/** A small config in the original's layout: every section it requires, its CTCLIP section and type tags. */
const ORIGINAL = `
experiment: {name: side-by-side, seed: 7, tags: [a]}
data:
  webdataset_shards_train: shards/train-{000..003}.tar
  webdataset_shards_val: shards/val-{000..001}.tar
  shuffle_buffer_size: 50
  reports_train: reports.csv
  batch_size: 2
  num_workers: 3
  prefetch_factor: 2
model:
  image_encoder:
    type: CTViT
    dim: 64
    codebook_size: 128
    image_size: 32
    patch_size: 8
    temporal_patch_size: 4
    spatial_depth: 1
    temporal_depth: 1
    dim_head: 16
    heads: 2
    profile_timing: false
  text_encoder: {type: SomeBERT, path: bert, do_lower_case: true}
  clip:
    dim_image: 1024
    dim_text: 768
    dim_latent: 96
    extra_latent_projection: false
    use_mlm: false
    downsample_image_embeds: false
    use_all_token_embeds: false
    loss_type: sigmoid
training:
  max_epochs: 3
  max_steps: null
  learning_rate: 2.0e-5
  weight_decay: 0.02
  gradient_accumulation_steps: 2
  max_grad_norm: 1.0
  save_every_n_epochs: 0.25
  warmup_steps: 5
  min_lr_ratio: 0.1
validation:
  eval_every_n_epochs: 0.5
  eval_samples: 8
  metrics: [auroc, f1]
  use_bootstrap: false
  threshold: 0.4
checkpoint: {save_dir: out/run, keep_last_n: 1, save_best: true, best_metric: auprc, best_metric_mode: max}
logging:
  use_wandb: true
  use_console: true
  wandb: {project: p1, entity: team, mode: offline, group: g1, job_type: sweep}
  tensorboard: {log_dir: tb}
  log_every_n_steps: 3
  profile_timing: false
device: {use_cuda: true, cuda_device: 1}
`;

describe('config: the original pipeline format', function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-config-original-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes dir/orig.yaml: ORIGINAL with each [text, replacement] applied (each text must be there). */
  function writeOriginal(...edits: Array<[string, string]>): string {
    let text = ORIGINAL;
    for (const [from, to] of edits) {
      expect(text, 'the edit of the original config').to.include(from);
      text = text.replace(from, to);
    }
    return write(dir, 'orig.yaml', text);
  }

  it('translates every key with its original meaning', function () {
    const f = writeOriginal();
    const { config, original, notes } = loadConfig(f, { warn: () => {} });
    expect(original).to.equal(true);
    expect(config.model.dim_latent).to.equal(96);
    expect(config.model.text_encoder).to.include({ hidden_size: 768, path: 'bert', do_lower_case: true });
    expect(config.model.loss.type).to.equal('siglip');
    expect(config.model.image_encoder).to.include({ dim: 64, image_size: 32, patch_size: 8, dim_head: 16, heads: 2 });
    expect(config.checkpoint.best_metric).to.equal('macro_auprc');
    expect(config.device).to.deep.equal({ use_cuda: 'auto', cuda_device: 1 });
    expect(config.logging.wandb).to.deep.equal({
      project: 'p1',
      entity: 'team',
      mode: 'offline',
      name: null,
      group: 'g1',
      job_type: 'sweep',
      python: null,
    });
    expect(config.logging.profile_timing).to.equal(false);
    // Shared keys pass through unchanged.
    expect(config.training).to.include({
      max_epochs: 3,
      learning_rate: 2e-5,
      gradient_accumulation_steps: 2,
      warmup_steps: 5,
      save_every_n_epochs: 0.25,
      min_lr_ratio: 0.1,
    });
    expect(config.data).to.include({ batch_size: 2, num_workers: 3, prefetch_factor: 2 });
    expect(config.validation).to.include({ eval_samples: 8, threshold: 0.4 });
    expect(notes.map((n) => `${n.kind} ${n.key}`)).to.include.members([
      'mapped model.clip.dim_latent',
      'mapped model.clip.loss_type',
      'mapped checkpoint.best_metric',
      'mapped device.use_cuda',
      'ignored model.clip.dim_image',
      'ignored model.image_encoder.type',
      'ignored model.text_encoder.type',
      'ignored data.shuffle_buffer_size',
      'ignored logging.tensorboard',
    ]);
  });

  it('names the ignored keys in one warning and the translated keys in another, per file', function () {
    const f = writeOriginal();
    const seen: string[] = [];
    const { warnings } = loadConfig(f, { warn: (m) => seen.push(m) });
    expect(warnings).to.deep.equal(seen);
    expect(seen).to.have.length(2);
    const ignored = seen.find((w) => w.includes('ignored keys')) as string;
    expect(ignored.split('\n')[0]).to.equal(`${f}: ignored keys (accepted, no effect in ctclip):`);
    for (const key of [
      'model.clip.dim_image',
      'model.clip.use_mlm',
      'model.image_encoder.type',
      'model.image_encoder.profile_timing',
      'model.text_encoder.type',
      'data.shuffle_buffer_size',
      'data.reports_train',
      'logging.tensorboard',
    ]) {
      expect(ignored).to.contain(`\n  ${key}: `);
    }
    const translated = seen.find((w) => w.includes('translated')) as string;
    expect(translated).to.contain(`${f}: `);
    expect(translated).to.contain('model.clip.dim_latent: moved to model.dim_latent');
    expect(translated).to.contain('checkpoint.best_metric: "auprc" → "macro_auprc"');
    expect(translated).to.contain('device.use_cuda: true → auto');
  });

  it('reads data.num_workers 0 as one read in flight and one batch ahead', function () {
    const f = writeOriginal(['num_workers: 3', 'num_workers: 0']);
    const { config, notes } = loadConfig(f, { warn: () => {} });
    expect(config.data).to.include({ num_workers: 1, prefetch_factor: 1 });
    expect(notes.find((n) => n.key === 'data.num_workers')?.to).to.equal('data.num_workers, data.prefetch_factor');
  });

  it('maps CTViT component timing to the step timing breakdown', function () {
    const f = writeOriginal(['profile_timing: false\n  text_encoder', 'profile_timing: true\n  text_encoder']);
    const { config } = loadConfig(f, { warn: () => {} });
    expect(config.logging.profile_timing).to.equal(true);
  });

  it('fills the keys the original reads with its own defaults when they are absent', function () {
    const f = writeOriginal(
      ['    dim_head: 16\n', ''],
      ['  warmup_steps: 5\n', ''],
      ['  eval_samples: 8\n', ''],
      ['  save_every_n_epochs: 0.25\n', ''],
    );
    const { config, notes } = loadConfig(f, { warn: () => {} });
    expect(config.model.image_encoder.dim_head).to.equal(64);
    expect(config.training.warmup_steps).to.equal(null);
    expect(config.training.save_every_n_epochs).to.equal(1);
    expect(config.validation.eval_samples).to.equal(null);
    expect(notes.filter((n) => n.kind === 'defaulted').map((n) => n.key)).to.have.members([
      'model.image_encoder.dim_head',
      'training.warmup_steps',
      'training.save_every_n_epochs',
      'validation.eval_samples',
    ]);
    expect(notes.filter((n) => n.kind === 'defaulted').map((n) => n.origin)).to.deep.equal([f, f, f, f]);
  });

  it('treats a child without markers as original when its _base_ is, naming the child for its own keys', function () {
    write(dir, 'configs/base.yaml', ORIGINAL);
    const child = write(
      dir,
      'configs/exp/child.yaml',
      '_base_: ../base.yaml\ntraining: {num_epochs: 9, learning_rate: 1e-4}\nvalidation: {every_n_epochs: 2}\n',
    );
    const seen: string[] = [];
    const { config } = loadConfig(child, { warn: (m) => seen.push(m) });
    expect(config.training.learning_rate).to.equal(1e-4);
    expect(config.training.max_epochs).to.equal(3); // num_epochs has no effect in the original either
    const childWarning = seen.find((w) => w.startsWith(`${child}: ignored keys`)) as string;
    expect(childWarning).to.contain('training.num_epochs: the original never reads it');
    expect(childWarning).to.contain('validation.every_n_epochs: the original never reads it');
  });

  it('applies --set after the translation, in ctclip key names', function () {
    const f = writeOriginal();
    const { config } = loadConfig(f, { warn: () => {}, overrides: ['device.use_cuda=false', 'model.dim_latent=32'] });
    expect(config.device.use_cuda).to.equal(false);
    expect(config.model.dim_latent).to.equal(32);
  });

  it('fails naming each key that cannot be honoured and the ctclip equivalent', function () {
    const f = writeOriginal(
      ['use_mlm: false', 'use_mlm: true'],
      ['dim_image: 1024', 'dim_image: 2048'],
      ['loss_type: sigmoid', 'loss_type: hinge\n    text_seq_len: 128'],
      ['best_metric: auprc', 'best_metric: precision'],
    );
    const e = errorOf(() => loadConfig(f, { warn: () => {} }));
    expect(e.code).to.equal('CONFIG_ERROR');
    const lines = e.message.split('\n');
    expect(lines).to.have.length(5);
    const line = (key: string): string => lines.find((l) => l.startsWith(`${f}: ${key}: `)) as string;
    expect(line('model.clip.use_mlm')).to.contain('no ctclip equivalent');
    expect(line('model.clip.dim_image')).to.contain('(image_size 32 / patch_size 8)² × dim 64 = 1024');
    expect(line('model.clip.dim_image')).to.contain('ctclip equivalent: set model.image_encoder.image_size');
    expect(line('model.clip.loss_type')).to.contain('model.loss.type: softmax | siglip');
    expect(line('model.clip.text_seq_len')).to.contain('no ctclip equivalent');
    expect(line('checkpoint.best_metric')).to.contain('weighted_auroc, macro_auroc');
  });

  it('refuses a moved key that contradicts the ctclip key set beside it', function () {
    const f = writeOriginal(['model:\n', 'model:\n  dim_latent: 128\n']);
    const e = errorOf(() => loadConfig(f, { warn: () => {} }));
    expect(e.message).to.equal(
      `${f}: model.clip.dim_latent: 96 conflicts with model.dim_latent: 128 (ctclip equivalent: model.dim_latent; keep one)`,
    );
  });

  it('leaves ctclip configs alone: true stays true, the original-only keys are unknown', function () {
    const f = write(dir, 'native.yaml', 'experiment: {name: x}\ndevice: {use_cuda: true}\ndata: {num_workers: 2}\n');
    const { config, original, warnings } = loadConfig(f, { warn: () => {} });
    expect(original).to.equal(false);
    expect(config.device.use_cuda).to.equal(true);
    expect(warnings).to.deep.equal([]);
    const g = write(dir, 'native2.yaml', 'experiment: {name: x}\ntraining: {num_epochs: 2}\n');
    expect(errorOf(() => loadConfig(g, { warn: () => {} })).message).to.contain('unknown key training.num_epochs');
    const h = write(dir, 'native3.yaml', 'experiment: {name: x}\ndata: {num_workers: 0}\n');
    expect(errorOf(() => loadConfig(h, { warn: () => {} })).message).to.contain('data.num_workers');
    expect(isOriginalFormat({ model: { clip: {} } })).to.equal(true);
    expect(isOriginalFormat({ model: { image_encoder: { type: 'CTViT' } } })).to.equal(true);
    expect(isOriginalFormat({ model: { image_encoder: { dim: 8 } } })).to.equal(false);
  });

  it('accepts the W&B run keys in ctclip configs', function () {
    const f = write(
      dir,
      'native.yaml',
      'experiment: {name: x}\nlogging: {wandb: {project: p, name: run-1, group: g, job_type: train}}\n',
    );
    const { config } = loadConfig(f, { warn: () => {} });
    expect(config.logging.wandb).to.include({ project: 'p', name: 'run-1', group: 'g', job_type: 'train' });
    const g = write(dir, 'bad.yaml', 'experiment: {name: x}\nlogging: {wandb: {group: 3}}\n');
    expect(errorOf(() => loadConfig(g, { warn: () => {} })).message).to.match(/logging\.wandb\.group: .*\(got 3\)/);
  });
});
