import { expect } from 'chai';
import { loadAddon } from '../../lib/native';
import { readTensor, tensorFromBuffer, tensorInfo, transformTensor } from '../../lib/tensor';
import { collectGarbage, requireAddon } from '../helpers/native';

describe('native: tensor bridge', function () {
  before(function () {
    requireAddon(this);
  });

  it('wraps a float32 buffer without copying (writes after wrapping are visible)', function () {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = tensorFromBuffer(data, 'float32', [2, 3]);
    const info = tensorInfo(t);
    expect(info).to.include({ dtype: 'float32', contiguous: true, nbytes: 24, borrowsJsMemory: true, device: 'cpu' });
    expect(info.shape).to.deep.equal([2, 3]);
    data[4] = 42;
    expect(Array.from(readTensor(t).data as Float32Array)).to.deep.equal([1, 2, 3, 4, 42, 6]);
  });

  it('keeps float16 bits exact and reads them back as Uint16Array', function () {
    const bits = new Uint16Array([0x3c00, 0xbc00, 0x7bff, 0x0001, 0x0000, 0x8000]);
    const t = tensorFromBuffer(bits, 'float16', [6]);
    const out = readTensor(t);
    expect(out.dtype).to.equal('float16');
    expect(out.data).to.be.instanceOf(Uint16Array);
    expect(Array.from(out.data as Uint16Array)).to.deep.equal(Array.from(bits));
  });

  it('converts float16 to float32 in native code with the right values', async function () {
    const bits = new Uint16Array([0x3c00, 0xbc00, 0x7bff, 0x0001, 0x3555]);
    const t = await transformTensor(tensorFromBuffer(bits, 'float16', [5]), { dtype: 'float32' });
    const f = readTensor(t).data as Float32Array;
    expect(f[0]).to.equal(1);
    expect(f[1]).to.equal(-1);
    expect(f[2]).to.equal(65504);
    expect(f[3]).to.equal(2 ** -24);
    expect(f[4]).to.be.closeTo(0.333251953125, 0);
  });

  it('round-trips int64 through BigInt64Array', function () {
    const ids = new BigInt64Array([101n, 2023n, -1n, 9007199254740993n]);
    const out = readTensor(tensorFromBuffer(ids, 'int64', [2, 2]));
    expect(out.shape).to.deep.equal([2, 2]);
    expect(Array.from(out.data as BigInt64Array)).to.deep.equal([101n, 2023n, -1n, 9007199254740993n]);
  });

  it('permutes (H, W, D) float16 volumes to (D, H, W) float32 off the JS thread', async function () {
    const [H, W, D] = [2, 3, 4];
    const v = new Float32Array(H * W * D).map((_, i) => i);
    const half = await transformTensor(tensorFromBuffer(v, 'float32', [H, W, D]), { dtype: 'float16' });
    const out = await transformTensor(half, { permute: [2, 0, 1], dtype: 'float32' });
    const r = readTensor(out);
    expect(r.shape).to.deep.equal([D, H, W]);
    const f = r.data as Float32Array;
    for (let d = 0; d < D; d++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) expect(f[(d * H + h) * W + w]).to.equal((h * W + w) * D + d);
  });

  it('respects byteOffset of a view into a larger buffer', function () {
    const big = new Float32Array([9, 9, 1, 2, 3, 9]);
    const view = big.subarray(2, 5);
    expect(Array.from(readTensor(tensorFromBuffer(view, 'float32', [3])).data as Float32Array)).to.deep.equal([
      1, 2, 3,
    ]);
  });

  it('copies (instead of borrowing) a misaligned view, keeping the values', function () {
    const bytes = Buffer.alloc(4 * 3 + 1);
    const aligned = new Float32Array([1.5, -2, 3]);
    Buffer.from(aligned.buffer).copy(bytes, 1);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset + 1, 12);
    const t = loadAddon().fromBuffer(view, 'float32', [3]);
    // whether the pool slot happens to be aligned decides borrow vs copy; the values must be right either way
    expect(Array.from(readTensor(t).data as Float32Array)).to.deep.equal([1.5, -2, 3]);
  });

  it('rejects a buffer whose size does not match the shape, in TS and in C++, with SHAPE_ERROR', function () {
    const data = new Float32Array(5);
    expect(() => tensorFromBuffer(data, 'float32', [2, 3]))
      .to.throw()
      .with.property('code', 'SHAPE_ERROR');
    expect(() => loadAddon().fromBuffer(data, 'float32', [2, 3]))
      .to.throw(/20 bytes cannot hold shape \[2, 3\]/)
      .with.property('code', 'SHAPE_ERROR');
    expect(() => loadAddon().fromBuffer(data, 'complex' as never, [5]))
      .to.throw(/unknown dtype 'complex'/)
      .with.property('code', 'ARGUMENT_ERROR');
  });

  it('turns libtorch errors into rejected Promises with a code, without aborting', async function () {
    const t = tensorFromBuffer(new Float32Array(6), 'float32', [2, 3]);
    let err: unknown;
    try {
      await transformTensor(t, { permute: [0, 0] });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(Error);
    expect((err as { code?: string }).code).to.equal('TORCH_ERROR');
    expect((err as Error).message).to.match(/repeated dim|permute/i);
    const bad = await transformTensor(t, { permute: [0, 1, 2] }).catch((e: unknown) => e);
    expect(bad).to.have.property('code', 'SHAPE_ERROR');
  });

  it('rejects disposed and foreign handles with ARGUMENT_ERROR', function () {
    const t = tensorFromBuffer(new Float32Array(2), 'float32', [2]);
    t.dispose();
    expect(t.disposed).to.equal(true);
    expect(() => readTensor(t))
      .to.throw(/disposed/)
      .with.property('code', 'ARGUMENT_ERROR');
    expect(() => readTensor({} as never))
      .to.throw(/expected a tensor handle/)
      .with.property('code', 'ARGUMENT_ERROR');
  });

  it('keeps borrowed memory alive while a tensor uses it, and releases it after (also from worker threads)', async function () {
    let released = 0;
    const registry = new FinalizationRegistry(() => {
      released++;
    });
    let t = (() => {
      const data = new Float32Array(1024).fill(7);
      registry.register(data.buffer, 'buf');
      return tensorFromBuffer(data, 'float32', [1024]);
    })();
    await collectGarbage();
    expect(released).to.equal(0); // the tensor still references the ArrayBuffer
    const f = readTensor(t).data as Float32Array;
    expect(f[1023]).to.equal(7);
    // The transform worker drops its reference on a libuv thread: the release must hop back to the JS thread.
    const copy = await transformTensor(t, { dtype: 'float64' });
    t.dispose();
    t = undefined as never;
    for (let i = 0; i < 20 && released === 0; i++) await collectGarbage();
    expect(released).to.equal(1);
    expect((readTensor(copy).data as Float64Array)[0]).to.equal(7);
  });

  it('reports natively owned tensor memory to V8', async function () {
    const reported = (): number => loadAddon().externalMemory();
    const src = tensorFromBuffer(new Float32Array(4 * 1024 * 1024), 'float32', [4 * 1024 * 1024]);
    const before = reported(); // V8 counts the JS ArrayBuffer itself; the borrowing tensor adds nothing
    const t = await transformTensor(src, { dtype: 'float64' }); // 32 MiB owned natively
    const during = reported();
    // the running total also moves with V8's own ArrayBuffer bookkeeping: allow 1 MiB of unrelated noise
    expect(during - before).to.be.closeTo(32 * 1024 * 1024, 1024 * 1024);
    t.dispose();
    const after = reported();
    expect(during - after).to.be.closeTo(32 * 1024 * 1024, 1024 * 1024);
  });
});
