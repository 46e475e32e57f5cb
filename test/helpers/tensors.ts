/**
 * Tensor comparison helpers for fixture tests (the tolerances of docs/reference.md are applied by the callers): read values,
 * look tensors up by name in a loaded safetensors file, max-abs differences, exact and atol comparisons.
 */
import { expect } from 'chai';
import type { SafetensorsContent, TensorHandle } from '../../lib/native';
import { readTensor, tensorFromBuffer } from '../../lib/tensor';

/** The benchmarks' generator (a 32-bit LCG, no Math.random): randomData, n floats in [-1, 1); randomTensor, a float32 tensor of them. */
export { uniformArray as randomData, uniformTensor as randomTensor } from '../../bench/common';

export function values(t: TensorHandle): number[] {
  return Array.from(readTensor(t).data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function shapeOf(t: TensorHandle): number[] {
  return readTensor(t).shape;
}

export function scalar(t: TensorHandle): number {
  return values(t)[0];
}

/** The tensor called `name` in a loaded file (throws naming it when absent). */
export function get(c: SafetensorsContent, name: string): TensorHandle {
  const i = c.names.indexOf(name);
  if (i < 0) throw new Error(`fixture file has no tensor '${name}'`);
  return c.tensors[i];
}

export function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
}

/** Max |a − b| and max |b| (b = reference); shapes must agree. */
export function diff(a: TensorHandle, b: TensorHandle): { maxAbs: number; maxRef: number } {
  expect(shapeOf(a), 'shape').to.deep.equal(shapeOf(b));
  const x = values(a);
  const y = values(b);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return { maxAbs: d, maxRef: maxAbs(y) };
}

export function expectClose(name: string, got: TensorHandle, ref: TensorHandle, atol: number): number {
  const { maxAbs: d } = diff(got, ref);
  expect(d, `${name}: max |Δ| = ${d} > ${atol}`).to.be.at.most(atol);
  return d;
}

export function expectExact(name: string, got: TensorHandle, ref: TensorHandle): void {
  expect(shapeOf(got), `${name} shape`).to.deep.equal(shapeOf(ref));
  expect(values(got), name).to.deep.equal(values(ref));
}

/** Rows [start, end) of a tensor's leading axis, as a new float32/int64 tensor with `shape`. */
export function sliceRows(t: TensorHandle, start: number, end: number, shape: number[]): TensorHandle {
  const d = readTensor(t);
  const rowSize = d.shape.slice(1).reduce((a, b) => a * b, 1);
  const view = d.data.slice(start * rowSize, end * rowSize);
  return tensorFromBuffer(view, d.dtype, shape);
}

/** The same data under another shape (a copy). */
export function reshape(t: TensorHandle, shape: number[]): TensorHandle {
  const d = readTensor(t);
  return tensorFromBuffer(d.data, d.dtype, shape);
}
