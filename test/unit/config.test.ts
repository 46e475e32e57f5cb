import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { applyOverride, loadConfig, suggest } from '../../lib/config/load';
import { repoRoot } from '../helpers/fixtures';
import { PUBLISHED_CTVIT } from '../helpers/tiny-configs';
import { writeText as write } from '../helpers/data-fixtures';
import { errorOf } from '../helpers/errors';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-config-'));
}

const quiet = { warn: () => {} };

describe('config: loading', function () {
  let dir: string;
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads the shipped configs with the documented defaults', function () {
    const { config } = loadConfig(path.join(repoRoot, 'configs', 'base_config.yaml'), { env: {} });
    expect(config.training).to.include({
      max_epochs: 20,
      learning_rate: 1.25e-6,
      warmup_steps: 1000,
      min_lr_ratio: 0.01,
      weight_decay: 0.01,
      max_grad_norm: 0.5,
    });
    expect(config.training.betas).to.deep.equal([0.9, 0.99]);
    expect(config.validation).to.include({ eval_every_n_epochs: 0.5, eval_samples: 200 });
    expect(config.training.save_every_n_epochs).to.equal(0.5);
    expect(config.checkpoint).to.include({ keep_last_n: 3, best_metric: 'weighted_auroc', best_metric_mode: 'max' });
    expect(config.data).to.include({ batch_size: 4, num_workers: 4 });
    expect(config.logging.log_every_n_steps).to.equal(10);
    expect(config.experiment.seed).to.equal(2025);
    expect(config.model.image_encoder).to.include(PUBLISHED_CTVIT);
    expect(config.model.text_encoder).to.include({
      hidden_size: 768,
      num_hidden_layers: 12,
      max_length: 512,
      vocab_size: 30522,
    });
    expect(config.model.dim_latent).to.equal(512);
    expect(config.data.webdataset_shards_train).to.equal('data/ct-rate/train/shard-{000000..000316}.tar');
    for (const f of ['debug_config.yaml', 'inference_config.yaml']) {
      const r = loadConfig(path.join(repoRoot, 'configs', f), { env: {}, ...quiet });
      expect(r.files).to.have.length(2);
      expect(r.warnings).to.deep.equal([]);
    }
  });

  it('inherits through _base_ recursively, relative to each file, merging mappings and replacing lists', function () {
    write(
      dir,
      'a/root.yaml',
      'experiment: {name: root, tags: [a, b]}\ntraining: {learning_rate: 0.1, max_steps: 10}\n',
    );
    write(dir, 'b/mid.yaml', '_base_: ../a/root.yaml\ntraining: {weight_decay: 0.5}\nexperiment: {tags: [c]}\n');
    const leaf = write(dir, 'leaf.yaml', '_base_: b/mid.yaml\ntraining: {learning_rate: 0.2}\n');
    const { config, files } = loadConfig(leaf, quiet);
    expect(files.map((f) => path.basename(f))).to.deep.equal(['root.yaml', 'mid.yaml', 'leaf.yaml']);
    expect(config.experiment.name).to.equal('root');
    expect(config.experiment.tags).to.deep.equal(['c']);
    expect(config.training).to.include({ learning_rate: 0.2, weight_decay: 0.5, max_steps: 10 });
  });

  it('detects _base_ cycles and missing base files, naming the files', function () {
    write(dir, 'x.yaml', '_base_: y.yaml\nexperiment: {name: x}\n');
    write(dir, 'y.yaml', '_base_: x.yaml\n');
    expect(errorOf(() => loadConfig(path.join(dir, 'x.yaml'), quiet)).message).to.match(
      /cycle: .*x\.yaml -> .*y\.yaml -> .*x\.yaml/,
    );
    const f = write(dir, 'z.yaml', '_base_: nope.yaml\n');
    const e = errorOf(() => loadConfig(f, quiet));
    expect(e.code).to.equal('CONFIG_ERROR');
    expect(e.message).to.contain('nope.yaml: cannot read config (file not found) (the _base_ of');
  });

  it('expands ${VAR} and ${VAR:default}, typing whole-value expansions', function () {
    const f = write(
      dir,
      'c.yaml',
      'experiment: {name: "run-${WHO}"}\ntraining: {learning_rate: "${LR:1e-4}", max_steps: "${STEPS}"}\ncheckpoint: {save_dir: "${OUT:/tmp/x}/ckpt"}\n',
    );
    const { config } = loadConfig(f, { env: { WHO: 'me', STEPS: '7' }, ...quiet });
    expect(config.experiment.name).to.equal('run-me');
    expect(config.training.learning_rate).to.equal(1e-4);
    expect(config.training.max_steps).to.equal(7);
    expect(config.checkpoint.save_dir).to.equal('/tmp/x/ckpt');
    const e = errorOf(() => loadConfig(f, { env: { WHO: 'me' }, ...quiet }));
    expect(e.message).to.match(/c\.yaml: training\.max_steps: environment variable STEPS is not set/);
  });

  it('applies typed --set overrides after the files', function () {
    const f = write(dir, 'c.yaml', 'experiment: {name: x}\ntraining: {max_steps: 10}\n');
    const { config } = loadConfig(f, {
      overrides: [
        'training.learning_rate=1e-5',
        'data.batch_size=8',
        'experiment.tags=[p, q]',
        'training.max_epochs=null',
        'validation.use_bootstrap=true',
      ],
      ...quiet,
    });
    expect(config.training.learning_rate).to.equal(1e-5);
    expect(config.data.batch_size).to.equal(8);
    expect(config.experiment.tags).to.deep.equal(['p', 'q']);
    expect(config.training.max_epochs).to.equal(null);
    expect(config.validation.use_bootstrap).to.equal(true);
    expect(errorOf(() => applyOverride({}, 'novalue')).message).to.match(/expected key\.path=value/);
    expect(errorOf(() => applyOverride({ a: 1 }, 'a.b=2')).message).to.match(/"a" is a value/);
  });

  it('names --set as the origin of a bad override value', function () {
    const f = write(dir, 'c.yaml', 'experiment: {name: x}\n');
    const e = errorOf(() => loadConfig(f, { overrides: ['data.batch_size=0'], ...quiet }));
    expect(e.code).to.equal('CONFIG_ERROR');
    expect(e.message).to.match(/^--set: data\.batch_size: .*(>=|at least).*1.*\(got 0\)/);
  });

  it('drops the ignored reference keys, naming them in one warning per file', function () {
    const f = write(
      dir,
      'c.yaml',
      'experiment: {name: x}\ndata: {persistent_workers: true, shuffle_buffer_size: 100, reports_train: r.csv}\nmodel: {use_flash_attention: false}\nlogging: {tensorboard: {log_dir: tb}}\n',
    );
    const seen: string[] = [];
    const { warnings } = loadConfig(f, { warn: (m) => seen.push(m) });
    expect(warnings).to.deep.equal(seen);
    expect(seen).to.have.length(1);
    const lines = seen[0].split('\n');
    expect(lines[0]).to.equal(`${f}: ignored keys (accepted, no effect in ctclip):`);
    expect(lines.slice(1).map((l) => l.split(':')[0].trim())).to.have.members([
      'data.persistent_workers',
      'data.shuffle_buffer_size',
      'data.reports_train',
      'model.use_flash_attention',
      'logging.tensorboard',
    ]);
  });

  it('rejects unknown keys with a "did you mean" hint naming the file', function () {
    const f = write(dir, 'c.yaml', 'experiment: {name: x}\ntraining: {learnig_rate: 0.1}\ndata: {batchsize: 2}\n');
    const e = errorOf(() => loadConfig(f, quiet));
    expect(e.code).to.equal('CONFIG_ERROR');
    expect(e.message).to.contain(`${f}: unknown key training.learnig_rate (did you mean training.learning_rate?)`);
    expect(e.message).to.contain('unknown key data.batchsize (did you mean data.batch_size?)');
    expect(suggest('zzzzzz', ['learning_rate'])).to.equal(undefined);
  });

  it('reports bad values with file, key path, value and expectation', function () {
    write(dir, 'base.yaml', 'experiment: {name: x}\ntraining: {learning_rate: -1}\n');
    const f = write(dir, 'c.yaml', '_base_: base.yaml\ncheckpoint: {best_metric: auroc}\n');
    const e = errorOf(() => loadConfig(f, quiet));
    const lines = e.message.split('\n');
    expect(lines.find((l) => l.includes('training.learning_rate'))).to.match(
      /base\.yaml: training\.learning_rate: .*>.*0.*\(got -1\)/,
    );
    expect(lines.find((l) => l.includes('checkpoint.best_metric'))).to.match(
      /c\.yaml: checkpoint\.best_metric: .*weighted_auroc.*\(got "auroc"\)/,
    );
  });

  it('requires experiment.name and one of max_steps / max_epochs; null means unset', function () {
    const f = write(dir, 'c.yaml', 'training: {max_epochs: null}\n');
    const e = errorOf(() => loadConfig(f, quiet));
    expect(e.message).to.match(/experiment: .*\(got missing\)/);
    const g = write(dir, 'd.yaml', 'experiment: {name: x}\ntraining: {max_epochs: null, max_steps: null}\n');
    expect(errorOf(() => loadConfig(g, quiet)).message).to.contain(
      'one of training.max_steps / training.max_epochs must be set',
    );
    const h = write(
      dir,
      'e.yaml',
      'experiment: {name: x}\ntraining: {warmup_steps: null, warmup_epochs: null, save_every_n_epochs: null}\n',
    );
    const { config } = loadConfig(h, quiet);
    expect(config.training.warmup_steps).to.equal(null);
    expect(config.training.save_every_n_epochs).to.equal(null);
  });

  it('checks cross-field constraints (divisibility) with the key named', function () {
    const f = write(
      dir,
      'c.yaml',
      'experiment: {name: x}\nmodel: {image_encoder: {image_size: 100, patch_size: 30}}\n',
    );
    expect(errorOf(() => loadConfig(f, quiet)).message).to.contain(
      'model.image_encoder.patch_size: patch_size 30 must divide image_size 100',
    );
  });

  it('rejects malformed YAML and non-mapping documents', function () {
    const f = write(dir, 'c.yaml', 'experiment: {name: x\n');
    expect(errorOf(() => loadConfig(f, quiet)).message).to.match(/c\.yaml: invalid YAML/);
    const g = write(dir, 'd.yaml', '- a\n- b\n');
    expect(errorOf(() => loadConfig(g, quiet)).message).to.match(/must be a YAML mapping/);
    const h = write(dir, 'e.yaml', 'experiment: {name: x}\nexperiment: {name: y}\n');
    expect(errorOf(() => loadConfig(h, quiet)).message).to.match(/invalid YAML.*[Mm]ap keys must be unique/s);
  });
});
