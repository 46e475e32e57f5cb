/**
 * numpy data inside torch.save pickles (training checkpoints: numpy metrics, np.random.get_state()) is rebuilt as
 * inert data by the restricted unpickler: the byte sequences below are the ones Python's pickler (protocol 2, as
 * torch.save uses) emits for np.float64 / np.int64 / np.bool_ / np.str_ scalars and for arrays (dtype objects
 * memoised and BUILT, raw data as `_codecs.encode(str, 'latin1')`). Parsing needs no addon.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { NpArray } from '../../lib/weights/numpy-pickle';
import { PyDict, PyTuple, type PyValue } from '../../lib/weights/pickle';
import { readTorchArchive } from '../../lib/weights/torch-file';
import { PickleBytes, tmpDir, writeArchive } from '../helpers/weights-fixtures';

const NEWFALSE = 0x89;
const NEWTRUE = 0x88;
const TUPLE2 = 0x86;
const TUPLE3 = 0x87;
const NONE = 0x4e;
const BUILD = 0x62;
const BINPUT = 0x71;
const BINGET = 0x68;
const MINUS_ONE = [0x4a, 0xff, 0xff, 0xff, 0xff];

/** `_codecs.encode('<bytes as latin-1 text>', 'latin1')`, as protocol 2 pickles bytes. */
function bytesArg(p: PickleBytes, bytes: Uint8Array): PickleBytes {
  return p
    .global('_codecs', 'encode')
    .binstr(String.fromCharCode(...bytes))
    .str('latin1')
    .op(TUPLE2)
    .reduce();
}

/** `numpy.dtype(spec, False, True)` + BUILD (3, order, None, None, None, elsize, alignment, 0). */
function dtype(p: PickleBytes, spec: string, order: string, elsize = -1, module = 'numpy'): PickleBytes {
  p.global(module, 'dtype').str(spec).op(NEWFALSE, NEWTRUE, TUPLE3).reduce();
  p.mark().int(3).str(order).op(NONE, NONE, NONE);
  if (elsize < 0) p.op(...MINUS_ONE, ...MINUS_ONE);
  else p.int(elsize).int(4);
  return p.int(0).tuple().op(BUILD);
}

/** `numpy._core.multiarray.scalar(dtype, bytes)`. */
function scalar(
  p: PickleBytes,
  spec: string,
  order: string,
  bytes: Uint8Array,
  mod = 'numpy._core.multiarray',
): PickleBytes {
  p.global(mod, 'scalar');
  dtype(p, spec, order, /^[US]/.test(spec) ? bytes.length : -1);
  return bytesArg(p, bytes).op(TUPLE2).reduce();
}

/** `_reconstruct(ndarray, (0,), b'b')` + BUILD (1, shape, dtype, fortran, data). */
function array(
  p: PickleBytes,
  spec: string,
  order: string,
  shape: number[],
  fortran: boolean,
  bytes: Uint8Array,
): PickleBytes {
  p.global('numpy._core.multiarray', '_reconstruct').global('numpy', 'ndarray').int(0).tuple1();
  bytesArg(p, Uint8Array.from([0x62]))
    .op(TUPLE3)
    .reduce();
  p.mark().int(1).mark();
  for (const d of shape) p.int(d);
  p.tuple();
  // Flexible (str/bytes) dtypes carry their item size in the BUILD state, as numpy writes them.
  const flexible = /^([US])(\d+)$/.exec(spec);
  dtype(p, spec, order, flexible ? Number(flexible[2]) * (flexible[1] === 'U' ? 4 : 1) : -1);
  p.op(fortran ? NEWTRUE : NEWFALSE);
  bytesArg(p, bytes);
  return p.tuple().op(BUILD);
}

function f64(...v: number[]): Uint8Array {
  return new Uint8Array(Float64Array.from(v).buffer);
}

describe('weights: numpy data in torch.save pickles', () => {
  let dir: string;
  let n = 0;
  before(() => (dir = tmpDir('pickle-numpy')));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function parse(pkl: Uint8Array): PyValue {
    const a = readTorchArchive(writeArchive(path.join(dir, `f${n++}.pt`), pkl));
    a.zip.close();
    return a.value;
  }
  function refusal(pkl: Uint8Array): Error & { code?: string } {
    try {
      parse(pkl);
    } catch (e) {
      return e as Error & { code?: string };
    }
    throw new Error('accepted');
  }
  function dict(entries: Array<[string, (p: PickleBytes) => PickleBytes]>): Uint8Array {
    const p = new PickleBytes().proto(2).emptyDict().mark();
    for (const [k, v] of entries) v(p.str(k));
    return p.op(0x75).stop();
  }

  it('rebuilds numpy scalars (float64, float32, float16, int64, uint8, bool, str, bytes) as plain values', () => {
    const i64 = new Uint8Array(8);
    new DataView(i64.buffer).setBigInt64(0, -3n, true);
    const f32 = new Uint8Array(Float32Array.from([1.5]).buffer);
    const utf32 = new Uint8Array(Uint32Array.from([0x61, 0xe9, 0x1f600]).buffer);
    const v = parse(
      dict([
        ['auroc', (p) => scalar(p, 'f8', '<', f64(0.8125))],
        ['f32', (p) => scalar(p, 'f4', '<', f32, 'numpy.core.multiarray')],
        ['f16', (p) => scalar(p, 'f2', '<', Uint8Array.from([0x00, 0x3e]))],
        ['n', (p) => scalar(p, 'i8', '<', i64)],
        ['u8', (p) => scalar(p, 'u1', '|', Uint8Array.from([200]))],
        ['flag', (p) => scalar(p, 'b1', '|', Uint8Array.from([1]))],
        ['name', (p) => scalar(p, 'U3', '<', utf32)],
        ['raw', (p) => scalar(p, 'S3', '|', Uint8Array.from([0x61, 0x62, 0]))],
        ['big', (p) => scalar(p, 'f8', '>', f64(2.25).reverse())],
      ]),
    ) as PyDict;
    const m = Object.fromEntries([...v.map].map(([k, x]) => [k, x]));
    expect(m.auroc).to.equal(0.8125);
    expect(m.f32).to.equal(1.5);
    expect(m.f16).to.equal(1.5);
    expect(m.n).to.equal(-3);
    expect(m.u8).to.equal(200);
    expect(m.flag).to.equal(true);
    expect(m.name).to.equal('aé😀');
    expect(Buffer.from(m.raw as Uint8Array).toString()).to.equal('ab');
    expect(m.big).to.equal(2.25);
  });

  it("rebuilds arrays through _reconstruct + BUILD: np.random.get_state()'s uint32 key, big-endian and Fortran order", () => {
    const key = Uint32Array.from({ length: 624 }, (_, i) => (i * 2654435761) >>> 0);
    const be = Uint8Array.from([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
    // [[0, 1, 2], [3, 4, 5]] stored column-major: 0, 3, 1, 4, 2, 5.
    const fortran = f64(0, 3, 1, 4, 2, 5);
    // {'numpy': ('MT19937', array, 623, 0, 0.0), 'be': >i4 array, 'fortran': 2×3 column-major array}
    const q = new PickleBytes().proto(2).emptyDict().mark();
    q.str('numpy').mark().str('MT19937');
    array(q, 'u4', '<', [624], false, new Uint8Array(key.buffer));
    q.int(623).int(0).op(0x47, 0, 0, 0, 0, 0, 0, 0, 0).tuple();
    q.str('be');
    array(q, 'i4', '>', [2], false, be);
    q.str('fortran');
    array(q, 'f8', '<', [2, 3], true, fortran);
    const v = parse(q.op(0x75).stop()) as PyDict;
    const state = v.map.get('numpy') as PyTuple;
    expect(state.items[0]).to.equal('MT19937');
    const arr = state.items[1] as NpArray;
    expect(arr).to.be.instanceOf(NpArray);
    expect(arr.dtype?.str).to.equal('<u4');
    expect(arr.shape).to.deep.equal([624]);
    expect(arr.values()).to.deep.equal([...key]);
    expect(state.items.slice(2)).to.deep.equal([623, 0, 0]);
    expect((v.map.get('be') as NpArray).values()).to.deep.equal([1, -2]);
    const f = v.map.get('fortran') as NpArray;
    expect(f.shape).to.deep.equal([2, 3]);
    expect(f.values()).to.deep.equal([0, 1, 2, 3, 4, 5]);
  });

  it('shares a memoised dtype between a scalar and an array (BINPUT / BINGET of the BUILT dtype)', () => {
    const p = new PickleBytes().proto(2).emptyDict().mark().str('s');
    p.global('numpy._core.multiarray', 'scalar');
    dtype(p, 'f8', '<').op(BINPUT, 7);
    bytesArg(p, f64(0.5)).op(TUPLE2).reduce();
    p.str('a');
    p.global('numpy._core.multiarray', '_reconstruct').global('numpy', 'ndarray').int(0).tuple1();
    bytesArg(p, Uint8Array.from([0x62]))
      .op(TUPLE3)
      .reduce();
    p.mark().int(1).int(2).tuple1().op(BINGET, 7, NEWFALSE);
    bytesArg(p, f64(1, 2)).tuple().op(BUILD);
    const v = parse(p.op(0x75).stop()) as PyDict;
    expect(v.map.get('s')).to.equal(0.5);
    expect((v.map.get('a') as NpArray).values()).to.deep.equal([1, 2]);
  });

  it('refuses non-numpy globals by name, and numpy objects that are not inert data', () => {
    const load = refusal(new PickleBytes().proto(2).global('numpy', 'load').str('x').tuple1().reduce().stop());
    expect(load.code).to.equal('DATA_ERROR');
    expect(load.message).to.include("refused pickle global 'numpy.load'");
    const os = refusal(new PickleBytes().proto(2).global('os', 'system').str('true').tuple1().reduce().stop());
    expect(os.message).to.include("refused pickle global 'os.system'");
    const obj = refusal(dtype(new PickleBytes().proto(2), 'O8', '|').stop());
    expect(obj.message).to.include("numpy dtype 'O8' is not supported");
    const complex = refusal(dtype(new PickleBytes().proto(2), 'c16', '<').stop());
    expect(complex.message).to.include("numpy dtype 'c16' is not supported");
    // A structured dtype: names in the BUILD state.
    const rec = new PickleBytes().proto(2).global('numpy', 'dtype').str('f8').op(NEWFALSE, NEWTRUE, TUPLE3).reduce();
    rec
      .mark()
      .int(3)
      .str('<')
      .op(NONE)
      .str('x')
      .tuple1()
      .op(NONE, ...MINUS_ONE, ...MINUS_ONE)
      .int(0)
      .tuple()
      .op(BUILD);
    expect(refusal(rec.stop()).message).to.include('structured (record) and sub-array dtypes are not supported');
    // _reconstruct of anything but numpy.ndarray.
    const other = new PickleBytes().proto(2).global('numpy._core.multiarray', '_reconstruct').global('numpy', 'dtype');
    other.int(0).tuple1();
    bytesArg(other, Uint8Array.from([0x62]))
      .op(TUPLE3)
      .reduce();
    expect(refusal(other.stop()).message).to.include('_reconstruct builds only numpy.ndarray');
    // An array whose data does not match its shape.
    const short = array(new PickleBytes().proto(2), 'f8', '<', [3], false, f64(1, 2)).stop();
    expect(refusal(short).message).to.include('needs 24 bytes, the data has 16');
    // Zero-byte items: a vast shape with no data.
    const empty = array(new PickleBytes().proto(2), 'S0', '|', [65535, 65535], true, new Uint8Array(0)).stop();
    expect(refusal(empty).message).to.include('zero bytes each');
    // _codecs.encode with another codec, and a scalar of the wrong size.
    const codec = new PickleBytes()
      .proto(2)
      .global('_codecs', 'encode')
      .str('x')
      .str('utf-8')
      .op(TUPLE2)
      .reduce()
      .stop();
    expect(refusal(codec).message).to.include("only _codecs.encode(str, 'latin1')");
    const wrong = scalar(new PickleBytes().proto(2), 'f8', '<', Uint8Array.from([1, 2])).stop();
    expect(refusal(wrong).message).to.include('needs 8 bytes, got 2');
    // Object arrays carry a list, not bytes, as their data.
    const objArr = new PickleBytes()
      .proto(2)
      .global('numpy._core.multiarray', '_reconstruct')
      .global('numpy', 'ndarray');
    objArr.int(0).tuple1();
    bytesArg(objArr, Uint8Array.from([0x62]))
      .op(TUPLE3)
      .reduce();
    objArr.mark().int(1).int(1).tuple1();
    dtype(objArr, 'f8', '<');
    objArr.op(NEWFALSE, 0x5d).tuple().op(BUILD);
    expect(refusal(objArr.stop()).message).to.include('object arrays are not supported');
  });
});
