/**
 * The one route by which weights enter a CTClip: `loadWeightsInto(model, source)`. Every file kind ends here:
 *
 *   source kind    file kinds                                          read by                  used by
 *   'model-part'   a checkpoint's model.safetensors (names as saved)   readModelSafetensors     --resume
 *   'weights-file' safetensors or torch.save zip (.pt/.bin/…), by      loadWeightsFile          --init-from,
 *                  content; only the model's keys at its shapes                                 --checkpoint (infer,
 *                                                                                              embed, predict, API)
 *   'hf-bert'      a Hugging Face BERT folder (the text tower only)    importHfBertFolder       model.text_encoder.path
 *
 * Every route refuses non-finite weights and unbounded files in lib/weights (docs/limits.md); what does not fit is
 * returned (missing / unexpected keys) for the caller to judge, except 'model-part', which must fit exactly
 * (DATA_ERROR naming the file). The tensors read are disposed here.
 */
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';
import {
  importHfBertFolder,
  loadWeightsFile,
  readModelSafetensors,
  type ReferenceKey,
  type WeightsReport,
} from '../weights';
import type { Config } from '../config/schema';
import type { CTClip } from './ctclip';
import { weightsConfigAdvice } from './weights-config-hint';

export type WeightsSource =
  { kind: 'model-part'; file: string } | { kind: 'weights-file'; file: string } | { kind: 'hf-bert'; dir: string };

export interface WeightsLoaded {
  /** Tensors copied into the model. */
  count: number;
  /** The import report (null for 'model-part'). */
  report: WeightsReport | null;
  /** The layout the keys were in ('flat' for 'model-part'). */
  layout: string;
  /** Model keys the weights did not provide, and provided keys the model does not have. */
  missing: string[];
  unexpected: string[];
}

/**
 * What keeps loaded weights from fitting the model exactly, e.g. `missing: a, b; unexpected: c [4] (expected [2])`
 * (at most five of each), then the config settings that would make them fit (weightsConfigAdvice), or null when
 * they fit: keys the model has that the file lacked, and keys or shapes of the file the model does not have.
 */
export function weightsMisfit(r: WeightsLoaded, cfg: Config | null = null): string | null {
  const shapeMismatches = r.report?.shapeMismatches ?? [];
  const unexpected = [
    ...r.unexpected,
    ...(r.report?.unexpected ?? []),
    ...shapeMismatches.map((m) => `${m.key} [${m.got}] (expected [${m.expected}])`),
  ];
  if (r.missing.length === 0 && unexpected.length === 0) return null;
  const advice = weightsConfigAdvice(
    { missing: r.missing, unexpected: [...r.unexpected, ...(r.report?.unexpected ?? [])], shapeMismatches },
    cfg,
  );
  return `missing: ${r.missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${unexpected.slice(0, 5).join(', ') || 'none'}; ${advice}`;
}

/** The model's keys and shapes, for importers that read only what the model expects. */
export function expectedKeys(model: CTClip): ReferenceKey[] {
  const sd = model.stateDict();
  const expected: ReferenceKey[] = sd.names.map((key, i) => ({
    key,
    shape: sd.shapes[i],
    kind: sd.kinds[i] === 'parameter' ? 'param' : 'buffer',
  }));
  sd.tensors.forEach((t) => t.dispose());
  return expected;
}

/**
 * Loads `source` into `model` (see the module comment). `beforeLoad` sees the import report of a weights file
 * before anything is copied (to log it or refuse it).
 */
export async function loadWeightsInto(
  model: CTClip,
  source: WeightsSource,
  opts: { beforeLoad?: (report: WeightsReport) => void } = {},
): Promise<WeightsLoaded> {
  let names: string[];
  let tensors: TensorHandle[];
  let report: WeightsReport | null = null;
  let layout = 'flat';
  if (source.kind === 'model-part') {
    ({ names, tensors } = await readModelSafetensors(source.file));
  } else if (source.kind === 'weights-file') {
    const imported = await loadWeightsFile(source.file, { expect: 'ctclip', expected: expectedKeys(model) });
    ({ names, tensors, report, layout } = imported);
  } else {
    const hf = await importHfBertFolder(source.dir);
    names = hf.names.map((n) => (n.startsWith('text_transformer.') ? n : `text_transformer.${n}`));
    ({ tensors, report } = hf);
  }
  try {
    if (report) opts.beforeLoad?.(report);
    if (source.kind !== 'model-part') {
      const r = model.loadStateDict(names, tensors, { strict: false });
      return { count: names.length, report, layout, missing: r.missing, unexpected: r.unexpected };
    }
    try {
      model.loadStateDict(names, tensors, { strict: true });
    } catch (e) {
      throw new CtclipError(
        (e as { code?: string }).code === 'ARGUMENT_ERROR' ? 'DATA_ERROR' : ((e as CtclipError).code ?? 'DATA_ERROR'),
        `${source.file}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return { count: names.length, report, layout, missing: [], unexpected: [] };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}
