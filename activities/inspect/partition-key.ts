/**
 * Partition key says what stands in the way of a single-column unique key on a partitioned
 * table: every unique index on it must hold its partition key's columns.
 */
import type pg from 'pg';
import { displayName, qualifiedName, sql, type TableName } from '../sql';

/**
 * What to do when `key` has no unique index of its own because the table is partitioned on other
 * columns; null for a table that is not partitioned. Read-only.
 */
export async function partitionKeyAdvice(pool: pg.Pool, table: TableName, key: string, side: 'source' | 'target'): Promise<string | null> {
  const { rows } = await pool.query<{ partitioning: string | null }>(
    sql`SELECT pg_get_partkeydef(c.oid) AS partitioning FROM pg_class c WHERE c.oid = to_regclass(${qualifiedName(table)}) AND c.relkind = 'p'`,
  );
  const partitioning = rows[0]?.partitioning;
  if (!partitioning) return null;
  return (
    `${displayName(table)} is partitioned by ${partitioning}, so a unique index on it must hold those columns; ` +
    (side === 'source'
      ? `migrate each partition as a source of its own, with a unique index on "${key}" there`
      : `migrate into each partition as a target of its own (subset.where choosing its rows), with a unique index on "${key}" there`)
  );
}
