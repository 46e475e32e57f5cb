/**
 * `loadWeightsFile`: any weights file we accept, dispatched on its first bytes (not its extension):
 * - `PK\x03\x04` → a torch.save zip archive (`.pt`, `.pth`, `.bin`, `.ckpt`): `importTorchFile`;
 * - an 8-byte little-endian length followed by `{` → safetensors (native reader), keys mapped the same way
 *   (stale position_ids dropped, refactor names mapped, BERT prefixes for `expect: 'bert'`);
 * - a bare pickle (`\x80` …) → torch.save's legacy (< 1.6) format: refused with how to convert it.
 * An 8-byte length followed by `{` is safetensors whatever the length says: a header over the limit is refused by
 * the reader, naming its length and the limit, not misclassified.
 * With an expected key list, safetensors tensors are returned in that list's order (a safetensors header does
 * not keep the state_dict order when Python wrote it), and only the expected keys at their expected shapes.
 * Every floating-point tensor returned is finite (`assertFiniteWeights`); `readModelSafetensors` gives the
 * checkpoint-resume route the same check.
 */
import * as fs from 'fs';
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import { loadSafetensors, type SafetensorsContent } from './safetensors-native';
import { tensorInfo } from '../tensor';
import { importTorchFile, type ImportedWeights, type ImportOptions } from './import-torch';
import { enforceStrict, entriesToLoad, mapKeys, REFACTOR_LAYOUT_NAME, type WeightsReport } from './layout';
import { assertFiniteOrDispose } from './limits';

export type WeightsFormat = 'torch' | 'safetensors';

/** The format of a weights file from its first bytes (IO_ERROR when unreadable, DATA_ERROR when unknown). */
export function sniffWeightsFormat(file: string): WeightsFormat {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = Buffer.alloc(16);
      const n = fs.readSync(fd, head, 0, 16, 0);
      head = head.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${file}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'torch';
  if (head.length >= 9 && head[8] === 0x7b) return 'safetensors';
  if (head.length >= 2 && head[0] === 0x80 && head[1] <= 5) {
    throw new CtclipError(
      'DATA_ERROR',
      `${file}: a legacy (torch < 1.6, non-zip) torch.save file; re-save it once with a current torch: ` +
        `torch.save(torch.load(f, map_location='cpu', weights_only=True), 'out.pt')`,
    );
  }
  throw new CtclipError(
    'DATA_ERROR',
    `${file}: neither a torch.save zip archive nor a safetensors file (first bytes ${head.subarray(0, 8).toString('hex')})`,
  );
}

/** Loads and maps a safetensors file like `importTorchFile` does a torch file. */
export async function importSafetensorsFile(file: string, opts: ImportOptions = {}): Promise<ImportedWeights> {
  const content = await loadSafetensors(file);
  const byName = new Map(content.names.map((n, i) => [n, content.tensors[i]]));
  const inputs = content.names.map((name, i) => {
    const info = tensorInfo(content.tensors[i]);
    return { name, shape: info.shape, dtype: info.dtype };
  });
  const mapping = mapKeys(inputs, { expect: opts.expect ?? 'ctclip', expected: opts.expected });
  const refactor = mapping.report.refactor;
  const load = entriesToLoad(mapping, opts.expected, mapping.report.notes);
  const report: WeightsReport = {
    file,
    format: 'safetensors',
    layout: refactor ? 'refactor' : 'flat',
    layoutDescription: refactor ? REFACTOR_LAYOUT_NAME : 'reference (flat state_dict) layout',
    wrapper: null,
    otherEntries: content.metadata,
    locations: ['cpu'],
    kept: load.length,
    ...mapping.report,
  };
  delete (report as Partial<{ refactor: boolean }>).refactor;
  const release = (): void => content.tensors.forEach((t) => t.dispose());
  try {
    if (opts.strict) enforceStrict(file, report);
  } catch (e) {
    release();
    throw e;
  }
  let keep = load;
  if (opts.expected) {
    const order = new Map(opts.expected.map((e, i) => [typeof e === 'string' ? e : e.key, i]));
    keep = [...keep].sort((a, b) => (order.get(a.to) ?? Infinity) - (order.get(b.to) ?? Infinity));
  }
  const kept = new Set(keep.map((k) => k.from));
  for (const [n, t] of byName) if (!kept.has(n)) t.dispose();
  const tensors: TensorHandle[] = keep.map((k) => byName.get(k.from) as TensorHandle);
  await assertFiniteOrDispose(
    file,
    keep.map((k) => k.from),
    tensors,
  );
  return { names: keep.map((k) => k.to), tensors, layout: report.layout, dropped: report.dropped, report };
}

/**
 * A model-weights safetensors file as written by `saveWeights` / a checkpoint's model part, read as is (no key
 * mapping) with the native reader's checks plus finiteness: the checkpoint-resume route. The caller disposes the
 * tensors.
 */
export async function readModelSafetensors(file: string): Promise<SafetensorsContent> {
  const c = await loadSafetensors(file);
  await assertFiniteOrDispose(file, c.names, c.tensors);
  return c;
}

/** Any weights file: torch.save zip or safetensors, by content. */
export async function loadWeightsFile(file: string, opts: ImportOptions = {}): Promise<ImportedWeights> {
  return sniffWeightsFormat(file) === 'torch' ? importTorchFile(file, opts) : importSafetensorsFile(file, opts);
}
