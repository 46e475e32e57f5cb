/**
 * numpy values inside a pickle, rebuilt as inert data: training checkpoints written with `torch.save` carry numpy
 * scalars (metrics computed with numpy/scikit-learn: `np.float64(0.81)`) and arrays (`np.random.get_state()`).
 * Nothing of numpy runs; these allow-list entries are TypeScript that checks every argument as data:
 *
 *   numpy.dtype(spec, align, copy) + BUILD (version, byteorder, None, None, None, elsize, alignment, flags)
 *                                          → `NpDtype` (bool, int, uint, float, str, bytes; never object,
 *                                            structured, complex or datetime dtypes)
 *   numpy{,._core,.core}.multiarray.scalar(dtype, data)   → a plain number / bigint / boolean / string / bytes
 *   numpy{,._core,.core}.multiarray._reconstruct(numpy.ndarray, (0,), b'b') + BUILD (version, shape, dtype,
 *                                            is_fortran, data)  → `NpArray` (C order, little-endian bytes)
 *   numpy{._core,.core}.numeric._frombuffer(data, dtype, shape, order)   → `NpArray` (protocol 5 in-band buffers)
 *   numpy.ndarray                          → a marker, only meaningful as `_reconstruct`'s first argument
 *
 * numpy 1.x pickles name `numpy.core.…`, numpy 2.x `numpy._core.…`; both are accepted. The data of an array comes
 * from the pickle stream itself, so its size is bounded by the pickle's (`MAX_PICKLE_BYTES`); a shape whose
 * element count does not match the data is refused.
 */
import { PyGlobal, PyTuple, pyTypeName, type AllowedGlobal, type PyOpaque, type PyValue } from './pickle';

const KIND_NAMES: Record<string, string> = {
  b: 'bool',
  i: 'int',
  u: 'uint',
  f: 'float',
  U: 'str',
  S: 'bytes',
};

/** A numpy dtype as a pickle describes it (the kinds numpy data in checkpoints uses). */
export class NpDtype implements PyOpaque {
  readonly pyOpaque = true as const;
  readonly pyType = 'numpy.dtype';
  /** '<' little-endian, '>' big-endian, '|' not applicable (1-byte and bytes types). */
  byteorder: '<' | '>' | '|' = '<';
  constructor(
    /** numpy's kind character: b, i, u, f, U, S. */
    readonly kind: string,
    /** Bytes per element (0 until BUILD sets it for a sizeless 'U' / 'S'). */
    public itemsize: number,
  ) {}

  /** `numpy.dtype(spec, align, copy)`: spec like 'f8', '<u4', 'b1', 'U3', 'S2'. */
  static fromSpec(spec: PyValue): NpDtype {
    if (typeof spec !== 'string') throw new Error(`numpy.dtype needs a type string, got ${pyTypeName(spec)}`);
    const m = /^([<>|=]?)([biufUS])(\d*)$/.exec(spec);
    if (!m) {
      throw new Error(
        `numpy dtype '${spec.slice(0, 40)}' is not supported (only bool, int, uint, float, str and bytes; never object, structured, complex or datetime data)`,
      );
    }
    const [, order, kind, digits] = m;
    const n = digits === '' ? 0 : Number(digits);
    const itemsize = kind === 'U' ? n * 4 : n;
    const valid: Record<string, number[]> = { b: [1], i: [1, 2, 4, 8], u: [1, 2, 4, 8], f: [2, 4, 8] };
    if (valid[kind] && !valid[kind].includes(itemsize))
      throw new Error(`numpy dtype '${spec}': ${KIND_NAMES[kind]} of ${itemsize} bytes is not supported`);
    if ((kind === 'U' || kind === 'S') && (!Number.isSafeInteger(itemsize) || itemsize > 1 << 24))
      throw new Error(`numpy dtype '${spec.slice(0, 40)}': bad size`);
    const d = new NpDtype(kind, itemsize);
    if (order === '>') d.byteorder = '>';
    else if (order === '|' || itemsize <= 1 || kind === 'S') d.byteorder = '|';
    return d;
  }

  /** BUILD state: (version 3|4, byteorder, subdescr, names, fields, elsize, alignment, flags[, metadata]). */
  pyBuild(state: PyValue): void {
    const items = state instanceof PyTuple ? state.items : null;
    if (!items || items.length < 8 || (items[0] !== 3 && items[0] !== 4))
      throw new Error(`dtype state must be a tuple (3 or 4, byteorder, …) of 8 or 9 items, got ${pyTypeName(state)}`);
    const [, order, subdescr, names, fields, elsize] = items;
    if (subdescr !== null || names !== null || fields !== null)
      throw new Error('structured (record) and sub-array dtypes are not supported');
    if (order !== '<' && order !== '>' && order !== '|' && order !== '=')
      throw new Error(`dtype byte order must be '<', '>', '|' or '=', got ${JSON.stringify(order)}`);
    // '=' is the writer's native order: every platform that writes these files is little-endian.
    this.byteorder = order === '=' ? '<' : order;
    if (typeof elsize !== 'number' || !Number.isSafeInteger(elsize))
      throw new Error(`dtype elsize must be an int, got ${pyTypeName(elsize)}`);
    if ((this.kind === 'U' || this.kind === 'S') && !(elsize === -1 && this.itemsize > 0)) {
      if (elsize < 0 || elsize > 1 << 24 || (this.kind === 'U' && elsize % 4))
        throw new Error(`dtype elsize ${elsize} does not fit a ${KIND_NAMES[this.kind]} dtype`);
      this.itemsize = elsize;
    } else if (elsize !== -1 && elsize !== this.itemsize) {
      throw new Error(`dtype elsize ${elsize} does not match ${this.str}`);
    }
  }

  /** numpy's `dtype.str`, e.g. '<f8'. */
  get str(): string {
    return `${this.byteorder}${this.kind}${this.kind === 'U' ? this.itemsize / 4 : this.itemsize}`;
  }

  /** Element `i` of little-endian `data` as a JS value. */
  read(data: Uint8Array, i: number): number | bigint | boolean | string | Uint8Array {
    const n = this.itemsize;
    const at = i * n;
    const dv = new DataView(data.buffer, data.byteOffset + at, n);
    switch (this.kind) {
      case 'b':
        return data[at] !== 0;
      case 'f':
        return n === 8 ? dv.getFloat64(0, true) : n === 4 ? dv.getFloat32(0, true) : halfToFloat(dv.getUint16(0, true));
      case 'i':
      case 'u': {
        const signed = this.kind === 'i';
        if (n === 8) {
          const v = signed ? dv.getBigInt64(0, true) : dv.getBigUint64(0, true);
          return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
        }
        if (n === 4) return signed ? dv.getInt32(0, true) : dv.getUint32(0, true);
        if (n === 2) return signed ? dv.getInt16(0, true) : dv.getUint16(0, true);
        return signed ? dv.getInt8(0) : dv.getUint8(0);
      }
      case 'U': {
        // UTF-32, padded with NULs at the end.
        let s = '';
        for (let k = 0; k < n / 4; k++) {
          const cp = dv.getUint32(4 * k, true);
          if (cp === 0) break;
          if (cp > 0x10ffff) throw new Error(`code point ${cp} in a numpy str`);
          s += String.fromCodePoint(cp);
        }
        return s;
      }
      default: {
        const b = data.slice(at, at + n);
        let end = b.length;
        while (end > 0 && b[end - 1] === 0) end--;
        return b.subarray(0, end);
      }
    }
  }

  /** `data` with every element brought to little-endian (a copy when the dtype is big-endian). */
  toLittleEndian(data: Uint8Array): Uint8Array {
    if (this.byteorder !== '>') return data;
    // A big-endian str is UTF-32BE: its 4-byte code units swap; numbers swap whole.
    const unit = this.kind === 'U' ? 4 : this.itemsize;
    const out = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i += unit) for (let k = 0; k < unit; k++) out[i + k] = data[i + unit - 1 - k];
    return out;
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A numpy array: its dtype, shape and data (row-major, little-endian). */
export class NpArray implements PyOpaque {
  readonly pyOpaque = true as const;
  readonly pyType = 'numpy.ndarray';
  dtype: NpDtype | null = null;
  shape: number[] = [];
  data: Uint8Array = new Uint8Array(0);

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** BUILD state of `_reconstruct`'s empty array: (version 1, shape, dtype, is_fortran, data). */
  pyBuild(state: PyValue): void {
    if (this.dtype) throw new Error('the array was already built');
    const items = state instanceof PyTuple ? state.items : null;
    if (!items || items.length !== 5 || items[0] !== 1)
      throw new Error(`array state must be (1, shape, dtype, is_fortran, data), got ${pyTypeName(state)}`);
    const [, shape, dtype, fortran, data] = items;
    this.fill(dtype, shape, fortran, data);
  }

  /** Checks and stores dtype, shape and data; Fortran-ordered data is reordered to row-major. */
  fill(dtype: PyValue, shape: PyValue, fortran: PyValue, data: PyValue): void {
    if (!(dtype instanceof NpDtype)) throw new Error(`array dtype must be a numpy.dtype, got ${pyTypeName(dtype)}`);
    const dims = shape instanceof PyTuple ? shape.items : null;
    if (!dims || dims.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0))
      throw new Error(`array shape must be a tuple of non-negative ints, got ${pyTypeName(shape)}`);
    if (typeof fortran !== 'boolean') throw new Error(`is_fortran must be a bool, got ${pyTypeName(fortran)}`);
    if (!(data instanceof Uint8Array)) {
      throw new Error(
        `array data must be bytes, got ${pyTypeName(data)} (object arrays are not supported: only numeric, str and bytes data)`,
      );
    }
    const shapeNums = dims as number[];
    const elements = shapeNums.reduce((a, b) => a * b, 1);
    // Zero-size items would let a huge shape pass with no data (and cost its element count in loops).
    if (dtype.itemsize === 0 && elements > 0) throw new Error(`array of ${dtype.str} items (zero bytes each)`);
    if (!Number.isSafeInteger(elements) || elements * dtype.itemsize !== data.length) {
      throw new Error(
        `array of shape (${shapeNums.join(', ')}) and dtype ${dtype.str} needs ${elements * dtype.itemsize} bytes, the data has ${data.length}`,
      );
    }
    this.dtype = dtype;
    this.shape = shapeNums;
    const le = dtype.toLittleEndian(data);
    this.data = fortran && shapeNums.length > 1 ? fortranToC(le, shapeNums, dtype.itemsize) : le;
  }

  /** The elements, row-major, as JS values (see `NpDtype.read`). */
  values(): Array<number | bigint | boolean | string | Uint8Array> {
    const d = this.dtype;
    if (!d) return [];
    return Array.from({ length: this.size }, (_, i) => d.read(this.data, i));
  }
}

/** Column-major (Fortran) element order → row-major. */
function fortranToC(src: Uint8Array, shape: number[], es: number): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(src.length);
  const idx = new Array<number>(shape.length).fill(0);
  for (let c = 0; c < n; c++) {
    // idx is the row-major multi-index of element c; its Fortran offset:
    let f = 0;
    for (let d = shape.length - 1; d >= 0; d--) f = f * shape[d] + idx[d];
    out.set(src.subarray(f * es, f * es + es), c * es);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

const MULTIARRAY = ['numpy.core.multiarray', 'numpy._core.multiarray'];
const NUMERIC = ['numpy.core.numeric', 'numpy._core.numeric'];

/** The numpy entries of an allow-list (see the module comment). */
export function numpyGlobals(): Map<string, AllowedGlobal> {
  const g = new Map<string, AllowedGlobal>();
  g.set('numpy.ndarray', { value: new PyGlobal('numpy', 'ndarray') });
  g.set('numpy.dtype', {
    call: (args) => {
      // dtype(spec, align, copy): align must be off (aligned structs are structured dtypes).
      if (args.length !== 3 || args[1] !== false)
        throw new Error(`numpy.dtype takes (spec, False, copy), got ${args.length} arguments`);
      return NpDtype.fromSpec(args[0]);
    },
  });
  for (const m of MULTIARRAY) {
    g.set(`${m}.scalar`, {
      call: (args) => {
        const [dtype, data] = args;
        if (args.length !== 2 || !(dtype instanceof NpDtype) || !(data instanceof Uint8Array))
          throw new Error('scalar takes (numpy.dtype, bytes) (object scalars are not supported)');
        if (data.length !== dtype.itemsize)
          throw new Error(`a ${dtype.str} scalar needs ${dtype.itemsize} bytes, got ${data.length}`);
        return dtype.read(dtype.toLittleEndian(data), 0);
      },
    });
    g.set(`${m}._reconstruct`, {
      call: (args) => {
        const [cls, shape, typecode] = args;
        if (args.length !== 3 || !(cls instanceof PyGlobal) || cls.qualname !== 'numpy.ndarray')
          throw new Error(`_reconstruct builds only numpy.ndarray, got ${pyTypeName(cls)}`);
        if (!(shape instanceof PyTuple) || !(typecode instanceof Uint8Array))
          throw new Error("_reconstruct takes (numpy.ndarray, (0,), b'b')");
        return new NpArray();
      },
    });
  }
  for (const m of NUMERIC) {
    g.set(`${m}._frombuffer`, {
      call: (args) => {
        const [data, dtype, shape, order] = args;
        if (args.length !== 4 || (order !== 'C' && order !== 'F'))
          throw new Error("_frombuffer takes (bytes, dtype, shape, 'C' | 'F')");
        const a = new NpArray();
        a.fill(dtype, shape, order === 'F', data);
        return a;
      },
    });
  }
  return g;
}

/** Every numpy global `numpyGlobals` allows, for messages. */
export const NUMPY_GLOBAL_NAMES = [...numpyGlobals().keys()];
