/**
 * Helpers for the weights tests: bit-exact tensor comparison, fixture readers, hand-built pickle bytes and
 * torch.save-shaped zip archives (no Python needed).
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readTensor, tensorInfo, type TensorHandle } from '../../lib/tensor';
import { writeZipStored } from '../../lib/weights/zip';
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

export const H_FILES = ['ctclip_tiny_state_dict.pt', 'ctclip_tiny_wrapped.pt', 'ctclip_tiny_with_position_ids.pt', 'ctclip_tiny_cuda_tagged.pt'];

export function hFile(name: string): string {
  return fixturePath('torch_save_import', name);
}

/** Raw bytes of a tensor (a copy). */
export function tensorBytes(t: TensorHandle): Buffer {
  const d = readTensor(t).data;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** Asserts two name → tensor collections hold the same keys, dtypes, shapes and bytes. */
export function expectSameTensors(a: { names: string[]; tensors: TensorHandle[] }, b: { names: string[]; tensors: TensorHandle[] }, what: string): void {
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
export function writeArchive(file: string, pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, root = 'archive'): string {
  writeZipStored(file, [
    { name: `${root}/data.pkl`, data: pkl },
    { name: `${root}/byteorder`, data: Buffer.from('little') },
    ...Object.entries(storages).map(([k, data]) => ({ name: `${root}/data/${k}`, data })),
    { name: `${root}/version`, data: Buffer.from('3\n') },
  ]);
  return file;
}
