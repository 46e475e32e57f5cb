/**
 * Config files and the files a config names, through real `ctclip plan` / `ctclip train` processes
 * (docs/limits.md, "Configuration files"):
 *  - a labels CSV, vocabulary or shard pattern named in the config that does not exist is exit 2 naming the key
 *    path, the file and the config that set it, before any heavy work — in `plan` too;
 *  - a `_base_` (or main config) that is a FIFO or `/dev/zero` is refused at once (exit 2), never read or waited on;
 *  - `--set __proto__.x=1` is an unknown key blamed on `--set`.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCtclip, runEntry, synthShards } from '../helpers/cli';
import { repoRoot } from '../helpers/fixtures';
import { writeDebugConfig } from '../helpers/train-fixtures';

// A refused FIFO must not block: the old reader waited for a writer forever (killed here after 30 s).
const ctclip = (args: string[], cwd = repoRoot) => runCtclip(args, { cwd, timeout: 30_000 });
const train = (args: string[], cwd = repoRoot) => runEntry('train.js', args, { cwd, timeout: 60_000 });

describe('config files: missing named files, special files, prototype keys (CLI)', function () {
  this.timeout(120_000);
  let dir: string;
  let shards: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-config-files-'));
    shards = synthShards(path.join(dir, 'data', 'train'), 12);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A config on the debug config with indexed shards and the given data / text_encoder settings. */
  function config(name: string, data: Record<string, unknown>, textEncoder: Record<string, unknown>): string {
    const file = path.join(dir, name);
    const sections = {
      experiment: { name: 't' },
      data: {
        webdataset_shards_train: shards,
        webdataset_shards_val: shards,
        labels_valid: null,
        class_names: null,
        batch_size: 2,
        ...data,
      },
      model: { text_encoder: { path: null, vocab: path.join(dir, 'data', 'train', 'vocab.txt'), ...textEncoder } },
      checkpoint: { save_dir: path.join(dir, `run-${name}`) },
      training: { max_steps: 2, warmup_steps: 0, gradient_accumulation_steps: 1 },
    };
    writeDebugConfig(file, sections);
    return file;
  }

  it('plan and train: a missing labels CSV and vocabulary are exit 2 naming the key path, file and config; plan --samples plans without them', () => {
    const cfg = config(
      'missing.yaml',
      { labels_valid: 'nowhere/labels.csv' },
      { vocab: path.join(dir, 'no-vocab.txt') },
    );
    const lines = [
      `${cfg}: data.labels_valid: 'nowhere/labels.csv' (relative to the working directory: ${path.join(dir, 'nowhere', 'labels.csv')}) does not exist`,
      `${cfg}: model.text_encoder.vocab: '${path.join(dir, 'no-vocab.txt')}' does not exist`,
    ];
    const p = ctclip(['plan', '--config', cfg], dir);
    expect(p.status, p.stderr).to.equal(2);
    expect(p.stdout).to.equal('');
    for (const l of lines) expect(p.stderr).to.contain(l);

    const t = train(['--config', cfg], dir);
    expect(t.status, t.stderr).to.equal(2);
    for (const l of lines) expect(t.stderr).to.contain(l);
    expect(fs.existsSync(path.join(dir, 'run-missing.yaml')), 'nothing heavy ran: no run directory').to.equal(false);

    // --samples: planning a run whose data are elsewhere (as the README does with the base config).
    const s = ctclip(['plan', '--config', cfg, '--samples', '100'], dir);
    expect(s.status, s.stderr).to.equal(0);
    expect(s.stdout).to.contain('Dataset: 100 samples');
  });

  it('a key set by --set is blamed on --set; the text encoder folder and its vocab.txt', () => {
    const cfg = config('te.yaml', {}, {});
    // `plan` with model.text_encoder.path = dir/<folder> and no separate vocabulary.
    const planWithTextEncoder = (folder: string) =>
      ctclip([
        'plan',
        '--config',
        cfg,
        '--set',
        `model.text_encoder.path=${path.join(dir, folder)}`,
        '--set',
        'model.text_encoder.vocab=null',
      ]);
    const r = planWithTextEncoder('no-bert');
    expect(r.status, r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`--set: model.text_encoder.path: '${path.join(dir, 'no-bert')}' does not exist`);
    expect(r.stderr).not.to.contain('vocab.txt'); // one line for the missing folder
    fs.mkdirSync(path.join(dir, 'bert'));
    const r2 = planWithTextEncoder('bert');
    expect(r2.status, r2.stderr).to.equal(2);
    expect(r2.stderr).to.contain(
      `--set: model.text_encoder.path: '${path.join(dir, 'bert', 'vocab.txt')}' does not exist (the vocabulary, as model.text_encoder.vocab is null: vocab.txt, or the tokenizer.json of a transformers 5 folder)`,
    );
    // A transformers 5 folder has its vocabulary in tokenizer.json only: that is the vocabulary then.
    fs.writeFileSync(path.join(dir, 'bert', 'tokenizer.json'), '{}');
    const r3 = planWithTextEncoder('bert');
    expect(r3.status, r3.stderr).to.equal(0);
  });

  it('a shard pattern of which no file exists is exit 2 naming the key (plan and train)', () => {
    const cfg = config(
      'noshards.yaml',
      { webdataset_shards_val: path.join(dir, 'gone', 'shard-{000000..000009}.tar') },
      {},
    );
    const msg = `${cfg}: data.webdataset_shards_val: no shard of the pattern '${path.join(dir, 'gone', 'shard-{000000..000009}.tar')}' exists (10 names, e.g. '${path.join(dir, 'gone', 'shard-000000.tar')}'); the directory '${path.join(dir, 'gone')}' does not exist`;
    const p = ctclip(['plan', '--config', cfg]);
    expect(p.status, p.stderr).to.equal(2);
    expect(p.stderr).to.contain(msg);
    const t = train(['--config', cfg]);
    expect(t.status, t.stderr).to.equal(2);
    expect(t.stderr).to.contain(msg);
  });

  it('a _base_ that is a FIFO or /dev/zero, or a FIFO as the config, is refused at once (exit 2)', function () {
    const fifo = path.join(dir, 'fifo.yaml');
    if (spawnSync('mkfifo', [fifo]).status !== 0) this.skip();
    const viaFifo = path.join(dir, 'base-fifo.yaml');
    fs.writeFileSync(viaFifo, `_base_: fifo.yaml\nexperiment: {name: t}\n`);
    const viaZero = path.join(dir, 'base-zero.yaml');
    fs.writeFileSync(viaZero, `_base_: /dev/zero\nexperiment: {name: t}\n`);
    for (const [cfg, msg] of [
      [
        viaFifo,
        `config '${fifo}' is a FIFO (named pipe), not a regular file; only regular files are read (the _base_ of ${viaFifo})`,
      ],
      [
        viaZero,
        `config '/dev/zero' is a character device, not a regular file; only regular files are read (the _base_ of ${viaZero})`,
      ],
      [fifo, `config '${fifo}' is a FIFO (named pipe), not a regular file`],
    ]) {
      const r = ctclip(['plan', '--config', cfg, '--samples', '10']);
      expect(r.signal, `${cfg}: killed after blocking`).to.equal(null);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(msg);
    }
  });

  it('--set __proto__.x=1 is an unknown key blamed on --set (exit 2)', () => {
    const cfg = config('proto.yaml', {}, {});
    for (const [spec, msg] of [
      ['__proto__.x=1', '--set __proto__.x: unknown key __proto__'],
      ['constructor.prototype.x=1', '--set constructor.prototype.x: unknown key constructor'],
    ]) {
      const r = ctclip(['plan', '--config', cfg, '--samples', '10', '--set', spec]);
      expect(r.status, r.stderr).to.equal(2);
      expect(r.stderr).to.contain(msg);
    }
  });
});
