/**
 * `capture: logical` against real PostgreSQL and Temporal: pgbench's TPC-B script (4 clients, 500 tps)
 * updates pgbench_accounts through the whole migration into a reshaped table (abalance to a
 * bigint of cents), in one database and across two; after pgbench stops and the reader and the
 * apply have caught up, Ferry's first verification pass is clean and the test's own md5 of every
 * row finds no difference, and no replication slot of Ferry's is left. An abort drops the slot
 * and the publication at once; a source that cannot be captured is refused with nothing created.
 * A backfill chunk waits for the reader to pass its high watermark before it looks at the log.
 */
import { runActivity } from '../support/activities';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases } from '../../activities/connections';
import { createLogicalCaptureSetup } from '../../activities/capture/logical-setup';
import { createLogicalReader } from '../../activities/capture/logical-reader';
import { createChangeApplier } from '../../activities/capture/applier';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createDoctor } from '../../activities/inspect/doctor';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { LOGICAL_CAPTURE_PREFIX, logicalCaptureName } from '../../lib/ids';
import { validatePlan } from '../../lib/plan';
import { startPgbench } from '../../scripts/bench/pgbench';
import { startWriter } from '../support/capture-writer';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';
import { atCleanupGate, expectReshapedAccountsEqual, PGBENCH_TPS, reshapedAccountsPlan, setUpPgbenchCapture } from '../support/pgbench-capture';
import { noChangeWaitingSince } from '../support/capture-lag';

/** Logical capture needs the server set for it; a server given by DATABASE_URL may not be. */
async function requireLogicalWal(url: string): Promise<void> {
  const { wal_level: level, slots } = await sqlRow(url, `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots')::int AS slots`);
  if (level !== 'logical' || slots < 4) {
    throw new Error(
      `logical capture tests need the server run with wal_level = logical and max_replication_slots >= 4 (it has ${level}, ${slots}); ` +
        'set them on the server in DATABASE_URL (ALTER SYSTEM SET wal_level = logical, then restart) or unset DATABASE_URL',
    );
  }
}

/** Ferry's slots of this database: slots are the server's, and other test files run beside this one. */
const ferrySlots = (url: string) => sql(url, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND database = current_database()`, [`${LOGICAL_CAPTURE_PREFIX}%`]);
const ferryPublications = (url: string) => sql(url, `SELECT pubname FROM pg_publication WHERE pubname LIKE $1`, [`${LOGICAL_CAPTURE_PREFIX}%`]);

describe.each([
  ['in one database', false],
  ['across two databases', true],
])('pgbench writing through a logical-capture migration %s', (_label, acrossDatabases) => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let pgbench: string;

  beforeAll(async () => {
    ({ pgbench, sourceUrl, targetUrl, worker } = await setUpPgbenchCapture('capture_logical', acrossDatabases, requireLogicalWal));
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('ends clean at the first verification pass once pgbench stops and the reader and the apply caught up', async () => {
    // The copy at full speed: the pacing controller beside pgbench is capture-pgbench.test.ts's.
    const plan = reshapedAccountsPlan(`capture-logical-${acrossDatabases ? 'across' : 'within'}`, 'logical', { throttle: { budget: false } });
    const bench = startPgbench(pgbench, sourceUrl, PGBENCH_TPS);
    let benchOutput: string;
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const slot = logicalCaptureName(id);
    try {
      await atCleanupGate(worker, id);
      expect(bench.process.exitCode, 'pgbench ran through the migration').toBeNull();
      expect(await ferrySlots(sourceUrl)).toEqual([{ slot_name: slot }]);
    } finally {
      benchOutput = await bench.stop();
    }
    const { n: transactions } = await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pgbench_history`);
    expect(transactions, benchOutput).toBeGreaterThan(200);

    // pgbench stopped: the reader passes the WAL it wrote (the test reads the slot itself), then a
    // lag measured after that reads zero changes waiting.
    const { lsn: stoppedAt } = await sqlRow(sourceUrl, `SELECT pg_current_wal_insert_lsn()::text AS lsn`);
    await eventually(
      async () => (await sqlRow(sourceUrl, `SELECT coalesce((SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1), false) AS read`, [slot, stoppedAt])).read || undefined,
      60_000,
      'the reader past the end of pgbench',
    );
    const lag = await noChangeWaitingSince(worker, id, new Date().toISOString());
    expect(lag.walBytesHeld).toEqual(expect.any(Number));
    const status = await ferry(['status', id], worker.temporal);
    expect(status.stdout).toMatch(/replication slot and publication since \S+: up to date; the slot holds [\d.]+ (B|kB|MB) of WAL/);

    const verified = await ferry(['verify', id, '--json'], worker.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0 });

    await expectReshapedAccountsEqual(sourceUrl, targetUrl);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    console.log(`logical ${_label}: ${result.phases.map((p) => `${p.name} ${((Date.parse(p.endedAt!) - Date.parse(p.startedAt)) / 1000).toFixed(1)} s`).join(', ')}`);
    expect(result.capture).toMatchObject({ mode: 'logical', removedAt: expect.any(String) });
    expect(result.capture!.keysApplied).toBeGreaterThan(0);
    // A slot left behind would hold WAL for ever.
    expect(await ferrySlots(sourceUrl)).toEqual([]);
    expect(await ferryPublications(sourceUrl)).toEqual([]);
    expect(await sql(sourceUrl, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });
});

/** accounts into accounts_v2 (balance in cents) with logical capture. */
function accountsPlan(name: string, throttle?: { rowsPerSecond: number; batchSize: number; checkpointSeconds: number }) {
  return validatePlan({
    name,
    source: { connection: 'DB', table: 'accounts', key: 'id' },
    target: { connection: 'DB', table: 'accounts_v2' },
    transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
    capture: 'logical',
    ...(throttle ? { throttle } : {}),
  });
}

describe('logical capture, set up and taken down', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_logical_abort');
    await requireLogicalWal(url);
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, 6000) AS i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);
      CREATE TABLE keyless (id int NOT NULL UNIQUE, note text);
      INSERT INTO keyless VALUES (1, 'one');
      CREATE TABLE keyless_v2 (id int PRIMARY KEY, note text);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('drops the slot and the publication at once when aborted during the backfill', async () => {
    const plan = accountsPlan('capture-logical-abort', { rowsPerSecond: 300, batchSize: 200, checkpointSeconds: 0.5 });
    const writer = startWriter(url, { table: 'accounts', keys: 6000, freshKeysFrom: 20_000_000, clients: 1 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const logged = async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM ferry.change_log WHERE migration_id = $1`, [id])).n as number;
    try {
      await eventually(async () => ((await migrationReport(worker.client, id)).status!.rowsRead > 0 && (await logged()) > 0 ? true : undefined), 60_000, 'copying with changes logged');
      expect(await ferrySlots(url)).toEqual([{ slot_name: logicalCaptureName(id) }]);
      // The publication sends no TRUNCATE, and a TRUNCATE names no key: refused while capturing.
      await expect(sql(url, `TRUNCATE accounts`)).rejects.toThrow(`TRUNCATE of public.accounts is refused while Ferry captures its changes for migration ${id}`);
      const aborted = await ferry(['abort', id, '--reason', 'test abort', '--by', 'dave'], worker.temporal);
      expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
    } finally {
      await writer.stop();
    }
    const result = await handle.result();
    expect(result.phase).toBe('aborted');
    expect(result.capture).toMatchObject({ mode: 'logical', removedAt: expect.any(String) });
    expect(result.abort?.flagsNote).toMatch(/the replication slot, the publication and the change log entries were removed/);
    expect(await ferrySlots(url)).toEqual([]);
    expect(await ferryPublications(url)).toEqual([]);
    expect(await logged()).toBe(0);
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal`)).toEqual([]);
  });

  it('leaves no change log entry behind when the slot is removed while the reader is writing the log', async () => {
    const migrationId = 'removed-mid-write';
    const plan = accountsPlan('capture-logical-mid-write');
    const databases = createDatabases({ env: { DB: url } });
    const setup = createLogicalCaptureSetup(databases);
    const entries = async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM ferry.change_log WHERE migration_id = $1`, [migrationId])).n as number;
    // The test's own session holds the log so that the reader's write waits in it, as a slow commit would.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await runActivity(setup.installLogicalCapture, { migrationId, plan });
      await holder.query(`BEGIN; LOCK TABLE ferry.change_log IN SHARE MODE`);
      await sql(url, `UPDATE accounts SET note = note || '.' WHERE id <= 50`);
      const reading = runActivity(createLogicalReader(databases).readLogicalChanges, { migrationId, plan, maxSeconds: 20 }).then(
        () => null,
        (error: unknown) => error as Error,
      );
      const waitingFor = (lockType: string) =>
        sqlRow(url, `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted AND l.locktype = $1 AND a.datname = current_database()`, [lockType]);
      await eventually(async () => ((await waitingFor('relation')).n > 0 ? true : undefined), 20_000, "the reader's write waiting for the log");
      const removing = runActivity(setup.removeLogicalCapture, { migrationId, plan });
      // The slot goes first; the removal's delete then waits for the write under way.
      await eventually(async () => ((await ferrySlots(url)).length === 0 ? true : undefined), 20_000, 'the slot dropped');
      await eventually(async () => ((await waitingFor('advisory')).n > 0 ? true : undefined), 20_000, "the removal waiting for the reader's write");
      await holder.query('COMMIT');
      // The write, let through after the slot went, logged nothing, and the reader says why.
      expect((await removing).removedEntries).toBe(0);
      expect((await reading)?.message).toMatch(/replication slot .* is gone: the changes decoded last were not logged/);
      expect(await entries()).toBe(0);

      // A reader that starts after the removal finds no slot and logs nothing.
      await expect(runActivity(createLogicalReader(databases).readLogicalChanges, { migrationId, plan, maxSeconds: 2 })).rejects.toThrow(/replication slot .* is gone/);
      expect(await entries()).toBe(0);
    } finally {
      await holder.end();
      await runActivity(setup.removeLogicalCapture, { migrationId, plan });
      await databases.close();
    }
  });

  it("has a chunk wait for the reader to pass its high watermark, so that its look at the log sees the changes its read missed", async () => {
    const migrationId = 'chunk-high-watermark';
    await sql(url, `
      CREATE TABLE wallets (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO wallets SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, 100) AS i;
      CREATE TABLE wallets_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`);
    const plan = validatePlan({
      name: migrationId,
      source: { connection: 'DB', table: 'wallets', key: 'id' },
      target: { connection: 'DB', table: 'wallets_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: 'logical',
    });
    const databases = createDatabases({ env: { DB: url } });
    const setup = createLogicalCaptureSetup(databases);
    const reader = new pg.Client({ connectionString: url });
    await reader.connect();
    let reading: Promise<unknown> = Promise.resolve();
    try {
      await installFerrySchema(databases.pool('DB'));
      await runActivity(setup.installLogicalCapture, { migrationId, plan });
      const { reapplied } = await createChangeApplier(databases, null).copyChunkWithWatermark(migrationId, plan, { after: '0', upTo: '100' }, async () => {
        // The chunk's read: its snapshot is taken here, before the writes below.
        await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        const stale = await reader.query(`SELECT id, (balance * 100)::bigint AS cents, note FROM wallets ORDER BY id`);
        await sql(url, `DELETE FROM wallets WHERE id = 5; UPDATE wallets SET balance = 0.01 WHERE id = 6; UPDATE wallets SET id = 99999 WHERE id = 7;`);
        await reader.query('COMMIT');
        for (const row of stale.rows as { id: number; cents: string; note: string | null }[]) {
          await sql(url, `INSERT INTO wallets_v2 VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [row.id, row.cents, row.note]);
        }
        // The reader logs those changes only a while after the chunk's write.
        reading = new Promise((resolve) => setTimeout(resolve, 1500)).then(() => runActivity(createLogicalReader(databases).readLogicalChanges, { migrationId, plan, maxSeconds: 4 }));
        return { failures: [] };
      });
      // By the test's own md5 of each row: the chunk's range holds what the source holds now.
      const differing = await sql(
        url,
        `SELECT s.id, t.id FROM (SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM wallets WHERE id <= 100) AS s
           FULL JOIN (SELECT id, md5(row(id, cents, note)::text) AS h FROM wallets_v2) AS t ON s.id = t.id WHERE s.h IS DISTINCT FROM t.h`,
      );
      expect(differing).toEqual([]);
      expect(reapplied).toMatchObject({ keys: 3, written: 1, deleted: 2 });
    } finally {
      await reading;
      await reader.end();
      await runActivity(setup.removeLogicalCapture, { migrationId, plan });
      await databases.close();
    }
  });

  it('refuses a table whose replica identity does not cover the key, and a role without REPLICATION, creating nothing', async () => {
    // Only this test's names: a slot another test left would fail that test, not this one.
    const ferrySlots = (u: string) => sql(u, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE ANY ($1)`, [[`${LOGICAL_CAPTURE_PREFIX}refused%`, `${LOGICAL_CAPTURE_PREFIX}ferry_capture_logical_keyless%`]]);
    const ferryPublications = (u: string) => sql(u, `SELECT pubname FROM pg_publication WHERE pubname LIKE ANY ($1)`, [[`${LOGICAL_CAPTURE_PREFIX}refused%`, `${LOGICAL_CAPTURE_PREFIX}ferry_capture_logical_keyless%`]]);
    const setup = createLogicalCaptureSetup(createDatabases({ env: { DB: url } }));
    const keyless = validatePlan({
      name: 'capture-logical-keyless',
      source: { connection: 'DB', table: 'keyless', key: 'id' },
      target: { connection: 'DB', table: 'keyless_v2' },
      transform: { sql: { id: 'id', note: 'note' } },
      capture: 'logical',
    });
    await expect(runActivity(setup.installLogicalCapture, { migrationId: 'refused-keyless', plan: keyless })).rejects.toThrow(
      /public\.keyless has no primary key and no replica identity index, which does not cover the key id.*nothing was created/,
    );
    expect(await ferrySlots(url)).toEqual([]);
    expect(await ferryPublications(url)).toEqual([]);

    // Through the workflow: its inspection refuses the migration, naming the problem, and nothing is created.
    const handle = await startMigration(worker.client, worker.temporal, keyless, { execute: true });
    await expect(handle.result()).rejects.toThrow();
    const failed = await migrationReport(worker.client, handle.workflowId);
    expect(failed.runState).toBe('failed');
    expect(failed.failure).toMatch(/keyless has no primary key and no replica identity index, which does not cover the key id/);
    expect(await sql(url, `SELECT count(*)::int AS n FROM keyless_v2`)).toEqual([{ n: 0 }]);
    expect(await ferrySlots(url)).toEqual([]);
    expect(await ferryPublications(url)).toEqual([]);

    const role = `capture_norepl_${Date.now()}`;
    await sql(url, `CREATE ROLE ${role} LOGIN PASSWORD 'norepl'; ALTER TABLE accounts OWNER TO ${role}; GRANT CREATE ON DATABASE ${new URL(url).pathname.slice(1)} TO ${role}`);
    const limitedUrl = new URL(url);
    limitedUrl.username = role;
    limitedUrl.password = 'norepl';
    const limited = createDatabases({ env: { DB: limitedUrl.toString() } });
    try {
      const plan = validatePlan({ ...keyless, source: { ...keyless.source, table: 'accounts' }, target: { ...keyless.target, table: 'accounts_v2' }, transform: { sql: { id: 'id', cents: '0', note: 'note' } } });
      await expect(runActivity(createLogicalCaptureSetup(limited).installLogicalCapture, { migrationId: 'refused-norepl', plan })).rejects.toThrow(
        new RegExp(`the role ${role} lacks the REPLICATION attribute.*fix: ALTER ROLE "${role}" REPLICATION;`),
      );
      // `ferry doctor` says the same before any migration starts.
      const doctor = (await runActivity(createDoctor(limited).doctor, { plan })).checks.filter((c) => c.name.startsWith('logical capture'));
      expect(doctor).toEqual([
        expect.objectContaining({ name: 'logical capture: REPLICATION privilege', status: 'fail', fix: `ALTER ROLE "${role}" REPLICATION;` }),
        // The test server sets no cap on the WAL a slot keeps.
        expect.objectContaining({ name: 'logical capture: WAL kept by the slot', status: 'warn' }),
      ]);
      await sql(url, `ALTER ROLE ${role} REPLICATION`);
      const after = (await runActivity(createDoctor(limited).doctor, { plan })).checks.filter((c) => c.name.startsWith('logical capture'));
      expect(after).toEqual([
        expect.objectContaining({ name: 'logical capture', status: 'ok' }),
        expect.objectContaining({ name: 'logical capture: WAL kept by the slot', status: 'warn' }),
      ]);
    } finally {
      await limited.close();
    }
    expect(await ferrySlots(url)).toEqual([]);
    expect(await ferryPublications(url)).toEqual([]);
  });
});
