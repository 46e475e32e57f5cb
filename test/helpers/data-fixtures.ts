/**
 * Helpers for the data tests: temp directories and hand-made shards with arbitrary (also broken) members.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TarWriter } from '../../lib/data/tar-writer';

export function makeTmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ctclip-data-${tag}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A recognisable float16 volume for sample `i`: element k holds bits (i·4099 + k) mod 0x3c00 (finite). */
export function testVolume(i: number, shape: [number, number, number]): Buffer {
  const n = shape[0] * shape[1] * shape[2];
  const v = new Uint16Array(n);
  for (let k = 0; k < n; k++) v[k] = (i * 4099 + k) % 0x3c00;
  return Buffer.from(v.buffer);
}

export function testLabels(i: number, C: number): Float32Array {
  const l = new Float32Array(C);
  for (let c = 0; c < C; c++) l[c] = (i + c) % 3 === 0 ? 1 : 0;
  return l;
}

export interface SampleParts {
  bin?: Buffer | null;
  json?: string | Record<string, unknown> | null;
  txt?: string | null;
  labels?: Float32Array | Buffer | null;
}

/** Members of one canonical sample (order bin, json, labels, txt unless `order` says otherwise). */
export function sampleMembers(
  key: string,
  i: number,
  shape: [number, number, number],
  C: number,
  parts: SampleParts = {},
  order: string[] = ['bin', 'json', 'labels', 'txt'],
): Array<[string, Uint8Array]> {
  const json =
    parts.json === undefined ? { study_id: `study_${i}`, volume_shape: shape, volume_dtype: 'float16' } : parts.json;
  const labels = parts.labels === undefined ? testLabels(i, C) : parts.labels;
  const data: Record<string, Uint8Array | null> = {
    bin: parts.bin === undefined ? testVolume(i, shape) : parts.bin,
    json: json === null ? null : Buffer.from(typeof json === 'string' ? json : JSON.stringify(json)),
    labels:
      labels === null
        ? null
        : labels instanceof Buffer
          ? labels
          : Buffer.from(labels.buffer, labels.byteOffset, labels.byteLength),
    txt: parts.txt === null ? null : Buffer.from(parts.txt ?? `Findings of ${i} (sic).\nImpression "${i}".`),
  };
  const out: Array<[string, Uint8Array]> = [];
  for (const ext of order) {
    const d = data[ext];
    if (d) out.push([`${key}.${ext}`, d]);
  }
  return out;
}

/** Writes a tar with our writer. */
export function writeTar(file: string, members: Array<[string, Uint8Array]>): void {
  const tw = new TarWriter(file);
  for (const [name, data] of members) tw.add(name, data);
  tw.close();
}

/**
 * The `ctclip preprocess` arguments for a CT-RATE layout written under `dir`: --volumes (default dir/vol),
 * --reports dir/reports.csv, --labels dir/labels.csv, --metadata dir/metadata.csv when asked, and --out.
 */
export function preprocessArgs(
  dir: string,
  out: string,
  opts: { volumes?: string; metadata?: boolean } = {},
): string[] {
  return [
    '--volumes',
    opts.volumes ?? path.join(dir, 'vol'),
    '--reports',
    path.join(dir, 'reports.csv'),
    '--labels',
    path.join(dir, 'labels.csv'),
    ...(opts.metadata ? ['--metadata', path.join(dir, 'metadata.csv')] : []),
    '--out',
    out,
  ];
}

/** Writes `text` to dir/name (creating the folders on the way); returns the path. */
export function writeText(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}
