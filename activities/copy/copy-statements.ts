/**
 * The SQL the copier runs. Pure string building: every identifier is quoted here, every key
 * value is a bind parameter or (inside COPY, which takes none) a quoted literal.
 */
import { createHash } from 'node:crypto';
import type { KeyRange } from '../../lib/key-range';
import { targetKey, type Plan } from '../../lib/plan';
import { tableKey } from '../../lib/ids';
import { qualifiedName, quoteIdent, quoteLiteral, SOURCE_ALIAS, type TableName } from '../sql';
import { sourceFilter } from './subset';

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
  /** A condition over the source row (alias `s`) that limits what is copied; null for all rows. */
  filter?: string | null;
  /** (Default: ignore) */
  conflict?: ConflictPolicy;
  /** Skip keys with a tombstone in Ferry's schema on the target. (Default: false) */
  honourTombstones?: boolean;
  /** The target column holding each row's source key, when the target key does not (plan.target.sourceKey). */
  lineage?: string;
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

interface Condition {
  sql: string;
  params: string[];
}

/** `key > after AND key <= upTo` plus the spec's filter, as bind parameters numbered from 1. */
function rangeCondition(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange): Condition {
  const column = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  const parts: string[] = [];
  const params: string[] = [];
  if (range.after !== null) {
    params.push(range.after);
    parts.push(`${column} > $${params.length}`);
  }
  if (range.upTo !== null) {
    params.push(range.upTo);
    parts.push(`${column} <= $${params.length}`);
  }
  if (spec.filter) parts.push(`(${spec.filter})`);
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

/** The same condition with literals, for COPY, which cannot take bind parameters. */
function rangeConditionLiteral(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange): string {
  const column = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  const parts: string[] = [];
  if (range.after !== null) parts.push(`${column} > ${quoteLiteral(range.after)}`);
  if (range.upTo !== null) parts.push(`${column} <= ${quoteLiteral(range.upTo)}`);
  if (spec.filter) parts.push(`(${spec.filter})`);
  return parts.length ? parts.join(' AND ') : 'true';
}

function selectList(columns: Record<string, string>): string {
  return Object.entries(columns)
    .map(([name, expression]) => `(${expression}) AS ${quoteIdent(name)}`)
    .join(', ');
}

function columnList(names: string[]): string {
  return names.map(quoteIdent).join(', ');
}

export const TOMBSTONES_TABLE = 'ferry.tombstones';

/** How tombstones name a target table: schema.table, unquoted, as the client library writes it. */
export function tombstoneTableName(target: TableName): string {
  return tableKey(target);
}

function noTombstone(target: TableName, keyText: string): string {
  return (
    `NOT EXISTS (SELECT 1 FROM ${TOMBSTONES_TABLE} AS tomb ` +
    `WHERE tomb.target_table = ${quoteLiteral(tombstoneTableName(target))} AND tomb.key = (${keyText})::text)`
  );
}

/**
 * Taken (shared) by a copy batch before it inserts, in the same transaction: an application
 * delete (ferry.record_delete takes it exclusively) either finishes first, and the insert's
 * snapshot sees its tombstone, or waits for the batch, and then deletes what it wrote.
 */
export function copyLockSql(target: TableName, lockClass: number): { text: string; values: unknown[] } {
  return { text: 'SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', values: [lockClass, tombstoneTableName(target)] };
}

/** What to do when the target already holds the key. */
function onConflict(spec: CopySpec, columns: string[]): string {
  const conflict = spec.conflict ?? { policy: 'ignore' };
  // Named, so that a clash on another unique index is an error (a failed row), not a silent skip.
  if (conflict.policy === 'ignore') return `ON CONFLICT (${quoteIdent(spec.target.key)}) DO NOTHING`;
  const updates = columns.filter((c) => c !== spec.target.key).map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`);
  if (conflict.policy === 'overwrite') {
    // A target holding only the key has nothing else to set; the no-op update still claims the row.
    const set = updates.length ? updates : [`${quoteIdent(spec.target.key)} = EXCLUDED.${quoteIdent(spec.target.key)}`];
    return `ON CONFLICT (${quoteIdent(spec.target.key)}) DO UPDATE SET ${set.join(', ')}`;
  }
  const newer = quoteIdent(conflict.newerBy);
  return (
    `ON CONFLICT (${quoteIdent(spec.target.key)}) DO UPDATE SET ${updates.join(', ')} ` +
    `WHERE ${TARGET_ALIAS}.${newer} IS NULL OR ${TARGET_ALIAS}.${newer} < EXCLUDED.${newer}`
  );
}

/**
 * Finds where the next batch ends: the last key of the first `limit` rows of the range and how
 * many rows that is. Walks the key index only. Returns no row when the range is empty.
 */
export function nextBatchBoundSql(
  spec: Pick<CopySpec, 'source' | 'filter'>,
  range: KeyRange,
  limit: number,
): { text: string; values: unknown[] } {
  const condition = rangeCondition(spec, range);
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  const text =
    `SELECT batch.last_key, batch.rows FROM (` +
    `SELECT ${key}::text AS last_key, row_number() OVER (ORDER BY ${key}) AS rows ` +
    `FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} WHERE ${condition.sql} ORDER BY ${key} LIMIT $${condition.params.length + 1}` +
    `) AS batch ORDER BY batch.rows DESC LIMIT 1`;
  return { text, values: [...condition.params, limit] };
}

/** The key splitting a range's rows in two halves (the last key of the first half). */
export function middleKeySql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, firstHalfRows: number): { text: string; values: unknown[] } {
  const condition = rangeCondition(spec, range);
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  return {
    text:
      `SELECT ${key}::text AS key FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
      `WHERE ${condition.sql} ORDER BY ${key} OFFSET $${condition.params.length + 1} LIMIT 1`,
    values: [...condition.params, Math.max(0, firstHalfRows - 1)],
  };
}

/** One statement that copies a key range within one database; idempotent under its conflict policy. */
export function copyWithinDatabaseSql(spec: CopySpec, range: KeyRange): { text: string; values: unknown[] } {
  const condition = rangeCondition(spec, range);
  const columns = Object.keys(spec.columns);
  const keyExpression = spec.columns[spec.target.key] ?? `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  const where = spec.honourTombstones ? `${condition.sql} AND ${noTombstone(spec.target, keyExpression)}` : condition.sql;
  const text =
    `INSERT INTO ${qualifiedName(spec.target)} AS ${TARGET_ALIAS} (${columnList(columns)}) ` +
    `SELECT ${selectList(spec.columns)} FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${where} ${onConflict(spec, columns)}`;
  return { text, values: condition.params };
}

/** COPY of the transformed rows of a key range out of the source, in text format. */
export function copyOutSql(spec: CopySpec, range: KeyRange): string {
  return (
    `COPY (SELECT ${selectList(spec.columns)} FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${rangeConditionLiteral(spec, range)}) TO STDOUT`
  );
}

/**
 * Whether the target holds nothing yet in a key range and no tombstones at all: then a batch
 * can COPY straight into the target, as nothing there could conflict or be resurrected.
 */
export function targetRangeIsClearSql(spec: CopySpec, range: KeyRange): { text: string; values: unknown[] } {
  // The range is of source keys: on the target they are the lineage column's, when there is one.
  const key = `${TARGET_ALIAS}.${quoteIdent(spec.lineage ?? spec.target.key)}`;
  const parts: string[] = [];
  const values: unknown[] = [];
  if (range.after !== null) parts.push(`${key} > $${values.push(range.after)}`);
  if (range.upTo !== null) parts.push(`${key} <= $${values.push(range.upTo)}`);
  const tombstones = spec.honourTombstones
    ? ` AND NOT EXISTS (SELECT 1 FROM ${TOMBSTONES_TABLE} WHERE target_table = $${values.push(tombstoneTableName(spec.target))})`
    : '';
  return {
    text: `SELECT NOT EXISTS (SELECT 1 FROM ${qualifiedName(spec.target)} AS ${TARGET_ALIAS} WHERE ${parts.join(' AND ') || 'true'})${tombstones} AS clear`,
    values,
  };
}

export function copyIntoTargetSql(spec: Pick<CopySpec, 'target' | 'columns'>): string {
  return `COPY ${qualifiedName(spec.target)} (${columnList(Object.keys(spec.columns))}) FROM STDIN`;
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
  return (
    `CREATE TEMP TABLE IF NOT EXISTS ${quoteIdent(stagingTableName(spec))} ON COMMIT ${onCommit} AS ` +
    `SELECT ${columnList(Object.keys(spec.columns))} FROM ${qualifiedName(spec.target)} WITH NO DATA`
  );
}

export function copyIntoStagingSql(spec: Pick<CopySpec, 'target' | 'columns'>): string {
  return `COPY ${quoteIdent(stagingTableName(spec))} (${columnList(Object.keys(spec.columns))}) FROM STDIN`;
}

export function insertFromStagingSql(spec: CopySpec): string {
  const columns = Object.keys(spec.columns);
  const stage = `${quoteIdent(stagingTableName(spec))} AS ${STAGE_ALIAS}`;
  const tombstone = spec.honourTombstones ? ` WHERE ${noTombstone(spec.target, `${STAGE_ALIAS}.${quoteIdent(spec.target.key)}`)}` : '';
  return (
    `INSERT INTO ${qualifiedName(spec.target)} AS ${TARGET_ALIAS} (${columnList(columns)}) ` +
    `SELECT ${columns.map((c) => `${STAGE_ALIAS}.${quoteIdent(c)}`).join(', ')} FROM ${stage}${tombstone} ${onConflict(spec, columns)}`
  );
}

/** A few transformed rows, for the dry run. */
export function sampleSql(spec: CopySpec, limit: number): { text: string; values: unknown[] } {
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  return {
    text:
      `SELECT ${key}::text AS "ferry source key", ${selectList(spec.columns)} ` +
      `FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} WHERE ${spec.filter ? `(${spec.filter})` : 'true'} ORDER BY ${key} LIMIT $1`,
    values: [limit],
  };
}

/** Name of the first column of rangeRowsSql: the source key as text. */
export const SOURCE_KEY_TEXT = 'ferry source key';

/**
 * The whole source rows of a key range in key order, each preceded by its key as text (read
 * them with rowMode 'array': the first value is the key, the rest are the row).
 */
export function rangeRowsSql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, limit?: number): { text: string; values: unknown[] } {
  const condition = rangeCondition(spec, range);
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  return {
    text:
      `SELECT ${key}::text AS ${quoteIdent(SOURCE_KEY_TEXT)}, ${SOURCE_ALIAS}.* FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
      `WHERE ${condition.sql} ORDER BY ${key}${limit === undefined ? '' : ` LIMIT ${Math.trunc(limit)}`}`,
    values: condition.params,
  };
}

/**
 * rangeRowsSql as a COPY to the client, in text format: the rows of a key range in key order,
 * each line the key as text, then the source row's columns (see sourceRowsCopyText).
 */
export function rangeRowsCopySql(spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange): string {
  const key = `${SOURCE_ALIAS}.${quoteIdent(spec.source.key)}`;
  return (
    `COPY (SELECT ${key}::text AS ${quoteIdent(SOURCE_KEY_TEXT)}, ${SOURCE_ALIAS}.* FROM ${qualifiedName(spec.source)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${rangeConditionLiteral(spec, range)} ORDER BY ${key}) TO STDOUT`
  );
}
