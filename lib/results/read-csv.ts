import { parseCsvRows } from '../io/csv';

/** Reads back a CSV file that ctclip wrote (predictions.csv, per_class.csv) as rows, strictly. */
export function parseOwnCsv(text: string, file = 'csv'): string[][] {
  return parseCsvRows(text, file, { strict: true });
}
