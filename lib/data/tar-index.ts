/**
 * Header-only tar scanning: for every regular file in a tar, its name, the byte offset of its payload and
 * its size, WITHOUT reading payloads (except the tiny payloads of GNU long-name and pax headers, which carry
 * the next member's name). This is what makes positioned reads possible.
 *
 * Supported: POSIX ustar (with the 155-byte prefix), old GNU format, GNU long names (`././@LongLink`,
 * type 'L'), pax extended headers (type 'x', keys `path` and `size`), base-256 sizes. Directories, links and
 * other non-file entries are skipped. Problems (truncated file, bad checksum) end the scan; the members
 * before them are still returned, and the member that was cut short is returned with `truncated: true`.
 * A file that ends without the end-of-archive blocks (a zero block) is truncated too, even when the cut falls
 * exactly on a member boundary: every writer (GNU tar, Python's tarfile, webdataset, ours) ends a complete
 * archive with them, so their absence is the only trace of members cut off at a boundary. A 0-byte file is an
 * empty scan without a problem (the caller decides what an empty shard means).
 */
import * as fs from 'fs';

/** One regular file inside a tar. */
export interface TarMember {
  /** Full member name (GNU long name / pax path / ustar prefix + name). */
  name: string;
  /** Byte offset of the payload in the tar file. */
  offset: number;
  /** Payload size in bytes. */
  size: number;
  /** Byte offset of the member's (first) header. */
  headerOffset: number;
  /** True when the payload extends past the end of the file. */
  truncated?: boolean;
}

/** Result of scanning one tar file. */
export interface TarScan {
  members: TarMember[];
  fileSize: number;
  /** Set when the scan stopped early: why and where, and what kind of problem it is. */
  problem?: TarProblem;
}

/** Why a scan stopped early: the file is cut short, a header is corrupt, or the file is gzip data. */
export interface TarProblem {
  offset: number;
  reason: string;
  kind: 'truncated' | 'corrupt' | 'compressed';
}

const BLOCK = 512;

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function cString(b: Buffer, start: number, len: number): string {
  let end = start;
  const stop = start + len;
  while (end < stop && b[end] !== 0) end++;
  return b.toString('utf8', start, end);
}

/** Octal (NUL/space terminated) or GNU base-256 numeric field. NaN when malformed. */
export function parseTarNumber(b: Buffer, start: number, len: number): number {
  if (b[start] & 0x80) {
    // base-256: big-endian two's complement with the top bit of the first byte as the marker.
    let v = b[start] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i];
    return v;
  }
  const text = b
    .toString('latin1', start, start + len)
    .replace(/[\0 ]+$/g, '')
    .replace(/^[ \0]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return NaN;
  return parseInt(text, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = parseTarNumber(b, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  // Some old writers summed signed chars; accept either, as GNU tar and Python's tarfile do.
  return stored === unsigned || stored === signed;
}

/** Parses pax records `"<len> <key>=<value>\n"`. */
export function parsePax(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < payload.length) {
    const space = payload.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(payload.toString('latin1', pos, space), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > payload.length) break;
    const record = payload.toString('utf8', space + 1, pos + len - 1); // drop trailing "\n"
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

async function readFully(fh: fs.promises.FileHandle, buf: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Scans the headers of the tar at `file`. Throws only for errors opening/statting the file. */
export async function scanTar(file: string): Promise<TarScan> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const fileSize = (await fh.stat()).size;
    const members: TarMember[] = [];
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let longName: string | null = null;
    let paxPath: string | null = null;
    let paxSize: number | null = null;
    let firstHeaderOfMember = -1;
    if (fileSize >= 2) {
      const magic = Buffer.alloc(2);
      await readFully(fh, magic, 2, 0);
      if (magic[0] === 0x1f && magic[1] === 0x8b) {
        return {
          members,
          fileSize,
          problem: {
            offset: 0,
            reason: 'file is gzip-compressed; decompress it (random access needs a plain tar)',
            kind: 'compressed',
          },
        };
      }
    }
    for (;;) {
      if (pos >= fileSize) {
        if (longName !== null || paxPath !== null)
          return {
            members,
            fileSize,
            problem: { offset: pos, reason: 'truncated tar: extended header without its member', kind: 'truncated' },
          };
        if (pos === 0) return { members, fileSize }; // a 0-byte file
        // EOF at a block boundary without the end-of-archive blocks: members after the cut are lost.
        const last = members.length ? ` after member '${members[members.length - 1].name}'` : '';
        return {
          members,
          fileSize,
          problem: {
            offset: pos,
            reason: `truncated tar: the file ends at offset ${pos}${last} without the end-of-archive blocks (cut at a member boundary)`,
            kind: 'truncated',
          },
        };
      }
      const n = await readFully(fh, header, BLOCK, pos);
      if (n < BLOCK)
        return {
          members,
          fileSize,
          problem: {
            offset: pos,
            reason: `truncated tar: partial header (${n} of 512 bytes) at offset ${pos}`,
            kind: 'truncated',
          },
        };
      if (isZeroBlock(header)) return { members, fileSize };
      if (!checksumOk(header))
        return {
          members,
          fileSize,
          problem: { offset: pos, reason: `corrupt tar: bad header checksum at offset ${pos}`, kind: 'corrupt' },
        };
      if (firstHeaderOfMember < 0) firstHeaderOfMember = pos;
      const type = String.fromCharCode(header[156] || 0x30);
      let size = parseTarNumber(header, 124, 12);
      if (!Number.isFinite(size) || size < 0)
        return {
          members,
          fileSize,
          problem: { offset: pos, reason: `corrupt tar: bad size field at offset ${pos}`, kind: 'corrupt' },
        };
      if (paxSize !== null && (type === '0' || type === '7')) size = paxSize;
      const dataOffset = pos + BLOCK;
      const next = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
      const truncated = dataOffset + size > fileSize;

      if (type === 'L' || type === 'x' || type === 'K' || type === 'g') {
        if (truncated)
          return {
            members,
            fileSize,
            problem: {
              offset: pos,
              reason: `truncated tar: extended header payload at offset ${pos} runs past end of file`,
              kind: 'truncated',
            },
          };
        if (type === 'L' || type === 'x') {
          if (size > 16 * 1024 * 1024)
            return {
              members,
              fileSize,
              problem: {
                offset: pos,
                reason: `corrupt tar: implausible extended header size ${size} at offset ${pos}`,
                kind: 'corrupt',
              },
            };
          const payload = Buffer.alloc(size);
          await readFully(fh, payload, size, dataOffset);
          if (type === 'L') longName = cString(payload, 0, size);
          else {
            const rec = parsePax(payload);
            if (rec.path !== undefined) paxPath = rec.path;
            if (rec.size !== undefined && /^\d+$/.test(rec.size)) paxSize = parseInt(rec.size, 10);
          }
        }
        pos = next;
        continue;
      }

      let name: string;
      if (paxPath !== null) name = paxPath;
      else if (longName !== null) name = longName;
      else {
        name = cString(header, 0, 100);
        const magic = header.toString('latin1', 257, 263);
        // POSIX ustar keeps a path prefix at 345; old GNU headers use that area for other fields.
        if (magic === 'ustar\0') {
          const prefix = cString(header, 345, 155);
          if (prefix) name = prefix + '/' + name;
        }
      }
      const headerOffset = firstHeaderOfMember;
      longName = null;
      paxPath = null;
      paxSize = null;
      firstHeaderOfMember = -1;

      const isFile = type === '0' || type === '7' || header[156] === 0;
      if (isFile) {
        const m: TarMember = { name, offset: dataOffset, size, headerOffset };
        if (truncated) {
          m.truncated = true;
          members.push(m);
          return {
            members,
            fileSize,
            problem: {
              offset: pos,
              reason: `truncated tar: member '${name}' needs ${size} bytes at offset ${dataOffset}, file has ${fileSize}`,
              kind: 'truncated',
            },
          };
        }
        members.push(m);
      } else if (truncated) {
        return {
          members,
          fileSize,
          problem: {
            offset: pos,
            reason: `truncated tar: entry '${name}' at offset ${pos} runs past end of file`,
            kind: 'truncated',
          },
        };
      }
      pos = next;
    }
  } finally {
    await fh.close();
  }
}
