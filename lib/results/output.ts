/**
 * Where an evaluation's four files go, from one `--output` value:
 *
 * - an existing folder, or any path not ending in `.json`: that folder holds `results.json`, `predictions.csv`,
 *   `per_class.csv` and `report.html` (created if needed);
 * - `X.json` (not an existing folder): the results are written to exactly `X.json`, as the reference's
 *   `--output results/inference_results.json` did, and the three other files go beside it under their usual
 *   names (`predictions.csv`, `per_class.csv`, `report.html` in X's folder).
 *
 * A `.json` path that is already a folder stays a folder: an earlier version made one out of every `--output`,
 * and turning that folder's contents into strays would be worse than keeping its layout.
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';

/** The file names inside the output folder. */
export const EVALUATION_FILES = {
  results: 'results.json',
  predictions: 'predictions.csv',
  perClass: 'per_class.csv',
  report: 'report.html',
} as const;

/** Absolute paths of the four files. */
export interface EvaluationFiles {
  results: string;
  predictions: string;
  perClass: string;
  report: string;
}

function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The four paths for an `--output` value (see the module comment). Looks at the file system, writes nothing. */
export function evaluationFiles(output: string): EvaluationFiles {
  const abs = path.resolve(output);
  const asFile = /\.json$/i.test(abs) && !isFolder(abs);
  const dir = asFile ? path.dirname(abs) : abs;
  return {
    results: asFile ? abs : path.join(dir, EVALUATION_FILES.results),
    predictions: path.join(dir, EVALUATION_FILES.predictions),
    perClass: path.join(dir, EVALUATION_FILES.perClass),
    report: path.join(dir, EVALUATION_FILES.report),
  };
}

/**
 * Fails (IO_ERROR) before anything is written when one of the targets is a folder, e.g. the `results/results.json/`
 * that an earlier `--output results/results.json` made: the rename would otherwise fail with a bare EISDIR after the
 * other files were already replaced.
 */
export function checkEvaluationTargets(files: EvaluationFiles): void {
  for (const file of Object.values(files)) {
    if (isFolder(file))
      throw new CtclipError(
        'IO_ERROR',
        `${file} is a folder, but the evaluation writes a file there; move the folder away (an older ctclip made a folder of every --output, e.g. --output ${path.basename(file)}) or choose another --output`,
      );
  }
}
