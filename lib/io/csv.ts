/**
 * RFC 4180 CSV, read and written in one place.
 *
 * Reading (the CT-RATE CSVs: reports carry commas, double quotes and newlines inside quoted fields): quoted
 * fields spanning lines, `""` escapes, CRLF/LF/CR line ends, a UTF-8 BOM, a missing final newline; blank lines
 * are skipped. Lenient by default like Python's csv module (a quote inside an unquoted field, or text after a
 * closing quote, is kept literally); `strict` refuses both (for files we wrote ourselves).
 *
 * Writing: fields separated by commas, records by CRLF; a field containing a comma, a double quote, CR or LF
 * (or leading/trailing spaces, which some readers trim) is enclosed in double quotes, with every inner double
 * quote doubled. Numbers are written in JavaScript's shortest round-trip form (`String(v)`, e.g. 0.1, 1e-7), so
 * parsing a cell gives back the exact float64; NaN, ±Infinity, null and undefined become an EMPTY cell.
 */
import * as fs from 'fs';
import { CtclipError } from '../errors';

export interface CsvRow {
  /** 1-based physical line where the record starts (for messages). */
  line: number;
  fields: string[];
}

export interface CsvParseOptions {
  /** Refuse a quote inside an unquoted field and text after a closing quote (default false: keep them). */
  strict?: boolean;
}

/** Parses CSV text into records. Throws DATA_ERROR (naming `file` and the line) on an unterminated quote. */
export function parseCsv(text: string, file = '<csv>', opts: CsvParseOptions = {}): CsvRow[] {
  const strict = opts.strict ?? false;
  const rows: CsvRow[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  let line = 1;
  let fields: string[] = [];
  let field = '';
  let startLine = 1;
  let newRecord = true;
  let fieldStarted = false; // anything seen in this record
  const endRecord = (): void => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '' && !fieldStarted)) rows.push({ line: startLine, fields });
    fields = [];
    field = '';
    fieldStarted = false;
    newRecord = true;
  };
  while (i < n) {
    const c = text[i];
    if (newRecord) {
      startLine = line;
      newRecord = false;
    }
    if (c === '"' && field === '') {
      // Quoted field (a quote only opens a field at its start; elsewhere it is a literal character).
      const qLine = line;
      i++;
      let closed = false;
      let chunkStart = i;
      while (i < n) {
        const d = text[i];
        if (d === '"') {
          field += text.slice(chunkStart, i);
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            chunkStart = i;
            continue;
          }
          i++;
          closed = true;
          break;
        }
        if (d === '\n' || (d === '\r' && text[i + 1] !== '\n')) line++;
        i++;
      }
      if (!closed) throw new CtclipError('DATA_ERROR', `${file}: line ${qLine}: unterminated quoted field`);
      if (strict && i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        throw new CtclipError(
          'DATA_ERROR',
          `${file}: line ${line}: unexpected character ${JSON.stringify(text[i])} after a closing quote`,
        );
      }
      fieldStarted = true;
      // Characters after the closing quote up to the delimiter are kept literally (lenient, like Python's csv).
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      fieldStarted = true;
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      endRecord();
      line++;
      continue;
    }
    // Plain run up to the next delimiter/newline.
    let j = i;
    while (j < n) {
      const d = text.charCodeAt(j);
      if (d === 44 || d === 10 || d === 13) break;
      if (d === 34 && strict)
        throw new CtclipError('DATA_ERROR', `${file}: line ${line}: stray double quote inside an unquoted field`);
      j++;
    }
    field += text.slice(i, j);
    fieldStarted = true;
    i = j;
  }
  if (fieldStarted || field !== '' || fields.length > 0) endRecord();
  return rows;
}

/** Parses CSV text into plain rows of fields (`parseCsv` without the line numbers). */
export function parseCsvRows(text: string, file = '<csv>', opts: CsvParseOptions = {}): string[][] {
  return parseCsv(text, file, opts).map((r) => r.fields);
}

export interface CsvTable {
  file: string;
  header: string[];
  rows: CsvRow[];
  /** Column index by (trimmed) header name. */
  column(name: string): number;
  /** Value of a column in a row ('' when the row is short). */
  get(row: CsvRow, name: string): string;
}

/** Reads a CSV file with a header row; `required` columns must exist (DATA_ERROR naming file and column). */
export function readCsvTable(file: string, required: readonly string[] = []): CsvTable {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CtclipError('IO_ERROR', `cannot read CSV '${file}': ${(e as Error).message}`, { cause: e });
  }
  return csvTableFromText(text, file, required);
}

export function csvTableFromText(text: string, file: string, required: readonly string[] = []): CsvTable {
  const all = parseCsv(text, file);
  if (all.length === 0) throw new CtclipError('DATA_ERROR', `${file}: empty CSV (no header row)`);
  const header = all[0].fields.map((h) => h.trim());
  const index = new Map<string, number>();
  header.forEach((h, k) => {
    if (!index.has(h)) index.set(h, k);
  });
  for (const r of required) {
    if (!index.has(r))
      throw new CtclipError('DATA_ERROR', `${file}: missing column '${r}' (header: ${header.join(', ')})`);
  }
  const column = (name: string): number => {
    const k = index.get(name);
    if (k === undefined) throw new CtclipError('DATA_ERROR', `${file}: missing column '${name}'`);
    return k;
  };
  return {
    file,
    header,
    rows: all.slice(1),
    column,
    get: (row, name) => row.fields[column(name)] ?? '',
  };
}

/**
 * The cell as Python's `str()` of a pandas value would print it: an empty cell (or one of pandas' default NA
 * strings) is NaN in pandas, and `str(float('nan'))` is `"nan"` — which is what the reference stage 1 stores
 * for a missing report part. The loader's `cleanReport` turns a `nan` part into an empty one later.
 */
export function pandasStr(cell: string | undefined): string {
  return cell === undefined || PANDAS_NA.has(cell) ? 'nan' : cell;
}

/** pandas.read_csv's default NA strings (a cell equal to one of these is NaN). */
export const PANDAS_NA = new Set([
  '',
  '#N/A',
  '#N/A N/A',
  '#NA',
  '-1.#IND',
  '-1.#QNAN',
  '-NaN',
  '-nan',
  '1.#IND',
  '1.#QNAN',
  '<NA>',
  'N/A',
  'NA',
  'NULL',
  'NaN',
  'None',
  'n/a',
  'nan',
  'null',
]);

/** A cell value for writing. */
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
