/**
 * Row estimate says about how many rows a table holds, for progress and the ETA: the planner's
 * statistics when there are any, else an exact count given a few seconds. Read-only.
 */
import type pg from 'pg';
import { withClient } from '../connections';
import { ferrySql, int, sql } from '../sql';

const COUNT_TIMEOUT_MS = 5_000;

/**
 * The planner's figure: a plain table's reltuples; for a partitioned table the sum of its leaf
 * partitions' (its own reltuples is only ever set by an ANALYZE of the parent itself, which
 * autovacuum never runs, so it is -1 or as old as the last manual ANALYZE). Null while the table,
 * or one of its partitions, has never been analyzed.
 */
async function statisticsEstimate(pool: pg.Pool, regclass: string): Promise<number | null> {
  const { rows } = await pool.query<{ estimate: string | null }>(
    sql`SELECT CASE WHEN c.relkind = 'p'
                 THEN (SELECT CASE WHEN bool_and(l.reltuples >= 0) THEN sum(l.reltuples)::bigint::text END
                         FROM pg_partition_tree(c.oid) AS t JOIN pg_class l ON l.oid = t.relid
                        WHERE t.isleaf)
                 WHEN c.reltuples >= 0 THEN c.reltuples::bigint::text END AS estimate
          FROM pg_class c WHERE c.oid = to_regclass(${regclass})`,
  );
  const estimate = rows[0]?.estimate;
  return estimate === null || estimate === undefined ? null : Number(estimate);
}

/** Planner statistics when there are any; otherwise an exact count, given a few seconds; null when neither answers. */
export async function estimateRows(pool: pg.Pool, regclass: string): Promise<number | null> {
  const estimate = await statisticsEstimate(pool, regclass);
  if (estimate !== null) return estimate;
  try {
    return await withClient(pool, async (client) => {
      await client.query('BEGIN READ ONLY');
      await client.query(sql`SET LOCAL statement_timeout = ${int(COUNT_TIMEOUT_MS)}`);
      const counted = await client.query<{ rows: string }>(sql`SELECT count(*)::text AS rows FROM ${ferrySql(regclass)}`);
      await client.query('ROLLBACK');
      return Number(counted.rows[0]?.rows);
    });
  } catch {
    return null;
  }
}
