/**
 * `<run_dir>/metrics.jsonl`: one strict-JSON object per line, one line per event.
 *
 *     {"type":"train","step":10,"epoch":0.0014,"time":1738332309.123,"loss":0.6931,"lr":1.25e-8,...}
 *     {"type":"val","step":3687,"epoch":0.5,"time":...,"macro_auroc":0.73,...,"per_class":{"Emphysema":{"auroc":0.8,...}}}
 *     {"type":"checkpoint","step":3687,"epoch":0.5,"time":...,"path":"..."}
 *
 * - `type` (string), `step` (integer ≥ 0), `epoch` (fractional) and `time` (unix seconds, wall clock) come
 *   first; the event's own values follow in the caller's order. NaN/±Infinity are written as `null` (strict JSON).
 * - Each line is written with one synchronous `write` as soon as it is logged, so a crash loses at most the line
 *   being written; `flush()` additionally fsyncs. A torn LAST line (a crash mid-write) is ignored by the reader.
 * - Fresh run (`resumeStep` undefined): the file is truncated.
 * - Resume from step k (`resumeStep: k`): the file is first REWRITTEN (atomically: temp file + rename) keeping
 *   only the lines with `step ≤ k`, so events logged after the checkpoint by the crashed/stopped process (which
 *   the resumed run will redo) do not appear twice, and the file always matches the trajectory that produced the
 *   weights. Then a `{"type":"resume","step":k,...}` line is appended.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { toStrictJson } from '../io/strict-json';

export const METRICS_FILE = 'metrics.jsonl';

/** Known event types; others are allowed. */
export type MetricsEventType = 'train' | 'val' | 'checkpoint' | 'best' | 'resume' | 'end' | (string & {});

export interface MetricsEvent {
  type: MetricsEventType;
  step: number;
  epoch?: number;
  /** Unix seconds. */
  time?: number;
  [key: string]: unknown;
}

export interface MetricsWriterOptions {
  /** The step the run resumes from (see the module comment). Undefined: a fresh run. */
  resumeStep?: number;
  /** Wall clock in unix seconds (default Date.now()/1000). */
  clock?: () => number;
}

/** Reads a metrics.jsonl. A torn last line is ignored; any other bad line is a DATA_ERROR naming file and line. */
export function readMetricsJsonl(file: string): MetricsEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseMetricsJsonl(text, file);
}

function parseMetricsJsonl(text: string, file: string): MetricsEvent[] {
  const lines = text.split('\n');
  const complete = text.endsWith('\n');
  const events: MetricsEvent[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const isLast = i === lines.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (isLast && !complete) break; // torn last line
      throw new CtclipError('DATA_ERROR', `${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const ev = value as MetricsEvent;
    if (
      typeof ev !== 'object' ||
      ev === null ||
      Array.isArray(ev) ||
      typeof ev.type !== 'string' ||
      typeof ev.step !== 'number'
    ) {
      if (isLast && !complete) break;
      throw new CtclipError(
        'DATA_ERROR',
        `${file}:${i + 1}: expected an object with a string "type" and a numeric "step"`,
      );
    }
    events.push(ev);
  }
  return events;
}

export class MetricsJsonlWriter {
  readonly file: string;
  private fd: number | null;
  private readonly clock: () => number;

  private constructor(file: string, fd: number, clock: () => number) {
    this.file = file;
    this.fd = fd;
    this.clock = clock;
  }

  /** Opens `<runDir>/metrics.jsonl` for a fresh run or a resume (see the module comment). */
  static open(runDir: string, options: MetricsWriterOptions = {}): MetricsJsonlWriter {
    const file = path.join(runDir, METRICS_FILE);
    const clock = options.clock ?? (() => Date.now() / 1000);
    try {
      fs.mkdirSync(runDir, { recursive: true });
      const k = options.resumeStep;
      if (k === undefined) {
        fs.writeFileSync(file, '');
      } else {
        if (!Number.isInteger(k) || k < 0)
          throw new CtclipError('ARGUMENT_ERROR', `MetricsJsonlWriter: resumeStep must be an integer >= 0, got ${k}`);
        const kept = fs.existsSync(file) ? readMetricsJsonl(file).filter((e) => e.step <= k) : [];
        const tmp = `${file}.tmp-${process.pid}`;
        fs.writeFileSync(tmp, kept.map((e) => `${toStrictJson(e)}\n`).join(''));
        fs.renameSync(tmp, file);
      }
      const writer = new MetricsJsonlWriter(file, fs.openSync(file, 'a'), clock);
      if (k !== undefined) writer.write({ type: 'resume', step: k });
      return writer;
    } catch (e) {
      if (e instanceof CtclipError) throw e;
      throw new CtclipError('IO_ERROR', `cannot open ${file} for writing: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Appends one event; `time` defaults to now. Key order: type, step, epoch, time, then the rest. */
  write(event: MetricsEvent): void {
    if (this.fd === null) throw new CtclipError('IO_ERROR', `${this.file}: write after close`);
    if (!Number.isInteger(event.step) || event.step < 0)
      throw new CtclipError('ARGUMENT_ERROR', `metrics event step must be an integer >= 0, got ${event.step}`);
    const { type, step, epoch, time, ...rest } = event;
    const ordered: Record<string, unknown> = { type, step };
    if (epoch !== undefined) ordered.epoch = epoch;
    ordered.time = time ?? this.clock();
    Object.assign(ordered, rest);
    const data = Buffer.from(`${toStrictJson(ordered)}\n`, 'utf8');
    let off = 0;
    while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
  }

  /** fsyncs the file. */
  flush(): void {
    if (this.fd !== null) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
