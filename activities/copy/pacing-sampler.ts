/**
 * The pacing sampler reads, from the database's own statistics, what its sessions feel while
 * Ferry copies: statement latency, lock waits on the tables involved, active sessions, WAL and
 * checkpoints, replica lag. It never writes a table; its canary commits a transaction that
 * writes one WAL record and nothing else.
 */
import pg from 'pg';
import { sql, type Sql } from '../sql';
import { FERRY_APPLICATION } from '../connections';
import type { PacingBaseline, PacingSample } from '../../lib/pacing-controller';

/**
 * The walsenders of the source's standbys, as SQL. A logical consumer (a CDC reader,
 * Ferry's own capture reader) is a walsender too, and its lag is how late it confirms what it
 * read: no application reads through it, and one that confirms lazily would hold the copy for
 * good. Logical walsenders always stream from a slot; those are left out.
 */
export const STANDBY_WALSENDERS_SQL: Sql = sql`(SELECT r.* FROM pg_stat_replication AS r
   WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots AS s WHERE s.active_pid = r.pid AND s.slot_type = 'logical'))`;

/** The longest replay lag of the standbys (STANDBY_WALSENDERS_SQL), in seconds; 0 with none. */
export const STANDBY_LAG_SQL: Sql = sql`(SELECT coalesce(max(extract(epoch FROM r.replay_lag)), 0) FROM ${STANDBY_WALSENDERS_SQL} AS r)`;

/**
 * A canary commit this often, on a connection of its own and in the background, so that canaries
 * fall at any moment of the copy's batches (a sample is taken between two of a shard's batches,
 * just after one committed and flushed its WAL).
 */
const CANARY_EVERY_MS = 100;
/**
 * The canary: an empty transactional logical message is a WAL record and no table, so the
 * canary's commit waits for the WAL to be flushed, as an application's commit does, behind
 * whatever the copy wrote before it. (A transaction that only takes an id writes no WAL before
 * its commit record, and Postgres commits it without waiting for the flush.) Logical decoding
 * passes such a message on only to a consumer that asks for messages, under the prefix
 * `ferry.canary`.
 */
const CANARY = sql`SELECT pg_logical_emit_message(true, 'ferry.canary', '')`;
/** Where the server refuses the canary's write: a commit with no flush, which still takes the database's time. */
const READ_ONLY_CANARY = sql`SELECT pg_current_xact_id()`;
/**
 * Statements of Ferry's own (its keyset bound, COPY, staging tables) and of this sampler: they
 * would measure the copy, not the application. ILIKE patterns.
 */
const OWN_STATEMENTS = ['%ferry%', '%pg_stat_%', '%pg_locks%', '%batch.last_key%', 'copy %', '%pg_current_xact_id%', '%pg_logical_emit_message%'];
/** z for the 99th percentile of a normal distribution: p99 estimated from mean and stddev. */
const Z99 = 2.326;

export interface TableName {
  schema: string;
  table: string;
}

interface Counters {
  at: number;
  /**
   * WAL generated so far: the insert position, not the write position, which under
   * synchronous_commit = off stays behind until the WAL writer's next round (200 ms by default).
   */
  walBytes: number;
  /** pg_stat_statements sums, when the extension is there. */
  calls: number | null;
  totalMs: number;
  sumSquaresMs: number;
  transactions: number;
  checkpointsRequested: number;
}

export interface PacingSampler {
  /** What the sessions felt since the previous sample (the first call starts the interval). */
  sample(copiedRowsPerSecond: number): Promise<PacingSample>;
  /** The foreground before the copy: samples over about `ms`, copying nothing. */
  baseline(ms: number): Promise<PacingBaseline>;
  close(): Promise<void>;
}

/**
 * A sampler of one database, on a connection of its own so that the copy's busy pool never
 * delays a canary. `tables` are the ones whose lock waits count; statements inserting into
 * `writes` are Ferry's copy, not the application's.
 */
export async function openPacingSampler(config: pg.ClientConfig, tables: TableName[], options: { writes?: TableName[] } = {}): Promise<PacingSampler> {
  const client = new pg.Client({ ...config, application_name: FERRY_APPLICATION });
  client.on('error', () => {});
  await client.connect();
  const ownStatements = [...OWN_STATEMENTS, ...(options.writes ?? []).map((t) => `%insert into %${likeEscape(t.table)}%`)];
  const names = tables.map((t) => `${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.table)}`);
  const statements = await hasStatementStats(client);
  const checkpointCounter = await checkpointCounterSql(client);
  let previous: Counters | null = null;

  const counters = async (): Promise<Counters> => {
    const row = (
      await client.query<{ transactions: string; wal: string; checkpoints: string }>(
        sql`SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database())::text AS transactions,
                (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text AS wal,
                (${checkpointCounter})::text AS checkpoints`,
      )
    ).rows[0]!;
    const base = { at: Date.now(), transactions: Number(row.transactions), walBytes: Number(row.wal), checkpointsRequested: Number(row.checkpoints) };
    if (!statements) return { ...base, calls: null, totalMs: 0, sumSquaresMs: 0 };
    // Ferry's own statements (a batch's INSERT ... SELECT, its keyset bound, its COPY, this
    // sampler's) would measure the copy, not the application.
    const stats = (
      await client.query<{ calls: string; total: string; squares: string }>(
        sql`SELECT coalesce(sum(calls), 0)::text AS calls, coalesce(sum(total_exec_time), 0)::text AS total,
                coalesce(sum(calls * (stddev_exec_time ^ 2 + mean_exec_time ^ 2)), 0)::text AS squares
           FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel
            AND NOT (query ILIKE ANY (${ownStatements}::text[]))`,
      )
    ).rows[0]!;
    return { ...base, calls: Number(stats.calls), totalMs: Number(stats.total), sumSquaresMs: Number(stats.squares) };
  };

  const canaries = await startCanaries(config);

  const sessions = async (): Promise<{ active: number; lockWaits: number; lag: number }> => {
    const row = (
      await client.query<{ active: number; waits: number; lag: string }>(
        sql`SELECT (SELECT count(*) FROM pg_stat_activity
                  WHERE state = 'active' AND backend_type = 'client backend' AND datname = current_database()
                    AND application_name <> ${FERRY_APPLICATION} AND pid <> pg_backend_pid())::int AS active,
                (SELECT count(*) FROM pg_stat_activity a
                  WHERE a.wait_event_type = 'Lock' AND a.application_name <> ${FERRY_APPLICATION} AND a.datname = current_database()
                    AND (EXISTS (SELECT 1 FROM pg_locks l
                                  WHERE l.pid = a.pid AND NOT l.granted AND l.relation IN (SELECT to_regclass(n) FROM unnest(${names}::text[]) AS n)
                                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
                         OR EXISTS (SELECT 1 FROM pg_stat_activity b
                                     WHERE b.pid = ANY (pg_blocking_pids(a.pid)) AND b.application_name = ${FERRY_APPLICATION})))::int AS waits,
                ${STANDBY_LAG_SQL}::text AS lag`,
      )
    ).rows[0]!;
    return { active: row.active, lockWaits: row.waits, lag: Number(row.lag) };
  };

  /** What the sessions felt since the last call; `canariesAtLeast` null leaves the canaries to the caller. */
  const measure = async (copiedRowsPerSecond: number, canariesAtLeast: number | null): Promise<PacingSample> => {
    const [now, seen] = [await counters(), await sessions()];
    const canary = canariesAtLeast === null ? null : canaries.reading(canariesAtLeast);
    const before = previous ?? now;
    previous = now;
    const seconds = Math.max((now.at - before.at) / 1000, 0.001);
    const calls = now.calls !== null && before.calls !== null ? now.calls - before.calls : 0;
    let latencyMs = canary;
    if (statements) {
      if (calls > 0) {
        const mean = (now.totalMs - before.totalMs) / calls;
        const variance = Math.max(0, (now.sumSquaresMs - before.sumSquaresMs) / calls - mean * mean);
        latencyMs = mean + Z99 * Math.sqrt(variance);
      } else {
        latencyMs = null;
      }
    }
    return {
      latencyMs,
      latencySource: statements ? 'statements' : 'canary',
      canaryMs: canary,
      transactionsPerSecond: now === before ? null : (now.transactions - before.transactions) / seconds,
      lockWaits: seen.lockWaits,
      activeBackends: seen.active,
      walBytesPerSecond: now === before ? 0 : (now.walBytes - before.walBytes) / seconds,
      checkpointsRequested: now.checkpointsRequested - before.checkpointsRequested,
      replicaLagSeconds: seen.lag,
      copiedRowsPerSecond,
    };
  };

  const sampler: PacingSampler = {
    sample: (copiedRowsPerSecond) => measure(copiedRowsPerSecond, CANARIES_PER_READING),
    async baseline(ms) {
      const started = Date.now();
      previous = null;
      await measure(0, null);
      canaries.reading(0);
      const latencies: number[] = [];
      const active: number[] = [];
      const interval = Math.max(100, Math.floor(ms / 4));
      while (Date.now() - started < ms) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(interval, Math.max(0, ms - (Date.now() - started)))));
        const seen = await measure(0, null);
        if (seen.latencyMs !== null) latencies.push(seen.latencyMs);
        active.push(seen.activeBackends);
      }
      // The canaries of the whole window as one reading.
      const canaryMs = canaries.reading(1);
      // The most sessions seen active, not the median: one snapshot a sample catches a busy
      // application's sessions at random, and a budget from the median held the copy back
      // whenever all of a few clients happened to be running at once, with their latency fine.
      return { latencyMs: statements ? median(latencies) : canaryMs, canaryMs, activeBackends: active.length ? Math.max(...active) : 0 };
    },
    async close() {
      await canaries.stop();
      await client.end().catch(() => {});
    },
  };
  return sampler;
}

/** The middle value (the upper of the two middle ones for an even count); null for none. */
export function median(values: number[]): number | null {
  return values.length ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]! : null;
}

/** Canaries a reading takes at least: one or two alone would be noise. */
const CANARIES_PER_READING = 5;

interface Canaries {
  /**
   * The median of the canary commits since the last reading, ms; null (and they wait for the
   * next one) when fewer than `atLeast` finished.
   */
  reading(atLeast: number): number | null;
  stop(): Promise<void>;
}

/**
 * SQLSTATE classes of errors that pass (connection, rollback, resources, operator intervention such
 * as a cancel or a shutdown, system): they say nothing of whether the server takes the canary's
 * write, so it is not given up for them.
 */
const PASSING_ERROR_CLASSES = new Set(['08', '40', '53', '57', '58']);

export function canaryErrorPasses(code: string | undefined): boolean {
  return code !== undefined && (PASSING_ERROR_CLASSES.has(code.slice(0, 2)) || code === '55P03');
}

/**
 * Canary commits every CANARY_EVERY_MS until stopped, timed from the worker: what a commit of the
 * application's takes, its wait for the WAL flush included. The median of an interval's ten is
 * what the database takes: the worker's own timers and a busy machine delay only some.
 */
async function startCanaries(config: pg.ClientConfig): Promise<Canaries> {
  const client = new pg.Client({ ...config, application_name: FERRY_APPLICATION });
  client.on('error', () => {});
  await client.connect();
  let statement = CANARY;
  let times: number[] = [];
  let stopped = false;
  let failure: unknown = null;
  let wake = () => {};
  const loop = (async () => {
    while (!stopped) {
      const started = process.hrtime.bigint();
      try {
        await client.query(statement);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
      } catch (error) {
        // The server refused the write (a standby, a role the function is revoked from): commit
        // without it from now on. A cancel or a lock timeout loses this canary only. A lost
        // connection is the sampler's failure, reported by its next sample.
        if (error instanceof pg.DatabaseError && canaryErrorPasses(error.code)) {
          // no reading from this one
        } else if (statement === CANARY && error instanceof pg.DatabaseError) {
          statement = READ_ONLY_CANARY;
        } else {
          if (!stopped) failure = error;
          return;
        }
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, CANARY_EVERY_MS).unref();
      });
    }
  })();
  return {
    reading(atLeast) {
      if (failure) throw failure;
      if (times.length === 0 || times.length < atLeast) return null;
      const taken = times;
      times = [];
      return median(taken);
    },
    async stop() {
      stopped = true;
      wake();
      await loop;
      await client.end().catch(() => {});
    },
  };
}

function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** pg_stat_statements answers only where the extension is installed, preloaded and recent enough. */
async function hasStatementStats(client: pg.Client): Promise<boolean> {
  try {
    // The columns the sampler reads: an older extension (before PostgreSQL 14) lacks some.
    await client.query(sql`SELECT calls, total_exec_time, mean_exec_time, stddev_exec_time, toplevel FROM pg_stat_statements LIMIT 1`);
    return true;
  } catch {
    return false;
  }
}

/** Checkpoints forced by WAL volume: pg_stat_checkpointer from PostgreSQL 17, pg_stat_bgwriter before. */
async function checkpointCounterSql(client: pg.Client): Promise<Sql> {
  const version = Number((await client.query<{ v: string }>(sql`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v);
  return version >= 170000 ? sql`SELECT num_requested FROM pg_stat_checkpointer` : sql`SELECT checkpoints_req FROM pg_stat_bgwriter`;
}
