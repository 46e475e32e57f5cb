import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tensorboard from '../../lib/logging/tensorboard';

/**
 * An event file written by TensorBoard 2.21's own Python EventFileWriter (tensorboard.summary.writer), with
 * events: file_version (+ source_metadata, field 10), then step 1 train/loss 0.6931, step 2 train/lr 1.25e-6,
 * step 3 val/macro_auroc NaN (wall times 1700000000.25 + step), and step -3 with two values a=1.5, b=-2 at
 * 1700000010.5.
 */
const TB_WRITTEN_HEX =
  '4800000000000000fe92489d090adabf6a18c3da411a0d627261696e2e4576656e743a32522e0a2c74656e736f72626f6172642e73756d6d6172792e7772697465722e6576656e745f66696c655f7772697465727f5de0a9200000000000000029eda9500900005040fc54d94110012a130a110a0a747261696e2f6c6f737315006f313f09ec34c71e00000000000000d9dc12320900009040fc54d94110022a110a0f0a08747261696e2f6c7215acc5a735d1f38ff82500000000000000eabc36f3090000d040fc54d94110032a180a160a0f76616c2f6d6163726f5f6175726f63150000c07fbae6ccc92a00000000000000ae8d91f5090000a042fc54d94110fdffffffffffffffff012a140a080a0161150000c03f0a080a016215000000c00d3d5020';

/**
 * What torch 2.13's `SummaryWriter('…', purge_step=9)` writes (time.time() fixed at 1700000000.5), then
 * `add_scalar('train/loss', 0.5, 9, walltime=1700000001.25)`: file_version at step 0 (+ source_metadata), then
 * `{step 9, file_version}`, `{step 9, session_log {status: START}}`, the scalar.
 */
const TORCH_PURGE_HEX =
  '4800000000000000fe92489d0900002040fc54d9411a0d627261696e2e4576656e743a32522e0a2c74656e736f72626f6172642e73756d6d6172792e7772697465722e6576656e745f66696c655f7772697465729710c63f1a00000000000000129bd82d0900002040fc54d94110091a0d627261696e2e4576656e743a320d53d7e10f000000000000006d532b090900002040fc54d94110093a0208019b95f972200000000000000029eda9500900005040fc54d94110092a130a110a0a747261696e2f6c6f7373150000003fdf8fa0e5';

const f32 = (x: number): number => Math.fround(x);

describe('logging/tensorboard', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-tb-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('CRC32C matches the known test vectors (RFC 3720 B.4 and "123456789")', () => {
    expect(tensorboard.crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(tensorboard.crc32c(Buffer.alloc(32, 0))).to.equal(0x8a9136aa);
    expect(tensorboard.crc32c(Buffer.alloc(32, 0xff))).to.equal(0x62a8ab43);
    expect(tensorboard.crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).to.equal(0x46dd794e);
    expect(tensorboard.crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).to.equal(0x113fdb5c);
    expect(tensorboard.crc32c(Buffer.alloc(0))).to.equal(0);
  });

  it('masks the CRC as TFRecord does', () => {
    const data = Buffer.from('123456789');
    const crc = 0xe3069283;
    const expected = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;
    expect(tensorboard.maskedCrc32c(data)).to.equal(expected);
  });

  it('frames a record: u64 LE length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = Buffer.from('hello');
    const rec = tensorboard.frameRecord(data);
    expect(rec.length).to.equal(8 + 4 + 5 + 4);
    expect(rec.readBigUInt64LE(0)).to.equal(5n);
    expect(rec.readUInt32LE(8)).to.equal(tensorboard.maskedCrc32c(rec.subarray(0, 8)));
    expect(rec.subarray(12, 17).toString()).to.equal('hello');
    expect(rec.readUInt32LE(17)).to.equal(tensorboard.maskedCrc32c(data));
    expect(tensorboard.readRecords(Buffer.concat([rec, rec]), 'x').map((r) => r.toString())).to.deep.equal([
      'hello',
      'hello',
    ]);
  });

  it('reads a file written by TensorBoard itself, and encodes the same events byte for byte', () => {
    const file = path.join(dir, 'events.out.tfevents.1.host.1.0');
    fs.writeFileSync(file, Buffer.from(TB_WRITTEN_HEX, 'hex'));
    const events = tensorboard.readEvents(file);
    expect(events).to.have.length(5);
    expect(events[0].fileVersion).to.equal('brain.Event:2');
    expect(events[1]).to.deep.equal({
      wallTime: 1700000001.25,
      step: 1,
      values: [{ tag: 'train/loss', value: f32(0.6931) }],
    });
    expect(events[2].values).to.deep.equal([{ tag: 'train/lr', value: f32(1.25e-6) }]);
    expect(events[3].values[0].tag).to.equal('val/macro_auroc');
    expect(events[3].values[0].value).to.be.NaN;
    expect(events[4]).to.deep.equal({
      wallTime: 1700000010.5,
      step: -3,
      values: [
        { tag: 'a', value: 1.5 },
        { tag: 'b', value: -2 },
      ],
    });
    // our encoder reproduces TensorBoard's records 1..4 exactly
    const records = tensorboard.readRecords(fs.readFileSync(file), file);
    const ours = [
      tensorboard.encodeEvent({ wallTime: 1700000001.25, step: 1, values: [{ tag: 'train/loss', value: 0.6931 }] }),
      tensorboard.encodeEvent({ wallTime: 1700000002.25, step: 2, values: [{ tag: 'train/lr', value: 1.25e-6 }] }),
      tensorboard.encodeEvent({ wallTime: 1700000003.25, step: 3, values: [{ tag: 'val/macro_auroc', value: NaN }] }),
      tensorboard.encodeEvent({
        wallTime: 1700000010.5,
        step: -3,
        values: [
          { tag: 'a', value: 1.5 },
          { tag: 'b', value: -2 },
        ],
      }),
    ];
    ours.forEach((buf, i) => expect(buf.toString('hex'), `record ${i + 1}`).to.equal(records[i + 1].toString('hex')));
    expect(Buffer.concat(ours.map(tensorboard.frameRecord)).toString('hex')).to.equal(
      TB_WRITTEN_HEX.slice(TB_WRITTEN_HEX.indexOf('2000000000000000')),
    );
  });

  it('writer: file name, file_version first, tags/steps/values round trip, flush and close', () => {
    let t = 1700000000.75;
    const w = new tensorboard.TensorBoardWriter(path.join(dir, 'tb'), { clock: () => t, flushSecs: 0 });
    expect(path.basename(w.file)).to.match(
      new RegExp(
        `^events\\.out\\.tfevents\\.1700000000\\.${os.hostname().replace(/[.]/g, '\\.')}\\.${process.pid}\\.\\d+$`,
      ),
    );
    w.addScalar('train/loss', 0.5, 10);
    t += 1;
    w.addScalars({ 'val/macro_auroc': 0.75, 'val/per_class_auroc/Lung nodule': 0.8125 }, 20, 123.5);
    expect(tensorboard.readEvents(w.file)).to.have.length(1); // only file_version until flushed
    w.flush();
    w.addScalar('train/loss', 0.25, 2 ** 40); // int64 step beyond 32 bits
    w.close();
    const events = tensorboard.readEvents(w.file);
    expect(events[0]).to.deep.equal({ wallTime: 1700000000.75, step: 0, fileVersion: 'brain.Event:2', values: [] });
    expect(events.slice(1)).to.deep.equal([
      { wallTime: 1700000000.75, step: 10, values: [{ tag: 'train/loss', value: 0.5 }] },
      {
        wallTime: 123.5,
        step: 20,
        values: [
          { tag: 'val/macro_auroc', value: 0.75 },
          { tag: 'val/per_class_auroc/Lung nodule', value: 0.8125 },
        ],
      },
      { wallTime: 1700000001.75, step: 2 ** 40, values: [{ tag: 'train/loss', value: 0.25 }] },
    ]);
    expect(() => w.addScalar('x', 1, 1)).to.throw(/after close/);
    const w2 = new tensorboard.TensorBoardWriter(path.join(dir, 'tb'), { clock: () => t, flushSecs: 0 });
    w2.close();
    expect(w2.file).to.not.equal(w.file);
    expect(tensorboard.listEventFiles(path.join(dir, 'tb'))).to.have.length(2);
    const scalars = tensorboard.readScalars(path.join(dir, 'tb'));
    expect(scalars.get('train/loss')!.map((p) => [p.step, p.value])).to.deep.equal([
      [10, 0.5],
      [2 ** 40, 0.25],
    ]);
  });

  it("a resumed writer (purgeStep) writes torch's SummaryWriter(purge_step) restart events byte for byte", () => {
    const torch = tensorboard.readRecords(Buffer.from(TORCH_PURGE_HEX, 'hex'), 'torch');
    expect(torch).to.have.length(4);
    expect(tensorboard.decodeEvent(torch[2])).to.deep.equal({
      wallTime: 1700000000.5,
      step: 9,
      sessionStatus: tensorboard.SESSION_LOG_START,
      values: [],
    });
    const w = new tensorboard.TensorBoardWriter(path.join(dir, 'tb'), {
      clock: () => 1700000000.5,
      flushSecs: 0,
      purgeStep: 9,
    });
    w.addScalar('train/loss', 0.5, 9, 1700000001.25);
    w.close();
    const ours = tensorboard.readRecords(fs.readFileSync(w.file), w.file);
    expect(ours).to.have.length(4);
    // Records 1..3 are torch's exactly; record 0 differs only by the source_metadata TensorBoard adds.
    for (let i = 1; i < 4; i++) expect(ours[i].toString('hex'), `record ${i}`).to.equal(torch[i].toString('hex'));
    expect(() => new tensorboard.TensorBoardWriter(dir, { purgeStep: -1 })).to.throw(
      /purgeStep must be an integer >= 0, got -1/,
    );
  });

  it('readScalars drops the points at and after a session START step, as TensorBoard does', () => {
    let t = 1700000000;
    const tb = path.join(dir, 'tb');
    const first = new tensorboard.TensorBoardWriter(tb, { clock: () => t, flushSecs: 0 });
    for (let s = 1; s <= 6; s++) first.addScalars({ 'train/loss': s, 'val/x': -s }, s);
    first.close();
    t += 5;
    const resumed = new tensorboard.TensorBoardWriter(tb, { clock: () => t, flushSecs: 0, purgeStep: 5 });
    for (let s = 5; s <= 7; s++) resumed.addScalar('train/loss', 10 * s, s);
    resumed.close();
    const scalars = tensorboard.readScalars(tb);
    expect(scalars.get('train/loss')!.map((p) => [p.step, p.value])).to.deep.equal([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
      [5, 50],
      [6, 60],
      [7, 70],
    ]);
    expect(scalars.get('val/x')!.map((p) => p.step)).to.deep.equal([1, 2, 3, 4]);
  });

  it('detects a corrupted byte anywhere (length, length CRC, data, data CRC) and truncation', () => {
    const w = new tensorboard.TensorBoardWriter(dir, { flushSecs: 0 });
    w.addScalar('train/loss', 0.5, 1);
    w.close();
    const good = fs.readFileSync(w.file);
    const firstLen = 16 + Number(good.readBigUInt64LE(0));
    for (let i = firstLen; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      fs.writeFileSync(w.file, bad);
      expect(() => tensorboard.readEvents(w.file), `byte ${i}`).to.throw(/CRC mismatch|truncated record/);
    }
    const bad = Buffer.from(good);
    bad[firstLen + 14] ^= 0x40; // inside the second record's data
    fs.writeFileSync(w.file, bad);
    expect(() => tensorboard.readEvents(w.file)).to.throw(
      new RegExp(`data CRC mismatch in the record at byte ${firstLen}`),
    );
    fs.writeFileSync(w.file, good.subarray(0, good.length - 3));
    expect(() => tensorboard.readEvents(w.file)).to.throw(/truncated record/);
    expect(tensorboard.readEvents(w.file, { allowTruncatedTail: true })).to.have.length(1);
  });

  it('decodeEvent skips unknown fields and rejects malformed protobuf', () => {
    const known = tensorboard.encodeEvent({ wallTime: 1, step: 7, values: [{ tag: 't', value: 2 }] });
    const withUnknown = Buffer.concat([Buffer.from([(9 << 3) | 0, 0x96, 0x01, (11 << 3) | 2, 2, 0x61, 0x62]), known]);
    expect(tensorboard.decodeEvent(withUnknown)).to.deep.equal({
      wallTime: 1,
      step: 7,
      values: [{ tag: 't', value: 2 }],
    });
    expect(() => tensorboard.decodeEvent(Buffer.from([0x2a, 0x10, 0x0a]))).to.throw(/malformed Event protobuf/);
  });
});
