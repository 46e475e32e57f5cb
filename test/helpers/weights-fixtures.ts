/**
 * Helpers for the weights tests: bit-exact tensor comparison, fixture readers, hand-built pickle bytes and
 * torch.save-shaped zip archives (no Python needed).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { readTensor, tensorInfo, type TensorHandle } from '../../lib/tensor';
import { crc32, writeZipStored } from '../../lib/weights/zip';
import { fixturePath, readFixtureJson } from './fixtures';

export interface MetaKey {
  key: string;
  shape: number[];
  dtype: string;
  kind: 'param' | 'buffer';
  numel: number;
}

export interface CaseCMeta {
  state_dict_keys: MetaKey[];
  bert_config: Record<string, number>;
  ctvit_config: Record<string, number>;
  dim_latent: number;
}

export function caseCMeta(): CaseCMeta {
  return readFixtureJson<CaseCMeta>('ctclip_tiny', 'meta.json');
}

export const H_FILES = [
  'ctclip_tiny_state_dict.pt',
  'ctclip_tiny_wrapped.pt',
  'ctclip_tiny_with_position_ids.pt',
  'ctclip_tiny_cuda_tagged.pt',
];

export function hFile(name: string): string {
  return fixturePath('torch_save_import', name);
}

/** Raw bytes of a tensor (a copy). */
export function tensorBytes(t: TensorHandle): Buffer {
  const d = readTensor(t).data;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** Asserts two name → tensor collections hold the same keys, dtypes, shapes and bytes. */
export function expectSameTensors(
  a: { names: string[]; tensors: TensorHandle[] },
  b: { names: string[]; tensors: TensorHandle[] },
  what: string,
): void {
  expect([...a.names].sort(), `${what}: key sets`).to.deep.equal([...b.names].sort());
  const bm = new Map(b.names.map((n, i) => [n, b.tensors[i]]));
  for (const [i, n] of a.names.entries()) {
    const x = a.tensors[i];
    const y = bm.get(n) as TensorHandle;
    const xi = tensorInfo(x);
    const yi = tensorInfo(y);
    expect(xi.dtype, `${what}: ${n} dtype`).to.equal(yi.dtype);
    expect(xi.shape, `${what}: ${n} shape`).to.deep.equal(yi.shape);
    expect(tensorBytes(x).equals(tensorBytes(y)), `${what}: ${n} bytes`).to.equal(true);
  }
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ctclip-weights-${label}-`));
}

/** Hand-assembled pickle bytes. */
export class PickleBytes {
  private parts: number[] = [];
  op(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  proto(n = 2): this {
    return this.op(0x80, n);
  }
  /** GLOBAL 'module\nname\n' */
  global(module: string, name: string): this {
    return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  /** SHORT_BINUNICODE */
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.op(0x8c, b.length, ...b);
  }
  /** BINUNICODE */
  binstr(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.op(0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b);
  }
  int(n: number): this {
    return n < 256 ? this.op(0x4b, n) : this.op(0x4d, n & 0xff, n >> 8);
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  tuple1(): this {
    return this.op(0x85);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  setitem(): this {
    return this.op(0x73);
  }
  reduce(): this {
    return this.op(0x52);
  }
  stackGlobal(): this {
    return this.op(0x93);
  }
  stop(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]);
  }
}

/** A torch.save-shaped archive with the given data.pkl (and storages). */
export function writeArchive(
  file: string,
  pkl: Uint8Array,
  storages: Record<string, Uint8Array> = {},
  root = 'archive',
): string {
  writeZipStored(file, [
    { name: `${root}/data.pkl`, data: pkl },
    { name: `${root}/byteorder`, data: Buffer.from('little') },
    ...Object.entries(storages).map(([k, data]) => ({ name: `${root}/data/${k}`, data })),
    { name: `${root}/version`, data: Buffer.from('3\n') },
  ]);
  return file;
}

/** One entry of `writeRawZip`: `data` is written as-is (already deflated for method 8); sizes may lie. */
export interface RawZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: 0 | 8;
  data: Uint8Array;
  /** The declared uncompressed size (default: data.length). */
  size?: number;
  /** The declared CRC-32 (default: the data's own for stored entries, 0 ("not recorded") for deflated ones). */
  crc?: number;
}

/** A zip written byte by byte (local headers, central directory, end record), sizes and CRCs as declared. */
export function writeRawZip(file: string, entries: RawZipEntry[]): string {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const size = e.size ?? e.data.length;
    const crc = e.crc ?? (e.method === 0 ? crc32(e.data) : 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(e.method, 8);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(e.method, 10);
    c.writeUInt32LE(crc >>> 0, 16);
    c.writeUInt32LE(e.data.length, 20);
    c.writeUInt32LE(size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(pos, 42);
    central.push(c, name);
    parts.push(local, name, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
    pos += 30 + name.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(pos, 16);
  fs.writeFileSync(file, Buffer.concat([...parts, cd, end]));
  return file;
}

/**
 * A raw deflate stream that inflates to `bytes` zero bytes (a multiple of 16 MiB): one 16 MiB block run compressed
 * once with a sync flush (byte-aligned, not final), repeated, then an empty final block. About 1/1000 of `bytes`.
 */
export function zeroDeflateBomb(bytes: number): Buffer {
  const chunk = 16 << 20;
  if (bytes % chunk) throw new Error(`zeroDeflateBomb: ${bytes} is not a multiple of 16 MiB`);
  const part = zlib.deflateRawSync(Buffer.alloc(chunk), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return Buffer.concat([...new Array<Buffer>(bytes / chunk).fill(part), Buffer.from([0x03, 0x00])]);
}

/**
 * data.pkl of a flat state dict whose tensors are views of storages: `{name: _rebuild_tensor_v2(('storage', type,
 * key, 'cpu', numel), offset, size, stride, False, OrderedDict())}` (protocol 2, built byte by byte, numbers as
 * BININT so sizes up to 2^31 fit).
 */
export function stateDictPickle(
  tensors: Array<{
    name: string;
    storage: string;
    storageType?: string;
    numel: number;
    offset?: number;
    size: number[];
    stride: number[];
  }>,
): Uint8Array {
  const p = new PickleBytes().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce();
  const int = (n: number): void => {
    p.op(0x4a, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  };
  for (const t of tensors) {
    p.binstr(t.name).global('torch._utils', '_rebuild_tensor_v2').mark();
    p.mark()
      .str('storage')
      .global('torch', t.storageType ?? 'FloatStorage')
      .str(t.storage)
      .str('cpu');
    int(t.numel);
    p.tuple().op(0x51); // BINPERSID
    int(t.offset ?? 0);
    p.mark();
    t.size.forEach(int);
    p.tuple().mark();
    t.stride.forEach(int);
    p.tuple().op(0x89); // requires_grad False
    p.global('collections', 'OrderedDict').emptyTuple().reduce();
    p.tuple().reduce().setitem();
  }
  return p.stop();
}
