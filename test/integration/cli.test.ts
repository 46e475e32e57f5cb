import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addonAvailable } from '../../lib/native';
import { runCtclip, synthShards } from '../helpers/cli';
import { repoRoot } from '../helpers/fixtures';

describe('cli: ctclip info / plan and exit codes', function () {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-cli-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('info reports the libtorch actually loaded and applies --threads', function () {
    if (!addonAvailable()) this.skip();
    const r = runCtclip(['info', '--json', '--threads', '1']);
    expect(r.status, r.stderr).to.equal(0);
    const info = JSON.parse(r.stdout);
    expect(info.threads).to.equal(1);
    expect(info.runtimeTorchVersion.split('.').slice(0, 2)).to.deep.equal(
      info.compiledTorchVersion.split('.').slice(0, 2),
    );
    expect(fs.existsSync(info.torchLibraryPath)).to.equal(true);
    const human = runCtclip(['info']);
    expect(human.stdout).to.match(/libtorch \(loaded\)\s+\d+\.\d+/);
    expect(human.stdout).to.match(/threads\s+\d+ intra-op/);
  });

  it('plan prints the documented lines from the shard index of the config', function () {
    const out = path.join(dir, 'data');
    const train = synthShards(path.join(out, 'train'), 40);
    const cfg = path.join(dir, 'c.yaml');
    fs.writeFileSync(
      cfg,
      `_base_: ${path.join(repoRoot, 'configs', 'base_config.yaml')}\nexperiment: {name: t}\ndata: {webdataset_shards_train: "${train}", webdataset_shards_val: null, labels_valid: null, batch_size: 3}\nmodel: {text_encoder: {path: null}}\ntraining: {warmup_steps: 2, max_epochs: 2}\n`,
    );
    const r = runCtclip(['plan', '--config', cfg]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.split('\n').slice(0, 3)).to.deep.equal([
      'Using epoch-based training: 2 epochs = 26 steps',
      'Dataset: 40 samples / batch_size 3 = 13 steps/epoch',
      'Dropped per epoch: 1 samples (the remainder of 40 / 3; a different subset each epoch)',
    ]);
    const w2 = runCtclip(['plan', '--config', cfg, '--world-size', '2', '--set', 'data.batch_size=2']);
    expect(w2.stdout).to.contain(
      'Dataset: 40 samples / (batch_size 2 × 2 ranks × 1 accumulation steps) = 10 steps/epoch',
    );
  });

  it('exits 2 with the file, key and value for a bad config, before any heavy work', function () {
    const cfg = path.join(dir, 'bad.yaml');
    fs.writeFileSync(cfg, 'experiment: {name: t}\ntraining: {learning_rate: fast}\n');
    const r = runCtclip(['plan', '--config', cfg, '--samples', '10']);
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain(`${cfg}: training.learning_rate:`).and.contain('(got "fast")');
    expect(runCtclip(['plan', '--samples', '10']).status).to.equal(2);
    expect(runCtclip(['plan', '--config', cfg, '--bogus']).status).to.equal(2);
    expect(runCtclip(['nope']).status).to.equal(2);
  });

  it('exits 1 with the command to run when the training shards have no index', function () {
    const cfg = path.join(dir, 'noindex.yaml');
    // The shard files exist (a pattern of which none exists is a config error, exit 2); their index does not.
    fs.mkdirSync(path.join(dir, 'none'));
    for (const n of ['000000', '000001']) fs.writeFileSync(path.join(dir, 'none', `shard-${n}.tar`), '');
    fs.writeFileSync(
      cfg,
      `experiment: {name: t}\ndata: {webdataset_shards_train: "${dir}/none/shard-{000000..000001}.tar"}\n`,
    );
    const r = runCtclip(['plan', '--config', cfg]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain("ctclip shards index '");
  });
});
