/**
 * Hostile weights files cost bounded memory and are refused with the file, the entry or key and the limit named:
 * deflate bombs in `.pt` storages and data.pkl, zero-stride views, keys the model does not expect, overlapping or
 * gapped safetensors offsets, oversized / overcrowded safetensors headers, NaN / Inf weights on every load route,
 * and corrupted (CRC-failing) `.pt` entries. Every hostile file is built here for real (raw zip bytes, real deflate
 * streams, hand-assembled pickles, raw safetensors headers). Where memory is the point, the load runs in a child
 * process and its peak resident set (`process.resourceUsage().maxRSS`) is compared with a bound far below what the
 * file would need if it were honoured.
 */
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { decodeSafetensors, readSafetensorsHeader } from '../../lib/io/safetensors';
import { CTClip, type CTClipConfig } from '../../lib/model/ctclip';
import { loadModelWeights } from '../../lib/train/checkpoint-io';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { importTorchFile, loadWeightsFile, readModelSafetensors, saveWeights, writeTorchSave } from '../../lib/weights';
import { ZipReader } from '../../lib/weights/zip';
import { expectRejects } from '../helpers/errors';
import { requireAddon } from '../helpers/native';
import { TINY_BERT, TINY_CTCLIP_IMAGE } from '../helpers/tiny-configs';
import { stateDictPickle, tmpDir, writeRawZip, zeroDeflateBomb } from '../helpers/weights-fixtures';

const repoRoot = path.resolve(__dirname, '..', '..');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const WORD_EMB = 'text_transformer.embeddings.word_embeddings.weight';

interface ChildResult {
  ok?: boolean;
  code?: string;
  message?: string;
  names?: string[];
  report?: { unexpected: string[]; shapeMismatches: Array<{ key: string }>; notes: string[] };
  maxRssMB: number;
}

/**
 * Runs `body` (an async function body with `w` = lib/weights and `file`) in a fresh Node process and returns what it
 * returned or threw, with the process's peak RSS. The spawn timeout only stops a runaway process.
 */
function inChild(file: string, body: string): ChildResult {
  const script = `
    const w = require(${JSON.stringify(path.join(repoRoot, 'lib', 'weights'))});
    const file = ${JSON.stringify(file)};
    (async () => { ${body} })().then(
      (r) => ({ ok: true, ...(r || {}) }),
      (e) => ({ code: e.code, message: String(e.message) }),
    ).then((out) => { out.maxRssMB = process.resourceUsage().maxRSS / 1024; process.stdout.write(JSON.stringify(out)); });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * MiB });
  if (r.status !== 0) throw new Error(`child exited ${r.status} (signal ${r.signal}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as ChildResult;
}

let addonChildMB: number | undefined;
/** Peak RSS of a child that loads the addon and reads a tiny safetensors file (libtorch's own footprint). */
function aliasBaselineMB(): number {
  if (addonChildMB === undefined) {
    const file = path.join(tmpDir('baseline'), 'tiny.safetensors');
    fs.writeFileSync(file, encodeTiny());
    const r = inChild(file, 'await w.loadWeightsFile(file);');
    if (!r.ok) throw new Error(`baseline child failed: ${JSON.stringify(r)}`);
    addonChildMB = r.maxRssMB;
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  return addonChildMB;
}

/** A valid one-tensor safetensors file. */
function encodeTiny(): Buffer {
  const text = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, Buffer.from(new Float32Array([1, 2]).buffer)]);
}

describe('weights: limits and hostile files', function () {
  let dir: string;
  before(() => {
    dir = tmpDir('limits');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('.pt deflate bombs (bounded inflation and an import budget)', () => {
    it('stops inflating a storage at its declared size: a 1 MB file that inflates to 1 GiB is refused with a small peak memory', () => {
      // Declared 16 MiB (a 4M-element float32 tensor), inflates to 1 GiB of zeros.
      const declared = 16 * MiB;
      const file = writeRawZip(path.join(dir, 'bomb-lie.pt'), [
        {
          name: 'archive/data.pkl',
          method: 0,
          data: stateDictPickle([
            { name: WORD_EMB, storage: '0', numel: declared / 4, size: [declared / 4], stride: [1] },
          ]),
        },
        { name: 'archive/data/0', method: 8, data: zeroDeflateBomb(GiB), size: declared },
      ]);
      expect(fs.statSync(file).size).to.be.below(2 * MiB);
      const r = inChild(file, 'await w.importTorchFile(file);');
      expect(r.code, JSON.stringify(r)).to.equal('DATA_ERROR');
      expect(r.message).to.include(file);
      expect(r.message).to.include("entry 'archive/data/0' inflates to more than its declared 16777216 bytes");
      // Honouring the bomb takes > 1 GiB; the refusal needs the 16 MiB buffer and a few MiB of stream buffers.
      expect(r.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(160);
    });

    it('refuses an honestly declared 1 GiB storage before inflating it when the model expects a far smaller tensor', () => {
      const declared = GiB;
      const file = writeRawZip(path.join(dir, 'bomb-honest.pt'), [
        // The expected key views 4 elements of a 1 GiB storage.
        {
          name: 'archive/data.pkl',
          method: 0,
          data: stateDictPickle([{ name: WORD_EMB, storage: '0', numel: declared / 4, size: [4], stride: [1] }]),
        },
        { name: 'archive/data/0', method: 8, data: zeroDeflateBomb(declared), size: declared },
      ]);
      const r = inChild(
        file,
        `await w.importTorchFile(file, { expected: [{ key: ${JSON.stringify(WORD_EMB)}, shape: [4], kind: 'param' }] });`,
      );
      expect(r.code, JSON.stringify(r)).to.equal('DATA_ERROR');
      expect(r.message).to.include(file);
      expect(r.message).to.include("entry 'archive/data/0' needs 1073741824 bytes");
      expect(r.message).to.include(
        `over the limit of ${4 * 8 + 64 * MiB} bytes (the model expects 1 tensors of 4 elements: 8 bytes per element plus 64 MiB)`,
      );
      expect(r.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(160);
    });

    it('charges every storage to one budget across entries (maxBytes), naming the entry that passes it', async function () {
      requireAddon(this);
      const a = new Uint8Array(3 * MiB);
      const file = path.join(dir, 'two.pt');
      writeTorchSave(file, [
        { name: 'visual_transformer.a', dtype: 'uint8', shape: [a.length], data: a },
        { name: 'visual_transformer.b', dtype: 'uint8', shape: [a.length], data: a },
      ]);
      await expectRejects(
        importTorchFile(file, { maxBytes: 5 * MiB }),
        'DATA_ERROR',
        file,
        "entry 'two/data/1' needs 3145728 bytes",
        `to ${6 * MiB} bytes, over the limit of ${5 * MiB} bytes (the maxBytes option)`,
      );
    });

    it('bounds data.pkl: a declared size over 64 MiB and a deflated data.pkl that inflates past its declared size are refused', () => {
      const big = writeRawZip(path.join(dir, 'pkl-big.pt'), [
        { name: 'archive/data.pkl', method: 8, data: zeroDeflateBomb(128 * MiB), size: 128 * MiB },
      ]);
      const r1 = inChild(big, 'await w.importTorchFile(file);');
      expect(r1.message).to.include(
        `${big}: entry 'archive/data.pkl' declares 134217728 bytes, over the limit of 67108864 bytes`,
      );
      expect(r1.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(128);
      const lie = writeRawZip(path.join(dir, 'pkl-lie.pt'), [
        { name: 'archive/data.pkl', method: 8, data: zeroDeflateBomb(32 * MiB), size: 64 * 1024 },
      ]);
      const r2 = inChild(lie, 'await w.importTorchFile(file);');
      expect(r2.message).to.include(
        `${lie}: not a valid zip archive: deflated entry 'archive/data.pkl' inflates to more than its declared 65536 bytes`,
      );
      expect(r2.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(128);
    });
  });

  it('refuses pickle integers over 4096 bytes / 4300 digits (decoding them was quadratic: minutes for a 1 MB LONG4)', async () => {
    const long4 = Buffer.alloc(2 + 5 + MiB + 1);
    long4.set([0x80, 2, 0x8b], 0);
    long4.writeInt32LE(MiB, 3);
    long4.fill(0x11, 7, 7 + MiB);
    long4[7 + MiB] = 0x2e;
    const f1 = writeRawZip(path.join(dir, 'long4.pt'), [{ name: 'archive/data.pkl', method: 0, data: long4 }]);
    await expectRejects(importTorchFile(f1), 'DATA_ERROR', f1, 'LONG4 of 1048576 bytes is over the limit of 4096');
    const text = Buffer.concat([
      Buffer.from([0x80, 2, 0x4c]),
      Buffer.from(`${'9'.repeat(5000)}L\n`),
      Buffer.from([0x2e]),
    ]);
    const f2 = writeRawZip(path.join(dir, 'long.pt'), [{ name: 'archive/data.pkl', method: 0, data: text }]);
    await expectRejects(importTorchFile(f2), 'DATA_ERROR', f2, 'bad LONG literal', 'at most 4300 digits');
  });

  describe('.pt zero-stride views and keys the model does not expect', () => {
    it('never materialises unexpected keys or expected keys of another shape (four 1 GiB zero-stride views of a 4-byte storage)', () => {
      const huge = { storage: '0', numel: 1, size: [16384, 16384], stride: [0, 0] };
      const file = writeRawZip(path.join(dir, 'zero-stride.pt'), [
        {
          name: 'archive/data.pkl',
          method: 0,
          data: stateDictPickle([
            { name: WORD_EMB, ...huge },
            ...[0, 1, 2, 3].map((i) => ({ name: `visual_transformer.evil${i}.weight`, ...huge })),
          ]),
        },
        { name: 'archive/data/0', method: 0, data: new Uint8Array(4) },
      ]);
      expect(fs.statSync(file).size).to.be.below(4096);
      const r = inChild(
        file,
        `const r = await w.importTorchFile(file, { expected: [{ key: ${JSON.stringify(WORD_EMB)}, shape: [4, 8], kind: 'param' }] });
         return { names: r.names, report: r.report };`,
      );
      expect(r.ok, JSON.stringify(r)).to.equal(true);
      expect(r.names).to.deep.equal([]);
      expect(r.report!.shapeMismatches.map((m) => m.key)).to.deep.equal([WORD_EMB]);
      expect(r.report!.unexpected).to.deep.equal([0, 1, 2, 3].map((i) => `visual_transformer.evil${i}.weight`));
      expect(r.report!.notes.join('\n')).to.include(
        '5 keys the model does not expect (unexpected, or of another shape) were not loaded',
      );
      // Expanding them would take 5 GiB.
      expect(r.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(128);
    });

    it('charges a strided view to the budget before reading its storage, naming the key; a legitimate one is gathered exactly', async function () {
      requireAddon(this);
      const file = path.join(dir, 'view.pt');
      const row = new Float32Array([1, 2, 3]);
      writeTorchSave(file, [
        {
          name: 'visual_transformer.big',
          dtype: 'float32',
          shape: [16384, 16384],
          stride: [0, 0],
          data: new Uint8Array(row.buffer),
        },
        {
          name: 'visual_transformer.rows',
          dtype: 'float32',
          shape: [2, 3],
          stride: [0, 1],
          storageKey: '0',
          data: new Uint8Array(0),
        },
        {
          name: 'visual_transformer.cols',
          dtype: 'float64',
          shape: [3, 2],
          stride: [1, 0],
          data: new Uint8Array(new Float64Array([0.5, -1, 2]).buffer),
        },
      ]);
      await expectRejects(
        importTorchFile(file, { maxBytes: 64 * MiB }),
        'DATA_ERROR',
        file,
        "tensor 'visual_transformer.big' (a strided view, size [16384,16384] stride [0,0], of storage '0') needs 1073741824 bytes",
        `over the limit of ${64 * MiB} bytes (the maxBytes option)`,
      );
      const r = await importTorchFile(file, {
        expected: [
          { key: 'visual_transformer.rows', shape: [2, 3], kind: 'param' },
          { key: 'visual_transformer.cols', shape: [3, 2], kind: 'param' },
        ],
      });
      expect(r.names).to.deep.equal(['visual_transformer.rows', 'visual_transformer.cols']);
      expect(Array.from(readTensor(r.tensors[0]).data as Float32Array)).to.deep.equal([1, 2, 3, 1, 2, 3]);
      expect(Array.from(readTensor(r.tensors[1]).data as Float64Array)).to.deep.equal([0.5, 0.5, -1, -1, 2, 2]);
      r.tensors.forEach((t) => t.dispose());
    });
  });

  describe('safetensors offsets and header limits', () => {
    /** A raw safetensors file: header object (or text) and data bytes. */
    function writeSt(file: string, header: unknown, data: Buffer | number, headerText?: string): string {
      const text = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(text.length));
      fs.writeFileSync(file, Buffer.concat([len, text, typeof data === 'number' ? Buffer.alloc(data) : data]));
      return file;
    }

    it('refuses overlapping, aliased and gapped offsets and trailing bytes in both readers, before allocating', async function () {
      requireAddon(this);
      const f32 = (begin: number, n = 4) => ({ dtype: 'F32', shape: [n], data_offsets: [begin, begin + 4 * n] });
      const cases: Array<[string, unknown, number, string[]]> = [
        [
          'overlap',
          { a: f32(0), b: f32(8) },
          24,
          ["tensor 'b' starts at data offset 8 and overlaps the previous entry (which ends at 16)"],
        ],
        [
          'alias',
          { a: f32(0), b: f32(0) },
          16,
          ['starts at data offset 0 and overlaps the previous entry (which ends at 16)'],
        ],
        [
          'gap',
          { a: f32(0), b: f32(20) },
          36,
          ["tensor 'b' starts at data offset 20 and leaves a gap (the previous entry ends at 16)"],
        ],
        ['trailing', { a: f32(0) }, 20, ['the header describes 16 data bytes but the file has 20']],
      ];
      for (const [name, header, bytes, fragments] of cases) {
        const file = writeSt(path.join(dir, `${name}.safetensors`), header, bytes);
        await expectRejects(loadWeightsFile(file), 'DATA_ERROR', file, ...fragments);
        await expectRejects(readModelSafetensors(file), 'DATA_ERROR', file, ...fragments);
        const ts = await expectRejects(() => decodeSafetensors(fs.readFileSync(file), file), 'DATA_ERROR', file);
        expect(ts.message, name).to.match(/overlaps|gap|describes 16 data bytes/);
      }
      // 64 entries aliasing one 16 MiB region: 1 GiB if each were read (100 000 of them: 1.6 TiB).
      const many: Record<string, unknown> = {};
      for (let i = 0; i < 64; i++) many[`t${i}`] = { dtype: 'U8', shape: [16 * MiB], data_offsets: [0, 16 * MiB] };
      const alias = writeSt(path.join(dir, 'alias-many.safetensors'), many, 16 * MiB);
      const r = inChild(alias, 'await w.loadWeightsFile(file);');
      expect(r.code, JSON.stringify(r)).to.equal('DATA_ERROR');
      expect(r.message).to.include('overlaps the previous entry');
      expect(r.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(200);
      fs.rmSync(alias);
    });

    it('classifies a legal 99 MiB header as safetensors and loads it; a header over 100 MiB is refused with its length and the limit', async function () {
      requireAddon(this);
      const data = Buffer.from(new Float32Array([1, 2]).buffer);
      const head = JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, __metadata__: { pad: '' } });
      const pad = 99 * MiB - Buffer.byteLength(head);
      const big = writeSt(
        path.join(dir, 'header-99.safetensors'),
        null,
        data,
        head.replace('"pad":""', `"pad":"${'x'.repeat(pad)}"`),
      );
      const r = await loadWeightsFile(big);
      expect(r.names).to.deep.equal(['w']);
      expect(Array.from(readTensor(r.tensors[0]).data as Float32Array)).to.deep.equal([1, 2]);
      r.tensors.forEach((t) => t.dispose());
      expect((await readSafetensorsHeader(big)).headerLength).to.equal(99 * MiB);
      fs.rmSync(big);
      // Declares 101 MiB (the file is short): still safetensors, refused with the length and the limit.
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(101 * MiB));
      const over = path.join(dir, 'header-101.safetensors');
      fs.writeFileSync(over, Buffer.concat([len, Buffer.from('{"w": {}}')]));
      const fragments = [over, `header length ${101 * MiB} exceeds the limit of 100 MiB (104857600 bytes)`];
      const e = await expectRejects(loadWeightsFile(over), 'DATA_ERROR', ...fragments);
      expect(e.message).to.not.include('neither');
      await expectRejects(readSafetensorsHeader(over), 'DATA_ERROR', ...fragments);
    });

    it('refuses a header of 1 000 000 entries (and one of 3 000 000 shape dims) before parsing it, in bounded memory', async function () {
      requireAddon(this);
      const entries: string[] = [];
      for (let i = 0; i < 1_000_000; i++) entries.push(`"t${i}":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`);
      const file = writeSt(path.join(dir, 'crowd.safetensors'), null, 0, `{${entries.join(',')}}`);
      const r = inChild(file, 'await w.loadWeightsFile(file);');
      expect(r.code, JSON.stringify(r)).to.equal('DATA_ERROR');
      expect(r.message).to.include(`${file}: the header has 1000000 entries, over the limit of 100000 tensors`);
      // The header text itself is 60 MB; parsing it would have cost GBs.
      expect(r.maxRssMB - aliasBaselineMB(), 'peak RSS above a child that only loads the addon (MB)').to.be.below(300);
      await expectRejects(
        readSafetensorsHeader(file),
        'DATA_ERROR',
        file,
        'the header has 1000000 entries, over the limit of 100000 tensors',
      );
      fs.rmSync(file);
      const dims = writeSt(
        path.join(dir, 'dims.safetensors'),
        null,
        0,
        `{"t":{"dtype":"U8","shape":[${new Array(3_000_000).fill(1).join(',')}],"data_offsets":[0,1]}}`,
      );
      await expectRejects(
        loadWeightsFile(dims),
        'DATA_ERROR',
        dims,
        'JSON separators, over the limit of 2000000 (20 per tensor)',
      );
      await expectRejects(
        readSafetensorsHeader(dims),
        'DATA_ERROR',
        dims,
        'JSON separators, over the limit of 2000000',
      );
    });
  });

  describe('NaN / Inf weights are refused at load on every route', () => {
    it('safetensors (loadWeightsFile), .pt import and the checkpoint-resume route name the file and the first offending key', async function () {
      requireAddon(this);
      const ok = new Float32Array([0, 1, 2, 3]);
      const nan = new Float32Array([0, 1, Number.NaN, 3]);
      const inf = new Float32Array([0, -Infinity, 2, 3]);
      const t = (a: Float32Array) => tensorFromBuffer(new Float32Array(a), 'float32', [4]);
      const st = path.join(dir, 'nan.safetensors');
      await saveWeights(
        st,
        ['visual_transformer.a', 'visual_transformer.b', 'visual_transformer.c'],
        [t(ok), t(nan), t(inf)],
      );
      await expectRejects(
        loadWeightsFile(st),
        'DATA_ERROR',
        st,
        "tensor 'visual_transformer.b' holds NaN at element 2",
        'weights must be finite',
      );
      await expectRejects(
        readModelSafetensors(st),
        'DATA_ERROR',
        st,
        "tensor 'visual_transformer.b' holds NaN at element 2",
      );
      // .pt: float16 +Inf (0x7c00) and bfloat16 NaN (0x7fc1), the first in file order is named.
      const pt = path.join(dir, 'inf.pt');
      writeTorchSave(pt, [
        { name: 'visual_transformer.x', dtype: 'float32', shape: [4], data: new Uint8Array(ok.buffer) },
        {
          name: 'visual_transformer.h',
          dtype: 'float16',
          shape: [2],
          data: new Uint8Array(new Uint16Array([0x3c00, 0x7c00]).buffer),
        },
        {
          name: 'visual_transformer.bf',
          dtype: 'bfloat16',
          shape: [1],
          data: new Uint8Array(new Uint16Array([0x7fc1]).buffer),
        },
      ]);
      for (const load of [importTorchFile, loadWeightsFile]) {
        await expectRejects(load(pt), 'DATA_ERROR', pt, "tensor 'visual_transformer.h' holds +Inf at element 1");
      }
      // Integer tensors and finite floats (largest float16, denormals) load.
      const fine = path.join(dir, 'fine.pt');
      writeTorchSave(fine, [
        {
          name: 'visual_transformer.h',
          dtype: 'float16',
          shape: [3],
          data: new Uint8Array(new Uint16Array([0x7bff, 0x0001, 0xfbff]).buffer),
        },
        {
          name: 'visual_transformer.i',
          dtype: 'int32',
          shape: [1],
          data: new Uint8Array(new Int32Array([0x7f800000]).buffer),
        },
        {
          name: 'visual_transformer.d',
          dtype: 'float64',
          shape: [1],
          data: new Uint8Array(new Float64Array([Number.MAX_VALUE]).buffer),
        },
      ]);
      const r = await importTorchFile(fine);
      expect(r.names).to.have.length(3);
      r.tensors.forEach((x) => x.dispose());
    });

    it('checkpoint resume (loadModelWeights) refuses a model part with an Inf, naming the key', async function () {
      requireAddon(this);
      const config: CTClipConfig = {
        image: TINY_CTCLIP_IMAGE,
        text: TINY_BERT,
        dim_latent: 8,
        seed: 7,
      };
      const model = CTClip.create(config);
      try {
        const sd = model.stateDict();
        const i = sd.names.indexOf('to_visual_latent.weight');
        expect(i).to.be.at.least(0);
        const d = readTensor(sd.tensors[i]).data as Float32Array;
        d[5] = Infinity;
        const poisoned = sd.tensors.map((x, k) => (k === i ? tensorFromBuffer(d, 'float32', sd.shapes[i]) : x));
        const file = path.join(dir, 'model.safetensors');
        await saveWeights(file, sd.names, poisoned);
        sd.tensors.forEach((x) => x.dispose());
        await expectRejects(
          loadModelWeights(model, file),
          'DATA_ERROR',
          file,
          "tensor 'to_visual_latent.weight' holds +Inf at element 5",
        );
      } finally {
        model.dispose();
      }
    });
  });

  describe('.pt CRC-32', () => {
    it('refuses a storage with one flipped byte, naming the entry; a CRC recorded as 0 (not computed) is not checked', async function () {
      requireAddon(this);
      const file = path.join(dir, 'crc.pt');
      const data = new Float32Array(1024).map((_, i) => i / 7);
      writeTorchSave(file, [
        { name: 'visual_transformer.w', dtype: 'float32', shape: [1024], data: new Uint8Array(data.buffer) },
      ]);
      const zip = ZipReader.open(file);
      const at = zip.dataOffset(zip.entries.get('crc/data/0')!);
      zip.close();
      const bytes = fs.readFileSync(file);
      bytes[at + 1001] ^= 0x01;
      fs.writeFileSync(file, bytes);
      await expectRejects(
        importTorchFile(file),
        'DATA_ERROR',
        file,
        "entry 'crc/data/0' fails its CRC-32 check",
        'the file is corrupt',
      );

      const pkl = torchSavePickle(path.join(dir, 'crc-src.pt'), data);
      const noCrc = writeRawZip(path.join(dir, 'nocrc.pt'), [
        { name: 'archive/data.pkl', method: 0, data: pkl, crc: 0 },
        { name: 'archive/data/0', method: 0, data: new Uint8Array(data.buffer), crc: 0 },
      ]);
      const r = await importTorchFile(noCrc);
      expect(Array.from(readTensor(r.tensors[0]).data as Float32Array)).to.deep.equal(Array.from(data));
      r.tensors.forEach((x) => x.dispose());
    });
  });
});

/** The data.pkl our torch.save writer produces for one float32 tensor 'visual_transformer.w' (storage '0'). */
function torchSavePickle(file: string, data: Float32Array): Uint8Array {
  writeTorchSave(
    file,
    [{ name: 'visual_transformer.w', dtype: 'float32', shape: [data.length], data: new Uint8Array(data.buffer) }],
    { archiveName: 'archive' },
  );
  const zip = ZipReader.open(file);
  try {
    return zip.read('archive/data.pkl', 1 << 20);
  } finally {
    zip.close();
  }
}
