/**
 * `predictions.csv`: one row per study, so that every metric can be recomputed offline.
 *
 * Header: `study_id`, then one probability column per class named exactly `<class>` (P(present), full float64
 * precision), then one label column per class named `label:<class>` (0 or 1), both in class order. RFC 4180
 * quoting (see csv.ts): class names and study ids may contain commas, quotes or newlines.
 */
import { CtclipError } from '../errors';
import type { MatrixInput } from '../metrics';
import { type CsvCell, formatCsv } from '../io/csv';

/** The header of predictions.csv for these classes. Throws ARGUMENT_ERROR if two columns would share a name. */
export function predictionsHeader(classNames: readonly string[]): string[] {
  const header = ['study_id', ...classNames, ...classNames.map((c) => `label:${c}`)];
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h))
      throw new CtclipError(
        'ARGUMENT_ERROR',
        `predictions.csv: column name "${h}" would appear twice; rename the class`,
      );
    seen.add(h);
  }
  return header;
}

/** The text of predictions.csv. Inputs must already be validated (see buildEvaluationResults). */
export function predictionsCsv(
  studyIds: readonly string[],
  classNames: readonly string[],
  scores: MatrixInput,
  labels: MatrixInput,
): string {
  const c = classNames.length;
  const rows: CsvCell[][] = [predictionsHeader(classNames)];
  for (let i = 0; i < studyIds.length; i++) {
    const row: CsvCell[] = [studyIds[i]];
    for (let k = 0; k < c; k++) row.push(scores[i][k]);
    for (let k = 0; k < c; k++) row.push(labels[i][k]);
    rows.push(row);
  }
  return formatCsv(rows);
}
