/**
 * torch.save import against fixture H: all four files give exactly the tensors of ctclip_tiny/weights.safetensors
 * (bit-identical, state_dict order), with the wrapper, position_ids and CUDA-location cases reported; the
 * reference key list matches fixture C's meta; our own torch.save writer round-trips (parameters, shared and
 * strided storages, every dtype); the refactor (CTCLIP_MODERN) layout is recognised and mapped.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { loadAddon } from '../../lib/native';
import { loadSafetensors } from '../../lib/weights/safetensors-native';
import { readTensor, tensorInfo, type TensorHandle } from '../../lib/tensor';
import {
  ctclipReferenceKeys,
  importTorchFile,
  loadWeightsFile,
  REFACTOR_LAYOUT_NAME,
  writeTorchSave,
  type TorchSaveEntry,
} from '../../lib/weights';
import { readTorchArchive } from '../../lib/weights/torch-file';
import { fixturePath, fixturesAvailable, readFixtureJson } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { caseCMeta, expectSameTensors, H_FILES, hFile, tensorBytes, tmpDir } from '../helpers/weights-fixtures';
import { PUBLISHED_CTVIT } from '../helpers/tiny-configs';

function referenceKeysFromMeta() {
  const m = caseCMeta();
  const v = m.ctvit_config;
  const b = m.bert_config;
  return ctclipReferenceKeys(
    {
      dim: v.dim,
      codebook_size: v.codebook_size,
      image_size: v.image_size,
      patch_size: v.patch_size,
      temporal_patch_size: v.temporal_patch_size,
      spatial_depth: v.spatial_depth,
      temporal_depth: v.temporal_depth,
      heads: v.heads,
      dim_head: v.dim_head,
    },
    {
      vocab_size: b.vocab_size,
      hidden_size: b.hidden_size,
      num_hidden_layers: b.num_hidden_layers,
      intermediate_size: b.intermediate_size,
      max_position_embeddings: b.max_position_embeddings,
    },
    { dimLatent: m.dim_latent },
  );
}

describe('weights: reference key list (pure TS)', function () {
  before(function () {
    if (!fixturesAvailable()) this.skip();
  });
  it('ctclipReferenceKeys reproduces fixture C meta: keys, order, shapes and kinds', () => {
    const meta = caseCMeta().state_dict_keys;
    const ours = referenceKeysFromMeta();
    expect(ours.map((k) => k.key)).to.deep.equal(meta.map((k) => k.key));
    expect(ours.map((k) => k.shape)).to.deep.equal(meta.map((k) => k.shape));
    expect(ours.map((k) => k.kind)).to.deep.equal(meta.map((k) => k.kind));
  });
  it('the default (full-size) config gives the published 361 keys (+ position_ids in the file)', () => {
    const keys = ctclipReferenceKeys(
      PUBLISHED_CTVIT,
      {
        vocab_size: 30522,
        hidden_size: 768,
        num_hidden_layers: 12,
        intermediate_size: 3072,
        max_position_embeddings: 512,
      },
      { dimLatent: 512 },
    );
    expect(keys.length).to.equal(361);
    expect(keys.filter((k) => k.key.startsWith('text_transformer.')).length).to.equal(199);
    expect(keys.filter((k) => k.key.startsWith('visual_transformer.')).length).to.equal(157);
    expect(keys.find((k) => k.key === 'to_visual_latent.weight')?.shape).to.deep.equal([512, 294912]);
  });
});

describe('weights: torch.save import (fixture H)', function () {
  let reference: { names: string[]; tensors: TensorHandle[] };
  let dir: string;
  before(async function () {
    requireAddon(this);
    if (!fixturesAvailable()) this.skip();
    for (const fn of ['fromBuffer', 'loadSafetensors', 'saveSafetensors', 'toTypedArray'] as const) {
      expect(typeof loadAddon()[fn], `addon function ${fn}`).to.equal('function');
    }
    reference = await loadSafetensors(fixturePath('ctclip_tiny', 'weights.safetensors'));
    dir = tmpDir('import');
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  for (const file of H_FILES) {
    it(`${file}: bit-identical to ctclip_tiny/weights.safetensors, in state_dict order, strict against the reference list`, async () => {
      const r = await importTorchFile(hFile(file), { strict: true, expected: referenceKeysFromMeta() });
      expect(r.names).to.deep.equal(caseCMeta().state_dict_keys.map((k) => k.key));
      expectSameTensors(r, reference, file);
      expect(r.report.missing).to.deep.equal([]);
      expect(r.report.unexpected).to.deep.equal([]);
      expect(r.report.shapeMismatches).to.deep.equal([]);
      for (const t of r.tensors) expect(tensorInfo(t).device).to.equal('cpu');
    });
  }

  it('reports each variant: flat, wrapped:model_state_dict (epoch listed, not loaded), dropped position_ids, cuda:0 read onto the CPU', async () => {
    const flat = await importTorchFile(hFile('ctclip_tiny_state_dict.pt'));
    expect(flat.layout).to.equal('flat');
    expect(flat.dropped).to.deep.equal([]);
    expect(flat.report.locations).to.deep.equal(['cpu']);

    const wrapped = await importTorchFile(hFile('ctclip_tiny_wrapped.pt'));
    expect(wrapped.layout).to.equal('wrapped:model_state_dict');
    expect(wrapped.report.wrapper).to.equal('model_state_dict');
    expect(wrapped.report.otherEntries).to.deep.equal({ epoch: '3' });

    const pos = await importTorchFile(hFile('ctclip_tiny_with_position_ids.pt'));
    expect(pos.dropped.map((d) => d.key)).to.deep.equal(['text_transformer.embeddings.position_ids']);
    expect(pos.dropped[0].reason).to.match(/int64 \[1,64\]/);
    expect(pos.names).to.not.include('text_transformer.embeddings.position_ids');
    // The archive itself holds it in the position transformers < 4.31 wrote it, with values 0..63.
    const meta = readFixtureJson<{ key_order_with_position_ids: string[] }>('torch_save_import', 'meta.json');
    const arch = readTorchArchive(hFile('ctclip_tiny_with_position_ids.pt'));
    try {
      const keys = [...(arch.value as unknown as { map: Map<string, unknown> }).map.keys()];
      expect(keys).to.deep.equal(meta.key_order_with_position_ids);
    } finally {
      arch.zip.close();
    }

    const cuda = await importTorchFile(hFile('ctclip_tiny_cuda_tagged.pt'));
    expect(cuda.report.locations).to.deep.equal(['cuda:0']);
    expect(cuda.report.notes.join('\n')).to.include('read onto the CPU');
  });

  it('loadWeightsFile dispatches on content (a .pt renamed to .bin, a safetensors without extension)', async () => {
    const bin = path.join(dir, 'renamed.bin');
    fs.copyFileSync(hFile('ctclip_tiny_wrapped.pt'), bin);
    const st = path.join(dir, 'weights_noext');
    fs.copyFileSync(fixturePath('ctclip_tiny', 'weights.safetensors'), st);
    const a = await loadWeightsFile(bin);
    const b = await loadWeightsFile(st, { expected: referenceKeysFromMeta(), strict: true });
    expect(a.report.format).to.equal('torch');
    expect(b.report.format).to.equal('safetensors');
    // With an expected list, safetensors tensors come back in state_dict order (the header is sorted by Python).
    expect(b.names).to.deep.equal(caseCMeta().state_dict_keys.map((k) => k.key));
    expectSameTensors(a, b, 'bin vs safetensors');
  });

  it('strict refuses unexpected and forward-relevant missing keys, and shape mismatches, naming them', async () => {
    const expected = referenceKeysFromMeta();
    const withExtra = [...expected, { key: 'visual_transformer.extra.weight', shape: [1], kind: 'param' as const }];
    let err: Error | undefined;
    try {
      await importTorchFile(hFile('ctclip_tiny_state_dict.pt'), { strict: true, expected: withExtra });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/strict load failed: missing keys: visual_transformer\.extra\.weight/);
    const wrongShape = expected.map((k) => (k.key === 'temperature' ? { ...k, shape: [1] } : k));
    try {
      await importTorchFile(hFile('ctclip_tiny_state_dict.pt'), { strict: true, expected: wrongShape });
      err = undefined;
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/shape mismatches: temperature \[\] \(expected \[1\]\)/);
    // Not strict: the same is only reported.
    const r = await importTorchFile(hFile('ctclip_tiny_state_dict.pt'), { expected: withExtra });
    expect(r.report.missing).to.deep.equal(['visual_transformer.extra.weight']);
  });

  it('our torch.save writer round-trips: parameters, shared storage, strided views, every dtype, wrapper, cuda tag', async () => {
    const f32 = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2);
    const entries: TorchSaveEntry[] = [
      { name: 'w', dtype: 'float32', shape: [3, 4], data: new Uint8Array(f32.buffer), parameter: true },
      // w transposed: a strided view of the same storage.
      { name: 'wT', dtype: 'float32', shape: [4, 3], data: new Uint8Array(0), storageKey: '0', stride: [1, 4] },
      // a slice at an offset: row 1 of w.
      { name: 'row1', dtype: 'float32', shape: [4], data: new Uint8Array(0), storageKey: '0', offset: 4 },
      { name: 'h', dtype: 'float16', shape: [2], data: new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer) },
      { name: 'bf', dtype: 'bfloat16', shape: [2], data: new Uint8Array(new Uint16Array([0x3f80, 0x4000]).buffer) },
      { name: 'd', dtype: 'float64', shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) },
      {
        name: 'l',
        dtype: 'int64',
        shape: [1, 3],
        data: new Uint8Array(new BigInt64Array([0n, -1n, 2n ** 40n]).buffer),
      },
      { name: 'i', dtype: 'int32', shape: [2], data: new Uint8Array(new Int32Array([7, -7]).buffer) },
      { name: 'u', dtype: 'uint8', shape: [3], data: new Uint8Array([1, 2, 255]) },
      { name: 'b', dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'empty', dtype: 'float32', shape: [2, 0, 3], data: new Uint8Array(0) },
    ];
    const file = path.join(dir, 'ours.pt');
    writeTorchSave(file, entries, { wrapper: 'state_dict', extra: { step: 12 }, location: 'cuda:1' });
    const r = await importTorchFile(file, { expect: 'ctclip' });
    expect(r.layout).to.equal('wrapped:state_dict');
    expect(r.report.locations).to.deep.equal(['cuda:1']);
    expect(r.names).to.deep.equal(entries.map((e) => e.name));
    const get = (n: string) => readTensor(r.tensors[r.names.indexOf(n)]);
    expect(Array.from(get('w').data as Float32Array)).to.deep.equal(Array.from(f32));
    const wT = get('wT');
    expect(wT.shape).to.deep.equal([4, 3]);
    expect(Array.from(wT.data as Float32Array)).to.deep.equal(
      [0, 1, 2, 3].flatMap((c) => [0, 1, 2].map((rr) => f32[rr * 4 + c])),
    );
    expect(Array.from(get('row1').data as Float32Array)).to.deep.equal(Array.from(f32.subarray(4, 8)));
    expect(get('h').dtype).to.equal('float16');
    expect(Array.from(get('h').data as Uint16Array)).to.deep.equal([0x3c00, 0xc000]);
    expect(get('bf').dtype).to.equal('bfloat16');
    expect(get('d').shape).to.deep.equal([]);
    expect((get('d').data as Float64Array)[0]).to.equal(Math.PI);
    expect(Array.from(get('l').data as BigInt64Array)).to.deep.equal([0n, -1n, 2n ** 40n]);
    expect(Array.from(get('i').data as Int32Array)).to.deep.equal([7, -7]);
    expect(Array.from(get('u').data as Uint8Array)).to.deep.equal([1, 2, 255]);
    expect(get('b').dtype).to.equal('bool');
    expect(get('empty').shape).to.deep.equal([2, 0, 3]);
    // The unknown names are reported (expect 'ctclip'), not dropped.
    expect(r.report.unexpected).to.include('w');
  });

  it('recognises the refactor (CTCLIP_MODERN) layout: text_transformer.bert.* mapped, extra heads dropped, the rest reported', async () => {
    // Build a MODERN-shaped file from the fixture tensors: renamed BERT keys, no pooler, MLM + projection heads,
    // a decoder layer, embed_avg and a flag-variant key that maps to nothing.
    const src = await importTorchFile(hFile('ctclip_tiny_state_dict.pt'));
    const entries: TorchSaveEntry[] = [];
    const add = (name: string, t: TensorHandle): void => {
      const d = readTensor(t);
      entries.push({ name, dtype: d.dtype, shape: d.shape, data: new Uint8Array(tensorBytes(t)) });
    };
    for (const [i, n] of src.names.entries()) {
      if (n.startsWith('text_transformer.pooler.')) continue;
      add(
        n.startsWith('text_transformer.') ? n.replace('text_transformer.', 'text_transformer.bert.') : n,
        src.tensors[i],
      );
    }
    const f = (name: string, shape: number[]): void => {
      const n = shape.reduce((a, b) => a * b, 1);
      entries.push({ name, dtype: 'float32', shape, data: new Uint8Array(new Float32Array(n).fill(0.5).buffer) });
    };
    f('text_transformer.cls.predictions.bias', [120]);
    f('text_transformer.cls.predictions.transform.dense.weight', [32, 32]);
    f('text_transformer.cls_projection_head.dense_to_hidden.weight', [128, 32]);
    f('visual_transformer.dec_spatial_transformer.layers.0.0.dsconv.weight', [32, 1, 3, 3, 3]);
    f('visual_transformer.vq._codebook.embed_avg', [1, 64, 32]);
    f('visual_transformer.enc_spatial_transformer.layers.0.1.norm.weight', [32]);
    const file = path.join(dir, 'modern.pt');
    writeTorchSave(file, entries, { wrapper: 'model_state_dict', extra: { global_step: 100 } });

    const r = await importTorchFile(file, { expected: referenceKeysFromMeta() });
    expect(r.layout).to.equal('refactor');
    expect(r.report.layoutDescription).to.equal(`${REFACTOR_LAYOUT_NAME}, wrapped in 'model_state_dict'`);
    expect(r.report.renamed.length).to.equal(
      src.names.filter((n) => n.startsWith('text_transformer.') && !n.includes('pooler')).length,
    );
    expect(r.report.renamed[0]).to.deep.equal({
      from: 'text_transformer.bert.embeddings.word_embeddings.weight',
      to: 'text_transformer.embeddings.word_embeddings.weight',
    });
    expect(r.dropped.map((d) => d.key)).to.deep.equal([
      'text_transformer.cls.predictions.bias',
      'text_transformer.cls.predictions.transform.dense.weight',
      'text_transformer.cls_projection_head.dense_to_hidden.weight',
      'visual_transformer.dec_spatial_transformer.layers.0.0.dsconv.weight',
      'visual_transformer.vq._codebook.embed_avg',
    ]);
    expect(r.report.unexpected).to.deep.equal(['visual_transformer.enc_spatial_transformer.layers.0.1.norm.weight']);
    expect(r.report.missing).to.deep.equal([]);
    expect(r.report.missingUnused).to.deep.equal([
      'text_transformer.pooler.dense.weight',
      'text_transformer.pooler.dense.bias',
    ]);
    // Every mapped tensor equals the original.
    const mapped = {
      names: r.names.filter((n) => !n.includes('norm.weight')),
      tensors: r.tensors.filter((_, i) => !r.names[i].includes('norm.weight')),
    };
    const orig = {
      names: src.names.filter((n) => !n.includes('pooler')),
      tensors: src.tensors.filter((_, i) => !src.names[i].includes('pooler')),
    };
    expectSameTensors(mapped, orig, 'refactor mapping');
    // Strict refuses it because of the unmapped flag-variant key, and names it.
    let err: Error | undefined;
    try {
      await importTorchFile(file, { strict: true, expected: referenceKeysFromMeta() });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(
      /unexpected keys: visual_transformer\.enc_spatial_transformer\.layers\.0\.1\.norm\.weight/,
    );
  });
});
