/**
 * Synthetic CT-RATE-like data for the demo, tests and benchmarks (`ctclip synth`): canonical shards
 * (`shard-{k:06d}.tar`, members `bin, json, labels, txt`, keys `{shard:06d}_{idx:06d}`, written under a temp
 * name and renamed), our index, CT-RATE-layout CSVs (reports/labels/metadata) and a `vocab.txt` built from
 * the report corpus. A failed write (a full disk) throws IO_ERROR naming the file and leaves no temporary file
 * (TarWriter and the atomic writer remove theirs); shards finished before the failure stay.
 *
 * Volumes are phantom chests in [-1, 1] (HU/1000; air outside the body is exactly -1, the pad value): an
 * elliptic body, spine, aorta, two lungs, a heart, and for each positive class a visible class-specific
 * structure (bright metal, calcifications, an enlarged heart, a dependent fluid layer, darker or banded
 * lungs, blobs at class-specific places…), so a small model can learn labels from images. Reports are built
 * from the labels and contain the zero-shot prompt sentences of the config's templates (default
 * `{class} is present.` / `{class} is not present.`).
 *
 * Speed: the volume is painted column by column (one (h, w) column = D contiguous voxels in the C-order
 * (H, W, D) layout): each structure covers an analytically computed run of slices that is copied from a
 * pre-noised float16 row, so a 480×480×240 volume takes well under a second, without per-voxel math.
 * Everything is a function of the seed (lib/rng.ts), so the same arguments give byte-identical files.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DEFAULT_PROMPTS } from '../config/schema';
import { CtclipError } from '../errors';
import { Rng } from '../rng';
import { buildWordPieceVocab, vocabToText } from '../text/vocab-builder';
import { CT_RATE_CLASSES } from './classes';
import { float32ToFloat16Bits } from './float16';
import { cleanReport } from './report';
import { indexShards, type ShardIndexFile } from './shard-index';
import { TarWriter } from './tar-writer';
import { writeFileAtomicSync } from '../io/atomic';

/** A report as the two CT-RATE columns. */
export interface SynthReport {
  findings: string;
  impressions: string;
}

/** Builds a report from labels (replaceable through SynthOptions.reportFn). */
export type ReportFn = (
  labels: Float32Array,
  classNames: readonly string[],
  rng: Rng,
  prompts?: PromptTemplates,
) => SynthReport;

/** Zero-shot prompt templates; `{p}` stands for the class name. */
export interface PromptTemplates {
  positive: string;
  negative: string;
}

export interface SynthOptions {
  /** Output directory (created). */
  out: string;
  /** Number of samples N. */
  samples: number;
  /** Volume shape [H, W, D]. */
  shape: [number, number, number];
  /** Number of shards K (samples split contiguously, ceil(N/K) per shard). */
  shards: number;
  seed: number;
  /** Class names (default: the 18 CT-RATE classes; `--classes 18` means these). */
  classes?: readonly string[];
  /** Report generator (default `defaultSynthReport`). */
  reportFn?: ReportFn;
  /** Zero-shot prompt templates the default reports contain (default: the config's default prompts). */
  prompts?: PromptTemplates;
  /** vocab.txt size (default 4096; the result is shorter when the corpus has fewer words). */
  vocabSize?: number;
  /** Progress callback (sample index, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface SynthResult {
  shardPaths: string[];
  pattern: string;
  indexPath: string;
  index: ShardIndexFile;
  studyIds: string[];
  /** N × C labels, row-major. */
  labels: Float32Array;
  reports: SynthReport[];
  classNames: string[];
}

/** The zero-shot prompt sentence for a class (the class name as given, e.g. "Cardiomegaly is not present."). */
export function promptSentence(
  className: string,
  positive: boolean,
  templates: PromptTemplates = DEFAULT_PROMPTS,
): string {
  return (positive ? templates.positive : templates.negative).split('{p}').join(className);
}

// Rough CT-RATE prevalences, so label statistics look plausible; custom classes get 0.25.
const PREVALENCE: Record<string, number> = {
  'Medical material': 0.12,
  'Arterial wall calcification': 0.28,
  Cardiomegaly: 0.11,
  'Pericardial effusion': 0.07,
  'Coronary artery wall calcification': 0.25,
  'Hiatal hernia': 0.14,
  Lymphadenopathy: 0.26,
  Emphysema: 0.19,
  Atelectasis: 0.25,
  'Lung nodule': 0.45,
  'Lung opacity': 0.39,
  'Pulmonary fibrotic sequela': 0.26,
  'Pleural effusion': 0.12,
  'Mosaic attenuation pattern': 0.08,
  'Peribronchial thickening': 0.1,
  Consolidation: 0.17,
  Bronchiectasis: 0.1,
  'Interlobular septal thickening': 0.08,
};

const DETAIL: Record<string, string> = {
  'Medical material': 'A catheter (central venous) is seen in the superior vena cava.',
  'Lung nodule': "A 5 mm nodule is seen in the 'right' upper lobe (series 2).",
  'Pleural effusion': 'Fluid density is seen in the dependent part of the pleural space.',
  Cardiomegaly: 'The heart is enlarged.',
  Emphysema: 'Both lungs show low attenuation areas.',
};

/** Default report: a fixed opening, one prompt sentence per class (with a detail for some positives), and
 * impressions listing the positives ("Not given." for about 5 % of samples, to exercise report cleaning). */
export const defaultSynthReport: ReportFn = (labels, classNames, rng, prompts = DEFAULT_PROMPTS) => {
  const findings: string[] = ['Trachea and both main bronchi are open.'];
  const positives: string[] = [];
  classNames.forEach((name, c) => {
    const pos = labels[c] > 0.5;
    findings.push(promptSentence(name, pos, prompts));
    if (pos) {
      positives.push(name);
      if (DETAIL[name]) findings.push(DETAIL[name]);
    }
  });
  let impressions = positives.length ? positives.join(', ') + '.' : 'No significant abnormality.';
  if (rng.nextFloat() < 0.05) impressions = 'Not given.';
  return { findings: findings.join(' '), impressions };
};

/** Labels of one sample (0/1 float32), drawn with per-class prevalences. */
export function synthLabels(classNames: readonly string[], rng: Rng): Float32Array {
  const out = new Float32Array(classNames.length);
  classNames.forEach((name, c) => {
    out[c] = rng.nextFloat() < (PREVALENCE[name] ?? 0.25) ? 1 : 0;
  });
  return out;
}

// ---- phantom ---------------------------------------------------------------------------------------------

interface Ellipsoid {
  cx: number;
  cy: number;
  cz: number;
  rx: number;
  ry: number;
  /** Infinity = a cylinder along z. */
  rz: number;
  tissue: number;
  /** Only columns with y >= yMin (a dependent layer). */
  yMin?: number;
  /** Alternating tissue in z-bands of this many slices (mosaic pattern). */
  bands?: { tissue: number; slices: number };
  /** Columns on this grid get `tissue` of the grid (septal lines). */
  grid?: { tissue: number; period: number };
}

const NOISE_PAD = 1024;

/**
 * Paints the phantom for `labels` into a float16 (H, W, D) C-order volume. Values stay in [-1, 1].
 */
export function phantomVolume(
  shape: [number, number, number],
  labels: Float32Array,
  classNames: readonly string[],
  rng: Rng,
): Uint16Array {
  const [H, W, D] = shape;
  const vol = new Uint16Array(H * W * D);
  const AIR = float32ToFloat16Bits(-1);
  vol.fill(AIR);
  const has = (name: string): boolean => {
    const c = classNames.indexOf(name);
    return c >= 0 && labels[c] > 0.5;
  };
  const j = (s: number): number => (rng.nextFloat() * 2 - 1) * s; // jitter

  // Tissues: value, noise sigma. Rows of noisy float16 values are made once per sample.
  const tissues: Array<{ v: number; sd: number }> = [];
  const tissue = (v: number, sd = 0.012): number => {
    tissues.push({ v, sd });
    return tissues.length - 1;
  };
  const SOFT = tissue(0.04);
  const FAT = tissue(-0.09);
  const BONE = tissue(0.7, 0.05);
  const BLOOD = tissue(0.045);
  const LUNG = tissue(has('Emphysema') ? -0.93 : -0.85, 0.02);
  const LUNG_ALT = tissue(-0.93, 0.02);
  const SEPTA = tissue(-0.55, 0.03);
  const FLUID = tissue(0.012);
  const HEART = tissue(0.05);
  const METAL = tissue(0.98, 0.005);
  const CALC = tissue(0.8, 0.03);
  const NODE = tissue(0.06);
  const GGO = tissue(-0.45, 0.03);
  const DENSE = tissue(0.02);
  const AIRWAY = tissue(-0.98, 0.005);
  const MIXED = tissue(-0.15, 0.04);

  const bodyRx = 0.86 + j(0.04);
  const bodyRy = 0.62 + j(0.03);
  const prims: Ellipsoid[] = [];
  prims.push({ cx: 0, cy: 0, cz: 0, rx: bodyRx + 0.04, ry: bodyRy + 0.04, rz: Infinity, tissue: FAT });
  prims.push({ cx: 0, cy: 0, cz: 0, rx: bodyRx, ry: bodyRy, rz: Infinity, tissue: SOFT });
  prims.push({ cx: 0, cy: bodyRy - 0.16, cz: 0, rx: 0.09, ry: 0.09, rz: Infinity, tissue: BONE }); // spine
  prims.push({ cx: 0, cy: -bodyRy + 0.06, cz: 0.1, rx: 0.12, ry: 0.03, rz: 0.7, tissue: BONE }); // sternum
  const lungTissue = (side: number): Ellipsoid => ({
    cx: side * (0.38 + j(0.02)),
    cy: 0.02 + j(0.02),
    cz: 0.05 + j(0.03),
    rx: 0.27 + j(0.02),
    ry: 0.42 + j(0.02),
    rz: 0.88,
    tissue: LUNG,
    ...(has('Mosaic attenuation pattern')
      ? { bands: { tissue: LUNG_ALT, slices: Math.max(1, Math.round(D / 12)) } }
      : {}),
    ...(has('Interlobular septal thickening')
      ? { grid: { tissue: SEPTA, period: Math.max(2, Math.round(H / 24)) } }
      : {}),
  });
  const lungs = [lungTissue(-1), lungTissue(1)];
  prims.push(...lungs);
  if (has('Pleural effusion'))
    for (const l of lungs)
      prims.push({ ...l, bands: undefined, grid: undefined, tissue: FLUID, yMin: l.cy + l.ry * 0.45 });
  prims.push({ cx: -0.1, cy: 0.12, cz: 0, rx: 0.07, ry: 0.07, rz: Infinity, tissue: BLOOD }); // descending aorta
  const heartScale = has('Cardiomegaly') ? 1.4 : 1;
  const heart = {
    cx: 0.08 + j(0.02),
    cy: -0.15 + j(0.02),
    cz: -0.2 + j(0.03),
    rx: 0.2 * heartScale,
    ry: 0.18 * heartScale,
    rz: 0.3 * heartScale,
    tissue: HEART,
  };
  if (has('Pericardial effusion'))
    prims.push({ ...heart, rx: heart.rx * 1.2, ry: heart.ry * 1.2, rz: heart.rz * 1.15, tissue: FLUID });
  prims.push(heart);
  const blob = (cx: number, cy: number, cz: number, r: number, t: number, rz = r * 1.4): void => {
    prims.push({ cx: cx + j(0.03), cy: cy + j(0.03), cz: cz + j(0.05), rx: r, ry: r, rz, tissue: t });
  };
  if (has('Medical material'))
    prims.push({ cx: 0.12, cy: -0.3, cz: 0.35, rx: 0.025, ry: 0.025, rz: 0.5, tissue: METAL });
  if (has('Arterial wall calcification')) {
    blob(-0.16, 0.12, 0.25, 0.03, CALC);
    blob(-0.05, 0.17, -0.3, 0.03, CALC);
  }
  if (has('Coronary artery wall calcification'))
    blob(heart.cx + heart.rx * 0.7, heart.cy - heart.ry * 0.6, heart.cz + 0.05, 0.03, CALC);
  if (has('Hiatal hernia')) blob(0.02, 0.3, -0.78, 0.09, MIXED);
  if (has('Lymphadenopathy')) {
    blob(-0.12, -0.02, 0.35, 0.05, NODE);
    blob(0.12, -0.02, 0.3, 0.05, NODE);
  }
  if (has('Atelectasis')) blob(-0.4, 0.33, -0.55, 0.1, DENSE);
  if (has('Lung nodule')) blob(-0.42, -0.1, 0.35, 0.04, NODE, 0.05);
  if (has('Lung opacity')) blob(0.36, 0.05, 0.0, 0.13, GGO);
  if (has('Pulmonary fibrotic sequela')) blob(0.52, -0.12, 0.55, 0.07, MIXED);
  if (has('Peribronchial thickening')) {
    blob(-0.17, 0.0, 0.12, 0.055, DENSE);
    prims.push({ ...prims[prims.length - 1], rx: 0.03, ry: 0.03, tissue: AIRWAY });
  }
  if (has('Consolidation')) blob(-0.33, 0.15, -0.2, 0.12, DENSE);
  if (has('Bronchiectasis')) {
    blob(0.3, 0.22, -0.45, 0.075, SOFT);
    prims.push({ ...prims[prims.length - 1], rx: 0.055, ry: 0.055, rz: 0.075, tissue: AIRWAY });
  }
  // Custom classes (not CT-RATE): a blob at a place derived from the class index.
  classNames.forEach((name, c) => {
    if (PREVALENCE[name] === undefined && labels[c] > 0.5) {
      const a = (c * 2.399963) % (2 * Math.PI);
      blob(0.45 * Math.cos(a), 0.3 * Math.sin(a), ((c * 0.37) % 1.4) - 0.7, 0.07, c % 2 ? DENSE : GGO);
    }
  });

  // Noise rows: one per tissue, D + NOISE_PAD values, so each column copies a shifted window.
  const rows = tissues.map(({ v, sd }) => {
    const row = new Uint16Array(D + NOISE_PAD);
    for (let k = 0; k < row.length; k++)
      row[k] = float32ToFloat16Bits(Math.max(-1, Math.min(1, v + sd * rng.normal())));
    return row;
  });
  const salt = rng.nextUint32();

  const half = D / 2;
  for (let h = 0; h < H; h++) {
    const y = ((h + 0.5) / H) * 2 - 1;
    for (let w = 0; w < W; w++) {
      const x = ((w + 0.5) / W) * 2 - 1;
      const base = (h * W + w) * D;
      const o = (Math.imul(h, 7919) ^ Math.imul(w, 104729) ^ salt) & (NOISE_PAD - 1);
      for (const p of prims) {
        if (p.yMin !== undefined && y < p.yMin) continue;
        const dx = (x - p.cx) / p.rx;
        const dy = (y - p.cy) / p.ry;
        const s = 1 - dx * dx - dy * dy;
        if (s <= 0) continue;
        let d0 = 0;
        let d1 = D - 1;
        if (p.rz !== Infinity) {
          const hz = p.rz * Math.sqrt(s);
          d0 = Math.max(0, Math.ceil((p.cz - hz + 1) * half - 0.5));
          d1 = Math.min(D - 1, Math.floor((p.cz + hz + 1) * half - 0.5));
          if (d0 > d1) continue;
        }
        let t = p.tissue;
        if (p.grid && (h % p.grid.period === 0 || w % p.grid.period === 0)) t = p.grid.tissue;
        if (p.bands && t === p.tissue) {
          const n = p.bands.slices;
          for (let a = d0; a <= d1;) {
            const band = Math.floor(a / n);
            const b = Math.min(d1, (band + 1) * n - 1);
            const row = rows[band % 2 ? p.bands.tissue : t];
            vol.set(row.subarray(o + a, o + b + 1), base + a);
            a = b + 1;
          }
        } else {
          vol.set(rows[t].subarray(o + d0, o + d1 + 1), base + d0);
        }
      }
    }
  }
  return vol;
}

// ---- writing ---------------------------------------------------------------------------------------------

function csvField(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/** Brace pattern for K shards in `dir`. */
export function synthPattern(dir: string, shards: number): string {
  return path.join(dir, `shard-{${'0'.repeat(6)}..${String(shards - 1).padStart(6, '0')}}.tar`);
}

/** Writes a synthetic dataset (see module comment). Deterministic per options. */
export async function writeSynthDataset(opts: SynthOptions): Promise<SynthResult> {
  const { samples: N, shards: K, seed } = opts;
  const shape = opts.shape;
  if (!Number.isInteger(N) || N < 1)
    throw new CtclipError('ARGUMENT_ERROR', `--samples must be a positive integer, got ${N}`);
  if (!Number.isInteger(K) || K < 1 || K > N)
    throw new CtclipError('ARGUMENT_ERROR', `--shards must be an integer in [1, samples=${N}], got ${K}`);
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `--shape must be three positive integers H,W,D, got ${JSON.stringify(shape)}`,
    );
  }
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new CtclipError('ARGUMENT_ERROR', `--seed must be a non-negative integer, got ${seed}`);
  const classNames = [...(opts.classes ?? CT_RATE_CLASSES)];
  const C = classNames.length;
  const reportFn = opts.reportFn ?? defaultSynthReport;
  try {
    fs.mkdirSync(opts.out, { recursive: true });
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${opts.out}: cannot create the output folder (${(e as Error).message})`, {
      cause: e,
    });
  }

  const perShard = Math.ceil(N / K);
  const shardPaths: string[] = [];
  const studyIds: string[] = [];
  const allLabels = new Float32Array(N * C);
  const reports: SynthReport[] = [];
  for (let k = 0; k < K; k++) {
    const file = path.join(opts.out, `shard-${String(k).padStart(6, '0')}.tar`);
    shardPaths.push(file);
    const tw = new TarWriter(file);
    try {
      for (let i = k * perShard; i < Math.min(N, (k + 1) * perShard); i++) {
        const rng = Rng.derive(seed, 'synth-sample', i);
        const labels = synthLabels(classNames, rng);
        const report = reportFn(labels, classNames, rng, opts.prompts ?? DEFAULT_PROMPTS);
        const vol = phantomVolume(shape, labels, classNames, rng);
        const studyId = `synth_${i + 1}_a_1`;
        const key = `${String(k).padStart(6, '0')}_${String(i).padStart(6, '0')}`;
        // Canonical member order (TarWriter in the reference sorts by extension): bin, json, labels, txt.
        tw.add(`${key}.bin`, new Uint8Array(vol.buffer, vol.byteOffset, vol.byteLength));
        tw.add(
          `${key}.json`,
          Buffer.from(JSON.stringify({ study_id: studyId, volume_shape: shape, volume_dtype: 'float16' })),
        );
        tw.add(`${key}.labels`, new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
        tw.add(`${key}.txt`, Buffer.from(`${report.findings}\n${report.impressions}`, 'utf8'));
        studyIds.push(studyId);
        allLabels.set(labels, i * C);
        reports.push(report);
        opts.onProgress?.(i + 1, N);
      }
      tw.close();
    } catch (e) {
      tw.abort();
      throw e;
    }
  }

  const vol = (id: string): string => `${id}.nii.gz`;
  writeFileAtomicSync(
    path.join(opts.out, 'reports.csv'),
    'VolumeName,Findings_EN,Impressions_EN\n' +
      studyIds
        .map((id, i) => [vol(id), reports[i].findings, reports[i].impressions].map(csvField).join(','))
        .join('\n') +
      '\n',
  );
  writeFileAtomicSync(
    path.join(opts.out, 'labels.csv'),
    ['VolumeName', ...classNames].map(csvField).join(',') +
      '\n' +
      studyIds
        .map((id, i) =>
          [vol(id), ...Array.from(allLabels.subarray(i * C, (i + 1) * C), (v) => (v > 0.5 ? 1 : 0))]
            .map(csvField)
            .join(','),
        )
        .join('\n') +
      '\n',
  );
  writeFileAtomicSync(
    path.join(opts.out, 'metadata.csv'),
    'VolumeName,RescaleSlope,RescaleIntercept,XYSpacing,ZSpacing\n' +
      studyIds.map((id) => [vol(id), 1, 0, '[0.75, 0.75]', 1.5].map(csvField).join(',')).join('\n') +
      '\n',
  );
  const corpus = reports.map((r) => cleanReport(`${r.findings}\n${r.impressions}`));
  writeFileAtomicSync(
    path.join(opts.out, 'vocab.txt'),
    vocabToText(buildWordPieceVocab(corpus, { vocabSize: opts.vocabSize ?? 4096 })),
  );

  const pattern = synthPattern(opts.out, K);
  const { index, indexPath } = await indexShards(pattern, { classNames });
  return { shardPaths, pattern, indexPath, index, studyIds, labels: allLabels, reports, classNames };
}
