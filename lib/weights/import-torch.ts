/**
 * `importTorchFile`: a PyTorch `torch.save` file (zip format) → our names and native CPU tensors, with a report.
 *
 * The file is parsed by the restricted unpickler (nothing in it is executed; any global outside the tensor/dict
 * allow-list is refused with its name), the state dict is found (flat, or under `model_state_dict`, `state_dict`
 * or `model`), keys are mapped (`./layout.ts`: stale `position_ids` dropped, the refactor layout recognised and
 * mapped), and only then are the kept tensors' storages read — each straight into the buffer the tensor borrows.
 * Storages saved from a GPU ('cuda:0' …) are read onto the CPU.
 *
 * Bounded (docs/limits.md): with `expected`, only the keys the model expects, at their expected shapes, are read;
 * every storage and every gathered (strided) view is charged to a byte budget (`importBudget`) before it is
 * allocated; the loaded floating-point tensors must be finite (`assertFiniteWeights`).
 */
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import { PyDict, pyTypeName, type PyValue } from './pickle';
import { readTorchArchive, StorageCache, TorchTensorRef, type TorchArchive } from './torch-file';
import {
  enforceStrict,
  entriesToLoad,
  mapKeys,
  REFACTOR_LAYOUT_NAME,
  WRAPPER_KEYS,
  type DroppedKey,
  type Expect,
  type WeightsReport,
} from './layout';
import { assertFiniteOrDispose, importBudget } from './limits';
import type { ReferenceKey } from './reference-keys';

export interface ImportOptions {
  /** Refuse missing (forward-relevant) and unexpected keys and shape mismatches (DATA_ERROR). Default false. */
  strict?: boolean;
  /** What the file should hold: a CT-CLIP state dict (default) or a bare BERT. */
  expect?: Expect;
  /**
   * The keys (with shapes, to check them too) the target model has, e.g. `ctclipReferenceKeys(...)`. When given,
   * only these keys (at these shapes) are loaded; the others are reported.
   */
  expected?: ReferenceKey[] | string[];
  /**
   * Most bytes of tensor data a torch.save import may allocate (storages read plus gathered views). Default: 8
   * bytes per expected element plus 64 MiB with an `expected` list with shapes, else 8 GiB (docs/limits.md).
   */
  maxBytes?: number;
}

export interface ImportedWeights {
  names: string[];
  tensors: TensorHandle[];
  layout: string;
  dropped: DroppedKey[];
  report: WeightsReport;
}

/** Summarises a non-state-dict wrapper entry for the report. */
function describe(v: PyValue): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint')
    return String(v === null ? 'None' : v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (v instanceof PyDict) return `${pyTypeName(v)} with ${v.map.size} entries`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof TorchTensorRef) return `tensor ${v.dtype} [${v.size}]`;
  return pyTypeName(v);
}

function isTensorDict(v: PyValue): boolean {
  return v instanceof PyDict && [...v.map.values()].some((x) => x instanceof TorchTensorRef);
}

interface FoundStateDict {
  dict: PyDict;
  wrapper: string | null;
  otherEntries: Record<string, string>;
}

function findStateDict(archive: TorchArchive): FoundStateDict {
  const top = archive.value;
  if (!(top instanceof PyDict)) {
    throw new CtclipError(
      'DATA_ERROR',
      `${archive.path}: holds a ${pyTypeName(top)}, not a state dict (expected a dict of tensors or {${WRAPPER_KEYS.join('|')}: …})`,
    );
  }
  for (const key of WRAPPER_KEYS) {
    const inner = top.map.get(key);
    if (inner instanceof PyDict && isTensorDict(inner)) {
      const otherEntries: Record<string, string> = {};
      for (const [k, v] of top.map) if (k !== key) otherEntries[String(k)] = describe(v);
      return { dict: inner, wrapper: key, otherEntries };
    }
  }
  if (isTensorDict(top)) return { dict: top, wrapper: null, otherEntries: {} };
  const keys = [...top.map.keys()].slice(0, 12).map(String);
  throw new CtclipError(
    'DATA_ERROR',
    `${archive.path}: no state dict found: the top-level dict has no tensors and no ${WRAPPER_KEYS.join('/')} entry holding them (keys: ${keys.join(', ')})`,
  );
}

/** Reads a torch.save file; see the module comment. IO_ERROR / DATA_ERROR name the file and the key. */
export async function importTorchFile(file: string, opts: ImportOptions = {}): Promise<ImportedWeights> {
  const budget = importBudget(opts.expected, opts.maxBytes);
  const archive = readTorchArchive(file);
  const cache = new StorageCache(archive, budget);
  try {
    const found = findStateDict(archive);
    const refs = new Map<string, TorchTensorRef>();
    const nonTensor: DroppedKey[] = [];
    for (const [k, v] of found.dict.map) {
      if (typeof k !== 'string')
        throw new CtclipError('DATA_ERROR', `${file}: state dict key ${String(k)} is not a string`);
      if (v instanceof TorchTensorRef) refs.set(k, v);
      else nonTensor.push({ key: k, reason: `not a tensor (${describe(v)})` });
    }
    const inputs = [...refs].map(([name, r]) => ({ name, shape: r.size, dtype: r.dtype }));
    const mapping = mapKeys(inputs, { expect: opts.expect ?? 'ctclip', expected: opts.expected });
    const refactor = mapping.report.refactor;
    const layout = refactor ? 'refactor' : found.wrapper ? `wrapped:${found.wrapper}` : 'flat';
    const layoutDescription =
      (refactor ? REFACTOR_LAYOUT_NAME : 'reference (flat state_dict) layout') +
      (found.wrapper ? `, wrapped in '${found.wrapper}'` : '');
    const notes = [...mapping.report.notes];
    if (found.wrapper)
      notes.unshift(
        `the state dict was read from the '${found.wrapper}' entry; other entries not loaded: ${Object.keys(found.otherEntries).join(', ') || 'none'}`,
      );
    const foreign = archive.locations.filter((l) => l !== 'cpu');
    if (foreign.length) notes.push(`storages were saved on ${foreign.join(', ')}; read onto the CPU`);
    const { missing, missingUnused, unexpected, shapeMismatches, renamed } = mapping.report;
    const dropped = [...nonTensor, ...mapping.report.dropped];
    const load = entriesToLoad(mapping, opts.expected, notes);
    const report: WeightsReport = {
      file,
      format: 'torch',
      layout,
      layoutDescription,
      wrapper: found.wrapper,
      otherEntries: found.otherEntries,
      locations: archive.locations,
      kept: load.length,
      renamed,
      dropped,
      missing,
      missingUnused,
      unexpected,
      shapeMismatches,
      notes,
    };
    if (opts.strict) enforceStrict(file, report);
    const names: string[] = [];
    const tensors: TensorHandle[] = [];
    for (const k of load) {
      try {
        tensors.push(await cache.tensor(refs.get(k.from) as TorchTensorRef, k.from));
      } catch (e) {
        tensors.forEach((t) => t.dispose());
        if (e instanceof CtclipError && e.message.includes(file)) throw e;
        throw new CtclipError(
          e instanceof CtclipError ? e.code : 'DATA_ERROR',
          `${file}: key '${k.from}': ${(e as Error).message}`,
          { cause: e },
        );
      }
      names.push(k.to);
    }
    await assertFiniteOrDispose(
      file,
      load.map((k) => k.from),
      tensors,
    );
    return { names, tensors, layout, dropped, report };
  } finally {
    cache.release();
    archive.zip.close();
  }
}
