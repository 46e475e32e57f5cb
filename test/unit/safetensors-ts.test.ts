/** The pure-TypeScript safetensors reader/writer: layout, round trip, validation errors. */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  SafetensorsTensor,
  decodeSafetensors,
  encodeSafetensors,
  parseSafetensorsHeader,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from '../../lib/io/safetensors';

/** A raw file from a header object (or text) and a data buffer, as an independent writer would make it. */
function rawFile(header: unknown, data: Uint8Array, headerText?: string): Buffer {
  const text = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, data]);
}

function expectDataError(fn: () => unknown, fragment: RegExp): void {
  expect(fn).to.throw(fragment).with.property('code', 'DATA_ERROR');
}

describe('safetensors (pure TS)', function () {
  it('writes the documented layout: u64 LE header length, space-padded JSON to 8 bytes, LE data in order', function () {
    const buf = encodeSafetensors(
      [
        ['b', { dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) }],
        ['a', { dtype: 'I64', shape: [], data: new BigInt64Array([-3n]) }],
      ],
      { k: 'v' },
    );
    const n = Number(buf.readBigUInt64LE(0));
    expect(n % 8).to.equal(0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    expect(text.trimEnd()).to.equal(
      '{"__metadata__":{"k":"v"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}',
    );
    expect(text.slice(text.trimEnd().length)).to.match(/^ *$/);
    expect(buf.length).to.equal(8 + n + 16);
    expect(buf.readFloatLE(8 + n)).to.equal(1);
    expect(buf.readFloatLE(8 + n + 4)).to.equal(-2);
    expect(buf.readBigInt64LE(8 + n + 8)).to.equal(-3n);
  });

  it('round-trips every dtype, 0-dim and 0-element tensors and metadata', function () {
    const tensors: Array<[string, SafetensorsTensor]> = [
      ['f64', { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) }],
      ['f32', { dtype: 'F32', shape: [2, 2], data: new Float32Array([1.5, NaN, Infinity, -0]) }],
      ['f16', { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x7bff, 1]) }],
      ['bf16', { dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xc000]) }],
      ['i64', { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -(2n ** 62n)]) }],
      ['u64', { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) }],
      ['i32', { dtype: 'I32', shape: [2, 1], data: new Int32Array([-5, 2 ** 31 - 1]) }],
      ['u32', { dtype: 'U32', shape: [1], data: new Uint32Array([2 ** 32 - 1]) }],
      ['i16', { dtype: 'I16', shape: [1], data: new Int16Array([-7]) }],
      ['u16', { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) }],
      ['i8', { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) }],
      ['u8', { dtype: 'U8', shape: [3], data: new Uint8Array([0, 255, 7]) }],
      ['bool', { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([2.5]) }],
      ['empty', { dtype: 'F32', shape: [2, 0, 16], data: new Float32Array(0) }],
    ];
    const meta = { format: 'pt', 'ünïcode "key"': 'välue\n' };
    const back = decodeSafetensors(encodeSafetensors(tensors, meta));
    expect(back.header.metadata).to.deep.equal(meta);
    expect(back.header.tensors.map((t) => t.name)).to.deep.equal(tensors.map((t) => t[0]));
    for (const [name, t] of tensors) {
      const r = back.tensors.get(name)!;
      expect(r.dtype, name).to.equal(t.dtype);
      expect(r.shape, name).to.deep.equal(t.shape);
      expect(r.data.constructor, name).to.equal(t.data.constructor);
      expect(Array.from(r.data as ArrayLike<unknown>), name).to.deep.equal(Array.from(t.data as ArrayLike<unknown>));
    }
    expect(Object.is((back.tensors.get('f32')!.data as Float32Array)[3], -0)).to.equal(true);
  });

  it('reads a subarray view correctly (byteOffset honoured) and copies into aligned arrays', function () {
    const big = new Float32Array([9, 1, 2, 3, 9]);
    const buf = encodeSafetensors([['x', { dtype: 'F32', shape: [3], data: big.subarray(1, 4) }]]);
    // Shift the file by one byte in memory: the reader must not assume alignment.
    const shifted = new Uint8Array(buf.length + 1);
    shifted.set(buf, 1);
    const back = decodeSafetensors(shifted.subarray(1));
    expect(Array.from(back.tensors.get('x')!.data as Float32Array)).to.deep.equal([1, 2, 3]);
  });

  it('writes atomically to disk and reads the header alone', async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-stts-'));
    try {
      const file = path.join(dir, 'sub', 'x.safetensors');
      await writeSafetensors(
        file,
        new Map([['t', { dtype: 'F32', shape: [1, 3], data: new Float32Array([1, 2, 3]) } as SafetensorsTensor]]),
        { a: 'b' },
      );
      expect(fs.readdirSync(path.dirname(file))).to.deep.equal(['x.safetensors']);
      const h = await readSafetensorsHeader(file);
      expect(h.tensors).to.deep.equal([{ name: 't', dtype: 'F32', shape: [1, 3], dataOffsets: [0, 12] }]);
      expect(h.dataStart).to.equal(8 + h.headerLength);
      expect(h.dataStart % 8).to.equal(0);
      expect(h.metadata).to.deep.equal({ a: 'b' });
      const all = await readSafetensors(file);
      expect(Array.from(all.tensors.get('t')!.data as Float32Array)).to.deep.equal([1, 2, 3]);
      let err: unknown;
      await readSafetensors(path.join(dir, 'missing.safetensors')).catch((e) => (err = e));
      expect(err).to.have.property('code', 'IO_ERROR');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses malformed files with DATA_ERROR naming the problem', function () {
    const d8 = new Uint8Array(8);
    expectDataError(() => parseSafetensorsHeader(new Uint8Array(4), 'f'), /f: file is 4 bytes/);
    expectDataError(() => decodeSafetensors(rawFile(null, d8, '{"x":'), 'f'), /not valid UTF-8 JSON/);
    expectDataError(() => decodeSafetensors(rawFile(null, d8, '[1]'), 'f'), /not a JSON object/);
    expectDataError(
      () => decodeSafetensors(rawFile({ x: { dtype: 'F99', shape: [2], data_offsets: [0, 8] } }, d8)),
      /entry "x" has dtype "F99"/,
    );
    expectDataError(
      () => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, d8)),
      /entry "x" has shape \[-1\]/,
    );
    expectDataError(
      () => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8)),
      /spans 8 bytes; expected 12/,
    );
    expectDataError(
      () => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d8)),
      /leaves a gap/,
    );
    expectDataError(
      () =>
        decodeSafetensors(
          rawFile(
            {
              x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
              y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
            },
            d8,
          ),
        ),
      /overlaps/,
    );
    expectDataError(
      () => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, d8)),
      /describes 4 data bytes but the file has 8/,
    );
    expectDataError(
      () => decodeSafetensors(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0))),
      /__metadata__.a is number/,
    );
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(2n ** 40n);
    expectDataError(() => decodeSafetensors(huge, 'f'), /header length \d+ exceeds/);
    const past = Buffer.alloc(16);
    past.writeBigUInt64LE(100n);
    expectDataError(() => decodeSafetensors(past, 'f'), /runs past the end/);
  });

  it('refuses inconsistent tensors on write with ARGUMENT_ERROR', function () {
    const bad =
      (t: Partial<SafetensorsTensor>, name = 'x') =>
      () =>
        encodeSafetensors([[name, { dtype: 'F32', shape: [2], data: new Float32Array(2), ...t } as SafetensorsTensor]]);
    expect(bad({ shape: [3] }))
      .to.throw(/has 2 elements but shape \[3\] needs 3/)
      .with.property('code', 'ARGUMENT_ERROR');
    expect(bad({ data: new Float64Array(2) })).to.throw(/holds a Float64Array; expected a Float32Array/);
    expect(bad({ dtype: 'X' as never })).to.throw(/has dtype "X"/);
    expect(bad({}, '__metadata__')).to.throw(/invalid tensor name/);
    const t: SafetensorsTensor = { dtype: 'U8', shape: [0], data: new Uint8Array(0) };
    expect(() =>
      encodeSafetensors([
        ['a', t],
        ['a', t],
      ]),
    ).to.throw(/duplicate tensor name "a"/);
    expect(() => encodeSafetensors([], { a: 1 as unknown as string })).to.throw(/metadata "a" is number/);
  });
});
