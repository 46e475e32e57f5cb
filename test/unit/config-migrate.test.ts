/**
 * `ctclip config migrate`: the ctclip-native form of a config, which loads back to the same resolved config with
 * no warnings, with comments naming the source keys. The YAML here is written for these tests.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { migrateConfig } from '../../lib/config/migrate';
import { writeText as write } from '../helpers/data-fixtures';

const ROOT = path.resolve(__dirname, '../..');
const quiet = { warn: () => {} };

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'lib/cli.js'), ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The original's layout: a CTCLIP section, type tags, unused keys, and values it reads its own way. */
const ORIGINAL = `
experiment: {name: migrate-me, tags: [x, y]}
data:
  webdataset_shards_train: s/train-{0..3}.tar
  webdataset_shards_val: s/val-{0..1}.tar
  persistent_workers: true
  batch_size: 3
  num_workers: 0
  prefetch_factor: 4
model:
  image_encoder: {type: CTViT, dim: 32, codebook_size: 64, image_size: 16, patch_size: 4, temporal_patch_size: 2, spatial_depth: 1, temporal_depth: 1, dim_head: 8, heads: 2}
  text_encoder: {type: BiomedBERT, path: bert, do_lower_case: true}
  clip: {dim_image: 512, dim_text: 768, dim_latent: 48, use_mlm: false, loss_type: softmax}
training: {max_epochs: 2, learning_rate: 1.25e-6, weight_decay: 0.01, gradient_accumulation_steps: 1, max_grad_norm: 0.5, warmup_steps: 3, save_every_n_epochs: 1}
validation: {eval_every_n_epochs: 1, eval_samples: 4, metrics: [auroc], use_bootstrap: false, threshold: 0.5}
checkpoint: {save_dir: out, keep_last_n: 2, save_best: true, best_metric: auroc, best_metric_mode: max}
logging: {use_wandb: false, use_console: true, wandb: {project: p, entity: null, mode: "offline", group: null, job_type: debug}, log_every_n_steps: 5}
device: {use_cuda: true, cuda_device: 0}
`;

describe('config: migrate', function () {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-config-migrate-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes a ctclip config that loads back to the same resolved config, without warnings', function () {
    const src = write(dir, 'orig.yaml', ORIGINAL);
    const { text, loaded } = migrateConfig(src, quiet);
    const out = write(dir, 'migrated.yaml', text);
    const seen: string[] = [];
    const again = loadConfig(out, { warn: (m) => seen.push(m) });
    expect(again.config).to.deep.equal(loaded.config);
    expect(again.original).to.equal(false);
    expect(seen).to.deep.equal([]);
    expect(loaded.config.data).to.include({ num_workers: 1, prefetch_factor: 1 });
    expect(loaded.config.checkpoint.best_metric).to.equal('macro_auroc');
    expect(loaded.config.logging.wandb.job_type).to.equal('debug');
  });

  it('comments the source, the ignored keys, each translated key and what the original code did', function () {
    const src = write(dir, 'orig.yaml', ORIGINAL);
    const { text } = migrateConfig(src, quiet);
    const lines = text.split('\n');
    const before = (key: string): string => lines[lines.findIndex((l) => l.trim().startsWith(`${key}:`)) - 1].trim();
    expect(text).to.match(/^# ctclip configuration written by `ctclip config migrate` from:\n# {3}.*orig\.yaml\n/);
    expect(text).to.contain('#   model.clip.use_mlm: ');
    expect(text).to.contain('#   model.image_encoder.type: ');
    expect(text).to.contain('#   data.persistent_workers: ');
    expect(text).to.contain('#   training.mixed_precision: the original always trains under fp16 autocast');
    expect(before('dim_latent')).to.equal('# from model.clip.dim_latent: moved to model.dim_latent');
    expect(before('best_metric')).to.match(/^# from checkpoint\.best_metric: "auroc" → "macro_auroc"/);
    expect(before('use_cuda')).to.match(/^# from device\.use_cuda: true → auto/);
    expect(before('num_workers')).to.match(/^# from data\.num_workers: 0 /);
    expect(text).to.contain('  learning_rate: 1.25e-6\n');
    expect(text).to.contain('  mixed_precision: "no"\n');
    expect(text).to.contain('  tags: [ x, "y" ]\n'); // YAML 1.1 would read a bare y as true
  });

  it('migrates a ctclip config too (merged, every default written out)', function () {
    write(dir, 'base.yaml', 'experiment: {name: b}\ntraining: {learning_rate: 3.0e-4}\n');
    const src = write(dir, 'child.yaml', '_base_: base.yaml\ndata: {batch_size: 6}\n');
    const { text, loaded } = migrateConfig(src, quiet);
    expect(text).to.not.match(/^_base_:/m);
    expect(text).to.not.contain("original Python pipeline's format");
    const again = loadConfig(write(dir, 'out.yaml', text), quiet);
    expect(again.config).to.deep.equal(loaded.config);
    expect(again.config.training.learning_rate).to.equal(3e-4);
    expect(again.config.data.batch_size).to.equal(6);
  });

  it('runs as `ctclip config migrate IN.yaml`: YAML on stdout, warnings on stderr, exit 2 naming a bad key', function () {
    const src = write(dir, 'orig.yaml', ORIGINAL);
    const ok = cli(['config', 'migrate', src]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain('dim_latent: 48');
    expect(ok.stderr).to.contain(`warning: ${src}: ignored keys (accepted, no effect in ctclip):`);
    const bad = write(dir, 'bad.yaml', ORIGINAL.replace('use_mlm: false', 'use_mlm: true'));
    const refused = cli(['config', 'migrate', bad]);
    expect(refused.status).to.equal(2);
    expect(refused.stdout).to.equal('');
    expect(refused.stderr).to.contain(`ctclip config: ${bad}: model.clip.use_mlm: true cannot be honoured`);
    expect(cli(['config', 'migrate']).status).to.equal(2);
    const unknown = cli(['config', 'show', src]);
    expect(unknown.status).to.equal(2);
    expect(unknown.stderr).to.contain("unknown subcommand 'show' (expected migrate)");
    const help = cli(['config', '--help']);
    expect(help.status).to.equal(0);
    expect(help.stdout).to.match(/^usage: ctclip config migrate IN\.yaml/);
  });

  it("prints the original's Training duration line in `ctclip plan`", function () {
    const src = write(dir, 'orig.yaml', ORIGINAL);
    const r = cli(['plan', '--config', src, '--samples', '31']);
    expect(r.status, r.stderr).to.equal(0);
    // 31 samples / batch 3 = 10 steps per epoch; 2 epochs.
    expect(r.stdout).to.contain('Dataset: 31 samples / batch_size 3 = 10 steps/epoch\n');
    expect(r.stdout).to.contain('Training duration: 2.00 epochs = 20 steps\n');
  });
});
