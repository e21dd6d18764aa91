/** Target rows encoded as COPY text format, exactly as the target's column types will read them. */
import type pg from 'pg';
import { qualifiedName, sql, type TableName } from '../sql';
import { columnKindOf, postgresInputTextOf, type ColumnKinds } from './exact-values';
import { assertTargetRow, type TargetRow } from './rows';

/** A value in COPY text format: backslash, tab, newline and carriage return escaped. */
function escapeCopyText(text: string): string {
  // Most values have nothing to escape, and four scans for one character are cheaper than a regular expression.
  if (text.indexOf('\\') < 0 && text.indexOf('\t') < 0 && text.indexOf('\n') < 0 && text.indexOf('\r') < 0) return text;
  return text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/**
 * An encoder of one target row into one line of COPY text format (columns in `columns` order,
 * ending in a newline). Throws, naming the key, for a row with a key not in `columns`, and for
 * values that have no database form (functions, symbols, invalid Dates).
 */
export function copyTextEncoder(columns: readonly string[], kinds: ColumnKinds = {}): (row: TargetRow) => string {
  const known = new Set(columns);
  const texts = columns.map((column) => postgresInputTextOf(column, kinds[column]));
  return (row) => {
    assertTargetRow(row);
    for (const key in row) {
      if (!known.has(key) && Object.prototype.hasOwnProperty.call(row, key)) {
        throw new TypeError(`target row has column "${key}", which is not one of transform.columns (${columns.join(', ')})`);
      }
    }
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const text = texts[i]!(row[columns[i]!]);
      line += (i > 0 ? '\t' : '') + (text === null ? '\\N' : escapeCopyText(text));
    }
    return line + '\n';
  };
}

/** Target rows as COPY text format, for `COPY table (columns) FROM STDIN`. */
export function encodeCopyText(columns: readonly string[], rows: readonly TargetRow[], kinds?: ColumnKinds): string {
  const encode = copyTextEncoder(columns, kinds);
  return rows.map(encode).join('');
}

/** The kinds of the target table's columns (json, integer, numeric, arrays of them; domains looked through). */
export async function targetColumnKinds(pool: pg.Pool, target: TableName): Promise<ColumnKinds> {
  const result = await pool.query<{ name: string; base: string; is_array: boolean }>(
    sql`SELECT a.attname AS name, coalesce(e.typname, b.typname) AS base, b.typcategory = 'A' AS is_array
          FROM pg_attribute a
          JOIN pg_type t ON t.oid = a.atttypid
          JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
          LEFT JOIN pg_type el ON el.oid = b.typelem AND b.typcategory = 'A'
          LEFT JOIN pg_type e ON e.oid = CASE WHEN el.typtype = 'd' THEN el.typbasetype ELSE el.oid END
         WHERE a.attrelid = to_regclass(${qualifiedName(target)}) AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  return Object.fromEntries(result.rows.map((row) => [row.name, columnKindOf(row.base, row.is_array)]));
}

