/**
 * A minimal `torch.save` writer: a state dict (OrderedDict of tensors, optionally inside a wrapper dict) in
 * PyTorch's zip format, readable by `torch.load(f, weights_only=True)` and by our own reader. Pure TypeScript: the
 * tensors come as raw little-endian bytes. Used to write `pytorch_model.bin` variants of Hugging Face folders and
 * crafted files in tests.
 *
 * Each entry may share a storage with another (`storageKey`) and be a strided view of it (`offset`, `stride`),
 * as tied or transposed tensors are in real checkpoints.
 */
import * as path from 'path';
import { CtclipError } from '../errors';
import { pickle, PyTuple, type PickleOut } from './pickle';
import { writeZipStored, type ZipWriteEntry } from './zip';
import type { Dtype } from '../native';
import { BYTES_PER_ELEMENT } from '../tensor';

export interface TorchSaveEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** The storage's bytes (the whole storage when this entry introduces it). */
  data: Uint8Array;
  /** Share the storage of an earlier entry with the same key (its `data` is then ignored). */
  storageKey?: string;
  offset?: number;
  /** Row-major contiguous when absent. */
  stride?: number[];
  /** Save as an nn.Parameter (`torch._utils._rebuild_parameter`). */
  parameter?: boolean;
}

export interface TorchSaveOptions {
  /** Put the state dict under this key of a plain dict (e.g. 'model_state_dict'). */
  wrapper?: string;
  /** Other entries of the wrapper dict (ints, floats as `{kind:'float'}`, strings). */
  extra?: Record<string, number | string | boolean | null>;
  /** The storage location recorded (default 'cpu'); 'cuda:0' mimics a GPU checkpoint. */
  location?: string;
  /** Use torch.UntypedStorage-free legacy typed storage names (default) — torch itself still writes these. */
  archiveName?: string;
}

const STORAGE_NAME: Record<Dtype, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  float64: 'DoubleStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/** Writes `entries` as a torch.save zip archive at `file` (atomically). */
export function writeTorchSave(file: string, entries: TorchSaveEntry[], opts: TorchSaveOptions = {}): void {
  const root = opts.archiveName ?? path.basename(file).replace(/\.[^.]*$/, '') ?? 'archive';
  const location = opts.location ?? 'cpu';
  const storages = new Map<string, { dtype: Dtype; numel: number; data: Uint8Array }>();
  const items: Array<[string, PickleOut]> = [];
  let next = 0;
  for (const e of entries) {
    const es = BYTES_PER_ELEMENT[e.dtype];
    if (!es) throw new CtclipError('ARGUMENT_ERROR', `writeTorchSave: '${e.name}' has unsupported dtype ${e.dtype}`);
    let key = e.storageKey;
    if (key === undefined || !storages.has(key)) {
      key = key ?? String(next++);
      if (e.data.length % es)
        throw new CtclipError(
          'ARGUMENT_ERROR',
          `writeTorchSave: '${e.name}': ${e.data.length} bytes is not a whole number of ${e.dtype}`,
        );
      storages.set(key, { dtype: e.dtype, numel: e.data.length / es, data: e.data });
    }
    const st = storages.get(key) as { dtype: Dtype; numel: number };
    if (st.dtype !== e.dtype)
      throw new CtclipError('ARGUMENT_ERROR', `writeTorchSave: '${e.name}' shares storage '${key}' of another dtype`);
    const pid: PickleOut = new PyTuple([
      'storage',
      { kind: 'global', module: 'torch', name: STORAGE_NAME[e.dtype] },
      key,
      location,
      st.numel,
    ] as never) as unknown as PickleOut;
    const tensor: PickleOut = {
      kind: 'reduce',
      fn: { module: 'torch._utils', name: '_rebuild_tensor_v2' },
      args: [
        { kind: 'persid', pid },
        e.offset ?? 0,
        new PyTuple(e.shape) as unknown as PickleOut,
        new PyTuple(e.stride ?? contiguousStride(e.shape)) as unknown as PickleOut,
        false,
        { kind: 'dict', ordered: true, entries: [] },
      ],
    };
    items.push([
      e.name,
      e.parameter
        ? {
            kind: 'reduce',
            fn: { module: 'torch._utils', name: '_rebuild_parameter' },
            args: [tensor, true, { kind: 'dict', ordered: true, entries: [] }],
          }
        : tensor,
    ]);
  }
  const stateDict: PickleOut = { kind: 'dict', ordered: true, entries: items };
  const top: PickleOut = opts.wrapper
    ? {
        kind: 'dict',
        ordered: false,
        entries: [
          [opts.wrapper, stateDict],
          ...Object.entries(opts.extra ?? {}).map(([k, v]) => [k, v] as [string, PickleOut]),
        ],
      }
    : stateDict;
  const zipEntries: ZipWriteEntry[] = [
    { name: `${root}/data.pkl`, data: pickle(top) },
    { name: `${root}/byteorder`, data: Buffer.from('little') },
  ];
  for (const [key, s] of storages) zipEntries.push({ name: `${root}/data/${key}`, data: s.data });
  zipEntries.push({ name: `${root}/version`, data: Buffer.from('3\n') });
  writeZipStored(file, zipEntries);
}
