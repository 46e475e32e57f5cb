/**
 * RFC 4180 CSV: fields separated by commas, records by CRLF; a field containing a comma, a double quote, CR or LF
 * (or leading/trailing spaces, which some readers trim) is enclosed in double quotes, with every inner double
 * quote doubled. Numbers are written in JavaScript's shortest round-trip form (`String(v)`, e.g. 0.1, 1e-7), so
 * parsing a cell gives back the exact float64; NaN, ±Infinity, null and undefined become an EMPTY cell.
 */
import { CtclipError } from '../errors';

/** A cell value. */
export type CsvCell = string | number | null | undefined;

/** The record separator we write (RFC 4180). */
export const CSV_EOL = '\r\n';

/** One field, quoted when needed. */
export function csvField(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const text = String(value);
  if (/[",\r\n]/.test(text) || /^\s|\s$/.test(text)) return `"${text.replace(/"/g, '""')}"`;
  return text;
}

/** One record, without the line ending. */
export function csvRecord(cells: readonly CsvCell[]): string {
  return cells.map(csvField).join(',');
}

/** A whole document: every record followed by CRLF. */
export function formatCsv(rows: ReadonlyArray<readonly CsvCell[]>): string {
  let out = '';
  for (const row of rows) out += csvRecord(row) + CSV_EOL;
  return out;
}

/**
 * Parses RFC 4180 CSV into rows of strings (quotes removed, doubled quotes undone). Accepts CRLF or LF record
 * ends and a missing final line ending. Throws DATA_ERROR on a stray quote or an unterminated quoted field.
 */
export function parseCsv(text: string, what = 'csv'): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let line = 1;
  const n = text.length;
  let atFieldStart = true;
  let rowHasContent = false;
  while (i < n) {
    const ch = text[i];
    if (atFieldStart && ch === '"') {
      // Quoted field.
      const startLine = line;
      i++;
      for (;;) {
        if (i >= n) throw new CtclipError('DATA_ERROR', `${what}: line ${startLine}: unterminated quoted field`);
        const c = text[i];
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\n') line++;
        field += c;
        i++;
      }
      if (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        throw new CtclipError('DATA_ERROR', `${what}: line ${line}: unexpected character ${JSON.stringify(text[i])} after a closing quote`);
      }
      atFieldStart = false;
      rowHasContent = true;
      continue;
    }
    if (ch === ',') {
      row.push(field);
      field = '';
      atFieldStart = true;
      rowHasContent = true;
      i++;
      continue;
    }
    if (ch === '\r' || ch === '\n') {
      if (rowHasContent || field.length > 0) {
        row.push(field);
        rows.push(row);
      }
      row = [];
      field = '';
      atFieldStart = true;
      rowHasContent = false;
      i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      continue;
    }
    if (ch === '"') throw new CtclipError('DATA_ERROR', `${what}: line ${line}: stray double quote inside an unquoted field`);
    field += ch;
    atFieldStart = false;
    rowHasContent = true;
    i++;
  }
  if (rowHasContent || field.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
