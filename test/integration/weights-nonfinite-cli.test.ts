/**
 * NaN / Inf weights through the real commands: `ctclip infer --checkpoint` (safetensors and torch.save) and
 * `node lib/train.js --init-from` exit 1 with the file and the first offending key named, and no usage text — the
 * weights are refused at load, before anything runs on them.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../lib/config/load';
import { modelConfigFromConfig } from '../../lib/model/config';
import { CTClip } from '../../lib/model/ctclip';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { Tokenizer } from '../../lib/text/tokenizer';
import { saveWeights, writeTorchSave } from '../../lib/weights';
import {
  describeRun,
  DEMO_CLASSES,
  requireTrainer,
  runTrain,
  trainData,
  writeTrainConfig,
} from '../helpers/train-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');

describe('NaN / Inf weights: infer and --init-from exit 1 naming the file and the key', function () {
  this.timeout(120_000);
  let dir: string;
  let cfgFile: string;
  let nanSt: string;
  let infPt: string;
  const key = 'to_text_latent.weight';

  before(async function () {
    requireTrainer(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-nonfinite-'));
    const data = await trainData({ train: 8, val: 24, classes: DEMO_CLASSES });
    cfgFile = writeTrainConfig(dir, data, path.join(dir, 'run'), {
      training: { max_steps: 2, warmup_steps: 1, threads: 2 },
      data: { batch_size: 4, val_batch_size: 4 },
    });
    const cfg = loadConfig(cfgFile).config;
    const tokenizer = Tokenizer.fromVocabFile(cfg.model.text_encoder.vocab!, {
      doLowerCase: cfg.model.text_encoder.do_lower_case,
    });
    const model = CTClip.create(modelConfigFromConfig(cfg, tokenizer.vocabSize));
    try {
      const sd = model.stateDict();
      const i = sd.names.indexOf(key);
      expect(i, key).to.be.at.least(0);
      const values = new Float32Array(readTensor(sd.tensors[i]).data as Float32Array);
      values[3] = Number.NaN;
      const tensors = sd.tensors.map((t, k) => (k === i ? tensorFromBuffer(values, 'float32', sd.shapes[i]) : t));
      nanSt = path.join(dir, 'nan.safetensors');
      await saveWeights(nanSt, sd.names, tensors);
      values[3] = Number.NEGATIVE_INFINITY;
      infPt = path.join(dir, 'inf.pt');
      writeTorchSave(
        infPt,
        sd.names.map((name, k) => {
          const d = k === i ? values : (readTensor(sd.tensors[k]).data as Float32Array);
          return {
            name,
            dtype: 'float32',
            shape: sd.shapes[k],
            data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice(),
          };
        }),
        { wrapper: 'model_state_dict' },
      );
      sd.tensors.forEach((t) => t.dispose());
    } finally {
      model.dispose();
    }
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(repoRoot, 'lib', 'cli.js'), ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, CI: '1' },
    });

  it('ctclip infer refuses NaN (safetensors) and -Inf (torch.save) weights with exit 1', () => {
    for (const [file, value] of [
      [nanSt, 'NaN'],
      [infPt, '-Inf'],
    ]) {
      const r = cli('infer', '--checkpoint', file, '--config', cfgFile, '--output', path.join(dir, 'out'), '--quiet');
      const shown = `exit ${r.status}\n${r.stdout}\n${r.stderr}`;
      expect(r.status, shown).to.equal(1);
      expect(r.stderr, shown).to.include(`${file}: tensor '${key}' holds ${value} at element 3`);
      expect(r.stderr, shown).to.not.match(/usage/i);
      expect(fs.existsSync(path.join(dir, 'out', 'results.json'))).to.equal(false);
    }
  });

  it('train --init-from refuses NaN weights with exit 1 before step 0', async () => {
    const r = await runTrain(['--config', cfgFile, '--init-from', nanSt]);
    expect(r.code, describeRun(r)).to.equal(1);
    expect(r.stderr, describeRun(r)).to.include(`${nanSt}: tensor '${key}' holds NaN at element 3`);
    expect(r.stderr, describeRun(r)).to.not.match(/usage/i);
    expect(r.stdout).to.not.match(/step 1\b/);
  });
});
