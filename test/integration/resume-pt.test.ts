/**
 * `--resume FILE` on a plain file that is not a training checkpoint: refused before any training with exit 2, naming
 * what the file is, what --resume takes and, for weights, --init-from. (Training checkpoints written by real
 * torch.save are resumed in test/world/original-checkpoints.test.ts.)
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { tensorFromBuffer } from '../../lib/tensor';
import { saveWeights, writeTorchSave } from '../../lib/weights';
import { describeRun, runTrain, trainSuite, writeTrainConfig } from '../helpers/train-fixtures';

describe('train --resume FILE that is not a training checkpoint', function () {
  this.timeout(300_000);
  const ctx = trainSuite('resume-pt');

  async function refused(name: string, file: string): Promise<string> {
    const cfg = writeTrainConfig(ctx.dir, ctx.data, path.join(ctx.dir, name), { training: { threads: 1 } });
    const r = await runTrain(['--config', cfg, '--resume', file]);
    expect(r.code, describeRun(r)).to.equal(2);
    expect(r.stderr).to.include(`--resume ${file}`);
    expect(r.stderr).to.include("--resume takes 'latest', 'best', a checkpoint folder");
    expect(r.stderr).to.include(
      'or a torch.save training checkpoint (.pt holding model_state_dict and optimizer_state_dict',
    );
    expect(fs.existsSync(path.join(ctx.dir, name, 'metrics.jsonl')), 'nothing trained').to.equal(false);
    return r.stderr;
  }

  it('a safetensors weights file: says so and points to --init-from', async () => {
    const file = path.join(ctx.dir, 'weights.safetensors');
    const t = tensorFromBuffer(new Uint8Array(new Float32Array([1, 2]).buffer), 'float32', [2]);
    await saveWeights(file, ['x'], [t]);
    t.dispose();
    const err = await refused('st', file);
    expect(err).to.include('a safetensors weights file, not a training checkpoint');
    expect(err).to.include(`use --init-from ${file}`);
  });

  it('a torch.save state dict without optimizer state: names what it lacks and points to --init-from', async () => {
    const file = path.join(ctx.dir, 'state_dict.pt');
    writeTorchSave(file, [{ name: 'temperature', dtype: 'float32', shape: [], data: new Uint8Array(4) }]);
    const err = await refused('sd', file);
    expect(err).to.include(
      "a torch.save file but not a training checkpoint: it has no 'model_state_dict' or 'optimizer_state_dict' dict",
    );
    expect(err).to.include('top-level keys: temperature');
    expect(err).to.include(`use --init-from ${file}`);
  });

  it('a file of one of our checkpoint folders (its model.safetensors): points to the folder', async () => {
    const folder = path.join(ctx.dir, 'ckpt-step00000004');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'manifest.json'), '{}');
    const file = path.join(folder, 'model.safetensors');
    fs.writeFileSync(file, 'x');
    const cfg = writeTrainConfig(ctx.dir, ctx.data, path.join(ctx.dir, 'in-folder'), { training: { threads: 1 } });
    const r = await runTrain(['--config', cfg, '--resume', file]);
    expect(r.code, describeRun(r)).to.equal(2);
    expect(r.stderr).to.include(
      `--resume ${file}: a file inside the checkpoint folder ${folder}; resume from the folder: --resume ${folder}`,
    );
  });

  it('any other file: not a checkpoint, with what the first bytes are', async () => {
    const file = path.join(ctx.dir, 'notes.txt');
    fs.writeFileSync(file, 'resume from here\n');
    const err = await refused('txt', file);
    expect(err).to.include('not a checkpoint (');
    expect(err).to.include('neither a torch.save zip archive nor a safetensors file');
  });
});
