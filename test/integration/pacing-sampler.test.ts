/** The pacing sampler reads what the database's sessions feel, and the controller names it. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPacingSampler, type PacingSampler } from '../../activities/copy/pacing-sampler';
import { sourceHealth } from '../../activities/copy/backoff';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import { nextPacing, startPacing, type PacingBudget } from '../../lib/pacing-controller';
import { startPostgres, type PostgresServer } from '../../scripts/services/postgres';
import { createTestDatabase, eventually, sql, sqlRow, uniqueName } from '../support/harness';

const budget: PacingBudget = { p99Factor: 1.2, maxLockWaits: 0, maxActiveBackends: null, maxWalBytesPerSecond: null, maxReplicaLagSeconds: 2 };

describe('pacing sampler', () => {
  let url: string;
  let sampler: PacingSampler;
  const sessions: pg.Client[] = [];

  /** A session of the application's, or of Ferry's when named so. */
  async function session(applicationName = 'orders app'): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url, application_name: applicationName });
    client.on('error', () => {});
    await client.connect();
    sessions.push(client);
    return client;
  }

  beforeAll(async () => {
    url = await createTestDatabase('pacing');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
      INSERT INTO accounts SELECT i, 0 FROM generate_series(1, 1000) i;
      CREATE TABLE accounts_new (id int PRIMARY KEY, balance int NOT NULL);
      CREATE TABLE unrelated (id int PRIMARY KEY);`);
    sampler = await openPacingSampler({ connectionString: url }, [
      { schema: 'public', table: 'accounts' },
      { schema: 'public', table: 'accounts_new' },
    ]);
  });
  afterAll(async () => {
    await sampler?.close();
    for (const client of sessions) await client.end().catch(() => {});
  });

  it('measures a baseline and a quiet interval with nothing holding the copy', async () => {
    const baseline = await sampler.baseline(400);
    expect(baseline.latencyMs).toBeGreaterThan(0);
    expect(baseline.canaryMs).toBe(baseline.latencyMs);
    // A reading takes at least five canaries, one every 100 ms.
    expect((await sampler.sample(50_000)).latencyMs).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 800));
    const quiet = await sampler.sample(50_000);
    expect(quiet.lockWaits).toBe(0);
    expect(quiet.latencyMs).toBeGreaterThan(0);
    expect(quiet.checkpointsRequested).toBe(0);
    expect(quiet.replicaLagSeconds).toBe(0);
    expect(quiet.transactionsPerSecond).toBeGreaterThanOrEqual(0);
    // The test server is shared with the test files running beside this one, whose load moves a
    // canary commit from 1 ms to 5 ms between two readings a second apart: latency's budget is left
    // out here, and tried below on a server of its own, where the test makes the latency itself.
    const decision = nextPacing(startPacing(null), quiet, baseline, { ...budget, p99Factor: 100 }, null);
    expect(decision, JSON.stringify({ quiet, baseline, decision })).toMatchObject({ action: 'increase' });
    expect(decision.holding).toBeNull();
  });

  it('names lock-waits while a session holding a lock on the source makes the application wait', async () => {
    const holder = await session('nightly maintenance');
    const reader = await session();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
    const reading = reader.query('SELECT count(*) FROM accounts');
    // A lock on a table not involved is not the copy's business.
    const other = await session();
    await other.query('BEGIN; LOCK TABLE unrelated IN ACCESS EXCLUSIVE MODE');
    const sample = await eventually(async () => {
      const seen = await sampler.sample(1000);
      return seen.lockWaits > 0 && seen;
    }, 10_000, 'the lock wait');
    expect(sample.lockWaits).toBe(1);
    expect(sample.activeBackends).toBeGreaterThanOrEqual(1);
    const decision = nextPacing({ rowsPerSecond: 40_000, cutFrom: null, lastLatencyPressure: 0 }, sample, { latencyMs: null, activeBackends: 0 }, budget, null);
    expect(decision.action).toBe('decrease');
    expect(decision.holding?.signal).toBe('lock-waits');
    expect(decision.holding?.detail).toBe('1 session waiting on a lock on the tables involved (budget 0)');

    await holder.query('COMMIT');
    await reading;
    await other.query('COMMIT');
    expect((await sampler.sample(1000)).lockWaits).toBe(0);
  });

  it("counts an application's row waiting on one of Ferry's uncommitted batches, not Ferry's own waits", async () => {
    const ferry = await session('ferry');
    const app = await session();
    await ferry.query('BEGIN');
    await ferry.query('INSERT INTO accounts_new VALUES (1, 0)');
    const writing = app.query('INSERT INTO accounts_new VALUES (1, 5) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance');
    await eventually(async () => (await sampler.sample(1000)).lockWaits === 1, 10_000, "the application's wait");
    await ferry.query('COMMIT');
    await writing;

    // Ferry waiting on the application's lock is the copier's business (lock_timeout), not a signal.
    await app.query('BEGIN; LOCK TABLE accounts_new IN ACCESS EXCLUSIVE MODE');
    const copying = ferry.query('SELECT count(*) FROM accounts_new');
    await eventually(
      async () => (await sql(url, `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry' AND wait_event_type = 'Lock'`)).length === 1,
      10_000,
      "Ferry's wait",
    );
    expect((await sampler.sample(1000)).lockWaits).toBe(0);
    await app.query('COMMIT');
    await copying;
  });

  it("times canary commits that wait for the WAL flush, in the background, and names its canary's messages", async () => {
    // A database of its own: the other tests' sampler commits its canaries into theirs.
    const url = await createTestDatabase('pacing_canary');
    const slot = uniqueName('canary_slot');
    await sql(url, `SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, [slot]);
    try {
      const fresh = await openPacingSampler({ connectionString: url }, []);
      try {
        // Ten a second, whether or not anyone samples.
        await new Promise((resolve) => setTimeout(resolve, 800));
        const sample = await fresh.sample(0);
        expect(sample.canaryMs).toBeGreaterThan(0);
        expect(sample.latencySource).toBe('canary');
        expect(sample.latencyMs).toBe(sample.canaryMs);
      } finally {
        await fresh.close();
      }
      // Each canary wrote a WAL record before its commit, so that the commit waited for the
      // flush (Postgres commits a transaction that wrote none without waiting).
      // (The tests' server commits asynchronously: the wait lets the last commits reach the disk.)
      await new Promise((resolve) => setTimeout(resolve, 500));
      const changes = await sql<{ data: string }>(url, `SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)`, [slot]);
      const messages = changes.filter((c) => c.data.startsWith('message: transactional: 1 prefix: ferry.canary'));
      expect(messages.length).toBeGreaterThanOrEqual(3);
      expect(messages.length).toBeLessThanOrEqual(12);
      // Closed means stopped: no canary commits after close.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await sql(url, `SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL) WHERE data LIKE '%ferry.canary%'`, [slot])).toEqual([]);
    } finally {
      await sql(url, 'SELECT pg_drop_replication_slot($1)', [slot]);
    }
  });

  it('falls back to a commit with no write where the role may not write one, and still reads in a read-only database', async () => {
    // pg_proc is per database: the revoke touches this database alone.
    const refused = await createTestDatabase('pacing_refused');
    const role = uniqueName('pacing_role');
    await sql(refused, `CREATE ROLE ${role} LOGIN`);
    // Every overload (Postgres 17 adds a flush argument).
    await sql(refused, `DO $$ DECLARE f regprocedure; BEGIN
      FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname = 'pg_logical_emit_message' LOOP EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f); END LOOP; END $$`);
    const slot = uniqueName('refused_slot');
    await sql(refused, `SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, [slot]);
    const asRole = new URL(refused);
    asRole.username = role;
    try {
      const fresh = await openPacingSampler({ connectionString: asRole.toString() }, []);
      try {
        await new Promise((resolve) => setTimeout(resolve, 800));
        expect((await fresh.sample(0)).canaryMs).toBeGreaterThan(0);
      } finally {
        await fresh.close();
      }
      expect(await sql(refused, `SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL) WHERE data LIKE '%ferry.canary%'`, [slot])).toEqual([]);
    } finally {
      await sql(refused, 'SELECT pg_drop_replication_slot($1)', [slot]);
    }

    // A read-only session may still write the canary's message (no table is written).
    const readOnly = await createTestDatabase('pacing_read_only');
    await sql(readOnly, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`);
    const fresh = await openPacingSampler({ connectionString: readOnly }, []);
    try {
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect((await fresh.sample(0)).canaryMs).toBeGreaterThan(0);
    } finally {
      await fresh.close();
    }
  });

  it('sees WAL written between samples and the active sessions of the application', async () => {
    await sampler.sample(0);
    await sql(url, 'INSERT INTO accounts_new SELECT i, 1 FROM generate_series(2, 20000) i');
    expect((await sampler.sample(0)).walBytesPerSecond).toBeGreaterThan(0);
    const busy = await session();
    const sleeping = busy.query('SELECT pg_sleep(1.5)');
    const sample = await eventually(async () => {
      const seen = await sampler.sample(0);
      return seen.activeBackends >= 1 && seen;
    }, 10_000, 'the active session');
    expect(sample.activeBackends).toBeGreaterThanOrEqual(1);
    await sleeping;
  });

  it("leaves out a logical consumer's lag: a CDC reader that confirms late is no replica the application reads", { timeout: 40_000 }, async () => {
    const slot = uniqueName('lazy_cdc');
    await sql(url, `CREATE PUBLICATION ${slot} FOR TABLE unrelated`);
    await sql(url, `SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
    const { host, port, user, password, database } = new pg.Client({ connectionString: url });
    const reader = new LogicalReplicationService({ host, port, user, password: password ?? undefined, database, application_name: slot }, { acknowledge: { auto: false, timeoutSeconds: 0 } });
    reader.on('error', () => {});
    // Confirms each transaction 3 s after it came, as a consumer batching its confirmations does.
    reader.on('data', (_lsn: string, message: { tag: string; commitEndLsn?: string }) => {
      if (message.tag === 'commit') setTimeout(() => void reader.acknowledge(message.commitEndLsn!).catch(() => {}), 3000);
    });
    void reader.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [slot] }), slot).catch(() => {});
    let writing = true;
    const writes = (async () => {
      for (let id = 1; writing; id += 1) {
        await sql(url, 'INSERT INTO unrelated VALUES ($1)', [id]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      // The test's own reading: the consumer's walsender is over 2 s behind.
      await eventually(
        async () => ((await sqlRow(url, `SELECT coalesce(extract(epoch FROM max(replay_lag)), 0)::float8 AS lag FROM pg_stat_replication WHERE application_name = $1`, [slot])).lag > 2 ? true : undefined),
        25_000,
        "the consumer's lag over 2 s",
      );
      const sample = await sampler.sample(0);
      expect(sample.replicaLagSeconds).toBe(0);
      expect(nextPacing(startPacing(null), sample, { latencyMs: null, activeBackends: 0 }, budget, null).holding).toBeNull();
      // Nor does the backoff's hold (backoff.maxReplicaLagSeconds) take it for a replica.
      expect((await sourceHealth(pool)).replicaLagSeconds).toBe(0);
    } finally {
      writing = false;
      await writes;
      await pool.end();
      await reader.stop().catch(() => {});
      await eventually(async () => ((await sqlRow(url, `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1 AND active`, [slot])).n === 0 ? true : undefined), 10_000, 'the slot released');
      await sql(url, `SELECT pg_drop_replication_slot('${slot}')`);
      await sql(url, `DROP PUBLICATION ${slot}`);
    }
  });
});

describe('pacing sampler with pg_stat_statements', () => {
  let server: PostgresServer;
  let url: string;

  beforeAll(async () => {
    server = await startPostgres({ local: true, preload: ['pg_stat_statements'] });
    url = await server.createDatabase('pacing_statements');
    await sql(url, 'CREATE EXTENSION pg_stat_statements; CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)');
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** The application: `count` statements of about `ms` each, one after another. */
  async function appStatements(count: number, ms: number): Promise<void> {
    const app = new pg.Client({ connectionString: url, application_name: 'accounts app' });
    await app.connect();
    try {
      for (let i = 0; i < count; i += 1) await app.query('SELECT pg_sleep($1)', [ms / 1000]);
    } finally {
      await app.end();
    }
  }

  it("reads the p99 of the application's statements, not Ferry's, and names latency when it grows", async () => {
    const sampler = await openPacingSampler({ connectionString: url }, [{ schema: 'public', table: 'accounts' }], {
      writes: [{ schema: 'public', table: 'accounts' }],
    });
    try {
      const quiet = appStatements(40, 2);
      const baseline = await sampler.baseline(600);
      await quiet;
      const base = await sampler.sample(0);
      expect(base.latencySource).toBe('statements');
      // 2 ms statements; a loaded CI machine read 26 ms, so the slow ones below are far slower.
      expect(baseline.latencyMs).toBeGreaterThan(1);
      expect(baseline.latencyMs).toBeLessThan(60);

      // Ferry's own batch, however slow, is not the application's latency.
      const ferry = new pg.Client({ connectionString: url, application_name: 'ferry' });
      await ferry.connect();
      await ferry.query('INSERT INTO accounts SELECT i, 0 FROM generate_series(1, 1000) i, pg_sleep(0.5) WHERE i > 0');
      await ferry.end();
      await appStatements(20, 2);
      const withFerry = await sampler.sample(0);
      expect(withFerry.latencyMs).toBeLessThan(60);

      await appStatements(20, 150);
      const slow = await sampler.sample(0);
      expect(slow.latencyMs).toBeGreaterThan(120);
      const decision = nextPacing({ rowsPerSecond: 40_000, cutFrom: null, lastLatencyPressure: 0 }, { ...slow, copiedRowsPerSecond: 40_000 }, baseline, budget, null);
      expect(decision.action).toBe('decrease');
      expect(decision.holding?.signal).toBe('latency');
      expect(decision.holding?.detail).toMatch(/^p99 of the database's statements \d+ ms, budget [\d.]+ ms \(1.2x of [\d.]+ ms before the copy\)$/);
    } finally {
      await sampler.close();
    }
  });
});
