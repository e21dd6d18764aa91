/**
 * Row estimate says about how many rows a table holds, for progress and the ETA: the planner's
 * statistics when there are any, else an exact count given a few seconds. Read-only.
 */
import type pg from 'pg';
import { oneStatement, readOnly } from '../plan-sql';
import { ferrySql, int, join, sql, type Sql } from '../sql';

const COUNT_TIMEOUT_MS = 5_000;

/**
 * Rows counted by `statement` (one row, column `rows`), in a read-only transaction given a few
 * seconds; null when it does not answer in time. The statement may hold plan SQL: it runs as one
 * statement, and readOnly ends whatever it took with the transaction.
 */
export async function timedCount(pool: pg.Pool, statement: Sql): Promise<number | null> {
  try {
    return await readOnly(pool, async (client) => {
      await client.query(sql`SET LOCAL statement_timeout = ${int(COUNT_TIMEOUT_MS)}`);
      const counted = await client.query<{ rows: string }>(oneStatement(statement));
      return Number(counted.rows[0]?.rows);
    });
  } catch {
    return null;
  }
}

/**
 * A partitioned table's rows: its leaf partitions' reltuples, and a count of the leaves never
 * analyzed (most often empty ones made ahead of time, which autovacuum never analyzes). Its own
 * reltuples is only ever set by an ANALYZE of the parent itself, which autovacuum never runs, so
 * it is -1 or as old as the last manual ANALYZE.
 */
async function partitionedEstimate(pool: pg.Pool, regclass: string): Promise<number | null> {
  const { rows } = await pool.query<{ leaf: string; estimate: string | null }>(
    // From the catalog alone: pg_partition_tree() would lock every partition, and wait behind any lock on one.
    sql`WITH RECURSIVE tree (relid) AS (
          SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(${regclass})
          UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid)
        SELECT l.oid::regclass::text AS leaf, CASE WHEN l.reltuples >= 0 THEN l.reltuples::bigint::text END AS estimate
          FROM tree JOIN pg_class l ON l.oid = tree.relid
         WHERE l.relkind <> 'p'`,
  );
  const known = rows.reduce((sum, row) => sum + (row.estimate === null ? 0 : Number(row.estimate)), 0);
  const unknown = rows.filter((row) => row.estimate === null).map((row) => sql`(SELECT count(*) FROM ONLY ${ferrySql(row.leaf)})`);
  if (unknown.length === 0) return known;
  const counted = await timedCount(pool, sql`SELECT (${join(unknown, sql` + `)})::text AS rows`);
  return counted === null ? null : known + counted;
}

/** Planner statistics when there are any; otherwise an exact count, given a few seconds; null when neither answers. */
export async function estimateRows(pool: pg.Pool, regclass: string): Promise<number | null> {
  const { rows } = await pool.query<{ partitioned: boolean; estimate: string | null }>(
    sql`SELECT c.relkind = 'p' AS partitioned, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint::text END AS estimate
          FROM pg_class c WHERE c.oid = to_regclass(${regclass})`,
  );
  const table = rows[0];
  if (table?.partitioned) return partitionedEstimate(pool, regclass);
  if (table?.estimate !== null && table?.estimate !== undefined) return Number(table.estimate);
  return timedCount(pool, sql`SELECT count(*)::text AS rows FROM ${ferrySql(regclass)}`);
}
