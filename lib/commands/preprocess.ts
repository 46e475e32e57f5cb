/**
 * `ctclip preprocess --volumes DIR --reports reports.csv --labels labels.csv [--metadata metadata.csv] --out DIR
 *   [--split train|valid] [--samples-per-shard 100] [--workers N] [--rescale auto|always|never]
 *   [--spacing 0.75,0.75,1.5] [--shape 480,480,240] [--window -1000,1000] [--reorient none|LPS|RAS]
 *   [--max-voxels N] [--max-resampled-voxels N] [--force]`
 *
 * CT-RATE NIfTI volumes → canonical shards + index + preprocess_report.json (lib/preprocess/dataset.ts,
 * docs/preprocess.md). Exit 0 on success (also when some volumes were skipped or failed: they are listed in
 * the report), 1 on runtime failure, 2 on bad arguments.
 */
import { CtclipError } from '../errors';
import { configureThreads } from '../runtime';
import {
  choiceOption,
  intOption,
  numberList,
  parseCommandArgs,
  positiveList,
  runCommand,
  startCommand,
} from './common';
import { VOLUME_OPTIONS, voxelLimitOptions } from './volume-options';
import { defaultWorkers, preprocessDataset, REPORT_FILE, type Progress } from '../preprocess/dataset';
import type { RescaleMode } from '../preprocess/pipeline';
import type { Reorient } from '../preprocess/orientation';

const USAGE = `usage: ctclip preprocess --volumes DIR --reports reports.csv --labels labels.csv [--metadata metadata.csv] --out DIR [options]

  --volumes DIR            NIfTI volumes (*.nii.gz, *.nii), searched recursively (CT-RATE layout works as is)
  --reports FILE           reports CSV (VolumeName, Findings_EN, Impressions_EN)
  --labels FILE            labels CSV (VolumeName + classes; class names from its header)
  --metadata FILE          metadata CSV (VolumeName, RescaleSlope, RescaleIntercept, XYSpacing, ZSpacing);
                           its spacing wins over the NIfTI pixdim (warning on > 1 % disagreement)
  --out DIR                output: shard-NNNNNN.tar, ctclip-index.json, preprocess_report.json
  --split S                only volumes whose name starts with S_ (train, valid)
  --samples-per-shard N    default 100
  --workers N              volumes in flight at once (default 1 on <= 3 CPUs, else CPUs/2 up to 4)
  --threads N              libtorch intra-op threads (default CTCLIP_THREADS or the CPU count)
  --rescale MODE           auto (default) | always | never: apply the metadata RescaleSlope/Intercept
  --spacing X,Y,Z          target spacing in mm for H, W, D (default 0.75,0.75,1.5)
  --shape H,W,D            output shape (default 480,480,240)
  --window LO,HI           HU clip window (default -1000,1000)
  --reorient MODE          none (default: H, W, D = NIfTI i, j, k as stored) | RAS | LPS
  --max-voxels N           largest stored grid ni·nj·nk per volume (default 536870912 = 2^29), checked from the
                           NIfTI header before reading; a larger volume fails and is listed in the report
  --max-resampled-voxels N largest grid after resampling to --spacing (default 536870912 = 2^29)
  --force                  redo everything when --out holds shards of a different plan
  --quiet                  no progress output`;

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

export function run(argv: string[]): Promise<number> {
  return runCommand('preprocess', USAGE, async () => {
    const { values, positionals } = parseCommandArgs(argv, {
      volumes: { type: 'string' },
      reports: { type: 'string' },
      labels: { type: 'string' },
      metadata: { type: 'string' },
      out: { type: 'string' },
      split: { type: 'string' },
      'samples-per-shard': { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      ...VOLUME_OPTIONS,
      shape: { type: 'string' },
      force: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
    });
    if (!startCommand(values, positionals, USAGE, ['volumes', 'reports', 'labels', 'out'])) return 0;
    const rescale = choiceOption<RescaleMode>('rescale', values.rescale, ['auto', 'always', 'never']);
    const reorient = choiceOption<Reorient>('reorient', values.reorient, ['none', 'RAS', 'LPS']);
    const spacing = positiveList('spacing', values.spacing, 3) ?? [0.75, 0.75, 1.5];
    const shape = numberList('shape', values.shape, 3) ?? [480, 480, 240];
    if (!shape.every((s) => Number.isInteger(s) && s > 0))
      throw new CtclipError('ARGUMENT_ERROR', `--shape must be three positive integers, got '${values.shape}'`);
    const window = numberList('window', values.window, 2) ?? [-1000, 1000];
    if (!(window[0] < window[1]))
      throw new CtclipError('ARGUMENT_ERROR', `--window must be LO,HI with LO < HI, got '${values.window}'`);
    if (values.split !== undefined && !/^[A-Za-z0-9]+$/.test(values.split))
      throw new CtclipError('ARGUMENT_ERROR', `--split must be a name like train or valid, got '${values.split}'`);
    const samplesPerShard = intOption('samples-per-shard', values['samples-per-shard'], 100);
    const { maxVoxels, maxResampledVoxels } = voxelLimitOptions(values);
    const workers = values.workers !== undefined ? intOption('workers', values.workers) : defaultWorkers();
    configureThreads(values.threads !== undefined ? intOption('threads', values.threads) : undefined);

    const quiet = values.quiet;
    const tty = process.stderr.isTTY;
    let lastLine = 0;
    const onProgress = quiet
      ? undefined
      : (p: Progress): void => {
          const now = Date.now();
          const last = p.done === p.total;
          if (!tty && !last && now - lastLine < 10000) return;
          lastLine = now;
          const line = `preprocess: ${p.done}/${p.total} volumes, ${p.rate.toFixed(2)} volumes/s, ETA ${fmtTime(p.eta)}`;
          process.stderr.write(tty ? `\r${line}\x1b[K${last ? '\n' : ''}` : `${line}\n`);
        };
    const r = await preprocessDataset({
      volumes: values.volumes!,
      reports: values.reports!,
      labels: values.labels!,
      metadata: values.metadata,
      out: values.out!,
      split: values.split,
      samplesPerShard,
      workers,
      rescale,
      spacing: spacing as [number, number, number],
      shape: shape as [number, number, number],
      window: window as [number, number],
      reorient,
      maxVoxels,
      maxResampledVoxels,
      force: values.force,
      onProgress,
      onWarning: quiet ? () => undefined : (m) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}warning: ${m}\n`),
    });
    const c = r.counts;
    process.stdout.write(
      `wrote ${c.written} volumes (${shape.join('×')} float16) in ${c.shards} shard(s) to ${values.out}` +
        (c.shardsReused ? ` (${c.shardsReused} complete shard(s) kept from a previous run)` : '') +
        `\nprocessed ${r.throughput.volumesProcessed} volumes in ${r.throughput.seconds.toFixed(1)} s (${r.throughput.volumesPerSecond.toFixed(2)} volumes/s)\n` +
        `skipped ${c.skipped} (no report/labels row), failed ${c.failed}, with warnings ${c.withWarnings}; ` +
        `${r.rowsWithoutVolume.count} report row(s) without a volume file\n` +
        `pattern: ${r.pattern}\nindex: ${r.indexPath}\nreport: ${values.out}/${REPORT_FILE}\n`,
    );
    return 0;
  });
}
