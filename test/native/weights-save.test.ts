/**
 * saveWeights: a file we save lists the reference keys in state_dict order (header order = data order), with the
 * shapes and dtypes of fixture C's meta, `format: pt` metadata, and loads back by key name bit-identically.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensorsHeader } from '../../lib/io/safetensors';
import { loadAddon } from '../../lib/native';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import { loadWeightsFile, saveWeights, importTorchFile } from '../../lib/weights';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { caseCMeta, expectSameTensors, hFile, tmpDir } from '../helpers/weights-fixtures';

const ST_DTYPE: Record<string, string> = { float32: 'F32', int64: 'I64' };

describe('weights: saveWeights (safetensors out)', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    expect(typeof loadAddon().saveSafetensors, 'addon function saveSafetensors').to.equal('function');
    dir = tmpDir('save');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the reference key list in state_dict order with its shapes and dtypes, and loads back by name', async () => {
    // Weights imported from the published-layout file (state_dict order), saved as ours.
    const imported = await importTorchFile(hFile('ctclip_tiny_with_position_ids.pt'));
    const file = path.join(dir, 'model.safetensors');
    await saveWeights(file, imported.names, imported.tensors, { step: '7' });

    const header = await readSafetensorsHeader(file);
    const meta = caseCMeta().state_dict_keys;
    expect(header.tensors.map((t) => t.name)).to.deep.equal(meta.map((k) => k.key));
    expect(header.tensors.map((t) => t.shape)).to.deep.equal(meta.map((k) => k.shape));
    expect(header.tensors.map((t) => t.dtype)).to.deep.equal(meta.map((k) => ST_DTYPE[k.dtype]));
    // Data laid out in header order (offsets increase), so the file reads sequentially in state_dict order.
    for (let i = 1; i < header.tensors.length; i++)
      expect(header.tensors[i].dataOffsets[0]).to.equal(header.tensors[i - 1].dataOffsets[1]);
    expect(header.metadata).to.deep.equal({ format: 'pt', step: '7' });

    // Loaded back against the reference list (strict, by key name) it equals fixture C bit for bit.
    const back = await loadWeightsFile(file, {
      strict: true,
      expected: meta.map((k) => ({ key: k.key, shape: k.shape, kind: k.kind })),
    });
    expect(back.names).to.deep.equal(meta.map((k) => k.key));
    const reference = await loadSafetensors(fixturePath('ctclip_tiny', 'weights.safetensors'));
    expectSameTensors(back, reference, 'saved vs fixture');
  });

  it('refuses mismatched lists and duplicate names (ARGUMENT_ERROR)', async () => {
    const r = await loadSafetensors(fixturePath('ctclip_tiny', 'weights.safetensors'));
    let err: (Error & { code?: string }) | undefined;
    try {
      await saveWeights(path.join(dir, 'x.safetensors'), ['a', 'a'], [r.tensors[0], r.tensors[1]]);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).to.equal('ARGUMENT_ERROR');
    expect(err?.message).to.include("key 'a' is given twice");
    try {
      await saveWeights(path.join(dir, 'x.safetensors'), ['a'], [r.tensors[0], r.tensors[1]]);
      err = undefined;
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).to.equal('ARGUMENT_ERROR');
  });
});
