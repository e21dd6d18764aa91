/**
 * The SQL of the final check of a verification: which source rows in scope no shard reaches, and
 * which target rows no shard owns. Identifiers quoted, values literals (shard bounds and
 * partition values come from the planner) or bind parameters of the sql`` template; the
 * conditions passed in as text are Ferry's own (reachedBySql, sourceFilter).
 */
import { coverageOf, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { KeyedTable } from '../copy/copy-statements';
import { column, ferrySql, join, quoteLiteral, sql, SOURCE_ALIAS, tableName, type Sql } from '../sql';

const TARGET_ALIAS = 't';

function rangeSql(keySql: string, range: KeyRange): string {
  const parts = [`${keySql} IS NOT NULL`];
  if (range.after !== null) parts.push(`${keySql} > ${quoteLiteral(range.after)}`);
  if (range.upTo !== null) parts.push(`${keySql} <= ${quoteLiteral(range.upTo)}`);
  return parts.join(' AND ');
}

/**
 * A condition that holds for a row some shard reaches: its key in one of the shard's ranges (a
 * NULL key is in none), and its partition column the shard's value, compared in the column's
 * type as the shard's copy compares it (sourceFilter). `partitionSql` is needed only when a shard
 * has a partition value.
 */
export function reachedBySql(shards: readonly ShardSpec[], keySql: string, partitionSql: string | null): string {
  if (shards.length === 0) return 'false';
  const alternatives: string[] = [];
  // Partitions copied whole (the usual case) share one list, which Postgres looks up by hash.
  const whole: string[] = [];
  for (const { partitionValue, ranges } of coverageOf(shards)) {
    if (partitionValue !== null && partitionSql !== null && ranges.length === 1 && ranges[0]!.after === null && ranges[0]!.upTo === null) {
      whole.push(partitionValue);
      continue;
    }
    const inRanges = ranges.map((r) => `(${rangeSql(keySql, r)})`).join(' OR ');
    alternatives.push(partitionValue === null || partitionSql === null ? `(${inRanges})` : `((${partitionSql}) = ${quoteLiteral(partitionValue)} AND (${inRanges}))`);
  }
  if (whole.length > 0) alternatives.unshift(`((${partitionSql}) IN (${whole.map(quoteLiteral).join(', ')}) AND ${keySql} IS NOT NULL)`);
  return alternatives.join(' OR ');
}

const [S, T] = [SOURCE_ALIAS, TARGET_ALIAS].map(ferrySql) as [Sql, Sql];

/** In one snapshot: the source rows in scope, those some shard reaches, and those with a NULL key. */
export function scopeCountSql(source: KeyedTable, scope: string | null, reached: string): string {
  const key = column(SOURCE_ALIAS, source.key);
  return sql`SELECT count(*)::text AS scope, (count(*) FILTER (WHERE ${ferrySql(reached)}))::text AS reached, (count(*) FILTER (WHERE ${key} IS NULL))::text AS null_keys FROM ${tableName(source)} AS ${S}${scope ? sql` WHERE ${ferrySql(scope)}` : sql``}`.text;
}

/** The next `limit` keys (after `after`) of source rows in scope that no shard reaches. */
export function unreachedKeysSql(source: KeyedTable, scope: string | null, reached: string, after: string | null, limit: number): Sql {
  const key = column(SOURCE_ALIAS, source.key);
  const where = [sql`${key} IS NOT NULL`, sql`NOT (${ferrySql(reached)})`, ...(scope ? [sql`(${ferrySql(scope)})`] : []), ...(after === null ? [] : [sql`${key} > ${after}`])];
  return sql`SELECT ${key}::text AS key FROM ${tableName(source)} AS ${S} WHERE ${join(where, sql` AND `)} ORDER BY ${key} LIMIT ${limit}`;
}

/**
 * The next `limit` target rows in key order (after `after`) that pass `condition`: their key and
 * their source key (the lineage column's, or the key itself), as text.
 */
export function targetPageSql(
  target: KeyedTable,
  lineage: string | null,
  condition: string | null,
  after: string | null,
  limit: number,
): Sql {
  const key = column(TARGET_ALIAS, target.key);
  const source = column(TARGET_ALIAS, lineage ?? target.key);
  const where = [sql`${key} IS NOT NULL`, ...(condition ? [sql`(${ferrySql(condition)})`] : []), ...(after === null ? [] : [sql`${key} > ${after}`])];
  return sql`SELECT ${key}::text AS key, ${source}::text AS source_key FROM ${tableName(target)} AS ${T} WHERE ${join(where, sql` AND `)} ORDER BY ${key} LIMIT ${limit}`;
}

/** How many target rows have a NULL key: no mismatch can name them. */
export function nullTargetKeysSql(target: KeyedTable): string {
  return sql`SELECT count(*)::text AS rows FROM ${tableName(target)} AS ${T} WHERE ${column(TARGET_ALIAS, target.key)} IS NULL`.text;
}

/** Of a list of source keys, those the source holds at all (whatever the scope), as text. */
export function sourceKeysHeldSql(source: KeyedTable, keys: string[]): Sql {
  const key = column(SOURCE_ALIAS, source.key);
  return sql`SELECT ${key}::text AS key FROM ${tableName(source)} AS ${S} WHERE ${key} = ANY(${keys})`;
}

/** Of a list of target keys, the rows the target still holds, with their source key as text. */
export function targetKeysHeldSql(target: KeyedTable, lineage: string | null, keys: string[]): Sql {
  const key = column(TARGET_ALIAS, target.key);
  const source = column(TARGET_ALIAS, lineage ?? target.key);
  return sql`SELECT ${key}::text AS key, ${source}::text AS source_key FROM ${tableName(target)} AS ${T} WHERE ${key} = ANY(${keys})`;
}
