/**
 * `writeEvaluation(outDir, input)`: computes the evaluation and writes its four files into `outDir` (created if
 * needed): `results.json`, `predictions.csv`, `per_class.csv`, `report.html`. Formats: docs/evaluation.md.
 *
 * Each file is written to a temporary sibling and renamed into place, so an interrupted run never leaves a
 * truncated file under the final name. The inference command is then only "collect scores → writeEvaluation →
 * print formatEvaluationSummary(results)".
 */
import * as fs from 'fs';
import * as path from 'path';
import { CtclipError } from '../errors';
import { toStrictJson } from '../metrics';
import { perClassCsv } from './per-class';
import { predictionsCsv } from './predictions';
import { renderReport } from './report';
import { EvaluationInput, EvaluationResults, buildEvaluationResults, classRocCurves } from './results';
import { writeFileAtomic } from '../io/atomic';

/** The file names inside the output folder. */
export const EVALUATION_FILES = {
  results: 'results.json',
  predictions: 'predictions.csv',
  perClass: 'per_class.csv',
  report: 'report.html',
} as const;

export interface EvaluationFiles {
  results: string;
  predictions: string;
  perClass: string;
  report: string;
}

/** The text of results.json: strict JSON (NaN/Infinity → null), 2-space indent, final newline. */
export function resultsJson(results: EvaluationResults): string {
  return toStrictJson(results, 2) + '\n';
}

/**
 * Evaluates `input` (see `EvaluationInput`) and writes the four files. Validation (shapes, finite scores, 0/1
 * labels, one study id per row, unique column names) happens before anything is written. Returns the absolute
 * paths and the results (e.g. for `formatEvaluationSummary`).
 */
export async function writeEvaluation(
  outDir: string,
  input: EvaluationInput,
): Promise<{ files: EvaluationFiles; results: EvaluationResults }> {
  const results = buildEvaluationResults(input);
  const dir = path.resolve(outDir);
  const texts = {
    results: resultsJson(results),
    predictions: predictionsCsv(input.studyIds, input.classNames, input.scores, input.labels),
    perClass: perClassCsv(results),
    report: renderReport(results, classRocCurves(input, results)),
  };
  try {
    await fs.promises.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CtclipError('IO_ERROR', `${dir}: cannot create the output folder (${(e as Error).message})`, {
      cause: e,
    });
  }
  const files = {} as EvaluationFiles;
  for (const key of Object.keys(EVALUATION_FILES) as Array<keyof EvaluationFiles>) {
    files[key] = path.join(dir, EVALUATION_FILES[key]);
    await writeFileAtomic(files[key], texts[key]);
  }
  return { files, results };
}
