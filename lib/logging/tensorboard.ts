/**
 * TensorBoard event files, written and read without any dependency.
 *
 * File: `<dir>/events.out.tfevents.<unix_seconds>.<hostname>.<pid>.<n>` (n: a per-process counter, so two
 * writers opened in the same second never collide). Each record is TFRecord-framed:
 *
 *     uint64 LE length | uint32 LE masked_crc32c(length bytes) | data | uint32 LE masked_crc32c(data)
 *
 * with CRC32C (Castagnoli, reflected polynomial 0x82F63B78) and mask(crc) = ((crc >>> 15) | (crc << 17)) +
 * 0xa282ead8 (mod 2³²). `data` is a `tensorflow.Event` protobuf, encoded by hand:
 *
 *     Event      { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
 *                  SessionLog session_log = 7; }
 *     Summary    { repeated Value value = 1; }
 *     Value      { string tag = 1; float simple_value = 2; }
 *     SessionLog { SessionStatus status = 1; }   (START = 1)
 *
 * The first record is `{wall_time, step: 0, file_version: "brain.Event:2"}`. Scalars are buffered and written by
 * `flush()`, by a 2-second timer (unref'd: it never keeps the process alive) and by `close()`.
 *
 * A resumed run opens its writer with `purgeStep` (the first step it will log) and, as torch's
 * `SummaryWriter(purge_step=…)` does, first writes `{step: purgeStep, file_version}` and `{step: purgeStep,
 * session_log: START}`. TensorBoard, reading the folder's files in name (= time) order, then drops every point of
 * the earlier files at `step >= purgeStep`: the points the killed process logged after its last checkpoint, which
 * the resumed run logs again. Without it TensorBoard shows those steps twice (out of order).
 *
 * `readEvents(file)` checks the framing and both CRCs (DATA_ERROR naming the file and byte offset) and decodes
 * the events; a truncated final record (a crash mid-write) is an error unless `allowTruncatedTail` is set
 * (TensorBoard itself treats it as end of file).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CtclipError } from '../errors';

// ---------------------------------------------------------------- CRC32C

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `data`. */
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// ---------------------------------------------------------------- protobuf encoding

function varint(value: bigint): number[] {
  let v = BigInt.asUintN(64, value); // int64 negatives: two's complement, 10 bytes
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function lengthDelimited(field: number, payload: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from(varint(BigInt((field << 3) | 2))),
    Buffer.from(varint(BigInt(payload.length))),
    payload,
  ]);
}

export interface ScalarValue {
  tag: string;
  /** Stored as float32. */
  value: number;
}

/** `SessionLog.status` START: a (re)start; TensorBoard drops the earlier points at this event's step and later. */
export const SESSION_LOG_START = 1;

export interface TfEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  /** `session_log.status` when the event has a session log (SESSION_LOG_START, …). */
  sessionStatus?: number;
  /** Summary values with a simple_value (others are skipped by the decoder). */
  values: ScalarValue[];
}

/** Encodes an Event protobuf. */
export function encodeEvent(event: {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values?: ScalarValue[];
  sessionStatus?: number;
}): Buffer {
  const parts: Buffer[] = [];
  const wall = Buffer.alloc(9);
  wall[0] = (1 << 3) | 1;
  wall.writeDoubleLE(event.wallTime, 1);
  parts.push(wall);
  if (event.step !== 0) parts.push(Buffer.from([(2 << 3) | 0, ...varint(BigInt(event.step))]));
  if (event.fileVersion !== undefined) parts.push(lengthDelimited(3, Buffer.from(event.fileVersion, 'utf8')));
  if (event.values && event.values.length > 0) {
    const values = event.values.map((v) => {
      const f = Buffer.alloc(5);
      f[0] = (2 << 3) | 5;
      f.writeFloatLE(v.value, 1);
      return lengthDelimited(1, Buffer.concat([lengthDelimited(1, Buffer.from(v.tag, 'utf8')), f]));
    });
    parts.push(lengthDelimited(5, Buffer.concat(values)));
  }
  if (event.sessionStatus !== undefined)
    parts.push(lengthDelimited(7, Buffer.from([(1 << 3) | 0, ...varint(BigInt(event.sessionStatus))])));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- protobuf decoding

class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly where: string,
  ) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  fail(what: string): never {
    throw new CtclipError('DATA_ERROR', `${this.where}: malformed Event protobuf (${what} at byte ${this.pos})`);
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) this.fail('varint too long');
    }
  }
  bytes(n: number): Buffer {
    if (this.pos + n > this.buf.length) this.fail('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.bytes(8);
    else if (wire === 2) this.bytes(Number(this.varint()));
    else if (wire === 5) this.bytes(4);
    else this.fail(`unsupported wire type ${wire}`);
  }
}

function decodeValue(buf: Buffer, where: string): ScalarValue | null {
  const r = new Reader(buf, where);
  let tag = '';
  let value: number | null = null;
  while (!r.done) {
    const key = Number(r.varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 1 && wire === 2) tag = r.bytes(Number(r.varint())).toString('utf8');
    else if (field === 2 && wire === 5) value = r.bytes(4).readFloatLE(0);
    else r.skip(wire);
  }
  return value === null ? null : { tag, value };
}

/** Decodes an Event protobuf (unknown fields skipped). */
export function decodeEvent(buf: Buffer, where = 'event'): TfEvent {
  const r = new Reader(buf, where);
  const ev: TfEvent = { wallTime: 0, step: 0, values: [] };
  while (!r.done) {
    const key = Number(r.varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 1 && wire === 1) ev.wallTime = r.bytes(8).readDoubleLE(0);
    else if (field === 2 && wire === 0) ev.step = Number(BigInt.asIntN(64, r.varint()));
    else if (field === 3 && wire === 2) ev.fileVersion = r.bytes(Number(r.varint())).toString('utf8');
    else if (field === 5 && wire === 2) {
      const summary = new Reader(r.bytes(Number(r.varint())), where);
      while (!summary.done) {
        const k = Number(summary.varint());
        if (k >>> 3 === 1 && (k & 7) === 2) {
          const v = decodeValue(summary.bytes(Number(summary.varint())), where);
          if (v) ev.values.push(v);
        } else summary.skip(k & 7);
      }
    } else if (field === 7 && wire === 2) {
      const log = new Reader(r.bytes(Number(r.varint())), where);
      ev.sessionStatus = 0;
      while (!log.done) {
        const k = Number(log.varint());
        if (k === ((1 << 3) | 0)) ev.sessionStatus = Number(log.varint());
        else log.skip(k & 7);
      }
    } else r.skip(wire);
  }
  return ev;
}

/** Splits a TFRecord stream into records, verifying both CRCs. */
export function readRecords(buf: Buffer, where: string, options: { allowTruncatedTail?: boolean } = {}): Buffer[] {
  const records: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) {
      if (options.allowTruncatedTail) break;
      throw new CtclipError('DATA_ERROR', `${where}: truncated record header at byte ${pos}`);
    }
    const lenBytes = buf.subarray(pos, pos + 8);
    if (buf.readUInt32LE(pos + 8) !== maskedCrc32c(lenBytes)) {
      throw new CtclipError('DATA_ERROR', `${where}: length CRC mismatch in the record at byte ${pos}`);
    }
    const len = buf.readBigUInt64LE(pos);
    if (len > BigInt(buf.length - pos - 16)) {
      if (options.allowTruncatedTail) break;
      throw new CtclipError(
        'DATA_ERROR',
        `${where}: truncated record at byte ${pos} (length ${len}, ${buf.length - pos - 16} bytes left)`,
      );
    }
    const n = Number(len);
    const data = buf.subarray(pos + 12, pos + 12 + n);
    if (buf.readUInt32LE(pos + 12 + n) !== maskedCrc32c(data)) {
      throw new CtclipError('DATA_ERROR', `${where}: data CRC mismatch in the record at byte ${pos}`);
    }
    records.push(data);
    pos += 16 + n;
  }
  return records;
}

/** Reads, verifies and decodes an event file. */
export function readEvents(file: string, options: { allowTruncatedTail?: boolean } = {}): TfEvent[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return readRecords(buf, file, options).map((rec, i) => decodeEvent(rec, `${file} (record ${i})`));
}

/** The event files in `dir` (names starting `events.out.tfevents.`), sorted by name. */
export function listEventFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('events.out.tfevents.'))
    .sort()
    .map((f) => path.join(dir, f));
}

export interface ScalarPoint {
  step: number;
  value: number;
  wallTime: number;
}

/**
 * All scalars of all event files in `dir`, by tag, in file then record order (truncated tails tolerated). As in
 * TensorBoard, a session START event drops the points read so far at its step or later (a resumed run's restart).
 */
export function readScalars(dir: string): Map<string, ScalarPoint[]> {
  const out = new Map<string, ScalarPoint[]>();
  for (const file of listEventFiles(dir)) {
    for (const ev of readEvents(file, { allowTruncatedTail: true })) {
      if (ev.sessionStatus === SESSION_LOG_START)
        for (const [tag, list] of out)
          out.set(
            tag,
            list.filter((p) => p.step < ev.step),
          );
      for (const v of ev.values) {
        let list = out.get(v.tag);
        if (!list) out.set(v.tag, (list = []));
        list.push({ step: ev.step, value: v.value, wallTime: ev.wallTime });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- writer

let fileCounter = 0;

/** fs.writeSync until every byte is written. */
function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

export interface TensorBoardWriterOptions {
  /** Seconds between automatic flushes (default 2; 0 disables the timer). */
  flushSecs?: number;
  /** Wall clock in unix seconds (default Date.now()/1000). */
  clock?: () => number;
  /**
   * A resumed run's first step: TensorBoard drops the earlier files' points from this step on (see the module
   * comment).
   */
  purgeStep?: number;
}

export class TensorBoardWriter {
  readonly file: string;
  private fd: number | null;
  private pending: Buffer[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly clock: () => number;

  /** Creates `dir` and a new event file in it, and writes the file_version event (with `purgeStep`, the restart). */
  constructor(
    readonly dir: string,
    options: TensorBoardWriterOptions = {},
  ) {
    const purge = options.purgeStep;
    if (purge !== undefined && !(Number.isInteger(purge) && purge >= 0))
      throw new CtclipError('ARGUMENT_ERROR', `TensorBoard purgeStep must be an integer >= 0, got ${purge}`);
    this.clock = options.clock ?? (() => Date.now() / 1000);
    const now = this.clock();
    const name = `events.out.tfevents.${Math.floor(now)}.${os.hostname()}.${process.pid}.${fileCounter++}`;
    this.file = path.join(dir, name);
    try {
      fs.mkdirSync(dir, { recursive: true });
      this.fd = fs.openSync(this.file, 'wx');
      writeAll(this.fd, frameRecord(encodeEvent({ wallTime: now, step: 0, fileVersion: 'brain.Event:2' })));
      if (purge !== undefined) {
        writeAll(
          this.fd,
          Buffer.concat([
            frameRecord(encodeEvent({ wallTime: now, step: purge, fileVersion: 'brain.Event:2' })),
            frameRecord(encodeEvent({ wallTime: now, step: purge, sessionStatus: SESSION_LOG_START })),
          ]),
        );
      }
    } catch (e) {
      throw new CtclipError('IO_ERROR', `cannot create TensorBoard event file ${this.file}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const secs = options.flushSecs ?? 2;
    if (secs > 0) {
      this.timer = setInterval(() => this.flush(), secs * 1000);
      this.timer.unref();
    }
  }

  /** Queues one scalar. `wallTime` in unix seconds (default now). */
  addScalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.addScalars({ [tag]: value }, step, wallTime);
  }

  /** Queues several scalars of one step as one event. */
  addScalars(values: Record<string, number>, step: number, wallTime?: number): void {
    if (this.fd === null) throw new CtclipError('IO_ERROR', `${this.file}: addScalar after close`);
    if (!Number.isInteger(step))
      throw new CtclipError('ARGUMENT_ERROR', `TensorBoard step must be an integer, got ${step}`);
    const list = Object.entries(values).map(([tag, value]) => ({ tag, value }));
    if (list.length === 0) return;
    this.pending.push(frameRecord(encodeEvent({ wallTime: wallTime ?? this.clock(), step, values: list })));
  }

  /** Writes the queued events. */
  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    const data = Buffer.concat(this.pending);
    this.pending = [];
    writeAll(this.fd, data);
  }

  /** Flushes and closes the file; further addScalar calls throw. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
