/**
 * The restricted unpickler refuses every global outside the tensor/dict allow-list, names it, and runs nothing.
 * The pickles are assembled byte by byte here (GLOBAL / STACK_GLOBAL / INST / REDUCE …) inside zip archives built
 * by the test. Parsing needs no addon: the refusal happens before any storage is read.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { importTorchFile, loadWeightsFile } from '../../lib/weights';
import { readTorchArchive } from '../../lib/weights/torch-file';
import { unpickle, pickle, PyDict, PyTuple } from '../../lib/weights/pickle';
import { PickleBytes, tmpDir, writeArchive } from '../helpers/weights-fixtures';

async function refusal(file: string): Promise<Error & { code?: string }> {
  try {
    await importTorchFile(file);
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error(`${file} was accepted`);
}

describe('weights: restricted unpickler (security)', () => {
  let dir: string;
  let canary: string;
  before(() => {
    dir = tmpDir('sec');
    canary = path.join(dir, 'CANARY');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(() => expect(fs.existsSync(canary), 'the canary file must never be created').to.equal(false));

  it('refuses os.system via GLOBAL + REDUCE, naming the global', async () => {
    const pkl = new PickleBytes().proto(2).global('os', 'system').str(`touch ${canary}`).tuple1().reduce().stop();
    const e = await refusal(writeArchive(path.join(dir, 'os_system.pt'), pkl));
    expect(e.code).to.equal('DATA_ERROR');
    expect(e.message).to.include("refused pickle global 'os.system'");
    expect(e.message).to.include('os_system.pt');
    expect(e.message).to.match(/GLOBAL at byte 2/);
  });

  it('refuses builtins.eval via STACK_GLOBAL (protocol 4)', async () => {
    const pkl = new PickleBytes()
      .proto(4)
      .str('builtins')
      .str('eval')
      .stackGlobal()
      .str(`__import__('os').system('touch ${canary}')`)
      .tuple1()
      .reduce()
      .stop();
    const e = await refusal(writeArchive(path.join(dir, 'eval.pt'), pkl));
    expect(e.code).to.equal('DATA_ERROR');
    expect(e.message).to.include("refused pickle global 'builtins.eval'");
    expect(e.message).to.include('STACK_GLOBAL');
  });

  it('refuses __builtin__.getattr hidden as a value inside an otherwise valid OrderedDict state dict', async () => {
    const pkl = new PickleBytes()
      .proto(2)
      .global('collections', 'OrderedDict')
      .emptyTuple()
      .reduce()
      .binstr('text_transformer.embeddings.word_embeddings.weight')
      .global('__builtin__', 'getattr')
      .mark()
      .global('os', 'path')
      .str('exists')
      .tuple()
      .reduce()
      .setitem()
      .stop();
    const e = await refusal(writeArchive(path.join(dir, 'getattr.pt'), pkl));
    expect(e.message).to.include("refused pickle global '__builtin__.getattr'");
  });

  it('refuses a global smuggled into a persistent id as the storage type', async () => {
    const pkl = new PickleBytes()
      .proto(2)
      .global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .mark()
      .str('storage')
      .global('posix', 'system')
      .str('0')
      .str('cpu')
      .int(1)
      .tuple()
      .op(0x51) // BINPERSID
      .stop();
    const e = await refusal(writeArchive(path.join(dir, 'persid.pt'), pkl, { '0': new Uint8Array(4) }));
    expect(e.message).to.include("refused pickle global 'posix.system'");
  });

  it('refuses INST, naming the class, and NEWOBJ even on an allowed class', async () => {
    const inst = new PickleBytes()
      .proto(2)
      .mark()
      .str(`touch ${canary}`)
      .op(0x69, ...Buffer.from('os\nsystem\n'))
      .stop();
    const e1 = await refusal(writeArchive(path.join(dir, 'inst.pt'), inst));
    expect(e1.message).to.include("refused pickle global 'os.system'");
    const newobj = new PickleBytes().proto(2).global('collections', 'OrderedDict').emptyTuple().op(0x81).stop();
    const e2 = await refusal(writeArchive(path.join(dir, 'newobj.pt'), newobj));
    expect(e2.code).to.equal('DATA_ERROR');
    expect(e2.message).to.match(/opcode NEWOBJ is not supported/);
  });

  it('refuses globals outside the allow-list (legacy _rebuild_tensor, _load_from_bytes, numpy.load, nn.Module classes)', async () => {
    for (const [m, n] of [
      ['torch._utils', '_rebuild_tensor'],
      ['torch.storage', '_load_from_bytes'],
      ['numpy', 'load'],
      ['torch.nn.modules.linear', 'Linear'],
    ]) {
      const pkl = new PickleBytes().proto(2).global(m, n).emptyTuple().reduce().stop();
      const e = await refusal(writeArchive(path.join(dir, `${n}.pt`), pkl));
      expect(e.message, `${m}.${n}`).to.include(`refused pickle global '${m}.${n}'`);
    }
  });

  it('refuses calling a storage-type marker and BUILD on a non-dict', async () => {
    const call = new PickleBytes().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop();
    expect((await refusal(writeArchive(path.join(dir, 'callstorage.pt'), call))).message).to.include(
      "'torch.FloatStorage' is not callable",
    );
    const build = new PickleBytes().proto(2).op(0x5d).emptyDict().op(0x62).stop();
    expect((await refusal(writeArchive(path.join(dir, 'build.pt'), build))).message).to.include('BUILD on a list');
  });

  it('refuses through loadWeightsFile too, and parsing alone (no addon needed) already refuses', async () => {
    const pkl = new PickleBytes().proto(2).global('subprocess', 'Popen').emptyTuple().reduce().stop();
    const f = writeArchive(path.join(dir, 'popen.bin'), pkl);
    let err: Error | undefined;
    try {
      await loadWeightsFile(f);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.include("refused pickle global 'subprocess.Popen'");
    expect(() => readTorchArchive(f)).to.throw(/refused pickle global 'subprocess.Popen'/);
  });

  it('rejects malformed streams with DATA_ERROR (truncation, bad memo, missing storage entry)', async () => {
    const truncated = new PickleBytes().proto(2).op(0x58, 0xff, 0xff, 0, 0).stop();
    expect((await refusal(writeArchive(path.join(dir, 'trunc.pt'), truncated))).message).to.match(/truncated pickle/);
    const badMemo = new PickleBytes().proto(2).op(0x68, 7).stop();
    expect((await refusal(writeArchive(path.join(dir, 'memo.pt'), badMemo))).message).to.match(
      /memo entry 7 is not defined/,
    );
    const noStorage = new PickleBytes()
      .proto(2)
      .mark()
      .str('storage')
      .global('torch', 'FloatStorage')
      .str('9')
      .str('cpu')
      .int(1)
      .tuple()
      .op(0x51)
      .stop();
    expect((await refusal(writeArchive(path.join(dir, 'nostorage.pt'), noStorage))).message).to.match(
      /storage '9' has no entry/,
    );
  });

  it('round-trips plain data through our pickle writer and reader', () => {
    const bytes = pickle({
      kind: 'dict',
      ordered: false,
      entries: [
        ['a', 1],
        ['b', -70000],
        ['c', 2n ** 70n],
        ['d', { kind: 'float', value: 0.1 }],
        ['e', [true, false, null, 'x']],
        ['f', new PyTuple([1, 2, 3, 4])],
      ],
    });
    const v = unpickle(bytes, { globals: new Map(), what: 'test' }) as PyDict;
    expect(v).to.be.instanceOf(PyDict);
    expect(v.map.get('a')).to.equal(1);
    expect(v.map.get('b')).to.equal(-70000);
    expect(v.map.get('c')).to.equal(2n ** 70n);
    expect(v.map.get('d')).to.equal(0.1);
    expect(v.map.get('e')).to.deep.equal([true, false, null, 'x']);
    expect((v.map.get('f') as PyTuple).items).to.deep.equal([1, 2, 3, 4]);
  });
});
