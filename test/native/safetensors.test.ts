/** The native safetensors reader/writer: format details, dtypes, order, metadata and error reporting. */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadSafetensors, saveSafetensors } from '../../lib/weights/safetensors-native';
import type { Dtype, TensorHandle } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';
import { fixturePath, fixturesAvailable } from '../helpers/fixtures';
import { requireAddon } from '../helpers/native';
import { expectRejects } from '../helpers/errors';

/** Writes a raw safetensors file from a header object and a data buffer. */
function writeRaw(file: string, header: unknown, data: Buffer, headerText?: string): void {
  const text = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file, Buffer.concat([len, text, data]));
}

describe('native: safetensors', function () {
  let dir: string;
  before(function () {
    requireAddon(this);
    // a stale addon built before this module existed cannot run these tests (rebuild with npm run build:native)
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-st-'));
  });
  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips every dtype, 0-dim and 0-element tensors, keeping the given order and metadata', async function () {
    const cases: Array<[string, Dtype, ArrayBufferView, number[]]> = [
      ['z_f32', 'float32', new Float32Array([1.5, -2, 3.25, 0]), [2, 2]],
      ['a_f64', 'float64', new Float64Array([Math.PI, -1e300]), [2]],
      ['m_f16', 'float16', new Uint16Array([0x3c00, 0x7bff, 0x0001]), [3]],
      ['b_bf16', 'bfloat16', new Uint16Array([0x3f80, 0xc000]), [1, 2]],
      ['i64', 'int64', new BigInt64Array([1n, -(2n ** 62n), 7n]), [3]],
      ['i32', 'int32', new Int32Array([-5, 2 ** 31 - 1]), [2, 1]],
      ['u8', 'uint8', new Uint8Array([0, 255, 7]), [3]],
      ['bool', 'bool', new Uint8Array([1, 0, 1, 1]), [4]],
      ['scalar', 'float32', new Float32Array([2.5]), []],
      ['empty', 'float32', new Float32Array(0), [2, 0, 16]],
    ];
    const file = path.join(dir, 'all.safetensors');
    const tensors: TensorHandle[] = cases.map(([, dtype, data, shape]) => tensorFromBuffer(data, dtype, shape));
    await saveSafetensors(
      file,
      cases.map((c) => c[0]),
      tensors,
      { format: 'pt', 'ünïcode "key"': 'välue\n' },
    );
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);

    // layout: little-endian header length, header padded to 8 bytes, data right after it in the given order
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect((8 + n) % 8).to.equal(0);
    const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<
      string,
      { dtype: string; shape: number[]; data_offsets: number[] }
    >;
    expect(Object.keys(header)).to.deep.equal(['__metadata__', ...cases.map((c) => c[0])]);
    expect(header.b_bf16.dtype).to.equal('BF16');
    expect(header.bool.dtype).to.equal('BOOL');
    expect(header.empty.shape).to.deep.equal([2, 0, 16]);
    expect(header.scalar.shape).to.deep.equal([]);

    const loaded = await loadSafetensors(file);
    expect(loaded.names).to.deep.equal(cases.map((c) => c[0]));
    expect(loaded.metadata).to.deep.equal({ format: 'pt', 'ünïcode "key"': 'välue\n' });
    cases.forEach(([name, dtype, data, shape], i) => {
      const t = readTensor(loaded.tensors[i]);
      expect(t.dtype, name).to.equal(dtype);
      expect(t.shape, name).to.deep.equal(shape);
      expect(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(
          Buffer.from(data.buffer, data.byteOffset, data.byteLength),
        ),
        name,
      ).to.equal(true);
    });
  });

  it('reads the reference (Python) files in their header order', async function () {
    if (!fixturesAvailable()) this.skip();
    const file = fixturePath('ctvit_tiny_eval', 'outputs.safetensors');
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    const keys = Object.keys(JSON.parse(raw.subarray(8, 8 + n).toString('utf8'))).filter((k) => k !== '__metadata__');
    const loaded = await loadSafetensors(file);
    expect(loaded.names).to.deep.equal(keys);
    expect(readTensor(loaded.tensors[loaded.names.indexOf('vq_indices')]).dtype).to.equal('int64');
  });

  it('reports IO_ERROR for unreadable files and DATA_ERROR naming the file and the bad field', async function () {
    const missing = path.join(dir, 'nope.safetensors');
    await expectRejects(loadSafetensors(missing), 'IO_ERROR', missing);

    const short = path.join(dir, 'short.safetensors');
    fs.writeFileSync(short, Buffer.from([1, 2, 3]));
    await expectRejects(loadSafetensors(short), 'DATA_ERROR', short, 'too short');

    const longHeader = path.join(dir, 'long.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(1000n);
    fs.writeFileSync(longHeader, Buffer.concat([len, Buffer.from('{}')]));
    await expectRejects(loadSafetensors(longHeader), 'DATA_ERROR', longHeader, 'header length 1000');

    const badJson = path.join(dir, 'json.safetensors');
    writeRaw(badJson, null, Buffer.alloc(0), '{"a": {"dtype": "F32",');
    await expectRejects(loadSafetensors(badJson), 'DATA_ERROR', badJson, 'invalid JSON');

    const badDtype = path.join(dir, 'dtype.safetensors');
    writeRaw(badDtype, { w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1));
    await expectRejects(loadSafetensors(badDtype), 'DATA_ERROR', "tensor 'w'", "dtype 'F8_E4M3'");

    const badSpan = path.join(dir, 'span.safetensors');
    writeRaw(badSpan, { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, Buffer.alloc(16));
    await expectRejects(loadSafetensors(badSpan), 'DATA_ERROR', "tensor 'w'", 'data_offsets', 'need 16');

    const pastEnd = path.join(dir, 'end.safetensors');
    writeRaw(pastEnd, { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8));
    await expectRejects(loadSafetensors(pastEnd), 'DATA_ERROR', "tensor 'w'", 'past the data section');

    const badShape = path.join(dir, 'shape.safetensors');
    writeRaw(badShape, { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4));
    await expectRejects(loadSafetensors(badShape), 'DATA_ERROR', "tensor 'w'", "'shape'");

    const badMeta = path.join(dir, 'meta.safetensors');
    writeRaw(badMeta, { __metadata__: { a: 1 } }, Buffer.alloc(0));
    await expectRejects(loadSafetensors(badMeta), 'DATA_ERROR', '__metadata__.a');
  });

  it('refuses duplicate names and reports unwritable destinations as IO_ERROR', async function () {
    const t = tensorFromBuffer(new Float32Array([1]), 'float32', [1]);
    await expectRejects(
      saveSafetensors(path.join(dir, 'dup.safetensors'), ['a', 'a'], [t, t]),
      'ARGUMENT_ERROR',
      "'a' is given twice",
    );
    const target = path.join(dir, 'no-such-dir', 'x.safetensors');
    await expectRejects(saveSafetensors(target, ['a'], [t]), 'IO_ERROR', target);
  });
});
