/**
 * `ctclip predict VOLUME.nii[.gz] --checkpoint W --config C [--json] [--spacing X,Y,Z] [--source-spacing X,Y,Z]
 * [--rescale MODE] [--slope S --intercept I] [--window LO,HI] [--reorient none|LPS|RAS] [--max-voxels N]
 * [--max-resampled-voxels N] [--set k=v] [--threads N]`:
 * preprocesses one study in memory (`preprocessVolumeFile`, docs/preprocess.md) to the model's input geometry —
 * shape (image_size, image_size, frames) from `model.image_encoder`, spacing 0.75,0.75,1.5 mm unless given —
 * and prints the zero-shot P(present) per class (prompts from `validation.prompts`, the same scoring as
 * validation: lib/zeroshot/zero-shot.ts). Class names: data.class_names, else the data.labels_valid header, else
 * the 18 CT-RATE classes.
 *
 * The NIfTI header is checked before any voxel is read (docs/limits.md): the stored and resampled grid limits,
 * and pixdim[1..3] finite and non-zero unless `--source-spacing` gives the spacing.
 * `--json` prints one JSON object on stdout (everything else goes to stderr).
 * Exit codes: 0 done · 1 runtime failure · 2 bad arguments/config.
 */
import * as path from 'path';
import { loadConfig } from '../config/load';
import { CT_RATE_CLASSES } from '../data/classes';
import { loadInferenceModel, resolveClassNames } from '../model/inference-model';
import { encodePrompts, scoreVolumes } from '../zeroshot/zero-shot';
import { toStrictJson } from '../io/strict-json';
import type { Reorient } from '../preprocess/orientation';
import {
  DEFAULT_MAX_RESAMPLED_VOXELS,
  DEFAULT_MAX_VOXELS,
  DEFAULT_SPACING,
  preprocessVolumeFile,
  type RescaleMode,
} from '../preprocess/pipeline';
import type { Vec3 } from '../preprocess/resample';
import { configureThreads } from '../runtime';
import { tensorFromBuffer } from '../tensor';
import {
  choiceOption,
  intOption,
  numberList,
  numberOption,
  parseCommandArgs,
  positiveList,
  runCommand,
  startCommand,
} from './common';
import { VOLUME_OPTIONS, voxelLimitOptions } from './volume-options';
import { resolveCheckpointArg } from '../checkpoint/shortcut';

export const USAGE = `usage: ctclip predict VOLUME.nii.gz --checkpoint W --config C [--json] [--spacing X,Y,Z] [--rescale MODE]
                      [--source-spacing X,Y,Z] [--slope S] [--intercept I] [--window LO,HI] [--reorient none|LPS|RAS]
                      [--max-voxels N] [--max-resampled-voxels N] [--set key.path=value ...] [--threads N]

  VOLUME             one CT study, NIfTI-1 (.nii or .nii.gz)
  --checkpoint W     our model.safetensors, a checkpoint folder, a run directory, RUN_DIR:best or RUN_DIR:latest, or a torch .pt
  --config C         YAML config: model.* (input shape = image_size × image_size × frames), validation.prompts,
                     class names (data.class_names or data.labels_valid; default the 18 CT-RATE classes)
  --json             print one JSON object (probabilities, geometry, timings) on stdout
  --spacing X,Y,Z    target spacing in mm for H, W, D (default 0.75,0.75,1.5)
  --source-spacing X,Y,Z   the volume's voxel size in mm along NIfTI i, j, k, instead of its pixdim[1..3]
                     (required when pixdim is 0, NaN or infinite)
  --rescale MODE     auto (default) | always | never: apply --slope/--intercept (the metadata CSV's
                     RescaleSlope/RescaleIntercept) — 'auto' decides from the air voxels
  --slope S, --intercept I   DICOM rescale values (default 1, 0)
  --window LO,HI     HU clip window (default -1000,1000)
  --reorient MODE    none (default: H, W, D = NIfTI i, j, k as stored) | RAS | LPS
  --max-voxels N     largest stored grid ni·nj·nk accepted (default ${DEFAULT_MAX_VOXELS} = 2^29), checked from the header
  --max-resampled-voxels N   largest grid after resampling to --spacing (default ${DEFAULT_MAX_RESAMPLED_VOXELS} = 2^29)
  --set k=v          override a config value (repeatable)
  --threads N        libtorch intra-op threads

exit codes: 0 done · 1 runtime failure · 2 bad arguments/config`;

export function run(argv: string[]): Promise<number> {
  return runCommand('predict', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      checkpoint: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...VOLUME_OPTIONS,
      'source-spacing': { type: 'string' },
      slope: { type: 'string' },
      intercept: { type: 'string' },
      set: { type: 'string', multiple: true },
      threads: { type: 'string' },
    });
    if (!startCommand(values, positionals, USAGE, ['checkpoint', 'config'], 'VOLUME (a .nii or .nii.gz file)'))
      return 0;
    const file = positionals[0];
    const spacing = (positiveList('spacing', values.spacing, 3) as Vec3 | undefined) ?? DEFAULT_SPACING;
    const voxelSpacing = positiveList('source-spacing', values['source-spacing'], 3) as Vec3 | undefined;
    const { maxVoxels, maxResampledVoxels } = voxelLimitOptions(values);
    const window = numberList('window', values.window, 2) as [number, number] | undefined;
    const rescale = choiceOption<RescaleMode>('rescale', values.rescale, ['auto', 'always', 'never']);
    const reorient = choiceOption<Reorient>('reorient', values.reorient, ['none', 'LPS', 'RAS']);
    const slope = numberOption('slope', values.slope);
    const intercept = numberOption('intercept', values.intercept);
    const overrides = [...(values.set ?? [])];
    if (values.threads !== undefined) overrides.push(`training.threads=${intOption('threads', values.threads)}`);
    // The files the config names for inference (vocab, labels) are checked here: exit 2 naming the key.
    const { config: cfg } = loadConfig(values.config, { overrides, checkFiles: 'predict' });
    const json = values.json === true;
    const log = (...lines: string[]): void => {
      for (const l of lines) (json ? process.stderr : process.stdout).write(`${l}\n`);
    };

    const ie = cfg.model.image_encoder;
    const shape: Vec3 = [ie.image_size, ie.image_size, ie.frames];
    const classNames =
      cfg.data.class_names || cfg.data.labels_valid ? resolveClassNames(cfg, null) : [...CT_RATE_CLASSES];
    const threads = configureThreads(cfg.training.threads);
    const t0 = performance.now();
    const pre = await preprocessVolumeFile(file, {
      spacing,
      shape,
      rescale,
      slope,
      intercept,
      window,
      reorient,
      voxelSpacing,
      maxVoxels,
      maxResampledVoxels,
    });
    const tPre = (performance.now() - t0) / 1000;
    for (const w of pre.meta.warnings) process.stderr.write(`warning: ${file}: ${w}\n`);
    const resolved = await resolveCheckpointArg(values.checkpoint);
    if (resolved.shortcut) log(`Checkpoint ${values.checkpoint} → ${resolved.path}`);
    const { model, tokenizer, checkpoint } = await loadInferenceModel(cfg, resolved.path, log);
    let probabilities: Float32Array;
    const t1 = performance.now();
    try {
      const prompts = await encodePrompts(model, tokenizer, classNames, {
        prompts: cfg.validation.prompts,
        maxLength: cfg.model.text_encoder.max_length,
      });
      const volume = tensorFromBuffer(pre.volume, 'float16', [1, ...shape]);
      try {
        probabilities = await scoreVolumes(model, volume, prompts, classNames.length);
      } finally {
        volume.dispose();
        prompts.dispose();
      }
    } finally {
      model.dispose();
    }
    const tModel = (performance.now() - t1) / 1000;
    const studyId = path.basename(file).replace(/\.nii(\.gz)?$/i, '');
    const m = pre.meta;
    if (json) {
      const probs: Record<string, number> = {};
      classNames.forEach((c, i) => (probs[c] = probabilities[i]));
      const outJson = {
        study_id: studyId,
        file: path.resolve(file),
        checkpoint,
        prompts: cfg.validation.prompts,
        probabilities: probs,
        preprocess: {
          shape: pre.shape,
          target_spacing: m.targetSpacing,
          source_spacing: m.sourceSpacing,
          spacing_source: m.spacingSource,
          stored_shape: m.storedShape,
          resampled_size: m.resampledSize,
          rescale: m.rescale,
          orientation: m.orientation,
          warnings: m.warnings,
        },
        seconds: { preprocess: tPre, model: tModel },
        threads,
      };
      process.stdout.write(`${toStrictJson(outJson, 2)}\n`);
    } else {
      log(
        `${studyId}: stored ${m.storedShape.join('×')} at ${m.sourceSpacing.map((x) => +x.toFixed(4)).join(', ')} mm → resampled ${m.resampledSize.join('×')} at ${m.targetSpacing.join(', ')} mm → ${pre.shape.join('×')} ` +
          `(rescale ${m.rescale.applied ? 'applied' : 'not applied'}; ${tPre.toFixed(2)} s)`,
        `Zero-shot P(present), prompts '${cfg.validation.prompts.positive}' / '${cfg.validation.prompts.negative}' (${tModel.toFixed(2)} s, ${threads} threads):`,
      );
      const width = Math.max(...classNames.map((c) => c.length));
      classNames.forEach((c, i) => log(`  ${c.padEnd(width)}  ${probabilities[i].toFixed(4)}`));
    }
    return 0;
  });
}
