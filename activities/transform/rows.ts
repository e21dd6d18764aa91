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

type TransformResult = TargetRow | TargetRow[] | null;

/** The function a transform module exports. It returns null to skip a row; it may be async. */
export type RowTransform = (row: SourceRow) => TransformResult | Promise<TransformResult>;

export interface RowFailure {
  /** The source row's key, as text. */
  key: string;
  error: string;
}


/** A source row read with rowMode 'array' from rangeRowsSql (key first) as the transform sees it. */
export function sourceRowOf(names: readonly string[], values: readonly unknown[]): SourceRow {
  const row: SourceRow = {};
  for (let i = 0; i < names.length; i++) row[names[i]!] = values[i + 1];
  return row;
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
function unescapeCopyText(field: string): string {
  return field.includes('\\') ? field.replace(COPY_ESCAPE, (_, c: string) => COPY_UNESCAPED[c] ?? c) : field;
}

/**
 * Source rows from rangeRowsCopySql's output (COPY text format: the key as text, then the row's
 * columns) as the transform sees them, parsed by the same type parsers as a query's rows.
 */
export function decodeSourceRows(text: string, fields: readonly SourceField[]): { key: string; row: SourceRow }[] {
  const parsers = fields.map((f) => sourceValueParser(f.oid));
  const rows: { key: string; row: SourceRow }[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const values = text.slice(start, end).split('\t');
    start = end + 1;
    if (values.length !== fields.length + 1) {
      throw new Error(`a source row has ${values.length - 1} columns where ${fields.length} were described: did the table change?`);
    }
    const row: SourceRow = {};
    for (let i = 0; i < fields.length; i++) {
      const value = values[i + 1]!;
      row[fields[i]!.name] = value === '\\N' ? null : parsers[i]!(unescapeCopyText(value));
    }
    rows.push({ key: unescapeCopyText(values[0]!), row });
  }
  return rows;
}

