/**
 * The SQL the copier runs, built with the sql`` template: every identifier is quoted, every key
 * value is a bind parameter or (inside COPY, which takes none) a quoted literal, and each plan
 * expression enters through planSql.
 */
import { createHash } from 'node:crypto';
import type { KeyRange } from '../../lib/key-range';
import { targetKey, type Plan } from '../../lib/plan';
import { tableKey } from '../../lib/ids';
import { column, ferrySql, ident, int, join, literal, planSql, qualifiedName, quoteIdent, sql, SOURCE_ALIAS, tableName, type Sql, type TableName } from '../sql';
import { sourceFilter } from './subset';
import type { CopyLedger } from './copy-ledger';

export interface KeyedTable extends TableName {
  key: string;
}

/**
 * ignore: the target's row wins. newer-wins: the row with the higher `newerBy` wins.
 * overwrite: the source's row always wins (repairs after a verification found a difference).
 */
export type ConflictPolicy = { policy: 'ignore' } | { policy: 'newer-wins'; newerBy: string } | { policy: 'overwrite' };

export interface CopySpec {
  source: KeyedTable;
  target: KeyedTable;
  /** Target column name to SQL expression over the source row, in target column order. */
  columns: Record<string, string>;
  /**
   * A condition over the source row (alias `s`) that limits what is copied; null for all rows.
   * Ferry's own text (see sourceFilter): plan SQL in it entered through planSql.
   */
  filter?: string | null;
  /** (Default: ignore) */
  conflict?: ConflictPolicy;
  /** Skip keys with a tombstone in Ferry's schema on the target. (Default: false) */
  honourTombstones?: boolean;
  /** The target column holding each row's source key, when the target key does not (plan.target.sourceKey). */
  lineage?: string;
  /**
   * COPY's format between two databases: binary only where every column's type is the same
   * built-in type on both sides (copyFormatFor). (Default: text)
   */
  copyFormat?: CopyFormat;
  /** The copy call whose count each batch's written rows are added to, in the batch's transaction. */
  ledger?: CopyLedger;
}

export type CopyFormat = 'text' | 'binary';

/** COPY's options for a spec's format: none for text. */
function copyOptions(spec: Pick<CopySpec, 'copyFormat'>): Sql {
  return spec.copyFormat === 'binary' ? sql` (FORMAT binary)` : sql``;
}

/** What a plan (or one shard of it, by partition value) copies, in the terms of the statements. */
export function copySpecOf(plan: Plan, partitionValue: string | null = null): CopySpec {
  return {
    source: { schema: plan.source.schema, table: plan.source.table, key: plan.source.key },
    target: { schema: plan.target.schema, table: plan.target.table, key: targetKey(plan) },
    columns: plan.transform.sql ?? Object.fromEntries((plan.transform.columns ?? []).map((c) => [c, quoteIdent(c)])),
    filter: sourceFilter(plan, partitionValue),
    conflict:
      plan.conflict.policy === 'newer-wins' ? { policy: 'newer-wins', newerBy: plan.conflict.newerBy! } : { policy: 'ignore' },
    honourTombstones: true,
    ...(plan.target.sourceKey ? { lineage: plan.target.sourceKey } : {}),
  };
}

const TARGET_ALIAS = 't';
const STAGE_ALIAS = 'st';
const [S, T, ST] = [SOURCE_ALIAS, TARGET_ALIAS, STAGE_ALIAS].map(ferrySql) as [Sql, Sql, Sql];
const TOMBSTONES = ferrySql('ferry.tombstones');

/** The spec's filter, composed by Ferry (sourceFilter, the verifier's key lists): embedded as it is, in parentheses. */
function filterSql(filter: string): Sql {
  return sql`(${ferrySql(filter)})`;
}

/** A column's expression: from the plan's transform.sql, or a quoted column name; checked either way. */
function expressionSql(spec: Pick<CopySpec, 'columns'>, name: string): Sql {
  return planSql(spec.columns[name]!, `transform.sql.${name}`);
}

/** `key > after AND key <= upTo` plus the spec's filter, the bounds as bind parameters. */
function rangeCondition(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  const parts: Sql[] = [];
  if (range.after !== null) parts.push(sql`${key} > ${range.after}`);
  if (range.upTo !== null) parts.push(sql`${key} <= ${range.upTo}`);
  if (spec.filter) parts.push(filterSql(spec.filter));
  return parts.length ? join(parts, sql` AND `) : sql`true`;
}

/** The same condition with literals, for COPY, which cannot take bind parameters. */
function rangeConditionLiteral(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  const parts: Sql[] = [];
  if (range.after !== null) parts.push(sql`${key} > ${literal(range.after)}`);
  if (range.upTo !== null) parts.push(sql`${key} <= ${literal(range.upTo)}`);
  if (spec.filter) parts.push(filterSql(spec.filter));
  return parts.length ? join(parts, sql` AND `) : sql`true`;
}

function selectList(spec: Pick<CopySpec, 'columns'>): Sql {
  return join(Object.keys(spec.columns).map((name) => sql`${expressionSql(spec, name)} AS ${ident(name)}`));
}

function columnList(names: string[]): Sql {
  return join(names.map((name) => ident(name)));
}

export const TOMBSTONES_TABLE = TOMBSTONES.text;

/** How tombstones name a target table: schema.table, unquoted, as the client library writes it. */
export function tombstoneTableName(target: TableName): string {
  return tableKey(target);
}

/** No tombstone for the key `keyExpression` gives (a literal table name: COPY-free, but kept in the text). */
function noTombstone(target: TableName, keyExpression: Sql): Sql {
  return sql`NOT EXISTS (SELECT 1 FROM ${TOMBSTONES} AS tomb WHERE tomb.target_table = ${literal(tombstoneTableName(target))} AND tomb.key = ${keyExpression}::text)`;
}

/**
 * Taken (shared) by a copy batch before it inserts, in the same transaction: an application
 * delete (ferry.record_delete takes it exclusively) either finishes first, and the insert's
 * snapshot sees its tombstone, or waits for the batch, and then deletes what it wrote. Taken
 * exclusively, as record_delete takes it, by a claim that forgets an ended run's tombstones.
 */
export function copyLockSql(target: TableName, lockClass: number, mode: 'shared' | 'exclusive' = 'shared'): Sql {
  return mode === 'shared'
    ? sql`SELECT pg_advisory_xact_lock_shared(${lockClass}, hashtext(${tombstoneTableName(target)}))`
    : sql`SELECT pg_advisory_xact_lock(${lockClass}, hashtext(${tombstoneTableName(target)}))`;
}

/**
 * Forgets the tombstones of a target table, for a claim that takes it over from a run that ended.
 * Run after the copy lock taken exclusively in the same transaction: it orders every application
 * delete before the claim (forgotten) or after it (kept, and guarding the new run), and waits for
 * a copy batch still in flight.
 */
export function clearTombstonesSql(target: TableName): Sql {
  return sql`DELETE FROM ${TOMBSTONES} WHERE target_table = ${tombstoneTableName(target)}`;
}

/** What to do when the target already holds the key. */
function onConflict(spec: CopySpec, columns: string[]): Sql {
  const conflict = spec.conflict ?? { policy: 'ignore' };
  const key = ident(spec.target.key);
  // Named, so that a clash on another unique index is an error (a failed row), not a silent skip.
  if (conflict.policy === 'ignore') return sql`ON CONFLICT (${key}) DO NOTHING`;
  const updates = columns.filter((c) => c !== spec.target.key).map((c) => sql`${ident(c)} = EXCLUDED.${ident(c)}`);
  if (conflict.policy === 'overwrite') {
    // A target holding only the key has nothing else to set; the no-op update still claims the row.
    const set = updates.length ? updates : [sql`${key} = EXCLUDED.${key}`];
    return sql`ON CONFLICT (${key}) DO UPDATE SET ${join(set)}`;
  }
  const newer = column(TARGET_ALIAS, conflict.newerBy);
  return sql`ON CONFLICT (${key}) DO UPDATE SET ${join(updates)} WHERE ${newer} IS NULL OR ${newer} < EXCLUDED.${ident(conflict.newerBy)}`;
}

/**
 * Finds where the next batch ends: the last key of the first `limit` rows of the range and how
 * many rows that is. Walks the key index only. Returns no row when the range is empty.
 */
export function nextBatchBoundSql(
  spec: Pick<CopySpec, 'source' | 'filter'>,
  range: KeyRange,
  limit: number,
): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  return sql`SELECT batch.last_key, batch.rows FROM (SELECT ${key}::text AS last_key, row_number() OVER (ORDER BY ${key}) AS rows FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeCondition(spec, range)} ORDER BY ${key} LIMIT ${limit}) AS batch ORDER BY batch.rows DESC LIMIT 1`;
}

/**
 * The last key of the first `limit` rows of the range when it holds that many, else no row: one
 * index walk with nothing computed per key, cheaper than nextBatchBoundSql, which the copier
 * needs only for a range's last, shorter batch.
 */
export function fullBatchEndSql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, limit: number): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  return sql`SELECT ${key}::text AS last_key FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeCondition(spec, range)} ORDER BY ${key} OFFSET ${int(Math.max(0, Math.trunc(limit) - 1))} LIMIT 1`;
}

/** The key splitting a range's rows in two halves (the last key of the first half). */
export function middleKeySql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, firstHalfRows: number): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  return sql`SELECT ${key}::text AS key FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeCondition(spec, range)} ORDER BY ${key} OFFSET ${Math.max(0, firstHalfRows - 1)} LIMIT 1`;
}

/** One statement that copies a key range within one database; idempotent under its conflict policy. */
export function copyWithinDatabaseSql(spec: CopySpec, range: KeyRange): Sql {
  const columns = Object.keys(spec.columns);
  const keyExpression = spec.target.key in spec.columns ? expressionSql(spec, spec.target.key) : column(SOURCE_ALIAS, spec.source.key);
  const condition = rangeCondition(spec, range);
  const where = spec.honourTombstones ? sql`${condition} AND ${noTombstone(spec.target, keyExpression)}` : condition;
  return sql`INSERT INTO ${tableName(spec.target)} AS ${T} (${columnList(columns)}) SELECT ${selectList(spec)} FROM ${tableName(spec.source)} AS ${S} WHERE ${where} ${onConflict(spec, columns)}`;
}

/**
 * The same copy as copyWithinDatabaseSql into a key range the target holds nothing of and no
 * tombstone at all (targetRangeIsClearSql, checked under the copy lock): a plain INSERT, as
 * nothing there could conflict or be resurrected. A key the application wrote meanwhile makes
 * it fail with a unique violation, and the caller runs copyWithinDatabaseSql instead.
 */
export function insertIntoClearRangeSql(spec: CopySpec, range: KeyRange): Sql {
  const columns = Object.keys(spec.columns);
  return sql`INSERT INTO ${tableName(spec.target)} (${columnList(columns)}) SELECT ${selectList(spec)} FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeCondition(spec, range)}`;
}

/** COPY of the transformed rows of a key range out of the source, in the spec's format. */
export function copyOutSql(spec: CopySpec, range: KeyRange): string {
  return sql`COPY (SELECT ${selectList(spec)} FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeConditionLiteral(spec, range)}) TO STDOUT${copyOptions(spec)}`.text;
}

/** The transformed columns with no row: its fields give each expression's type on the source. */
export function transformTypesSql(spec: Pick<CopySpec, 'source' | 'columns'>): Sql {
  return sql`SELECT ${selectList(spec)} FROM ${tableName(spec.source)} AS ${S} WHERE false`;
}

/** The server's major version (binary COPY's forms are the same within one). */
export const serverMajorSql = sql`SELECT current_setting('server_version_num')::int / 10000 AS major`;

/** The target's copied columns' type OIDs, and the server's major version. */
export function targetColumnTypesSql(spec: Pick<CopySpec, 'target' | 'columns'>): Sql {
  return sql`SELECT a.attname AS name, a.atttypid::int AS type, current_setting('server_version_num')::int / 10000 AS major FROM pg_attribute AS a WHERE a.attrelid = to_regclass(${qualifiedName(spec.target)}) AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(${Object.keys(spec.columns)}::text[])`;
}

/**
 * Whether the target holds nothing yet in a key range and no tombstones at all: then a batch
 * can COPY straight into the target, as nothing there could conflict or be resurrected.
 */
export function targetRangeIsClearSql(spec: CopySpec, range: KeyRange): Sql {
  // The range is of source keys: on the target they are the lineage column's, when there is one.
  const key = column(TARGET_ALIAS, spec.lineage ?? spec.target.key);
  const parts: Sql[] = [];
  if (range.after !== null) parts.push(sql`${key} > ${range.after}`);
  if (range.upTo !== null) parts.push(sql`${key} <= ${range.upTo}`);
  const tombstones = spec.honourTombstones
    ? sql` AND NOT EXISTS (SELECT 1 FROM ${TOMBSTONES} WHERE target_table = ${tombstoneTableName(spec.target)})`
    : sql``;
  // The range's first key in key order, as a scalar subquery: on a target the copy is filling,
  // not analyzed yet, the planner took a scan of the whole table to be the cheapest way to find
  // any row for EXISTS (which drops an ORDER BY ... LIMIT), and each batch's check read every
  // row copied so far. Key order makes the key index the cheap way.
  return sql`SELECT (SELECT ${key} FROM ${tableName(spec.target)} AS ${T} WHERE ${parts.length ? join(parts, sql` AND `) : sql`true`} ORDER BY ${key} LIMIT 1) IS NULL${tombstones} AS clear`;
}

export function copyIntoTargetSql(spec: Pick<CopySpec, 'target' | 'columns' | 'copyFormat'>): string {
  return sql`COPY ${tableName(spec.target)} (${columnList(Object.keys(spec.columns))}) FROM STDIN${copyOptions(spec)}`.text;
}

/**
 * A per-session staging table shaped like the copied target columns (types only, no
 * constraints). It empties itself at every commit, so a failed batch leaves nothing behind.
 */
export function stagingTableName(spec: Pick<CopySpec, 'target' | 'columns'>): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([spec.target.schema, spec.target.table, Object.keys(spec.columns)]))
    .digest('hex')
    .slice(0, 16);
  return `ferry_stage_${digest}`;
}

/**
 * The staging table lives in the session and is emptied at each commit; behind a transaction-mode
 * pooler, whose server sessions other clients share, it is dropped at commit instead.
 */
export function createStagingSql(spec: Pick<CopySpec, 'target' | 'columns'>, onCommit: 'DELETE ROWS' | 'DROP' = 'DELETE ROWS'): string {
  const action = onCommit === 'DROP' ? sql`DROP` : sql`DELETE ROWS`;
  return sql`CREATE TEMP TABLE IF NOT EXISTS ${ident(stagingTableName(spec))} ON COMMIT ${action} AS SELECT ${columnList(Object.keys(spec.columns))} FROM ${tableName(spec.target)} WITH NO DATA`.text;
}

export function copyIntoStagingSql(spec: Pick<CopySpec, 'target' | 'columns' | 'copyFormat'>): string {
  return sql`COPY ${ident(stagingTableName(spec))} (${columnList(Object.keys(spec.columns))}) FROM STDIN${copyOptions(spec)}`.text;
}

export function insertFromStagingSql(spec: CopySpec): string {
  const columns = Object.keys(spec.columns);
  const tombstone = spec.honourTombstones ? sql` WHERE ${noTombstone(spec.target, sql`(${column(STAGE_ALIAS, spec.target.key)})`)}` : sql``;
  return sql`INSERT INTO ${tableName(spec.target)} AS ${T} (${columnList(columns)}) SELECT ${join(columns.map((c) => column(STAGE_ALIAS, c)))} FROM ${ident(stagingTableName(spec))} AS ${ST}${tombstone} ${onConflict(spec, columns)}`.text;
}

/** A few transformed rows, for the dry run. */
export function sampleSql(spec: CopySpec, limit: number): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  return sql`SELECT ${key}::text AS "ferry source key", ${selectList(spec)} FROM ${tableName(spec.source)} AS ${S} WHERE ${spec.filter ? filterSql(spec.filter) : sql`true`} ORDER BY ${key} LIMIT ${limit}`;
}

/** Name of the first column of rangeRowsSql: the source key as text. */
export const SOURCE_KEY_TEXT = 'ferry source key';

/**
 * The whole source rows of a key range in key order, each preceded by its key as text (read
 * them with rowMode 'array': the first value is the key, the rest are the row).
 */
export function rangeRowsSql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, limit?: number): Sql {
  const key = column(SOURCE_ALIAS, spec.source.key);
  return sql`SELECT ${key}::text AS ${ident(SOURCE_KEY_TEXT)}, ${S}.* FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeCondition(spec, range)} ORDER BY ${key}${limit === undefined ? sql`` : sql` LIMIT ${int(Math.trunc(limit))}`}`;
}

/**
 * rangeRowsSql as a COPY to the client, in text format: the rows of a key range in key order,
 * each line the key as text, then the source row's columns (see sourceRowsCopyText).
 */
export function rangeRowsCopySql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, limit?: number): string {
  const key = column(SOURCE_ALIAS, spec.source.key);
  const limited = limit === undefined ? sql`` : sql` LIMIT ${int(Math.trunc(limit))}`;
  return sql`COPY (SELECT ${key}::text AS ${ident(SOURCE_KEY_TEXT)}, ${S}.* FROM ${tableName(spec.source)} AS ${S} WHERE ${rangeConditionLiteral(spec, range)} ORDER BY ${key}${limited}) TO STDOUT`.text;
}
