/**
 * The back-off: whether the source is unwell enough that a copy must hold (a standby replaying
 * late, a long query in the source database, WAL piling up for a slot nothing reads, the plan's
 * probe), and the source's health as the gate figures and metrics show it. Reads only; never writes.
 */
import { ApplicationFailure } from '@temporalio/activity';
import pg from 'pg';
import { formatBytes } from '../../lib/capture';
import { redactErrorText } from '../../lib/errors';
import { LOGICAL_CAPTURE_PREFIX } from '../../lib/ids';
import type { Plan } from '../../lib/plan';
import { maxUnreadSlotWalMb } from '../../lib/throttle';
import { FERRY_APPLICATION } from '../connections';
import { oneStatement, readOnly } from '../plan-sql';
import { sql, type Sql } from '../sql';
import type { SourceHealth, ThrottleKind } from './metrics';
import { STANDBY_LAG_SQL, STANDBY_WALSENDERS_SQL } from './pacing-sampler';

export type Backoff = Plan['backoff'];

const MB = 1024 * 1024;

/**
 * The reason to hold off now, or null when the source is healthy. Never writes. `observe`
 * receives what the check saw (for metrics), whether or not it holds.
 */
export async function holdReason(pool: pg.Pool, backoff: Backoff, observe?: (health: SourceHealth) => void): Promise<string | null> {
  const health = await sourceHealth(pool);
  observe?.(health);
  const lag = health.replicaLagSeconds;
  if (lag > backoff.maxReplicaLagSeconds) {
    return `replica lag ${lag.toFixed(1)} s is over backoff.maxReplicaLagSeconds (${backoff.maxReplicaLagSeconds} s): the copy goes on once the replica catches up, or raise the limit (ferry throttle --max-replica-lag-seconds)`;
  }
  const longest = health.longestQuerySeconds;
  if (longest > backoff.maxQuerySeconds) {
    return (
      `a query on the source (pid ${health.longestQueryPid}) has run ${longest.toFixed(0)} s, over backoff.maxQuerySeconds (${backoff.maxQuerySeconds} s): ` +
      'the copy goes on once it ends, or raise the limit (ferry throttle --max-query-seconds)'
    );
  }
  const slotHold = unreadSlotHold(health.unreadSlot, backoff);
  if (slotHold) return slotHold;
  if (backoff.probe) {
    const probe = backoff.probe;
    const value = await runProbe(pool, probe.sql);
    if (!Number.isFinite(value)) return `backoff.probe returned no number; holding until it does`;
    if (value > probe.max) return `backoff.probe returned ${value}, over its max ${probe.max}`;
  }
  return null;
}

/** The reason to hold for the WAL that `slot` (the unread slot holding the most) keeps, or null. */
export function unreadSlotHold(slot: SourceHealth['unreadSlot'], backoff: Backoff): string | null {
  const maxMb = maxUnreadSlotWalMb(backoff);
  if (maxMb === null || !slot || slot.walBytes <= maxMb * MB) return null;
  return (
    `replication slot "${slot.name}", which nothing reads, holds ${formatBytes(slot.walBytes)} of WAL, over backoff.maxUnreadSlotWalMb (${maxMb} MB): ` +
    'start its standby or consumer, drop the slot, or raise the limit (ferry throttle --max-unread-slot-wal-mb)'
  );
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

/**
 * The replication slots nothing reads, with the WAL each holds back, in bytes: a standby or
 * consumer that is down, for which the WAL a copy writes piles up on the source's disk. Ferry's
 * own capture slots are left out (the capture status shows what they hold), and so are slots
 * that hold no WAL (never reserved, or invalidated by max_slot_wal_keep_size).
 */
const UNREAD_SLOTS_SQL: Sql = sql`(SELECT slot_name,
         pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS held
    FROM pg_replication_slots
   WHERE NOT active AND restart_lsn IS NOT NULL AND NOT starts_with(slot_name, ${LOGICAL_CAPTURE_PREFIX}))`;

/**
 * The replay lag of the source's standbys; its longest running query (not Ferry's) in the
 * source database with that session's pid, in seconds; and the slot nothing reads that holds the
 * most WAL, with how many such slots there are (one scan, for the hold and the gate figures).
 * Queries in the server's other databases are not the source's: a snapshot holds back vacuum
 * only in its own database (shared catalogs aside). Slots are the server's: its disk is.
 */
export async function sourceHealth(pool: pg.Pool): Promise<SourceHealth> {
  const health = await pool.query<{ lag: string; longest: string | null; pid: number | null; slot: string | null; held: number | null; slots: number | null }>(
    sql`SELECT ${STANDBY_LAG_SQL}::text AS lag, longest.seconds::text AS longest, longest.pid, unread.slot_name AS slot, unread.held, unread.slots
          FROM (SELECT 1) AS one
          LEFT JOIN LATERAL (SELECT extract(epoch FROM now() - query_start) AS seconds, pid FROM pg_stat_activity
                              WHERE state = 'active' AND backend_type = 'client backend' AND datname = current_database()
                                AND pid <> pg_backend_pid() AND application_name <> ${FERRY_APPLICATION}
                              ORDER BY query_start LIMIT 1) AS longest ON true
          LEFT JOIN LATERAL (SELECT slot_name, held, (count(*) OVER ())::int AS slots FROM ${UNREAD_SLOTS_SQL} AS s ORDER BY held DESC LIMIT 1) AS unread ON true`,
  );
  const row = health.rows[0];
  return {
    replicaLagSeconds: Number(row?.lag ?? 0),
    longestQuerySeconds: Math.max(0, Number(row?.longest ?? 0)),
    longestQueryPid: row?.pid ?? null,
    unreadSlot: row?.slot ? { name: row.slot, walBytes: Math.max(0, row.held ?? 0), count: row.slots ?? 1 } : null,
  };
}

/**
 * The standbys streaming from the source (STANDBY_WALSENDERS_SQL: logical consumers left out), as
 * a person approving a gate should see them; the slots nothing reads are in sourceHealth.
 */
export async function standbysStreaming(pool: pg.Pool): Promise<number> {
  return (await pool.query<{ streaming: number }>(sql`SELECT count(*)::int AS streaming FROM ${STANDBY_WALSENDERS_SQL} AS r`)).rows[0]!.streaming;
}

/** The kind of a reason holdReason gave, as a bounded metrics label. */
export function holdKindOf(reason: string): ThrottleKind {
  if (reason.startsWith('replica lag')) return 'replica-lag';
  if (reason.startsWith('a query on the source')) return 'long-query';
  if (reason.startsWith('replication slot')) return 'unread-slot';
  return 'probe';
}
