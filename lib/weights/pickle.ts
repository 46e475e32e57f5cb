/**
 * A restricted Python unpickler (protocols 0–5): it rebuilds data (dict, list, tuple, str, int, float, bool, None,
 * bytes) and nothing else on its own. Every global the stream names (GLOBAL, STACK_GLOBAL, INST) is looked up in
 * the caller's allow-list and REFUSED with a DATA_ERROR naming it when absent — before anything is called; a
 * REDUCE may only call an allowed callable, which is TypeScript code of ours, never Python. Opcodes that build
 * arbitrary objects (OBJ, NEWOBJ, NEWOBJ_EX, the EXT registry, out-of-band buffers) are refused outright. BUILD
 * sets a dict's attributes, or hands the state to an object an allowed callable returned that declares `pyBuild`
 * (TypeScript of ours that checks it as data: numpy's dtypes and arrays take their state that way).
 *
 * The module knows nothing about torch or numpy: `lib/weights/torch-file.ts` supplies the allow-list (with
 * `./numpy-pickle.ts` and `protocol2BytesGlobal` below) and the persistent-id loader. A minimal writer for the
 * same subset (`PickleWriter`, protocol 2) is here too, for our own torch.save files and for tests.
 */
import { CtclipError } from '../errors';

/** A Python tuple. */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** Dict keys we accept (hashable scalars). */
export type PyKey = string | number | bigint | boolean | null;

/** A Python dict or OrderedDict (insertion order kept). `attrs` holds the state a BUILD set (e.g. `_metadata`). */
export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
  attrs?: PyDict;
  constructor(readonly ordered = false) {}
}

/** An allowed global that is a value, not a callable (e.g. a storage type), passed through as a marker. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * What allowed callables return (tensor references, numpy arrays …): opaque to the unpickler. `pyType` names it in
 * messages; `pyBuild`, when present, receives the state of a BUILD on it (and throws when the state is not what it
 * expects).
 */
export interface PyOpaque {
  readonly pyOpaque: true;
  readonly pyType?: string;
  pyBuild?(state: PyValue): void;
}

/** Whatever allowed callables return (tensors, parameters …) is opaque to the unpickler. */
export type PyValue =
  null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PyGlobal | PyOpaque;

/** One allow-list entry: a callable (REDUCE) or a marker value. */
export type AllowedGlobal = { call: (args: PyValue[], at: string) => PyValue } | { value: PyValue };

export interface UnpickleOptions {
  /** `module.name` → what it means. Anything else is refused. */
  globals: ReadonlyMap<string, AllowedGlobal>;
  /** Resolves a persistent id (BINPERSID/PERSID); absent = persistent ids are refused. */
  persistentLoad?: (pid: PyValue, at: string) => PyValue;
  /** Names the stream in errors, e.g. `model.pt: archive/data.pkl`. */
  what: string;
  /** Extra text for the refusal message (e.g. the allowed list). */
  refusalHint?: string;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Python's type name of a value, for messages. */
export function pyTypeName(v: PyValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof PyGlobal) return v.qualname;
  return v.pyType ?? 'object';
}

function isKey(v: PyValue): v is PyKey {
  return (
    v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean'
  );
}

/** Longest LONG1/LONG4 payload (bytes) and INT/LONG literal (digits, Python's own default limit) we decode. */
export const MAX_LONG_BYTES = 4096;
export const MAX_INT_DIGITS = 4300;

/** Two's-complement little-endian bytes → int (number when safe, else bigint), in linear time. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let hex = '';
  for (let i = b.length - 1; i >= 0; i--) hex += b[i].toString(16).padStart(2, '0');
  let n = BigInt(`0x${hex}`);
  if (b[b.length - 1] & 0x80) n -= 1n << BigInt(8 * b.length);
  return normInt(n);
}

function normInt(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

/** Python's raw-unicode-escape (UNICODE opcode) decoding. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(parseInt((a ?? b) as string, 16)),
  );
}

/** A protocol-0 STRING literal (a Python repr in quotes) → bytes as latin-1 text. */
function pyStringLiteral(s: string): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q)
    throw new Error(`bad STRING literal ${s.slice(0, 40)}`);
  const body = s.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    const map: Record<string, string> = {
      n: '\n',
      r: '\r',
      t: '\t',
      '\\': '\\',
      "'": "'",
      '"': '"',
      a: '\x07',
      b: '\b',
      f: '\f',
      v: '\v',
    };
    return map[e] ?? `\\${e}`;
  });
}

/**
 * Unpickles `data` under the restrictions above. Errors are DATA_ERRORs naming `opts.what`, the byte offset and
 * the opcode.
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let opPos = 0;
  let opName = '';
  const stack: StackItem[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();

  const fail = (msg: string): never => {
    throw new CtclipError('DATA_ERROR', `${opts.what}: ${msg} (pickle opcode ${opName} at byte ${opPos})`);
  };
  const need = (n: number): void => {
    if (!Number.isSafeInteger(n) || n < 0 || pos + n > data.length)
      fail(`truncated pickle: ${n} bytes needed, ${data.length - pos} left`);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text argument');
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('invalid UTF-8 in a string');
    }
  };
  const pop = (): PyValue => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    const v = stack.pop() as StackItem;
    if (v === MARK) fail('unexpected MARK');
    return v as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('stack underflow');
    const v = stack[stack.length - 1];
    if (v === MARK) fail('unexpected MARK');
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    const items = stack.splice(m as number) as PyValue[];
    return items;
  };
  const push = (v: PyValue): void => {
    stack.push(v);
  };
  const resolveGlobal = (module: string, name: string): PyValue => {
    const qual = `${module}.${name}`;
    const entry = opts.globals.get(qual);
    if (!entry) {
      fail(
        `refused pickle global '${qual}': only tensor, numpy-data, dict, list and scalar reconstruction is allowed, and nothing in the file is executed${opts.refusalHint ? ` (${opts.refusalHint})` : ''}`,
      );
    }
    return new PyGlobal(module, name);
  };
  const setItem = (d: PyValue, k: PyValue, v: PyValue): void => {
    if (!(d instanceof PyDict)) fail(`SETITEM on a ${pyTypeName(d)} (only dicts)`);
    if (!isKey(k)) fail(`unsupported dict key of type ${pyTypeName(k)}`);
    (d as PyDict).map.set(k as PyKey, v);
  };
  const append = (l: PyValue, v: PyValue): void => {
    if (!Array.isArray(l)) fail(`APPEND on a ${pyTypeName(l)} (only lists)`);
    (l as PyValue[]).push(v);
  };

  for (;;) {
    opPos = pos;
    need(1);
    const op = data[pos++];
    opName = OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (data[pos] > 5) fail(`pickle protocol ${data[pos]} is newer than 5`);
        pos += 1;
        break;
      case 0x95: // FRAME (framing is only a hint)
        need(8);
        pos += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) fail(`STOP with ${stack.length} items on the stack`);
        return pop();
      case 0x28:
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) popMark();
        else pop();
        break;
      case 0x31:
        popMark();
        break;
      case 0x32:
        push(top());
        break;
      // --- scalars
      case 0x4e:
        push(null);
        break;
      case 0x88:
        push(true);
        break;
      case 0x89:
        push(false);
        break;
      case 0x4b:
        need(1);
        push(data[pos]);
        pos += 1;
        break;
      case 0x4d:
        need(2);
        push(dv.getUint16(pos, true));
        pos += 2;
        break;
      case 0x4a:
        need(4);
        push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x8a: {
        need(1);
        const n = data[pos++];
        push(decodeLong(bytes(n)));
        break;
      }
      case 0x8b: {
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative LONG4 length');
        if (n > MAX_LONG_BYTES)
          fail(`LONG4 of ${n} bytes is over the limit of ${MAX_LONG_BYTES} (no state dict holds such an int)`);
        push(decodeLong(bytes(n)));
        break;
      }
      case 0x49: {
        const s = line().trim();
        if (s === '00') push(false);
        else if (s === '01') push(true);
        else if (/^[+-]?\d+$/.test(s) && s.length <= MAX_INT_DIGITS + 1) push(normInt(BigInt(s)));
        else fail(`bad INT literal '${s.slice(0, 40)}' (at most ${MAX_INT_DIGITS} digits)`);
        break;
      }
      case 0x4c: {
        const s = line().trim().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s) || s.length > MAX_INT_DIGITS + 1)
          fail(`bad LONG literal '${s.slice(0, 40)}' (at most ${MAX_INT_DIGITS} digits)`);
        push(normInt(BigInt(s)));
        break;
      }
      case 0x46: {
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) fail(`bad FLOAT literal '${s.slice(0, 40)}'`);
        push(v);
        break;
      }
      case 0x47:
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      // --- strings and bytes
      case 0x58: {
        need(4);
        const n = dv.getUint32(pos, true);
        pos += 4;
        push(text(bytes(n)));
        break;
      }
      case 0x8c: {
        need(1);
        const n = data[pos++];
        push(text(bytes(n)));
        break;
      }
      case 0x8d: {
        need(8);
        const n = Number(dv.getBigUint64(pos, true));
        pos += 8;
        push(text(bytes(n)));
        break;
      }
      case 0x56:
        push(rawUnicodeEscape(line()));
        break;
      case 0x53:
        try {
          push(pyStringLiteral(line()));
        } catch (e) {
          fail((e as Error).message);
        }
        break;
      case 0x54: {
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        push(latin1.decode(bytes(n)));
        break;
      }
      case 0x55: {
        need(1);
        const n = data[pos++];
        push(latin1.decode(bytes(n)));
        break;
      }
      case 0x42: {
        need(4);
        const n = dv.getUint32(pos, true);
        pos += 4;
        push(bytes(n).slice());
        break;
      }
      case 0x43: {
        need(1);
        const n = data[pos++];
        push(bytes(n).slice());
        break;
      }
      case 0x8e:
      case 0x96: {
        need(8);
        const n = Number(dv.getBigUint64(pos, true));
        pos += 8;
        push(bytes(n).slice());
        break;
      }
      // --- containers
      case 0x29:
        push(new PyTuple([]));
        break;
      case 0x74:
        push(new PyTuple(popMark()));
        break;
      case 0x85: {
        const a = pop();
        push(new PyTuple([a]));
        break;
      }
      case 0x86: {
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x5d:
        push([]);
        break;
      case 0x6c:
        push(popMark());
        break;
      case 0x61: {
        const v = pop();
        append(top(), v);
        break;
      }
      case 0x65: {
        const items = popMark();
        const l = top();
        for (const v of items) append(l, v);
        break;
      }
      case 0x7d:
        push(new PyDict());
        break;
      case 0x64: {
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new PyDict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        push(d);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      // --- memo
      case 0x70: {
        const s = line().trim();
        if (!/^\d+$/.test(s)) fail(`bad PUT index '${s.slice(0, 40)}'`);
        memo.set(Number(s), top());
        break;
      }
      case 0x71:
        need(1);
        memo.set(data[pos++], top());
        break;
      case 0x72:
        need(4);
        memo.set(dv.getUint32(pos, true), top());
        pos += 4;
        break;
      case 0x94:
        memo.set(memo.size, top());
        break;
      case 0x67:
      case 0x68:
      case 0x6a: {
        let idx: number;
        if (op === 0x67) {
          const s = line().trim();
          if (!/^\d+$/.test(s)) fail(`bad GET index '${s.slice(0, 40)}'`);
          idx = Number(s);
        } else if (op === 0x68) {
          need(1);
          idx = data[pos++];
        } else {
          need(4);
          idx = dv.getUint32(pos, true);
          pos += 4;
        }
        if (!memo.has(idx)) fail(`memo entry ${idx} is not defined`);
        push(memo.get(idx) as PyValue);
        break;
      }
      // --- globals, calls, persistent ids
      case 0x63: {
        const module = line();
        const name = line();
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x69: {
        // INST names a class inline and instantiates it: refused (after naming the global if it is not allowed).
        const module = line();
        const name = line();
        resolveGlobal(module, name);
        fail(`INST (class instantiation of ${module}.${name}) is not supported`);
        break;
      }
      case 0x52: {
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PyGlobal)) fail(`REDUCE on a ${pyTypeName(fn)} (only allowed globals are callable)`);
        if (!(args instanceof PyTuple)) fail(`REDUCE arguments must be a tuple, got ${pyTypeName(args)}`);
        const g = fn as PyGlobal;
        const entry = opts.globals.get(g.qualname);
        if (!entry || !('call' in entry)) fail(`'${g.qualname}' is not callable here`);
        try {
          push(
            (entry as { call: (a: PyValue[], at: string) => PyValue }).call(
              (args as PyTuple).items,
              `${opts.what} (byte ${opPos})`,
            ),
          );
        } catch (e) {
          if (e instanceof CtclipError) throw e;
          fail(`${g.qualname}: ${(e as Error).message}`);
        }
        break;
      }
      case 0x62: {
        const state = pop();
        const obj = top();
        if (obj !== null && typeof obj === 'object' && 'pyOpaque' in obj && typeof obj.pyBuild === 'function') {
          try {
            obj.pyBuild(state);
          } catch (e) {
            if (e instanceof CtclipError) throw e;
            fail(`${pyTypeName(obj)}: ${(e as Error).message}`);
          }
          break;
        }
        // Otherwise only dicts take a BUILD: an OrderedDict state_dict carries `_metadata` this way.
        if (!(obj instanceof PyDict)) fail(`BUILD on a ${pyTypeName(obj)} is not supported`);
        if (state === null) break;
        if (!(state instanceof PyDict)) fail(`BUILD state must be a dict, got ${pyTypeName(state)}`);
        (obj as PyDict).attrs = state as PyDict;
        break;
      }
      case 0x51:
      case 0x50: {
        const pid = op === 0x51 ? pop() : line();
        if (!opts.persistentLoad) fail('persistent ids are not allowed in this stream');
        push((opts.persistentLoad as (p: PyValue, at: string) => PyValue)(pid, `${opts.what} (byte ${opPos})`));
        break;
      }
      default:
        fail(
          OPCODE_NAMES[op]
            ? `opcode ${opName} is not supported by this restricted unpickler (it builds arbitrary objects or is not needed for state dicts)`
            : `unknown pickle opcode`,
        );
    }
  }
}

/**
 * `_codecs.encode(text, 'latin1')`: how protocol 2 (torch.save's default) pickles a `bytes` object, e.g. the raw
 * data of a numpy array or scalar. Returns the bytes; any other encoding, or a character above U+00FF, is refused.
 */
export const protocol2BytesGlobal: [string, AllowedGlobal] = [
  '_codecs.encode',
  {
    call: (args) => {
      const [text, encoding] = args;
      if (args.length !== 2 || typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1'))
        throw new Error(
          `only _codecs.encode(str, 'latin1') (protocol 2 bytes) is allowed, got ${args.length} arguments`,
        );
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c > 0xff) throw new Error(`character U+${c.toString(16).padStart(4, '0')} at ${i} is not latin-1`);
        out[i] = c;
      }
      return out;
    },
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Writer (protocol 2 subset)

/** A value the writer can emit: data, plus globals and REDUCE calls for torch's reconstruction. */
export type PickleOut =
  | null
  | boolean
  | number
  | bigint
  | string
  | PickleOut[]
  | PyTuple
  | { kind: 'dict'; ordered: boolean; entries: Array<[string | number, PickleOut]> }
  | { kind: 'global'; module: string; name: string }
  | { kind: 'reduce'; fn: { module: string; name: string }; args: PickleOut[] }
  | { kind: 'persid'; pid: PickleOut }
  | { kind: 'float'; value: number };

/** Writes a pickle (protocol 2) of `value`, memoising globals as torch's pickler does (BINPUT/BINGET). */
export function pickle(value: PickleOut): Uint8Array {
  const out: number[] = [];
  const chunks: Uint8Array[] = [];
  const flush = (): void => {
    if (out.length) {
      chunks.push(Uint8Array.from(out));
      out.length = 0;
    }
  };
  const u32le = (n: number): void => {
    out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  };
  const globalMemo = new Map<string, number>();
  let memoNext = 0;
  const put = (): void => {
    const idx = memoNext++;
    if (idx < 256) out.push(0x71, idx);
    else {
      out.push(0x72);
      u32le(idx);
    }
  };
  const str = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    out.push(0x58);
    u32le(b.length);
    flush();
    chunks.push(b);
  };
  const int = (n: number | bigint): void => {
    if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 256) out.push(0x4b, n);
    else if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 65536) out.push(0x4d, n & 0xff, n >> 8);
    else if (typeof n === 'number' && Number.isInteger(n) && n >= -0x80000000 && n < 0x80000000) {
      out.push(0x4a);
      u32le(n >>> 0);
    } else {
      let v = BigInt(n);
      const b: number[] = [];
      while (true) {
        b.push(Number(v & 0xffn));
        v >>= 8n;
        if ((v === 0n && (b[b.length - 1] & 0x80) === 0) || (v === -1n && (b[b.length - 1] & 0x80) !== 0)) break;
      }
      out.push(0x8a, b.length, ...b);
    }
  };
  const global = (module: string, name: string): void => {
    const key = `${module}\n${name}`;
    const idx = globalMemo.get(key);
    if (idx !== undefined) {
      if (idx < 256) out.push(0x68, idx);
      else {
        out.push(0x6a);
        u32le(idx);
      }
      return;
    }
    out.push(0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8'));
    globalMemo.set(key, memoNext);
    put();
  };
  const emit = (v: PickleOut): void => {
    if (v === null) out.push(0x4e);
    else if (v === true) out.push(0x88);
    else if (v === false) out.push(0x89);
    else if (typeof v === 'number' || typeof v === 'bigint') {
      if (typeof v === 'number' && !Number.isInteger(v)) {
        out.push(0x47);
        const b = Buffer.alloc(8);
        b.writeDoubleBE(v);
        out.push(...b);
      } else int(v);
    } else if (typeof v === 'string') str(v);
    else if (Array.isArray(v)) {
      out.push(0x5d);
      if (v.length) {
        out.push(0x28);
        for (const x of v) emit(x);
        out.push(0x65);
      }
    } else if (v instanceof PyTuple) {
      const n = v.items.length;
      if (n === 0) out.push(0x29);
      else if (n <= 3) {
        for (const x of v.items as PickleOut[]) emit(x);
        out.push(0x84 + n);
      } else {
        out.push(0x28);
        for (const x of v.items as PickleOut[]) emit(x);
        out.push(0x74);
      }
    } else if (v.kind === 'float') {
      out.push(0x47);
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v.value);
      out.push(...b);
    } else if (v.kind === 'dict') {
      if (v.ordered) {
        global('collections', 'OrderedDict');
        out.push(0x29, 0x52);
      } else out.push(0x7d);
      if (v.entries.length) {
        out.push(0x28);
        for (const [k, x] of v.entries) {
          emit(k);
          emit(x);
        }
        out.push(0x75);
      }
    } else if (v.kind === 'global') global(v.module, v.name);
    else if (v.kind === 'reduce') {
      global(v.fn.module, v.fn.name);
      emit(new PyTuple(v.args as unknown as PyValue[]) as unknown as PickleOut);
      out.push(0x52);
    } else if (v.kind === 'persid') {
      emit(v.pid);
      out.push(0x51);
    }
  };
  out.push(0x80, 2);
  emit(value);
  out.push(0x2e);
  flush();
  return Buffer.concat(chunks);
}
