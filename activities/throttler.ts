/**
 * Throttler looks at the source database's health (replica lag, long-running queries, a probe
 * of the user's) and says whether copying should hold off, and why.
 */
import { ApplicationFailure } from '@temporalio/activity';
import pg from 'pg';
import type { Plan } from '../lib/plan';
import type { SourceHealth, ThrottleKind } from '../workers/metrics';
import { oneStatement, readOnly } from './plan-sql';
import { redactErrorText } from '../lib/errors';

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
    const value = await runProbe(pool, probe.sql);
    if (!Number.isFinite(value)) return `backoff.probe returned no number; holding until it does`;
    if (value > probe.max) return `backoff.probe returned ${value}, over its max ${probe.max}`;
  }
  return null;
}

/**
 * The first value of the probe's first row, as a number (NaN when there is none). The probe runs
 * as one statement in a READ ONLY transaction, so it can neither stack statements nor write. A
 * probe the database refuses for what it is (syntax, a write, a missing table: SQLSTATE classes
 * 0A, 22, 25, 42) fails for good with a redacted message: running it again cannot help.
 */
async function runProbe(pool: pg.Pool, sql: string): Promise<number> {
  try {
    return await readOnly(pool, async (client) => {
      const result = await client.query(oneStatement({ text: sql, rowMode: 'array' as const }));
      return Number((result.rows[0] as unknown[] | undefined)?.[0]);
    });
  } catch (error) {
    const code = error instanceof pg.DatabaseError ? (error.code ?? '') : '';
    if (/^(0A|22|25|42)/.test(code) && code !== '42501') {
      throw ApplicationFailure.nonRetryable(
        `backoff.probe fails on the source: ${redactErrorText(error)} [${code}]; fix backoff.probe.sql (one read-only SELECT returning a number)`,
        'BackoffProbeFailed',
      );
    }
    throw error;
  }
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
