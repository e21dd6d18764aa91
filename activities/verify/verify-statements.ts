/**
 * The SQL the verifier runs, and the pure comparison of what it reads. Both sides of a
 * verification become the same relation `r` (the target's columns, of the target's types) and
 * go through the same canonical-text expressions, so equal data hashes equal wherever it lives.
 * Pure string building: identifiers are quoted here, key values are bind parameters.
 */
import type { KeyRange } from '../../lib/key-range';
import type { KeyedTable } from '../copy/copy-statements';
import { TOMBSTONES_TABLE, tombstoneTableName } from '../copy/copy-statements';
import type { Mismatch } from '../state/ferry-schema';
import { qualifiedName, quoteIdent, quoteLiteral, SOURCE_ALIAS, type TableName } from '../sql';

/** A target column and its type, as pg_attribute and format_type tell. */
export interface ColumnType {
  name: string;
  /** format_type(atttypid, atttypmod), e.g. `numeric(12,2)`, `timestamp with time zone`. */
  type: string;
  /** The type's name after looking through domains (pg_type.typname), e.g. `timestamptz`. */
  base: string;
  /** pg_type.typcategory of the base type (`A` for arrays). */
  category: string;
}

/** The types of `columns` of the target table; a missing column comes back without a row. */
export function columnTypesSql(target: TableName, columns: string[]): { text: string; values: unknown[] } {
  return {
    text: `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, b.typname AS base, b.typcategory AS category
             FROM pg_attribute a
             JOIN pg_type t ON t.oid = a.atttypid
             JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2::text[])`,
    values: [qualifiedName(target), columns],
  };
}

const TIMESTAMP_FORMAT = `'YYYY-MM-DD HH24:MI:SS.US BC'`;

/**
 * A text that is equal for equal values of `column`'s type, whatever the session's settings and
 * however the value was written: timestamps in UTC to the microsecond (in arrays and ranges
 * too), json as jsonb's text (key order does not count), bytea as hex. Other types, numeric
 * among them with its scale (1.50 is not 1.5: Postgres keeps them apart, so Ferry does too),
 * are their own text, which Ferry's sessions print in fixed styles (ISO dates, postgres
 * intervals, exact floats, see connections.ts). NULL stays
 * NULL (callers keep it apart from every text). `value` is SQL of that type, evaluated more than
 * once: pass a column reference.
 */
export function canonicalText(value: string, column: Pick<ColumnType, 'base' | 'category'>): string {
  const finite = (text: string) => `CASE WHEN isfinite(${value}) THEN ${text} ELSE (${value})::text END`;
  if (column.base === '_timestamptz') return utcArrayText(value);
  if (column.category === 'A') return `(${value})::text`;
  switch (column.base) {
    case 'timestamptz':
      return utcText(value);
    case 'tstzrange':
      return utcRangeText(value);
    case 'timestamp':
      return finite(`to_char(${value}, ${TIMESTAMP_FORMAT})`);
    case 'date':
      // As a timestamp, not the session's timestamptz (4714-11-24 BC is out of range east of UTC);
      // past the last timestamp (294276 AD) to_char cannot go, and such a date is its ISO text.
      return finite(`CASE WHEN (${value}) < '294277-01-01' THEN to_char((${value})::timestamp, 'YYYY-MM-DD BC') ELSE (${value})::text END`);
    case 'json':
      return `(${value})::jsonb::text`;
    case 'bytea':
      return `encode(${value}, 'hex')`;
    default:
      return `(${value})::text`;
  }
}

/** A timestamptz in UTC to the microsecond; infinity as itself. */
function utcText(value: string): string {
  return `CASE WHEN isfinite(${value}) THEN to_char((${value}) AT TIME ZONE 'UTC', ${TIMESTAMP_FORMAT}) ELSE (${value})::text END`;
}

/**
 * A timestamptz[] without the session's zone (its text has one): its dimensions and bounds,
 * then its elements in UTC, NULLs kept.
 */
function utcArrayText(value: string): string {
  const elements = `(SELECT array_agg(${utcText('e')} ORDER BY n) FROM unnest(${value}) WITH ORDINALITY AS u(e, n))`;
  return `CASE WHEN (${value}) IS NULL THEN NULL ELSE coalesce(array_dims(${value}), '') || coalesce(${elements}::text, '{}') END`;
}

/** A tstzrange without the session's zone: its bounds in UTC. */
function utcRangeText(value: string): string {
  const bound = (b: string) => `coalesce(${utcText(`${b}(${value})`)}, '')`;
  return (
    `CASE WHEN (${value}) IS NULL THEN NULL WHEN isempty(${value}) THEN 'empty' ELSE ` +
    `CASE WHEN lower_inc(${value}) THEN '[' ELSE '(' END || ${bound('lower')} || ',' || ${bound('upper')} || ` +
    `CASE WHEN upper_inc(${value}) THEN ']' ELSE ')' END END`
  );
}

/** Which keys of one side to read: a key range, a list of keys, or both. */
export interface Selection {
  range?: KeyRange;
  keys?: string[];
}

/** What one verification compares, in the terms of the statements. */
export interface VerifyShape {
  source: KeyedTable;
  target: KeyedTable;
  /** Target column to SQL over the source row, in target column order (a SQL transform). */
  columns: Record<string, string>;
  /** The target columns, in the same order, with their types. */
  types: ColumnType[];
  /** A condition over the source row (alias `s`); null for all rows. */
  sourceFilter: string | null;
  /** A condition over the target row (alias `t`); null for all rows. */
  targetFilter: string | null;
  /**
   * The target column holding each row's source key (plan.target.sourceKey), by which the target
   * side is selected; null when the target key itself is the source key.
   */
  lineage?: string | null;
}

export const TARGET_ALIAS = 't';

/**
 * Orders keys kept as text the way people read them: whole numbers by value (9 before 10), then
 * every other key as text. Keys are text in ferry.mismatches whatever the key column's type.
 */
export function keyOrderSql(keyText: string): string {
  const integer = `${keyText} ~ '^-?[0-9]{1,30}$'`;
  return `(${integer}) DESC, CASE WHEN ${integer} THEN ${keyText}::numeric END, ${keyText}`;
}
const ROW_ALIAS = 'r';

/** `abs(hashtext(key::text)::bigint) % 10000 < pct*100`: the same deterministic sample as subset.ts. */
export function sampleCondition(keySql: string, percent: number): string | null {
  if (percent >= 100) return null;
  return `abs(hashtext((${keySql})::text)::bigint) % 10000 < ${Math.round(percent * 100)}`;
}

function selectionCondition(keySql: string, selection: Selection, filter: string | null, values: unknown[]): string {
  const parts: string[] = [];
  if (selection.range?.after != null) parts.push(`${keySql} > $${values.push(selection.range.after)}`);
  if (selection.range?.upTo != null) parts.push(`${keySql} <= $${values.push(selection.range.upTo)}`);
  if (selection.keys) parts.push(`${keySql} = ANY($${values.push(selection.keys)})`);
  if (filter) parts.push(`(${filter})`);
  return parts.length ? parts.join(' AND ') : 'true';
}

/**
 * The source rows of a selection as the transform makes them: the target's columns, cast to
 * the target's types as an insert would. OFFSET 0 keeps each expression evaluated once.
 */
function sourceRelation(shape: VerifyShape, selection: Selection, values: unknown[]): string {
  const list = shape.types.map((c) => `(${shape.columns[c.name]})::${c.type} AS ${quoteIdent(c.name)}`).join(', ');
  const where = selectionCondition(`${SOURCE_ALIAS}.${quoteIdent(shape.source.key)}`, selection, shape.sourceFilter, values);
  return `(SELECT ${list} FROM ${qualifiedName(shape.source)} AS ${SOURCE_ALIAS} WHERE ${where} OFFSET 0) AS ${ROW_ALIAS}`;
}

/**
 * The target rows of a selection of source keys: by the lineage column when there is one, else
 * by the target key; with `limit`, the first that many in key order.
 */
function targetRelation(shape: VerifyShape, selection: Selection, values: unknown[], limit?: number): string {
  const list = shape.types.map((c) => `${TARGET_ALIAS}.${quoteIdent(c.name)}`).join(', ');
  const key = `${TARGET_ALIAS}.${quoteIdent(shape.target.key)}`;
  const where = selectionCondition(`${TARGET_ALIAS}.${quoteIdent(shape.lineage ?? shape.target.key)}`, selection, shape.targetFilter, values);
  const page = limit === undefined ? 'OFFSET 0' : `ORDER BY ${key} LIMIT $${values.push(limit)}`;
  return `(SELECT ${list} FROM ${qualifiedName(shape.target)} AS ${TARGET_ALIAS} WHERE ${where} ${page}) AS ${ROW_ALIAS}`;
}

export type Side = 'source' | 'target';

function relation(side: Side, shape: VerifyShape, selection: Selection, values: unknown[], limit?: number): string {
  return side === 'source' ? sourceRelation(shape, selection, values) : targetRelation(shape, selection, values, limit);
}

function canonicalColumns(shape: VerifyShape): string[] {
  return shape.types.map((c) => canonicalText(`${ROW_ALIAS}.${quoteIdent(c.name)}`, c));
}

/**
 * One text per row that differs whenever a canonical column text does: a record's text output
 * quotes what needs quoting and writes NULL as nothing and '' as "", so NULL and '' differ.
 */
export function rowText(canonicalColumnTexts: string[]): string {
  return `ROW(${canonicalColumnTexts.join(', ')})::text`;
}

/**
 * An order-independent digest of a set of rows: the sum of the first 64 bits of each row's md5
 * as a signed bigint. sum(bigint) adds in numeric (128-bit), so it cannot overflow.
 */
export function rowDigestSum(rowTextSql: string): string {
  return `coalesce(sum(('x' || substr(md5(${rowTextSql}), 1, 16))::bit(64)::bigint), 0)::text`;
}

/** The row count and digest of a selection on one side: two small numbers. */
export function chunkChecksumSql(side: Side, shape: VerifyShape, selection: Selection): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const from = relation(side, shape, selection, values);
  return { text: `SELECT count(*)::bigint::text AS rows, ${rowDigestSum(rowText(canonicalColumns(shape)))} AS digest FROM ${from}`, values };
}

/**
 * Per row of a selection: its key as text, its lineage column as text (only with a lineage
 * column), then per target column its md5 (`hash`) or its canonical text (`text`), NULL for
 * NULL. Read with rowMode 'array' and rowHashesOf(rows, shape). With `limit` (target only, no
 * lineage column), the first `limit` rows in key order, to page through a range.
 */
export function rowsSql(
  side: Side,
  shape: VerifyShape,
  selection: Selection,
  mode: 'hash' | 'text',
  limit?: number,
): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const from = relation(side, shape, selection, values, limit);
  const key = `${ROW_ALIAS}.${quoteIdent(shape.target.key)}`;
  const columns = canonicalColumns(shape).map((text) => (mode === 'hash' ? `md5(${text})` : text));
  if (shape.lineage) columns.unshift(`${ROW_ALIAS}.${quoteIdent(shape.lineage)}::text`);
  return { text: `SELECT ${key}::text, ${columns.join(', ')} FROM ${from} ORDER BY ${key}`, values };
}

/**
 * Canonical texts of rows computed in the worker (a module transform's output): each column
 * arrives as an array of Postgres input text, is parsed with the target column's type and goes
 * through the same canonical expressions. Runs on the target database, writes nothing.
 */
export function canonicalizeValuesSql(shape: Pick<VerifyShape, 'types' | 'target'>, columnValues: (string | null)[][]): { text: string; values: unknown[] } {
  const names = shape.types.map((c) => quoteIdent(c.name));
  const casts = shape.types.map((c, i) => `u.${names[i]}::${c.type} AS ${names[i]}`).join(', ');
  const arrays = shape.types.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const key = `${ROW_ALIAS}.${quoteIdent(shape.target.key)}`;
  const canonical = shape.types.map((c) => canonicalText(`${ROW_ALIAS}.${quoteIdent(c.name)}`, c));
  return {
    text:
      `SELECT ${key}::text, ${canonical.join(', ')} FROM ` +
      `(SELECT ${casts} FROM unnest(${arrays}) AS u(${names.join(', ')}) OFFSET 0) AS ${ROW_ALIAS}`,
    values: columnValues,
  };
}

/** `s.key IN ('a', 'b')`: a key list as literals, for COPY, which takes no bind parameters. */
export function sourceKeysCondition(sourceKey: string, keys: string[]): string {
  if (keys.length === 0) return 'false';
  return `${SOURCE_ALIAS}.${quoteIdent(sourceKey)} IN (${keys.map(quoteLiteral).join(', ')})`;
}

/** The keys of a list that the source holds (within the plan's filter), as text. */
export function sourceKeysPresentSql(source: KeyedTable, filter: string | null, keys: string[]): { text: string; values: unknown[] } {
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  return {
    text: `SELECT ${key}::text AS key FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS} WHERE ${key} = ANY($1)${filter ? ` AND (${filter})` : ''}`,
    values: [keys],
  };
}

/**
 * Deletes the target rows of some source keys (by the lineage column) that those source keys do
 * not produce now: `produced` is every target key they produce. Never touches another key's rows.
 */
export function deleteTargetGroupsSql(target: KeyedTable, lineage: string, sourceKeys: string[], produced: string[]): { text: string; values: unknown[] } {
  const key = `${TARGET_ALIAS}.${quoteIdent(target.key)}`;
  return {
    text:
      `DELETE FROM ${qualifiedName(target)} AS ${TARGET_ALIAS} WHERE ${TARGET_ALIAS}.${quoteIdent(lineage)} = ANY($1) ` +
      `AND NOT (${key}::text = ANY($2::text[])) RETURNING ${key}::text AS key`,
    values: [sourceKeys, produced],
  };
}

/** Deletes target rows by key; returns the deleted keys. */
export function deleteTargetKeysSql(target: KeyedTable, keys: string[]): { text: string; values: unknown[] } {
  const key = `${TARGET_ALIAS}.${quoteIdent(target.key)}`;
  return {
    text: `DELETE FROM ${qualifiedName(target)} AS ${TARGET_ALIAS} WHERE ${key} = ANY($1) RETURNING ${key}::text AS key`,
    values: [keys],
  };
}

/** The keys of a list that have a tombstone for the target table. */
export function tombstonedKeysSql(target: TableName, keys: string[]): { text: string; values: unknown[] } {
  return {
    text: `SELECT key FROM ${TOMBSTONES_TABLE} WHERE target_table = $1 AND key = ANY($2::text[])`,
    values: [tombstoneTableName(target), keys],
  };
}

// ---------------------------------------------------------------------------------------------
// Comparing rows

/** One row as read for comparison: its key, and one hash (or canonical text) per target column, null for NULL. */
export interface RowHashes {
  key: string;
  /** The source key the row came from, with a lineage column (null when the target row has none). */
  lineage?: string | null;
  columns: (string | null)[];
}

/**
 * Sorts every difference between the source's rows (as the transform makes them) and the
 * target's into missing (not in the target), extra (not in the source) and value (in both,
 * naming the differing columns). Source differences come in source order, then extras in
 * target order.
 */
export function diffRows(columnNames: readonly string[], source: readonly RowHashes[], target: readonly RowHashes[]): Mismatch[] {
  const targetByKey = new Map(target.map((row) => [row.key, row]));
  const sourceKeys = new Set<string>();
  const differences: Mismatch[] = [];
  // With a lineage column, each difference names the source key whose group it belongs to.
  const traced = (row: RowHashes) => (row.lineage === undefined ? {} : { sourceKey: row.lineage });
  for (const row of source) {
    sourceKeys.add(row.key);
    const other = targetByKey.get(row.key);
    if (!other) {
      differences.push({ key: row.key, category: 'missing', columns: [], ...traced(row) });
      continue;
    }
    const columns = columnNames.filter((_, i) => (row.columns[i] ?? null) !== (other.columns[i] ?? null));
    if (columns.length > 0) differences.push({ key: row.key, category: 'value', columns, ...traced(row) });
  }
  for (const row of target) {
    if (!sourceKeys.has(row.key)) differences.push({ key: row.key, category: 'extra', columns: [], ...traced(row) });
  }
  return differences;
}

/** Rows read with rowMode 'array' ([key, ...columns], or [key, lineage, ...columns] with a lineage column) as RowHashes. */
export function rowHashesOf(rows: readonly unknown[][], shape?: Pick<VerifyShape, 'lineage'>): RowHashes[] {
  const text = (v: unknown) => (v === null ? null : String(v));
  if (!shape?.lineage) return rows.map((values) => ({ key: String(values[0]), columns: values.slice(1).map(text) }));
  return rows.map((values) => ({ key: String(values[0]), lineage: text(values[1]), columns: values.slice(2).map(text) }));
}

/** The conditions that are given, joined with AND; null when none is. */
export function allConditions(...conditions: (string | null | undefined)[]): string | null {
  const parts = conditions.filter((c): c is string => !!c);
  return parts.length ? parts.map((c) => `(${c})`).join(' AND ') : null;
}
