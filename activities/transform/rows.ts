/**
 * Rows as a transform module sees them: the source row it is given, the target rows it returns,
 * and the source rows decoded from COPY text (the shape shared by the module copy, the verifier
 * and the transform threads).
 */
import { sourceValueParser } from './exact-values';

/**
 * A source row as the transform sees it: column name to value, each of which prints back as the
 * text it came from (see exact-values.ts). int2, int4 and floats (NaN, Infinity, -0 included)
 * are numbers, bool is boolean, bytea is a Buffer, json and jsonb are parsed (JSON null is
 * `jsonNull`, numbers a JavaScript number cannot hold exactly are LosslessNumbers), arrays of
 * those and of text types are arrays (NULL elements null; an array with explicit bounds stays
 * text); every other type, int8, numeric, dates, times and intervals included, is Postgres's
 * own text. SQL NULL is null.
 */
export type SourceRow = Record<string, unknown>;

/**
 * A target row: column name (one of `transform.columns`) to value. A column left out is NULL.
 * Values: null/undefined, string (Postgres input text), number, bigint, boolean, Date, Buffer,
 * LosslessNumber, or an object or array (JSON; into an array column an array is an array
 * literal). Every value of a json or jsonb column is written as JSON, `jsonNull` as JSON null.
 */
export type TargetRow = Record<string, unknown>;

/** A transform's target row is an object of column: value; anything else fails its source row. */
export function assertTargetRow(row: unknown): asserts row is TargetRow {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    throw new TypeError(`a target row must be an object of column: value, not ${Array.isArray(row) ? 'an array' : row === null ? 'null' : `a ${typeof row}`}`);
  }
}

type TransformResult = TargetRow | TargetRow[] | null;

/** The function a transform module exports. It returns null to skip a row; it may be async. */
export type RowTransform = (row: SourceRow) => TransformResult | Promise<TransformResult>;

export interface RowFailure {
  /** The source row's key, as text. */
  key: string;
  error: string;
}

/**
 * Whether a transform returned a promise. Only then is it awaited: awaiting a plain value costs
 * a turn of the microtask queue (and the activity context's async hooks) per row.
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function';
}

/** A source column as a query describes it: its name and its type's oid. */
export interface SourceField {
  name: string;
  oid: number;
}

const COPY_ESCAPE = /\\(.)/g;
const COPY_UNESCAPED: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** A field of COPY's text format as its text: COPY TO escapes backslash and control characters. */
export function unescapeCopyText(field: string): string {
  return field.includes('\\') ? field.replace(COPY_ESCAPE, (_, c: string) => COPY_UNESCAPED[c] ?? c) : field;
}

/**
 * Source rows from rangeRowsCopySql's output (COPY text format: the key as text, then the row's
 * columns) as the transform sees them, parsed by the same type parsers as a query's rows, one
 * row at a time: `next()` moves to the next row and returns false after the last one. Reading a
 * row at a time keeps a batch from holding every decoded row at once.
 */
export class SourceRowReader {
  /** The current row's key, as text. */
  key = '';
  /** The current row's key as COPY text writes it (escaped: it holds no newline or tab). */
  keyText = '';
  /** The current row. */
  row: SourceRow = {};
  private readonly names: string[];
  private readonly parsers: ((text: string) => unknown)[];
  private position = 0;
  /** The next backslash at or after `position` (Infinity when there is none): a line without one has no escape and no NULL. */
  private nextBackslash = -1;

  constructor(
    private readonly text: string,
    private readonly fields: readonly SourceField[],
  ) {
    this.names = fields.map((f) => f.name);
    this.parsers = fields.map((f) => sourceValueParser(f.oid));
  }

  next(): boolean {
    const { text, names, parsers } = this;
    const start = this.position;
    if (start >= text.length) return false;
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    this.position = end + 1;
    if (this.nextBackslash < start) {
      const found = text.indexOf('\\', start);
      this.nextBackslash = found < 0 ? Infinity : found;
    }
    const escaped = this.nextBackslash < end;
    const count = names.length;
    let tab = text.indexOf('\t', start);
    if (count === 0) {
      if (tab >= 0 && tab < end) this.wrongColumnCount(start, end);
      tab = end;
    } else if (tab < 0 || tab > end) this.wrongColumnCount(start, end);
    const key = text.slice(start, tab);
    const row: SourceRow = {};
    for (let i = 0; i < count; i++) {
      const from = tab + 1;
      tab = text.indexOf('\t', from);
      if (i === count - 1) {
        if (tab >= 0 && tab < end) this.wrongColumnCount(start, end);
        tab = end;
      } else if (tab < 0 || tab > end) this.wrongColumnCount(start, end);
      const value = text.slice(from, tab);
      row[names[i]!] = !escaped ? parsers[i]!(value) : value === '\\N' ? null : parsers[i]!(unescapeCopyText(value));
    }
    this.keyText = key;
    this.key = escaped ? unescapeCopyText(key) : key;
    this.row = row;
    return true;
  }

  private wrongColumnCount(start: number, end: number): never {
    const values = this.text.slice(start, end).split('\t').length;
    throw new Error(`a source row has ${values - 1} columns where ${this.fields.length} were described: did the table change?`);
  }
}

/** Every source row of rangeRowsCopySql's output at once (see SourceRowReader). */
export function decodeSourceRows(text: string, fields: readonly SourceField[]): { key: string; row: SourceRow }[] {
  const reader = new SourceRowReader(text, fields);
  const rows: { key: string; row: SourceRow }[] = [];
  while (reader.next()) rows.push({ key: reader.key, row: reader.row });
  return rows;
}
