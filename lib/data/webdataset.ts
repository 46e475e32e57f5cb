/**
 * WebDataset grouping of tar members into samples (webdataset 1.0.2 rules, as the reference reads its shards):
 * - key = the path up to the first '.' of the basename (directory part kept), extension = the rest,
 *   lower-cased; a name whose basename has no '.' is not part of any sample and is ignored;
 * - members of a sample are adjacent: a new key starts a new sample;
 * - names whose basename is `__…__` (e.g. `__index__`) are skipped;
 * - a duplicate extension within one sample is an error for THAT sample (the reference raised and killed
 *   the run; we exclude the sample and report it).
 */
import type { TarMember } from './tar-index';
import type { BadSampleReason } from './reasons';

/** Where one member's payload lies. */
export interface MemberRef {
  name: string;
  offset: number;
  size: number;
  truncated?: boolean;
}

/** One grouped sample: its key and its members by (lower-cased) extension. */
export interface GroupedSample {
  key: string;
  members: Record<string, MemberRef>;
}

/** A sample that could not be grouped cleanly. */
export interface GroupProblem {
  key: string;
  reason: string;
  code: BadSampleReason;
}

/** Splits a member name into WebDataset key and extension, or null when it belongs to no sample. */
export function splitMemberName(name: string): { key: string; ext: string } | null {
  const slash = name.lastIndexOf('/');
  const dir = name.slice(0, slash + 1);
  const base = name.slice(slash + 1);
  if (base.startsWith('__') && base.endsWith('__')) return null;
  const dot = base.indexOf('.');
  if (dot <= 0) return null; // no extension (or a dot-file): webdataset's regex does not match these
  const ext = base.slice(dot + 1);
  if (ext === '') return null;
  return { key: dir + base.slice(0, dot), ext: ext.toLowerCase() };
}

/** Groups scanned tar members into samples, in tar order. */
export function groupMembers(members: TarMember[]): { samples: GroupedSample[]; problems: GroupProblem[] } {
  const samples: GroupedSample[] = [];
  const problems: GroupProblem[] = [];
  const seenKeys = new Set<string>();
  let current: GroupedSample | null = null;
  let currentBad: string | null = null;
  let currentCode: BadSampleReason = 'duplicate_member';

  const flush = (): void => {
    if (!current) return;
    if (currentBad) problems.push({ key: current.key, reason: currentBad, code: currentCode });
    else if (seenKeys.has(current.key)) {
      problems.push({
        key: current.key,
        reason: `key '${current.key}' appears again later in the shard (members of a sample must be adjacent)`,
        code: 'duplicate_member',
      });
    } else samples.push(current);
    seenKeys.add(current.key);
    current = null;
    currentBad = null;
  };

  for (const m of members) {
    const parts = splitMemberName(m.name);
    if (!parts) continue;
    if (!current || current.key !== parts.key) {
      flush();
      current = { key: parts.key, members: {} };
    }
    if (m.truncated && !currentBad) {
      currentBad = `truncated tar: member '${m.name}' is cut short by the end of the file`;
      currentCode = 'truncated_member';
    }
    if (current.members[parts.ext]) {
      if (!currentBad) {
        currentBad = `duplicate extension '${parts.ext}' in sample '${parts.key}' ('${current.members[parts.ext].name}' and '${m.name}')`;
        currentCode = 'duplicate_member';
      }
      continue;
    }
    current.members[parts.ext] = {
      name: m.name,
      offset: m.offset,
      size: m.size,
      ...(m.truncated ? { truncated: true } : {}),
    };
  }
  flush();
  return { samples, problems };
}
