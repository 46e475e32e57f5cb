/**
 * safetensors files through the native reader/writer (native/io/safetensors.h): load returns tensors in header
 * order as written; save keeps the given order, writes `__metadata__` when given, and renames a temporary file into
 * place.
 */
import { CtclipError } from '../errors';
import { loadAddon, type SafetensorsContent, type TensorHandle } from '../native';

export type { SafetensorsContent };

export function loadSafetensors(path: string): Promise<SafetensorsContent> {
  return loadAddon().loadSafetensors(path);
}

export function saveSafetensors(
  path: string,
  names: string[],
  tensors: TensorHandle[],
  metadata?: Record<string, string>,
): Promise<void> {
  if (names.length !== tensors.length) {
    throw new CtclipError('ARGUMENT_ERROR', `saveSafetensors: ${names.length} names but ${tensors.length} tensors`);
  }
  return loadAddon().saveSafetensors(path, names, tensors, metadata);
}

/** Loads a file into a name → tensor map. */
export async function loadSafetensorsMap(path: string): Promise<Map<string, TensorHandle>> {
  const c = await loadSafetensors(path);
  return new Map(c.names.map((n, i) => [n, c.tensors[i]]));
}
