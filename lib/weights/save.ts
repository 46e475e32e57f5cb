/**
 * `saveWeights`: model weights out as safetensors, under the reference's flat state_dict names and in the order
 * given (the header lists tensors in that order and the data follows it), dtypes preserved. `__metadata__` gets
 * `format: pt` (what `transformers` expects of a `model.safetensors`) plus the caller's entries. PyTorch then
 * loads it with `model.load_state_dict(safetensors.torch.load_file(f))`.
 */
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import { saveSafetensors } from './safetensors-native';

export async function saveWeights(
  file: string,
  names: string[],
  tensors: TensorHandle[],
  metadata: Record<string, string> = {},
): Promise<void> {
  if (names.length !== tensors.length) {
    throw new CtclipError('ARGUMENT_ERROR', `saveWeights ${file}: ${names.length} names but ${tensors.length} tensors`);
  }
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new CtclipError('ARGUMENT_ERROR', `saveWeights ${file}: key '${n}' is given twice`);
    seen.add(n);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string')
      throw new CtclipError('ARGUMENT_ERROR', `saveWeights ${file}: metadata '${k}' must be a string`);
  }
  await saveSafetensors(file, names, tensors, { format: 'pt', ...metadata });
}
