/**
 * The SQL of the final check of a verification: which source rows in scope no shard reaches, and
 * which target rows no shard owns. Pure string building: identifiers quoted, values literals
 * (shard bounds and partition values come from the planner) or bind parameters.
 */
import { coverageOf, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { KeyedTable } from '../copy/copy-statements';
import { qualifiedName, quoteIdent, quoteLiteral, SOURCE_ALIAS } from '../sql';

const TARGET_ALIAS = 't';

function rangeSql(keySql: string, range: KeyRange): string {
  const parts = [`${keySql} IS NOT NULL`];
  if (range.after !== null) parts.push(`${keySql} > ${quoteLiteral(range.after)}`);
  if (range.upTo !== null) parts.push(`${keySql} <= ${quoteLiteral(range.upTo)}`);
  return parts.join(' AND ');
}

/**
 * A condition that holds for a row some shard reaches: its key in one of the shard's ranges (a
 * NULL key is in none), and its partition column, as text, the shard's value. `partitionSql`
 * is needed only when a shard has a partition value.
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
    alternatives.push(partitionValue === null || partitionSql === null ? `(${inRanges})` : `((${partitionSql})::text = ${quoteLiteral(partitionValue)} AND (${inRanges}))`);
  }
  if (whole.length > 0) alternatives.unshift(`((${partitionSql})::text IN (${whole.map(quoteLiteral).join(', ')}) AND ${keySql} IS NOT NULL)`);
  return alternatives.join(' OR ');
}

/** In one snapshot: the source rows in scope, those some shard reaches, and those with a NULL key. */
export function scopeCountSql(source: KeyedTable, scope: string | null, reached: string): string {
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  return (
    `SELECT count(*)::text AS scope, (count(*) FILTER (WHERE ${reached}))::text AS reached, ` +
    `(count(*) FILTER (WHERE ${key} IS NULL))::text AS null_keys ` +
    `FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS}${scope ? ` WHERE ${scope}` : ''}`
  );
}

/** The next `limit` keys (after `after`) of source rows in scope that no shard reaches. */
export function unreachedKeysSql(source: KeyedTable, scope: string | null, reached: string, after: string | null, limit: number): { text: string; values: unknown[] } {
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  const values: unknown[] = [];
  const where = [`${key} IS NOT NULL`, `NOT (${reached})`, ...(scope ? [`(${scope})`] : []), ...(after === null ? [] : [`${key} > $${values.push(after)}`])];
  return {
    text: `SELECT ${key}::text AS key FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS} WHERE ${where.join(' AND ')} ORDER BY ${key} LIMIT $${values.push(limit)}`,
    values,
  };
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
): { text: string; values: unknown[] } {
  const key = `${TARGET_ALIAS}.${quoteIdent(target.key)}`;
  const source = `${TARGET_ALIAS}.${quoteIdent(lineage ?? target.key)}`;
  const values: unknown[] = [];
  const where = [`${key} IS NOT NULL`, ...(condition ? [`(${condition})`] : []), ...(after === null ? [] : [`${key} > $${values.push(after)}`])];
  return {
    text:
      `SELECT ${key}::text AS key, ${source}::text AS source_key FROM ${qualifiedName(target)} AS ${TARGET_ALIAS}` +
      ` WHERE ${where.join(' AND ')} ORDER BY ${key} LIMIT $${values.push(limit)}`,
    values,
  };
}

/** How many target rows have a NULL key: no mismatch can name them. */
export function nullTargetKeysSql(target: KeyedTable): string {
  return `SELECT count(*)::text AS rows FROM ${qualifiedName(target)} AS ${TARGET_ALIAS} WHERE ${TARGET_ALIAS}.${quoteIdent(target.key)} IS NULL`;
}

/** Of a list of source keys, those the source holds at all (whatever the scope), as text. */
export function sourceKeysHeldSql(source: KeyedTable, keys: string[]): { text: string; values: unknown[] } {
  const key = `${SOURCE_ALIAS}.${quoteIdent(source.key)}`;
  return { text: `SELECT ${key}::text AS key FROM ${qualifiedName(source)} AS ${SOURCE_ALIAS} WHERE ${key} = ANY($1)`, values: [keys] };
}

/** Of a list of target keys, the rows the target still holds, with their source key as text. */
export function targetKeysHeldSql(target: KeyedTable, lineage: string | null, keys: string[]): { text: string; values: unknown[] } {
  const key = `${TARGET_ALIAS}.${quoteIdent(target.key)}`;
  const source = `${TARGET_ALIAS}.${quoteIdent(lineage ?? target.key)}`;
  return {
    text: `SELECT ${key}::text AS key, ${source}::text AS source_key FROM ${qualifiedName(target)} AS ${TARGET_ALIAS} WHERE ${key} = ANY($1)`,
    values: [keys],
  };
}
