/**
 * Ferry through a real PgBouncer in transaction mode (Debian's, two server connections per
 * database, so clients share them): whole migrations with their gates, within one database and
 * across two, and one that captures a writer's changes with a trigger, checked by md5 of every
 * row on both sides; and Ferry's timeouts applying to its transactions without reaching the
 * pooler's other clients.
 */
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabases, withClient } from '../../activities/connections';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { ensurePgBouncer, startPgBouncer, type PgBouncer } from '../../scripts/services/pgbouncer';
import { ferry } from '../support/cli';
import { startWriter } from '../support/capture-writer';
import { noChangeWaitingSince } from '../support/capture-lag';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 2000;

/** Why the pooler cannot run here; CI must run these tests, so there the failure stands. */
const unavailable = ((): string | null => {
  try {
    ensurePgBouncer();
    return null;
  } catch (error) {
    if (process.env.CI) throw error;
    return (error as Error).message;
  }
})();

const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

const ROW = `i, 'owner ' || i, i * 10.5, timestamptz '2026-01-01 00:00:00.000001+00' + i * interval '1 day', decode(md5(i::text), 'hex')`;
const COLUMNS = 'id int PRIMARY KEY, owner text NOT NULL, balance numeric(14, 2) NOT NULL, opened timestamptz NOT NULL, note bytea';
const SOURCE = `CREATE TABLE accounts (${COLUMNS}); INSERT INTO accounts SELECT ${ROW} FROM generate_series(1, ${ROWS}) i;`;
/** Some keys already in the target, so batches take the staging table's path too. */
const TARGET = `CREATE TABLE accounts_v2 (${COLUMNS}); INSERT INTO accounts_v2 SELECT ${ROW} FROM generate_series(1, ${ROWS}) i WHERE i % 97 = 0;`;
/** The test's own digest of a table: md5 of every row's text, in key order. */
const digest = (table: string) => `SELECT count(*)::int AS n, md5(string_agg(md5(t::text), '' ORDER BY id)) AS h FROM ${table} t`;

describe.skipIf(unavailable)(`through PgBouncer in transaction mode${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let bouncer: PgBouncer;
  let worker: TestWorker;
  let same: string;
  let source: string;
  let target: string;

  beforeAll(async () => {
    bouncer = await startPgBouncer(inject('postgresUrl'), { poolSize: 2 });
    [same, source, target] = await Promise.all([createTestDatabase('bouncer_same'), createTestDatabase('bouncer_src'), createTestDatabase('bouncer_dst')]);
    await sql(same, `${SOURCE} ${TARGET}`);
    await sql(source, SOURCE);
    await sql(target, TARGET);
    // The worker knows the databases only through the pooler.
    const through = (url: string) => bouncer.url(databaseName(url));
    worker = await startWorker({
      SAME_PG: through(same),
      SAME_PG_POOLING: 'transaction',
      SOURCE_PG: through(source),
      SOURCE_PG_POOLING: 'transaction',
      TARGET_PG: through(target),
      TARGET_PG_POOLING: 'transaction',
    });
  }, 120_000);
  afterAll(async () => {
    await worker?.stop();
    await bouncer?.stop();
  });

  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;

  it.each([
    ['within one database', 'SAME_PG', 'SAME_PG'],
    ['across two databases', 'SOURCE_PG', 'TARGET_PG'],
  ])('runs a whole migration %s: backfill, verify, every gate, complete', async (_case, from, to) => {
    const plan = validatePlan({
      name: `bouncer-${from.toLowerCase().replace('_pg', '')}`,
      source: { connection: from, table: 'accounts', key: 'id' },
      target: { connection: to, table: 'accounts_v2' },
      transform: { sql: { id: 'id', owner: 'owner', balance: 'balance', opened: 'opened', note: 'note' } },
      throttle: { batchSize: 150 },
      verify: { enabled: true },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    for (const gate of ['cutover-reads', 'stop-old-writes', 'cleanup']) {
      await eventually(async () => ((await statusOf(id)).gate?.name === gate ? true : undefined), 90_000, `gate ${gate}`);
      const approved = await ferry(['approve', id, '--gate', gate, '--by', 'alice'], worker.temporal);
      expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    }
    const status: MigrationStatus = await handle.result();
    expect(status.phase).toBe('completed');
    const [sourceUrl, targetUrl] = from === 'SAME_PG' ? [same, same] : [source, target];
    const [before, after] = [await sqlRow(sourceUrl, digest('accounts')), await sqlRow(targetUrl, digest('accounts_v2'))];
    expect(after).toEqual(before);
    expect(after.n).toBe(ROWS);
  }, 240_000);

  it('captures changes with a trigger through the pooler: the apply lock lives in a transaction, and both sides end equal', async () => {
    await sql(same, `
      CREATE TABLE ledger (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO ledger SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, ${ROWS}) AS i;
      CREATE TABLE ledger_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`);
    const plan = validatePlan({
      name: 'bouncer-capture',
      source: { connection: 'SAME_PG', table: 'ledger', key: 'id' },
      target: { connection: 'SAME_PG', table: 'ledger_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: { mode: 'trigger', applyBatchSize: 100 },
      throttle: { rowsPerSecond: 4000, batchSize: 200 },
      verify: { inFlightDelaySeconds: 0.5 },
    });
    // The application writes straight to Postgres the whole time; Ferry only through the pooler.
    const writer = startWriter(same, { table: 'ledger', keys: ROWS, clients: 2, freshKeysFrom: 100_000, pauseMs: 5 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    try {
      await eventually(async () => ((await statusOf(id)).gate?.name === 'cleanup' ? true : undefined), 150_000, 'the cleanup gate');
    } finally {
      await writer.stop();
    }
    await noChangeWaitingSince(worker, id, new Date().toISOString());
    const approved = await ferry(['approve', id, '--gate', 'cleanup', '--by', 'alice'], worker.temporal);
    expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('completed');
    const reshaped = `SELECT count(*)::int AS n, md5(string_agg(md5(row(id, (balance * 100)::bigint, note)::text), '' ORDER BY id)) AS h FROM ledger`;
    const copied = `SELECT count(*)::int AS n, md5(string_agg(md5(row(id, cents, note)::text), '' ORDER BY id)) AS h FROM ledger_v2`;
    expect(await sqlRow(same, copied)).toEqual(await sqlRow(same, reshaped));
  }, 240_000);

  it("applies Ferry's timeouts to each of its transactions, and to no other client of the pooler", async () => {
    await sql(same, 'CREATE TABLE locked (id int PRIMARY KEY); INSERT INTO locked VALUES (1)');
    const databases = createDatabases({ env: { DB: bouncer.url(databaseName(same)), DB_POOLING: 'transaction' }, lockTimeoutMs: 300, statementTimeoutMs: 4000 });
    const pool = databases.pool('DB');
    const other = new pg.Client({ connectionString: bouncer.url(databaseName(same)) });
    await other.connect();
    const holder = new pg.Client({ connectionString: same });
    await holder.connect();
    try {
      // A statement of its own, and one in an explicit transaction, both run under the settings.
      expect((await pool.query('SHOW lock_timeout')).rows).toEqual([{ lock_timeout: '300ms' }]);
      const inTransaction = await withClient(pool, async (client) => {
        const show = `SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement,
          current_setting('application_name') AS application, txid_current()::text AS tx`;
        await client.query('BEGIN');
        const first = (await client.query(show)).rows[0];
        // Rolling back to a savepoint stays in the same transaction, under the same settings.
        await client.query('SAVEPOINT probe');
        await client.query('ROLLBACK TO SAVEPOINT probe');
        const second = (await client.query(show)).rows[0];
        await client.query('COMMIT');
        return [first, second];
      });
      // application_name goes at connecting, and the pooler sets it on whichever server connection Ferry gets.
      expect(inTransaction[0]).toMatchObject({ lock: '300ms', statement: '4s', application: 'ferry' });
      expect(inTransaction[1]).toEqual(inTransaction[0]);
      // The pooler's other client shares those two server connections, and keeps its defaults.
      for (let i = 0; i < 6; i += 1) {
        await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 2')]);
        expect((await other.query('SHOW lock_timeout')).rows).toEqual([{ lock_timeout: '0' }]);
      }

      // The lock timeout really fires through the pooler: Ferry gives up instead of queueing.
      await holder.query('BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      await expect(pool.query('SELECT count(*) FROM locked')).rejects.toMatchObject({ code: '55P03' });
      expect(Date.now() - started).toBeLessThan(3000);
      await holder.query('ROLLBACK');

      // A write outside a transaction is committed when its promise resolves.
      await pool.query('INSERT INTO locked VALUES (2)');
      expect(await sqlRow(same, 'SELECT count(*)::int AS n FROM locked')).toEqual({ n: 2 });

      // What needs a session is refused, not run half-way.
      await expect(pool.query('SELECT pg_try_advisory_lock(1)')).rejects.toThrow(/holds a session advisory lock across transactions/);
      await withClient(pool, async (client) => {
        expect(() => client.query(copyTo('COPY locked TO STDOUT'))).toThrow(/must run inside a transaction behind a transaction-mode pooler/);
        expect(() => client.query({ name: 'count-locked', text: 'SELECT count(*) FROM locked' })).toThrow(/a named prepared statement cannot pass a transaction-mode pooler/);
      });
    } finally {
      await holder.end();
      await other.end();
      await databases.close();
    }
  });

  it('would leak session settings to other clients without <VARIABLE>_POOLING=transaction (why it exists)', async () => {
    // One server connection: whatever a session SET leaves on it, the next client finds.
    const single = await startPgBouncer(inject('postgresUrl'), { poolSize: 1 });
    const url = single.url(databaseName(same));
    const other = new pg.Client({ connectionString: url });
    const session = createDatabases({ env: { DB: url }, lockTimeoutMs: 300 });
    const pooled = createDatabases({ env: { DB: url, DB_POOLING: 'transaction' }, lockTimeoutMs: 300 });
    try {
      await other.connect();
      await pooled.pool('DB').query('SELECT 1');
      expect((await other.query('SHOW lock_timeout')).rows).toEqual([{ lock_timeout: '0' }]);
      await session.pool('DB').query('SELECT 1');
      expect((await other.query('SHOW lock_timeout')).rows).toEqual([{ lock_timeout: '300ms' }]);
    } finally {
      await other.end();
      await session.close();
      await pooled.close();
      await single.stop();
    }
  });

  it('refuses an unknown pooling mode with a message naming the variable', () => {
    const databases = createDatabases({ env: { DB: bouncer.url('x'), DB_POOLING: 'statement' } });
    expect(() => databases.pool('DB')).toThrow('DB_POOLING must be "session" or "transaction", not "statement"');
  });
});
