/**
 * Reading PyTorch `torch.save` files (the zip format of torch >= 1.6) without Python and without executing
 * anything from the file.
 *
 * Layout: `<root>/data.pkl` (a pickle), `<root>/data/<key>` (one raw little-endian storage per key),
 * `<root>/byteorder`, `<root>/version` and, from newer torch, `.format_version`, `.storage_alignment`,
 * `.data/serialization_id` (none of these is required).
 *
 * `data.pkl` is read by the restricted unpickler (`./pickle.ts`) with this module's allow-list, exactly:
 *   collections.OrderedDict                      → an ordered dict
 *   torch._utils._rebuild_tensor_v2              → a tensor reference (storage, offset, size, stride, …)
 *   torch._utils._rebuild_parameter              → the same reference, marked as a parameter
 *   torch.{Float,Half,BFloat16,Double,Long,Int,Byte,Bool}Storage, torch.UntypedStorage,
 *   torch.storage.UntypedStorage                 → storage-type markers, only meaningful inside a persistent id
 *   numpy dtypes, scalars and arrays             → inert data (`./numpy-pickle.ts`): training checkpoints carry
 *                                                  numpy metrics and `np.random.get_state()`
 *   _codecs.encode(str, 'latin1')                → bytes (how protocol 2 pickles them, e.g. numpy's raw data)
 * Persistent ids must be `('storage', <storage type>, '<key>', '<location>', numel)`; the location ('cpu',
 * 'cuda:0', 'mps', …) is recorded and ignored: every storage is read onto the CPU. Any other global is refused
 * with a DATA_ERROR naming it.
 *
 * Parsing (`readTorchArchive`) needs no addon: tensors stay `TorchTensorRef`s. `StorageCache.tensor` reads a
 * storage entry straight into a fresh buffer (once per storage) and wraps it as a native tensor without a copy
 * (`tensorFromBuffer`); only a non-contiguous view is gathered into its own buffer.
 *
 * Limits (docs/limits.md): data.pkl may declare at most `MAX_PICKLE_BYTES`, `byteorder` / `version` at most
 * `MAX_TEXT_ENTRY_BYTES`; every storage read and every gathered view is charged to the caller's `ByteBudget`
 * *before* its buffer is allocated, so neither a deflate bomb nor a zero-stride view can cost more than the budget.
 */
import { CtclipError } from '../errors';
import { tensorFromBuffer, bytesPerElement, type Dtype, type TensorHandle } from '../tensor';
import { NUMPY_GLOBAL_NAMES, numpyGlobals } from './numpy-pickle';
import {
  protocol2BytesGlobal,
  PyDict,
  PyGlobal,
  PyTuple,
  pyTypeName,
  unpickle,
  type AllowedGlobal,
  type PyValue,
} from './pickle';
import { ByteBudget, ZipReader, type ZipEntry } from './zip';

/** Largest data.pkl we read (a state dict of 100 000 tensors pickles to about 15 MB). */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
/** Largest `byteorder` / `version` entry we read. */
export const MAX_TEXT_ENTRY_BYTES = 4096;

/** Storage types we read, and their element dtype. */
export const TORCH_STORAGE_TYPES: Readonly<Record<string, Dtype>> = {
  'torch.FloatStorage': 'float32',
  'torch.HalfStorage': 'float16',
  'torch.BFloat16Storage': 'bfloat16',
  'torch.DoubleStorage': 'float64',
  'torch.LongStorage': 'int64',
  'torch.IntStorage': 'int32',
  'torch.ByteStorage': 'uint8',
  'torch.BoolStorage': 'bool',
  'torch.UntypedStorage': 'uint8',
  'torch.storage.UntypedStorage': 'uint8',
};

/** Storage types torch has but our tensor bridge does not carry: refused with a precise message. */
const UNSUPPORTED_STORAGE_TYPES = [
  'CharStorage',
  'ShortStorage',
  'ComplexFloatStorage',
  'ComplexDoubleStorage',
  'QInt8Storage',
  'QUInt8Storage',
  'QInt32Storage',
];

/** One storage of the archive: `data/<key>`. */
export interface TorchStorageRef {
  key: string;
  dtype: Dtype;
  storageType: string;
  /** The device the storage was saved from ('cpu', 'cuda:0', …); read onto the CPU regardless. */
  location: string;
  numel: number;
}

/** A tensor as the pickle describes it: a strided view of a storage. */
export class TorchTensorRef {
  readonly pyOpaque = true as const;
  readonly pyType = 'torch.Tensor';
  constructor(
    readonly storage: TorchStorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
    readonly parameter: boolean,
  ) {}
  get dtype(): Dtype {
    return this.storage.dtype;
  }
  get numel(): number {
    return this.size.reduce((a, b) => a * b, 1);
  }
  /** Row-major contiguous (strides of size-1 dimensions do not matter). */
  get contiguous(): boolean {
    let expect = 1;
    for (let d = this.size.length - 1; d >= 0; d--) {
      if (this.size[d] !== 1 && this.stride[d] !== expect) return false;
      expect *= this.size[d];
    }
    return true;
  }
}

export interface TorchArchive {
  path: string;
  /** The archive's root folder (the file stem when torch wrote it, `archive` for older writers). */
  root: string;
  byteorder: 'little' | 'big';
  version: string | null;
  /** The unpickled object: dicts/lists/tuples/scalars with `TorchTensorRef` leaves. */
  value: PyValue;
  storages: Map<string, TorchStorageRef>;
  /** Distinct storage locations seen (e.g. ['cuda:0']). */
  locations: string[];
  /** Allowed globals the pickle used. */
  globalsUsed: string[];
  zip: ZipReader;
}

function asInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw new Error(`${what} must be an int, got ${pyTypeName(v)}`);
}

function asIntTuple(v: PyValue, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items) throw new Error(`${what} must be a tuple of ints, got ${pyTypeName(v)}`);
  return items.map((x, i) => asInt(x, `${what}[${i}]`));
}

function rebuildTensor(args: PyValue[], parameterFlag: boolean): TorchTensorRef {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length < 6 || args.length > 7)
    throw new Error(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
  const storage = args[0] as unknown;
  if (!storage || typeof storage !== 'object' || !('key' in storage) || !('numel' in storage)) {
    throw new Error(
      `_rebuild_tensor_v2: the first argument must be a storage (persistent id), got ${pyTypeName(args[0])}`,
    );
  }
  const s = storage as TorchStorageRef;
  const offset = asInt(args[1], 'storage_offset');
  const size = asIntTuple(args[2], 'size');
  const stride = asIntTuple(args[3], 'stride');
  if (size.length !== stride.length) throw new Error(`size has ${size.length} dims but stride ${stride.length}`);
  if (offset < 0 || size.some((x) => x < 0) || stride.some((x) => x < 0))
    throw new Error('negative offset, size or stride');
  const n = size.reduce((a, b) => a * b, 1);
  if (n > 0) {
    let last = offset;
    for (let d = 0; d < size.length; d++) last += (size[d] - 1) * stride[d];
    if (last >= s.numel) {
      throw new Error(
        `tensor view (offset ${offset}, size [${size}], stride [${stride}]) reaches element ${last} of storage '${s.key}' which has ${s.numel}`,
      );
    }
  }
  if (typeof args[4] !== 'boolean') throw new Error(`requires_grad must be a bool, got ${pyTypeName(args[4])}`);
  return new TorchTensorRef(s, offset, size, stride, args[4], parameterFlag);
}

function torchGlobals(used: Set<string>): Map<string, AllowedGlobal> {
  const g = new Map<string, AllowedGlobal>();
  const track = (name: string, entry: AllowedGlobal): void => {
    if ('call' in entry) {
      const call = entry.call;
      g.set(name, { call: (args, at) => (used.add(name), call(args, at)) });
    } else g.set(name, entry);
  };
  track('collections.OrderedDict', {
    call: (args) => {
      const d = new PyDict(true);
      if (args.length === 0) return d;
      if (args.length === 1 && Array.isArray(args[0])) {
        for (const pair of args[0]) {
          if (!(pair instanceof PyTuple) || pair.items.length !== 2 || typeof pair.items[0] !== 'string')
            throw new Error('OrderedDict(list) needs (str, value) pairs');
          d.map.set(pair.items[0], pair.items[1]);
        }
        return d;
      }
      throw new Error(`OrderedDict takes () or a list of pairs, got ${args.length} arguments`);
    },
  });
  track('torch._utils._rebuild_tensor_v2', { call: (args) => rebuildTensor(args, false) });
  track('torch._utils._rebuild_parameter', {
    call: (args) => {
      // _rebuild_parameter(data, requires_grad, backward_hooks)
      if (args.length !== 3 || !(args[0] instanceof TorchTensorRef))
        throw new Error('_rebuild_parameter(data: tensor, requires_grad, backward_hooks) expected');
      const t = args[0];
      return new TorchTensorRef(t.storage, t.offset, t.size, t.stride, args[1] === true, true);
    },
  });
  for (const name of Object.keys(TORCH_STORAGE_TYPES)) {
    const dot = name.lastIndexOf('.');
    g.set(name, { value: new PyGlobal(name.slice(0, dot), name.slice(dot + 1)) });
  }
  for (const [name, entry] of [...numpyGlobals(), protocol2BytesGlobal]) track(name, entry);
  return g;
}

const ALLOWED_HINT =
  'allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, the storage types ' +
  `${Object.keys(TORCH_STORAGE_TYPES).join(', ')}, the numpy data reconstructors ${NUMPY_GLOBAL_NAMES.join(', ')} and _codecs.encode`;

/** The archive's root folder: the folder holding `data.pkl`. */
function findRoot(zip: ZipReader): string {
  const roots = zip.names.filter((n) => /^[^/]+\/data\.pkl$/.test(n)).map((n) => n.slice(0, n.indexOf('/')));
  if (roots.length === 1) return roots[0];
  if (roots.length === 0) {
    if (zip.names.some((n) => /\/constants\.pkl$/.test(n) || /\/code\//.test(n))) {
      throw new CtclipError(
        'DATA_ERROR',
        `${zip.file}: this is a TorchScript archive (torch.jit.save), not a torch.save state dict; save model.state_dict() with torch.save instead`,
      );
    }
    throw new CtclipError(
      'DATA_ERROR',
      `${zip.file}: a zip file but not a torch.save archive (no <root>/data.pkl entry)`,
    );
  }
  throw new CtclipError(
    'DATA_ERROR',
    `${zip.file}: several data.pkl roots (${roots.join(', ')}); not a single torch.save archive`,
  );
}

/**
 * Opens and parses a torch.save zip file. IO_ERROR when it cannot be read; DATA_ERROR (naming the file, the
 * opcode/byte or the key) when it is not a torch.save archive, uses a refused global, or is inconsistent.
 * The caller must `archive.zip.close()` when done (after materialising tensors).
 */
export function readTorchArchive(file: string): TorchArchive {
  const zip = ZipReader.open(file);
  try {
    const root = findRoot(zip);
    const entryText = (name: string): string | null => {
      const e = zip.entries.get(`${root}/${name}`);
      return e ? new TextDecoder().decode(zip.read(e.name, MAX_TEXT_ENTRY_BYTES)).trim() : null;
    };
    const byteorder = entryText('byteorder') ?? 'little';
    if (byteorder !== 'little' && byteorder !== 'big')
      throw new CtclipError('DATA_ERROR', `${file}: ${root}/byteorder is '${byteorder}'`);
    if (byteorder === 'big')
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: big-endian storages (byteorder 'big') are not supported; re-save the file on a little-endian machine`,
      );
    const version = entryText('version');
    const pkl = zip.read(`${root}/data.pkl`, MAX_PICKLE_BYTES);
    const storages = new Map<string, TorchStorageRef>();
    const used = new Set<string>();
    const persistentLoad = (pid: PyValue, at: string): PyValue => {
      if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length !== 5) {
        throw new CtclipError(
          'DATA_ERROR',
          `${at}: unsupported persistent id ${pyTypeName(pid)} (expected ('storage', type, key, location, numel))`,
        );
      }
      const [, type, key, location, numel] = pid.items;
      if (!(type instanceof PyGlobal) || !(type.qualname in TORCH_STORAGE_TYPES)) {
        throw new CtclipError(
          'DATA_ERROR',
          `${at}: persistent id storage type must be one of ${Object.keys(TORCH_STORAGE_TYPES).join(', ')}, got ${pyTypeName(type)}`,
        );
      }
      if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(key))
        throw new CtclipError('DATA_ERROR', `${at}: bad storage key ${String(key)}`);
      if (typeof location !== 'string')
        throw new CtclipError('DATA_ERROR', `${at}: storage '${key}': location must be a str`);
      if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
        throw new CtclipError('DATA_ERROR', `${at}: storage '${key}': bad numel ${String(numel)}`);
      const dtype = TORCH_STORAGE_TYPES[type.qualname];
      const prev = storages.get(key);
      if (prev) {
        if (prev.dtype !== dtype || prev.numel !== numel)
          throw new CtclipError('DATA_ERROR', `${at}: storage '${key}' is described twice differently`);
        return prev as unknown as PyValue;
      }
      const entry = zip.entries.get(`${root}/data/${key}`);
      if (!entry) throw new CtclipError('DATA_ERROR', `${file}: storage '${key}' has no entry ${root}/data/${key}`);
      const need = numel * bytesPerElement(dtype);
      if (entry.size !== need) {
        throw new CtclipError(
          'DATA_ERROR',
          `${file}: entry ${root}/data/${key} holds ${entry.size} bytes but ${numel} × ${dtype} needs ${need}`,
        );
      }
      const ref: TorchStorageRef = { key, dtype, storageType: type.qualname, location, numel };
      storages.set(key, ref);
      return ref as unknown as PyValue;
    };
    const globals = torchGlobals(used);
    const value = (() => {
      try {
        return unpickle(pkl, { globals, persistentLoad, what: `${file}: ${root}/data.pkl`, refusalHint: ALLOWED_HINT });
      } catch (e) {
        // A known storage type we do not carry: say so instead of "refused".
        const m = e instanceof CtclipError ? /refused pickle global 'torch\.(\w+Storage)'/.exec(e.message) : null;
        if (m && UNSUPPORTED_STORAGE_TYPES.includes(m[1])) {
          throw new CtclipError(
            'DATA_ERROR',
            `${file}: tensors stored as torch.${m[1]} are not supported (supported: ${Object.keys(TORCH_STORAGE_TYPES).join(', ')})`,
          );
        }
        throw e;
      }
    })();
    const locations = [...new Set([...storages.values()].map((s) => s.location))];
    return { path: file, root, byteorder, version, value, storages, locations, globalsUsed: [...used].sort(), zip };
  } catch (e) {
    zip.close();
    throw e;
  }
}

/** Reads storages on demand (each once) and turns tensor references into native CPU tensors. */
export class StorageCache {
  private readonly buffers = new Map<string, ArrayBuffer>();
  /** `budget` is charged before every allocation (storages and gathered views). */
  constructor(
    private readonly archive: TorchArchive,
    readonly budget: ByteBudget,
  ) {}

  async storageBytes(s: TorchStorageRef): Promise<ArrayBuffer> {
    let ab = this.buffers.get(s.key);
    if (!ab) {
      const name = `${this.archive.root}/data/${s.key}`;
      const entry = this.archive.zip.entries.get(name) as ZipEntry;
      this.budget.charge(this.archive.path, `entry '${name}'`, entry.size);
      ab = new ArrayBuffer(entry.size);
      await this.archive.zip.readIntoStreaming(entry, new Uint8Array(ab));
      this.buffers.set(s.key, ab);
    }
    return ab;
  }

  /**
   * A native tensor for `ref` (borrowing the storage buffer when the view is contiguous). `key` names it in errors.
   */
  async tensor(ref: TorchTensorRef, key = '?'): Promise<TensorHandle> {
    const es = bytesPerElement(ref.dtype);
    const n = ref.numel;
    if (!ref.contiguous) {
      // Charged before the storage is even read: a view can be far larger than its storage (stride 0).
      this.budget.charge(
        this.archive.path,
        `tensor '${key}' (a strided view, size [${ref.size}] stride [${ref.stride}], of storage '${ref.storage.key}')`,
        n * es,
      );
    }
    const ab = await this.storageBytes(ref.storage);
    if (ref.contiguous) return tensorFromBuffer(new Uint8Array(ab, ref.offset * es, n * es), ref.dtype, ref.size);
    return tensorFromBuffer(gatherView(ab, ref, es), ref.dtype, ref.size);
  }

  release(): void {
    this.buffers.clear();
  }
}

/** The elements of a strided view, row-major, in a buffer of their own (element-wise copies of `es` bytes). */
function gatherView(src: ArrayBuffer, ref: TorchTensorRef, es: number): Uint8Array {
  const n = ref.numel;
  const dst = new Uint8Array(n * es);
  if (n === 0) return dst;
  // Copy whole elements through an integer view of the element's width (8-byte elements as two 32-bit words).
  const words = es === 8 ? 2 : 1;
  const unit = es === 8 ? 4 : es;
  const View = unit === 4 ? Uint32Array : unit === 2 ? Uint16Array : Uint8Array;
  const s = new View(src, 0, src.byteLength / unit);
  const d = new View(dst.buffer, 0, dst.byteLength / unit);
  const dims = ref.size.length;
  const last = dims ? ref.size[dims - 1] : 1;
  const lastStride = dims ? ref.stride[dims - 1] * words : 0;
  const idx = new Array<number>(Math.max(0, dims - 1)).fill(0);
  let o = 0;
  for (let row = 0; row < n / last; row++) {
    let base = ref.offset;
    for (let d0 = 0; d0 < idx.length; d0++) base += idx[d0] * ref.stride[d0];
    let from = base * words;
    for (let i = 0; i < last; i++, from += lastStride) {
      for (let w = 0; w < words; w++) d[o++] = s[from + w];
    }
    for (let d0 = idx.length - 1; d0 >= 0; d0--) {
      if (++idx[d0] < ref.size[d0]) break;
      idx[d0] = 0;
    }
  }
  return dst;
}
