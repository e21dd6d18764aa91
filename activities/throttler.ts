/**
 * Throttler looks at the source database's health (replica lag, long-running queries, a probe
 * of the user's) and says whether copying should hold off, and why.
 */
import type pg from 'pg';
import type { Plan } from '../lib/plan';
import type { SourceHealth, ThrottleKind } from '../workers/metrics';
import { withClient } from './connections';

export type Backoff = Plan['backoff'];

/**
 * The reason to hold off now, or null when the source is healthy. Never writes. `observe`
 * receives what the check saw (for metrics), whether or not it holds.
 */
export async function holdReason(pool: pg.Pool, backoff: Backoff, observe?: (health: SourceHealth) => void): Promise<string | null> {
  const health = await sourceHealth(pool);
  observe?.(health);
  const lag = health.replicaLagSeconds;
  if (lag > backoff.maxReplicaLagSeconds) {
    return `replica lag ${lag.toFixed(1)} s is over backoff.maxReplicaLagSeconds (${backoff.maxReplicaLagSeconds} s)`;
  }
  const longest = health.longestQuerySeconds;
  if (longest > backoff.maxQuerySeconds) {
    return `a query on the source has run ${longest.toFixed(0)} s, over backoff.maxQuerySeconds (${backoff.maxQuerySeconds} s)`;
  }
  if (backoff.probe) {
    const probe = backoff.probe;
    const value = await withClient(pool, async (client) => {
      await client.query('BEGIN READ ONLY');
      const result = await client.query({ text: probe.sql, rowMode: 'array' });
      await client.query('ROLLBACK');
      return Number((result.rows[0] as unknown[] | undefined)?.[0]);
    });
    if (!Number.isFinite(value)) return `backoff.probe returned no number; holding until it does`;
    if (value > probe.max) return `backoff.probe returned ${value}, over its max ${probe.max}`;
  }
  return null;
}

/** The source's replica lag and its longest running query (not Ferry's), in seconds. */
export async function sourceHealth(pool: pg.Pool): Promise<SourceHealth> {
  const health = await pool.query<{ lag: string; longest: string }>(
    `SELECT (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication)::text AS lag,
            (SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity
              WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND application_name <> 'ferry')::text AS longest`,
  );
  return { replicaLagSeconds: Number(health.rows[0]?.lag ?? 0), longestQuerySeconds: Number(health.rows[0]?.longest ?? 0) };
}

/** The kind of a reason holdReason gave, as a bounded metrics label. */
export function holdKindOf(reason: string): ThrottleKind {
  if (reason.startsWith('replica lag')) return 'replica-lag';
  if (reason.startsWith('a query on the source')) return 'long-query';
  return 'probe';
}
