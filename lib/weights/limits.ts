/**
 * What a weights file may cost, and what its values must be (docs/limits.md, "Weights and checkpoints"):
 *
 * - `importBudget`: the bytes of tensor data one torch.save import may allocate (storages read plus gathered
 *   views). With an expected key list that has shapes, 8 bytes per expected element (a float64 copy of the whole
 *   model) plus 64 MiB; without one, `DEFAULT_MAX_IMPORT_BYTES`; `maxBytes` overrides both.
 * - `assertFiniteWeights`: every floating-point tensor loaded must be finite. One native pass over the tensors
 *   (off the JS thread); a NaN or ±Inf is a DATA_ERROR naming the file, the first offending key, the element and
 *   the value. Every route that loads model weights goes through it: `loadWeightsFile` (safetensors and torch.save,
 *   so `--init-from`, `infer` / `predict` and Hugging Face folders) and `readModelSafetensors` (checkpoint resume).
 */
import { CtclipError } from '../errors';
import { loadAddon, type TensorHandle } from '../native';
import type { ReferenceKey } from './reference-keys';
import { ByteBudget } from './zip';

/** The import limit without an expected key list with shapes (the base CT-CLIP is 1.65 GiB in float32). */
export const DEFAULT_MAX_IMPORT_BYTES = 8 * 1024 ** 3;

/** Slack on top of the expected tensors' float64 size. */
const BUDGET_SLACK_BYTES = 64 * 1024 ** 2;

/** The byte budget of one import; see the module comment. */
export function importBudget(expected: ReferenceKey[] | string[] | undefined, maxBytes?: number): ByteBudget {
  if (maxBytes !== undefined) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      throw new CtclipError('ARGUMENT_ERROR', `maxBytes must be a non-negative integer, got ${maxBytes}`);
    return new ByteBudget(maxBytes, 'the maxBytes option');
  }
  if (expected && expected.length > 0 && typeof expected[0] !== 'string') {
    const elements = (expected as ReferenceKey[]).reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
    return new ByteBudget(
      elements * 8 + BUDGET_SLACK_BYTES,
      `the model expects ${expected.length} tensors of ${elements} elements: 8 bytes per element plus 64 MiB`,
    );
  }
  return new ByteBudget(DEFAULT_MAX_IMPORT_BYTES, 'the default limit without an expected key list with shapes');
}

/**
 * DATA_ERROR when a floating-point tensor holds a NaN or an infinity: `${file}: tensor '<key>' holds NaN at element
 * i …`, naming the first offending tensor in the given order. `names[i]` is how the file names `tensors[i]`.
 */
export async function assertFiniteWeights(file: string, names: string[], tensors: TensorHandle[]): Promise<void> {
  if (tensors.length === 0) return;
  const bad = await loadAddon().findNonFinite(tensors);
  if (bad === null) return;
  const key = names[bad.index] ?? `#${bad.index}`;
  throw new CtclipError(
    'DATA_ERROR',
    `${file}: tensor '${key}' holds ${bad.value} at element ${bad.element}; weights must be finite (the file is corrupt or was saved from a diverged run)`,
  );
}

/**
 * `assertFiniteWeights` as the last check of a loading route: when it fails, the tensors (which the caller will
 * never receive) are disposed before the error is thrown.
 */
export async function assertFiniteOrDispose(file: string, names: string[], tensors: TensorHandle[]): Promise<void> {
  try {
    await assertFiniteWeights(file, names, tensors);
  } catch (e) {
    tensors.forEach((t) => t.dispose());
    throw e;
  }
}
