/**
 * The tensor bridge, typed: JS Buffers/TypedArrays ⇄ native tensors (used by data and model code).
 *
 * `tensorFromBuffer` does not copy: the tensor borrows the buffer's memory (the buffer must not be reused
 * while the tensor lives; the native side keeps the ArrayBuffer alive and releases it on the JS thread).
 * `readTensor` copies into a fresh TypedArray, so JS never aliases memory native code may still write.
 */
import { CtclipError } from './errors';
import { loadAddon, type Dtype, type TensorData, type TensorHandle, type TensorInfo } from './native';

export type { Dtype, TensorData, TensorHandle, TensorInfo };

/** Bytes per element of each dtype. */
export const BYTES_PER_ELEMENT: Record<Dtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

export function bytesPerElement(dtype: Dtype): number {
  const n = BYTES_PER_ELEMENT[dtype];
  if (n === undefined) throw new CtclipError('ARGUMENT_ERROR', `unknown dtype '${String(dtype)}'`);
  return n;
}

/** Number of elements of a shape, validating it. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const [i, s] of shape.entries()) {
    if (!Number.isInteger(s) || s < 0)
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `shape[${i}] must be a non-negative integer, got ${s} in [${shape.join(', ')}]`,
      );
    n *= s;
  }
  return n;
}

/** Wraps JS memory as a native tensor of the given dtype and shape, without a copy. */
export function tensorFromBuffer(view: ArrayBufferView, dtype: Dtype, shape: readonly number[]): TensorHandle {
  const need = numel(shape) * bytesPerElement(dtype);
  if (view.byteLength !== need) {
    throw new CtclipError(
      'SHAPE_ERROR',
      `a buffer of ${view.byteLength} bytes cannot hold a ${dtype} tensor of shape [${shape.join(', ')}] (needs ${need} bytes)`,
    );
  }
  return loadAddon().fromBuffer(view, dtype, [...shape]);
}

/** Copies a native tensor into a new TypedArray (Uint16Array holds float16/bfloat16 bits). */
export function readTensor(tensor: TensorHandle): TensorData {
  return loadAddon().toTypedArray(tensor);
}

export function tensorInfo(tensor: TensorHandle): TensorInfo {
  return loadAddon().tensorInfo(tensor);
}

/** Permute then cast off the JS thread; returns a new contiguous tensor. */
export function transformTensor(
  tensor: TensorHandle,
  opts: { permute?: number[]; dtype?: Dtype },
): Promise<TensorHandle> {
  return loadAddon().transform(tensor, opts);
}
