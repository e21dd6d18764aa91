/**
 * The SQL the verifier runs, and the pure comparison of what it reads. Both sides of a
 * verification become the same relation `r` (the target's columns, of the target's types) and
 * go through the same canonical-text expressions, so equal data hashes equal wherever it lives.
 * Statements are built with the sql`` template: identifiers quoted, key values bind parameters,
 * the transform's expressions through planSql; canonical-text expressions are Ferry's own text.
 */
import type { KeyRange } from '../../lib/key-range';
import type { KeyedTable } from '../copy/copy-statements';
import { TOMBSTONES_TABLE, tombstoneTableName } from '../copy/copy-statements';
import type { Mismatch } from '../state/ferry-schema';
import { canonicalText, nativeValue, type ColumnType, type DigestForm } from './canonical-text';
import { asWritten, type LocalTimes, unlimitedType } from './as-written';
import { column, ferrySql, ident, join, literal, planSql, qualifiedName, quoteIdent, sql, SOURCE_ALIAS, tableName, type Sql, type TableName } from '../sql';

export { canonicalText, type ColumnType, type DigestForm } from './canonical-text';

/** The types of `columns` of the target table; a missing column comes back without a row. */
export function columnTypesSql(target: TableName, columns: string[]): Sql {
  return sql`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, b.typname AS base, b.typcategory AS category,
                    CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS "domainBase"
               FROM pg_attribute a
               JOIN pg_type t ON t.oid = a.atttypid
               JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
              WHERE a.attrelid = to_regclass(${qualifiedName(target)}) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(${columns}::text[])`;
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
  /**
   * Target columns whose values a copy between two databases sends as the source's text, read
   * by the target column's input (see convertedColumnsOf): the source side converts them so too.
   */
  converted?: readonly string[];
  /**
   * Converted columns of a timestamptz type whose source value is a timestamp or a date: its
   * text names no zone, so the target reads it as a time in its own TimeZone, `zone`, and the
   * source side does so too (in the source's zone, it would be another instant).
   */
  localTimes?: LocalTimes;
  /**
   * The target orders the keys it is selected by (its key, or the lineage column) otherwise than
   * the source orders its key (another collation): a key range holds other keys there, so the
   * target side is selected by the source's keys only (see keyOrdersDiffer).
   */
  keyOrderDiffers?: boolean;
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

function selectionCondition(key: Sql, selection: Selection, filter: string | null): Sql {
  const parts: Sql[] = [];
  if (selection.range?.after != null) parts.push(sql`${key} > ${selection.range.after}`);
  if (selection.range?.upTo != null) parts.push(sql`${key} <= ${selection.range.upTo}`);
  if (selection.keys) parts.push(sql`${key} = ANY(${selection.keys})`);
  // A condition Ferry composed (sourceFilter, sampleCondition, sourceKeysCondition).
  if (filter) parts.push(sql`(${ferrySql(filter)})`);
  return parts.length ? join(parts, sql` AND `) : sql`true`;
}

const [S, T, R] = [SOURCE_ALIAS, TARGET_ALIAS, ROW_ALIAS].map(ferrySql) as [Sql, Sql, Sql];

/**
 * The source rows of a selection as the transform makes them: the target's columns, of the
 * target's types as a write would make them (see castAsWritten), after the copy's conversion
 * through text for the converted columns.
 */
function sourceRelation(shape: VerifyShape, selection: Selection): Sql {
  const converted = shape.converted ?? [];
  const list = join(
    shape.types.map((c) => {
      const expression = planSql(shape.columns[c.name]!, `transform.sql.${c.name}`);
      return converted.includes(c.name) ? sql`${expression} AS ${ident(c.name)}` : sql`${expression}::${ferrySql(unlimitedType(c))} AS ${ident(c.name)}`;
    }),
  );
  const where = selectionCondition(column(SOURCE_ALIAS, shape.source.key), selection, shape.sourceFilter);
  return asWritten(shape.types, sql`SELECT ${list} FROM ${tableName(shape.source)} AS ${S} WHERE ${where}`, ROW_ALIAS, converted, shape.localTimes);
}

/**
 * The target rows of a selection of source keys: by the lineage column when there is one, else
 * by the target key; with `limit`, the first that many in key order.
 */
function targetRelation(shape: VerifyShape, selection: Selection, limit?: number): Sql {
  const list = join(shape.types.map((c) => column(TARGET_ALIAS, c.name)));
  const key = column(TARGET_ALIAS, shape.target.key);
  const where = selectionCondition(column(TARGET_ALIAS, shape.lineage ?? shape.target.key), selection, shape.targetFilter);
  const page = limit === undefined ? sql`OFFSET 0` : sql`ORDER BY ${key} LIMIT ${limit}`;
  return sql`(SELECT ${list} FROM ${tableName(shape.target)} AS ${T} WHERE ${where} ${page}) AS ${R}`;
}

export type Side = 'source' | 'target';

function relation(side: Side, shape: VerifyShape, selection: Selection, limit?: number): Sql {
  return side === 'source' ? sourceRelation(shape, selection) : targetRelation(shape, selection, limit);
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

/** The values of a row of `r` that a digest of `form` hashes, as SQL for rowText. */
export function digestValues(types: readonly ColumnType[], form: DigestForm): string[] {
  const value = (c: ColumnType) => `${ROW_ALIAS}.${quoteIdent(c.name)}`;
  return types.map((c) => (form === 'native' ? nativeValue(value(c), c) : canonicalText(value(c), c)));
}

/** The row count and digest of a selection on one side: two small numbers. */
export function chunkChecksumSql(side: Side, shape: VerifyShape, selection: Selection, form: DigestForm = 'canonical'): Sql {
  return sql`SELECT count(*)::bigint::text AS rows, ${ferrySql(rowDigestSum(rowText(digestValues(shape.types, form))))} AS digest FROM ${relation(side, shape, selection)}`;
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
): Sql {
  const from = relation(side, shape, selection, limit);
  const key = column(ROW_ALIAS, shape.target.key);
  const columns = canonicalColumns(shape).map((text) => ferrySql(mode === 'hash' ? `md5(${text})` : text));
  if (shape.lineage) columns.unshift(sql`${column(ROW_ALIAS, shape.lineage)}::text`);
  return sql`SELECT ${key}::text, ${join(columns)} FROM ${from} ORDER BY ${key}`;
}

/**
 * Canonical texts of rows computed in the worker (a module transform's output): each column
 * arrives as an array of Postgres input text, is parsed with the target column's type and goes
 * through the same canonical expressions. Runs on the target database, writes nothing.
 */
export function canonicalizeValuesSql(shape: Pick<VerifyShape, 'types' | 'target'>, columnValues: (string | null)[][]): Sql {
  const casts = join(shape.types.map((c) => sql`${column('u', c.name)}::${ferrySql(unlimitedType(c))} AS ${ident(c.name)}`));
  const arrays = join(shape.types.map((_, i) => sql`${columnValues[i]}::text[]`));
  const key = column(ROW_ALIAS, shape.target.key);
  const canonical = join(shape.types.map((c) => ferrySql(canonicalText(`${ROW_ALIAS}.${quoteIdent(c.name)}`, c))));
  const names = join(shape.types.map((c) => ident(c.name)));
  return sql`SELECT ${key}::text, ${canonical} FROM ${asWritten(shape.types, sql`SELECT ${casts} FROM unnest(${arrays}) AS u(${names})`, ROW_ALIAS)}`;
}

/** `s.key IN ('a', 'b')`: a key list as literals, for COPY, which takes no bind parameters. */
export function sourceKeysCondition(sourceKey: string, keys: string[]): string {
  if (keys.length === 0) return 'false';
  return sql`${column(SOURCE_ALIAS, sourceKey)} IN (${join(keys.map((key) => literal(key)))})`.text;
}

/** The keys of a list (as this session prints them) that the source holds, within the plan's filter. */
export function sourceKeysPresentSql(source: KeyedTable, filter: string | null, keys: string[]): Sql {
  const key = column(SOURCE_ALIAS, source.key);
  return sql`SELECT ${key}::text AS key FROM ${tableName(source)} AS ${S} WHERE ${key} = ANY(${keys})${filter ? sql` AND (${ferrySql(filter)})` : sql``}`;
}

/**
 * The keys of a list as writers logged them that the source holds (within the plan's filter),
 * each as the list spells it. Matched by value, not by text: a key logged by a writer's session
 * (a timestamptz in its TimeZone, a numeric with another scale) is the same key whatever this
 * session would print. `keyType` is the key column's type as the catalog names it (keyTypeSql).
 */
export function loggedKeysPresentSql(source: KeyedTable, filter: string | null, keys: string[], keyType: string): Sql {
  const key = column(SOURCE_ALIAS, source.key);
  // The list twice, unnested side by side: each spelling beside its value (a subscript per row
  // would walk the text array from its start, a cost that grows with the square of the list).
  return sql`SELECT k.spelled AS key
               FROM unnest(${keys}::text[], ${keys}::${ferrySql(keyType)}[]) AS k(spelled, value)
               JOIN ${tableName(source)} AS ${S} ON ${key} = k.value${filter ? sql` AND (${ferrySql(filter)})` : sql``}`;
}

/**
 * Deletes the target rows of some source keys (by the lineage column) that those source keys do
 * not produce now: `produced` is every target key they produce. Never touches another key's rows.
 */
export function deleteTargetGroupsSql(target: KeyedTable, lineage: string, sourceKeys: string[], produced: string[]): Sql {
  const key = column(TARGET_ALIAS, target.key);
  return sql`DELETE FROM ${tableName(target)} AS ${T} WHERE ${column(TARGET_ALIAS, lineage)} = ANY(${sourceKeys}) AND NOT (${key}::text = ANY(${produced}::text[])) RETURNING ${key}::text AS key`;
}

/** Deletes target rows by key; returns the deleted keys. */
export function deleteTargetKeysSql(target: KeyedTable, keys: string[]): Sql {
  const key = column(TARGET_ALIAS, target.key);
  return sql`DELETE FROM ${tableName(target)} AS ${T} WHERE ${key} = ANY(${keys}) RETURNING ${key}::text AS key`;
}

/** The keys of a list that have a tombstone for the target table. */
export function tombstonedKeysSql(target: TableName, keys: string[]): Sql {
  return sql`SELECT key FROM ${ferrySql(TOMBSTONES_TABLE)} WHERE target_table = ${tombstoneTableName(target)} AND key = ANY(${keys}::text[])`;
}

// ---------------------------------------------------------------------------------------------
// Comparing rows

/** One row as read for comparison: its key, and one hash (or canonical text) per target column, null for NULL. */
export interface RowHashes {
  key: string;
  /** The source key the row came from, with a lineage column (null when the target row has none). */
  lineage?: string | null;
  columns: (string | null)[];
  /**
   * A source row the transform cannot make into a row the target takes (a module transform that
   * throws, or a value the target's type refuses): the copier records it as a failed row, so no
   * target row is expected, but a target row of its key (with a lineage column, every target row
   * of its group) differs in every column. Its columns are null; with a lineage column its key
   * is no target key, and its lineage is the source key.
   */
  unwritable?: boolean;
}

/**
 * Sorts every difference between the source's rows (as the transform makes them) and the
 * target's into missing (not in the target), extra (not in the source, or a key the target
 * holds twice) and value (in both, naming the differing columns; every column for a source row
 * that is unwritable). One difference a key. Source differences come in source order, then extras in
 * target order.
 */
export function diffRows(columnNames: readonly string[], source: readonly RowHashes[], target: readonly RowHashes[]): Mismatch[] {
  const targetByKey = new Map<string, RowHashes>();
  /** Keys the target holds more than once (where its key is not unique): one row too many, extra. */
  const repeated = new Set<string>();
  for (const row of target) {
    if (targetByKey.has(row.key)) repeated.add(row.key);
    else targetByKey.set(row.key, row);
  }
  const sourceKeys = new Set<string>();
  const differences: Mismatch[] = [];
  // With a lineage column, each difference names the source key whose group it belongs to.
  const traced = (row: RowHashes) => (row.lineage === undefined ? {} : { sourceKey: row.lineage });
  /** Source keys whose group (with a lineage column) the transform cannot make: its target rows differ, none is extra. */
  const unwritableGroups = new Set(source.flatMap((row) => (row.unwritable && row.lineage != null ? [row.lineage] : [])));
  for (const row of source) {
    if (row.unwritable && row.lineage != null) continue;
    sourceKeys.add(row.key);
    if (repeated.has(row.key)) continue;
    const other = targetByKey.get(row.key);
    if (!other) {
      if (!row.unwritable) differences.push({ key: row.key, category: 'missing', columns: [], ...traced(row) });
      continue;
    }
    const columns = row.unwritable ? [...columnNames] : columnNames.filter((_, i) => (row.columns[i] ?? null) !== (other.columns[i] ?? null));
    if (columns.length > 0) differences.push({ key: row.key, category: 'value', columns, ...traced(row) });
  }
  for (const row of targetByKey.values()) {
    if (sourceKeys.has(row.key) && !repeated.has(row.key)) continue;
    const unwritable = row.lineage != null && unwritableGroups.has(row.lineage) && !repeated.has(row.key);
    differences.push({ key: row.key, category: unwritable ? 'value' : 'extra', columns: unwritable ? [...columnNames] : [], ...traced(row) });
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
