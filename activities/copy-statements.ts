/**
 * The SQL the copier runs. Pure string building: every identifier is quoted here, every key
 * value is a bind parameter or (inside COPY, which takes none) a quoted literal.
 */
import { createHash } from 'node:crypto';
import type { KeyRange } from '../lib/key-range';
import { qualifiedName, quoteIdent, quoteLiteral, type TableName } from './sql';

export interface KeyedTable extends TableName {
  key: string;
}

export interface CopySpec {
  source: KeyedTable;
  target: KeyedTable;
  /** Target column name to SQL expression over the source row, in target column order. */
  columns: Record<string, string>;
}

const SOURCE_ALIAS = 's';

interface Condition {
  sql: string;
  params: string[];
}

/** `key > after AND key <= upTo`, as bind parameters numbered from `firstParam`. */
function rangeCondition(key: string, range: KeyRange, firstParam = 1): Condition {
  const column = `${SOURCE_ALIAS}.${quoteIdent(key)}`;
  const parts: string[] = [];
  const params: string[] = [];
  if (range.after !== null) {
    params.push(range.after);
    parts.push(`${column} > $${firstParam + params.length - 1}`);
  }
  if (range.upTo !== null) {
    params.push(range.upTo);
    parts.push(`${column} <= $${firstParam + params.length - 1}`);
  }
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

/** The same condition with literals, for COPY, which cannot take bind parameters. */
function rangeConditionLiteral(key: string, range: KeyRange): string {
  const column = `${SOURCE_ALIAS}.${quoteIdent(key)}`;
  const parts: string[] = [];
  if (range.after !== null) parts.push(`${column} > ${quoteLiteral(range.after)}`);
  if (range.upTo !== null) parts.push(`${column} <= ${quoteLiteral(range.upTo)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

function selectList(columns: Record<string, string>): string {
  return Object.entries(columns)
    .map(([name, expression]) => `(${expression}) AS ${quoteIdent(name)}`)
    .join(', ');
}

function columnList(columns: Record<string, string>): string {
  return Object.keys(columns).map(quoteIdent).join(', ');
}

/**
 * Finds where the next batch ends: the last key of the first `limit` rows of the range and how
 * many rows that is. Walks the key index only. Returns no row when the range is empty.
 */
export function nextBatchBoundSql(source: KeyedTable, range: KeyRange, limit: number): { text: string; values: unknown[] } {
  const condition = rangeCondition(source.key, range);
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  const text =
    `SELECT batch.last_key, batch.rows FROM (` +
    `SELECT ${key}::text AS last_key, row_number() OVER (ORDER BY ${key}) AS rows ` +
    `FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS} WHERE ${condition.sql} ORDER BY ${key} LIMIT $${condition.params.length + 1}` +
    `) AS batch ORDER BY batch.rows DESC LIMIT 1`;
  return { text, values: [...condition.params, limit] };
}

/** One statement that copies a key range within one database; rows already present are kept. */
export function copyWithinDatabaseSql(spec: CopySpec, range: KeyRange): { text: string; values: unknown[] } {
  const condition = rangeCondition(spec.source.key, range);
  const text =
    `INSERT INTO ${qualifiedName(spec.target)} (${columnList(spec.columns)}) ` +
    `SELECT ${selectList(spec.columns)} FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${condition.sql} ON CONFLICT DO NOTHING`;
  return { text, values: condition.params };
}

/** COPY of the transformed rows of a key range out of the source, in text format. */
export function copyOutSql(spec: CopySpec, range: KeyRange): string {
  return (
    `COPY (SELECT ${selectList(spec.columns)} FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${rangeConditionLiteral(spec.source.key, range)}) TO STDOUT`
  );
}

/**
 * A per-session staging table shaped like the copied target columns (types only, no
 * constraints). It empties itself at every commit, so a failed batch leaves nothing behind.
 */
export function stagingTableName(spec: CopySpec): string {
  return stagingTableNameFor(stagedColumnsOf(spec));
}

export function createStagingSql(spec: CopySpec): string {
  return (
    `CREATE TEMP TABLE IF NOT EXISTS ${quoteIdent(stagingTableName(spec))} ON COMMIT DELETE ROWS AS ` +
    `SELECT ${columnList(spec.columns)} FROM ${qualifiedName(spec.target)} WITH NO DATA`
  );
}

export function copyIntoStagingSql(spec: CopySpec): string {
  return `COPY ${quoteIdent(stagingTableName(spec))} (${columnList(spec.columns)}) FROM STDIN`;
}

export function insertFromStagingSql(spec: CopySpec): string {
  const columns = columnList(spec.columns);
  return (
    `INSERT INTO ${qualifiedName(spec.target)} (${columns}) ` +
    `SELECT ${columns} FROM ${quoteIdent(stagingTableName(spec))} ON CONFLICT DO NOTHING`
  );
}

/** A few transformed rows, for the dry run. */
export function sampleSql(spec: CopySpec, limit: number): { text: string; values: unknown[] } {
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  return {
    text:
      `SELECT ${key}::text AS "ferry source key", ${selectList(spec.columns)} ` +
      `FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ORDER BY ${key} LIMIT $1`,
    values: [limit],
  };
}

/**
 * Staging by column names only, for rows built outside Postgres (the module transform). The
 * same target and columns give the same staging table as the CopySpec statements above.
 */
export interface StagedColumns {
  target: TableName;
  /** Target column names, in the order rows are sent. */
  columns: readonly string[];
}

export function stagedColumnsOf(spec: CopySpec): StagedColumns {
  return { target: spec.target, columns: Object.keys(spec.columns) };
}

function nameList(columns: readonly string[]): string {
  return columns.map(quoteIdent).join(', ');
}

export function stagingTableNameFor({ target, columns }: StagedColumns): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([target.schema, target.table, columns]))
    .digest('hex')
    .slice(0, 16);
  return `ferry_stage_${digest}`;
}

export function createStagingForColumnsSql(staged: StagedColumns): string {
  return (
    `CREATE TEMP TABLE IF NOT EXISTS ${quoteIdent(stagingTableNameFor(staged))} ON COMMIT DELETE ROWS AS ` +
    `SELECT ${nameList(staged.columns)} FROM ${qualifiedName(staged.target)} WITH NO DATA`
  );
}

export function copyIntoStagingForColumnsSql(staged: StagedColumns): string {
  return `COPY ${quoteIdent(stagingTableNameFor(staged))} (${nameList(staged.columns)}) FROM STDIN`;
}

export function insertFromStagingForColumnsSql(staged: StagedColumns): string {
  const columns = nameList(staged.columns);
  return (
    `INSERT INTO ${qualifiedName(staged.target)} (${columns}) ` +
    `SELECT ${columns} FROM ${quoteIdent(stagingTableNameFor(staged))} ON CONFLICT DO NOTHING`
  );
}

/** Name of the first column of rangeRowsSql: the source key as text. */
export const SOURCE_KEY_TEXT = 'ferry source key';

/**
 * The whole source rows of a key range in key order, each preceded by its key as text (read
 * them with rowMode 'array': the first value is the key, the rest are the row). `where` is an
 * extra SQL condition over the source row, alias `s`.
 */
export function rangeRowsSql(source: KeyedTable, range: KeyRange, where?: string): { text: string; values: unknown[] } {
  const condition = rangeCondition(source.key, range);
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  const filter = where?.trim() ? ` AND (${where})` : '';
  return {
    text:
      `SELECT ${key}::text AS ${quoteIdent(SOURCE_KEY_TEXT)}, ${SOURCE_ALIAS}.* FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS} ` +
      `WHERE ${condition.sql}${filter} ORDER BY ${key}`,
    values: condition.params,
  };
}
