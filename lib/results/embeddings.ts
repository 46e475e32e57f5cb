/**
 * The `ctclip embed` export: one safetensors file with per-sample latents plus a JSON sidecar.
 *
 * `<outPath>` (safetensors, every tensor float32 "F32", row i = studyIds[i]):
 * - `image_latents` (n, d): the l2-normalised image latents;
 * - `text_latents` (n, d): the l2-normalised latents of each sample's report;
 * - `image_embeddings` (n, e), optional: the pre-projection image embedding;
 * - `__metadata__`: `format` "pt" (so `safetensors.torch.load_file` users see the usual tag), `producer`
 *   ("ctclip <version>"), `n_samples`, `sidecar` (the sidecar's file name) and `ctclip_meta` (the meta as strict
 *   JSON). All values are strings, as the format requires.
 *
 * `<outPath>.json` (strict JSON): `{format: "ctclip-embeddings", format_version, created, ctclip_version,
 * safetensors: <file name>, n_samples, tensors: {name: shape}, study_ids: [...], meta}`.
 *
 * Both are written atomically (temporary file + rename); the sidecar last, so its presence means the pair is
 * complete.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { SafetensorsTensor, readSafetensors, writeSafetensors } from '../io/safetensors';
import { toStrictJson } from '../metrics';
import { ctclipVersion } from './results';
import { writeFileAtomic } from '../io/atomic';

export const EMBEDDINGS_FORMAT = 'ctclip-embeddings';
export const EMBEDDINGS_FORMAT_VERSION = 1;

export interface EmbeddingsInput {
  studyIds: readonly string[];
  /** n × d, row-major. */
  imageLatents: Float32Array;
  /** n × d, row-major (same d as the image latents: both live in the shared latent space). */
  textLatents: Float32Array;
  /** n × e, row-major, optional. */
  imageEmbeddings?: Float32Array | null;
}

/** The sidecar's content. */
export interface EmbeddingsSidecar {
  format: typeof EMBEDDINGS_FORMAT;
  format_version: number;
  created: string;
  ctclip_version: string;
  safetensors: string;
  n_samples: number;
  tensors: Record<string, number[]>;
  study_ids: string[];
  meta: unknown;
}

/** `<outPath>.json`. */
export function embeddingsSidecarPath(outPath: string): string {
  return `${outPath}.json`;
}

function rowsOf(name: string, data: Float32Array | null | undefined, n: number): number {
  if (!(data instanceof Float32Array))
    throw new CtclipError('ARGUMENT_ERROR', `writeEmbeddings: ${name} must be a Float32Array`);
  if (data.length === 0 || data.length % n !== 0) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `writeEmbeddings: ${name} has ${data.length} values, not a positive multiple of the ${n} study ids`,
    );
  }
  return data.length / n;
}

/**
 * Writes the export. `meta` is anything JSON-able (checkpoint, config, shard pattern, …), stored in both files.
 * Returns the two paths and the dimensions.
 */
export async function writeEmbeddings(
  outPath: string,
  input: EmbeddingsInput,
  meta: Record<string, unknown> = {},
  opts: { created?: Date } = {},
): Promise<{
  files: { safetensors: string; sidecar: string };
  nSamples: number;
  dimLatent: number;
  dimEmbedding: number | null;
}> {
  const n = input.studyIds.length;
  if (n === 0) throw new CtclipError('ARGUMENT_ERROR', 'writeEmbeddings: no study ids; expected at least one sample');
  input.studyIds.forEach((id, i) => {
    if (typeof id !== 'string')
      throw new CtclipError('ARGUMENT_ERROR', `writeEmbeddings: studyIds[${i}] is ${typeof id}; expected a string`);
  });
  const d = rowsOf('imageLatents', input.imageLatents, n);
  const dText = rowsOf('textLatents', input.textLatents, n);
  if (dText !== d)
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `writeEmbeddings: textLatents are ${n} × ${dText} but imageLatents are ${n} × ${d}; expected the same latent size`,
    );
  const tensors: Array<[string, SafetensorsTensor]> = [
    ['image_latents', { dtype: 'F32', shape: [n, d], data: input.imageLatents }],
    ['text_latents', { dtype: 'F32', shape: [n, d], data: input.textLatents }],
  ];
  let e: number | null = null;
  if (input.imageEmbeddings !== undefined && input.imageEmbeddings !== null) {
    e = rowsOf('imageEmbeddings', input.imageEmbeddings, n);
    tensors.push(['image_embeddings', { dtype: 'F32', shape: [n, e], data: input.imageEmbeddings }]);
  }
  const file = path.resolve(outPath);
  const sidecarFile = embeddingsSidecarPath(file);
  const version = ctclipVersion();
  const metaJson = toStrictJson(meta);
  if (metaJson === undefined) throw new CtclipError('ARGUMENT_ERROR', 'writeEmbeddings: meta is not JSON-serialisable');
  await writeSafetensors(file, tensors, {
    format: 'pt',
    producer: `ctclip ${version}`,
    n_samples: String(n),
    sidecar: path.basename(sidecarFile),
    ctclip_meta: metaJson,
  });
  const sidecar: EmbeddingsSidecar = {
    format: EMBEDDINGS_FORMAT,
    format_version: EMBEDDINGS_FORMAT_VERSION,
    created: (opts.created ?? new Date()).toISOString(),
    ctclip_version: version,
    safetensors: path.basename(file),
    n_samples: n,
    tensors: Object.fromEntries(tensors.map(([name, t]) => [name, t.shape])),
    study_ids: input.studyIds.slice(),
    meta: JSON.parse(metaJson),
  };
  await writeFileAtomic(sidecarFile, toStrictJson(sidecar, 2) + '\n');
  return { files: { safetensors: file, sidecar: sidecarFile }, nSamples: n, dimLatent: d, dimEmbedding: e };
}

/** Reads an export back (both files), checking that they belong together. DATA_ERROR when they do not. */
export async function readEmbeddings(outPath: string): Promise<{
  sidecar: EmbeddingsSidecar;
  imageLatents: Float32Array;
  textLatents: Float32Array;
  imageEmbeddings: Float32Array | null;
  shapes: Record<string, number[]>;
}> {
  const file = path.resolve(outPath);
  const st = await readSafetensors(file);
  const sidecarFile = embeddingsSidecarPath(file);
  let sidecar: EmbeddingsSidecar;
  try {
    sidecar = JSON.parse(await fs.promises.readFile(sidecarFile, 'utf8')) as EmbeddingsSidecar;
  } catch (err) {
    throw new CtclipError('IO_ERROR', `${sidecarFile}: cannot read the sidecar (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (sidecar.format !== EMBEDDINGS_FORMAT || !Array.isArray(sidecar.study_ids))
    throw new CtclipError('DATA_ERROR', `${sidecarFile}: not a ctclip embeddings sidecar`);
  const n = sidecar.study_ids.length;
  const get = (name: string, required: boolean): Float32Array | null => {
    const t = st.tensors.get(name);
    if (!t) {
      if (required) throw new CtclipError('DATA_ERROR', `${file}: missing tensor "${name}"`);
      return null;
    }
    if (t.dtype !== 'F32' || t.shape.length !== 2 || t.shape[0] !== n) {
      throw new CtclipError(
        'DATA_ERROR',
        `${file}: tensor "${name}" is ${t.dtype} ${JSON.stringify(t.shape)}; expected F32 [${n}, d] (${n} study ids in the sidecar)`,
      );
    }
    return t.data as Float32Array;
  };
  const shapes: Record<string, number[]> = {};
  for (const [name, t] of st.tensors) shapes[name] = t.shape;
  return {
    sidecar,
    imageLatents: get('image_latents', true)!,
    textLatents: get('text_latents', true)!,
    imageEmbeddings: get('image_embeddings', false),
    shapes,
  };
}
