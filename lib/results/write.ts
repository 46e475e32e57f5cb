/**
 * `writeEvaluation(output, input)`: computes the evaluation and writes its four files: `results.json`,
 * `predictions.csv`, `per_class.csv`, `report.html`. `output` is a folder (created if needed) or `X.json`, which
 * receives the results with the other three beside it (output.ts). Formats: docs/evaluation.md.
 *
 * Each file is written to a temporary sibling and renamed into place, so an interrupted run never leaves a
 * truncated file under the final name. The inference command is then only "collect scores → writeEvaluation →
 * print formatEvaluationSummary(results)".
 */
import { toStrictJson } from '../metrics';
import { perClassCsv } from './per-class';
import { predictionsCsv } from './predictions';
import { renderReport } from './report';
import { EvaluationInput, EvaluationResults, buildEvaluationResults, classRocCurves } from './results';
import { writeFileAtomic } from '../io/atomic';
import { EvaluationFiles, checkEvaluationTargets, evaluationFiles } from './output';

export { EVALUATION_FILES, evaluationFiles, type EvaluationFiles } from './output';

/** The text of results.json: strict JSON (NaN/Infinity → null), 2-space indent, final newline. */
export function resultsJson(results: EvaluationResults): string {
  return toStrictJson(results, 2) + '\n';
}

/**
 * Evaluates `input` (see `EvaluationInput`) and writes the four files to `output` (a folder or `X.json`, see
 * `evaluationFiles`). Validation (shapes, finite scores, 0/1 labels, one study id per row, unique column names, no
 * folder in the way of a file) happens before anything is written. Returns the absolute paths and the results
 * (e.g. for `formatEvaluationSummary`).
 */
export async function writeEvaluation(
  output: string,
  input: EvaluationInput,
): Promise<{ files: EvaluationFiles; results: EvaluationResults }> {
  const results = buildEvaluationResults(input);
  const files = evaluationFiles(output);
  const texts: Record<keyof EvaluationFiles, string> = {
    results: resultsJson(results),
    predictions: predictionsCsv(input.studyIds, input.classNames, input.scores, input.labels),
    perClass: perClassCsv(results),
    report: renderReport(results, classRocCurves(input, results)),
  };
  checkEvaluationTargets(files);
  // writeFileAtomic creates the folder and names the path in its IO_ERROR.
  for (const key of Object.keys(texts) as Array<keyof EvaluationFiles>) await writeFileAtomic(files[key], texts[key]);
  return { files, results };
}
