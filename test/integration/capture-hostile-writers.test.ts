/**
 * Change capture against writers and tables it must not be fooled by, on real PostgreSQL: a
 * timestamptz key logged in each writer's own TimeZone, a session with `session_replication_role =
 * replica` (which skips ordinary triggers), a table renamed and replaced under the capture, a key
 * stored out of line under logical capture, and a partitioned source or one with inheritance
 * children (rows that leave through a partition, or live in a child, reach no capture). The
 * test's own md5 of every row decides, never Ferry's verifier.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChangeApplier } from '../../activities/capture/applier';
import { createLogicalCaptureSetup } from '../../activities/capture/logical-setup';
import { createLogicalReader } from '../../activities/capture/logical-reader';
import { captureObjectName, truncateGuardName } from '../../activities/capture/statements';
import { createCaptureTrigger, installTruncateGuard } from '../../activities/capture/trigger';
import { createDatabases, type Databases } from '../../activities/connections';
import { createInspector } from '../../activities/inspect/inspector';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { startOfCapture } from '../../lib/capture';
import { validatePlan, type Plan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase, sql } from '../support/harness';

function capturePlan(name: string, source: string, key: string, mode: 'trigger' | 'logical' | 'application' = 'trigger'): Plan {
  return validatePlan({
    name,
    source: { connection: 'SOURCE_URL', table: source, key },
    target: { connection: 'SOURCE_URL', table: `${source}_v2` },
    transform: { sql: { [key]: key, v: 'v', note: 'note' } },
    capture: { mode },
  });
}

/** Keys whose row differs between the tables, by md5 of the whole row's text (timestamptz printed in UTC). */
async function differingKeys(url: string, source: string, key: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET TimeZone = 'UTC'`);
    const rows = await client.query<{ key: string }>(
      `SELECT COALESCE(s.k, t.k) AS key FROM (SELECT ${key}::text AS k, md5(x::text) AS h FROM ${source} AS x) AS s
         FULL JOIN (SELECT ${key}::text AS k, md5(x::text) AS h FROM ${source}_v2 AS x) AS t ON s.k = t.k
        WHERE s.h IS DISTINCT FROM t.h ORDER BY 1`,
    );
    return rows.rows.map((r) => r.key);
  } finally {
    await client.end();
  }
}

/** Runs statements on one session of its own, with the session settings given. */
async function asWriter(url: string, settings: string, statements: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(settings);
    await client.query(statements);
  } finally {
    await client.end();
  }
}

describe('change capture with hostile writers and tables', () => {
  let url: string;
  let databases: Databases;

  beforeAll(async () => {
    url = await createTestDatabase('capture_hostile');
    databases = createDatabases({ env: { SOURCE_URL: url } });
    await installFerrySchema(databases.pool('SOURCE_URL'));
  });
  afterAll(() => databases?.close());

  async function applyAll(migrationId: string, plan: Plan) {
    return runActivity(createChangeApplier(databases, null).activities.applyChanges, {
      migrationId,
      plan,
      cursor: startOfCapture,
      rowsPerSecond: null,
      maxSeconds: 2,
      returnWhenCaughtUp: true,
    });
  }

  it('applies a timestamptz key whatever TimeZone its writer used, rather than deleting its row', { timeout: 30_000 }, async () => {
    await sql(
      url,
      `SET TimeZone = 'UTC';
       CREATE TABLE events (at timestamptz PRIMARY KEY, v int NOT NULL, note text);
       INSERT INTO events SELECT '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour', i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
         FROM generate_series(1, 40) AS i;
       CREATE TABLE events_v2 (LIKE events INCLUDING ALL);
       INSERT INTO events_v2 SELECT * FROM events;`,
    );
    const plan = capturePlan('capture-tz', 'events', 'at');
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId: 'capture-tz', plan });
    // Writers in zones other than the worker's (the server default, UTC here): each logs keys as its session prints them.
    await asWriter(
      url,
      `SET TimeZone = 'America/New_York'`,
      `UPDATE events SET v = v + 1000 WHERE v <= 10;
       UPDATE events SET note = NULL WHERE v BETWEEN 11 AND 13;
       DELETE FROM events WHERE v BETWEEN 14 AND 16;
       UPDATE events SET at = at + interval '1 minute' WHERE v BETWEEN 17 AND 19;`,
    );
    await asWriter(
      url,
      `SET TimeZone = 'Asia/Kolkata'`,
      `INSERT INTO events VALUES ('2030-06-01 12:00:00+00', 5000, 'new');
       BEGIN; DELETE FROM events WHERE v = 20; INSERT INTO events VALUES ('2024-01-01 20:00:00+00', 20, 'again'); COMMIT;
       UPDATE events SET v = v WHERE v BETWEEN 21 AND 23;`,
    );
    const logged = await sql<{ key: string }>(url, `SELECT key FROM ferry.change_log WHERE migration_id = 'capture-tz' AND key LIKE '%-05'`);
    expect(logged.length).toBeGreaterThan(0);
    expect(await differingKeys(url, 'events', 'at')).not.toEqual([]);

    const applied = await applyAll('capture-tz', plan);
    expect(applied.rowsDeleted).toBe(6);
    expect(await differingKeys(url, 'events', 'at')).toEqual([]);
    await runActivity(createCaptureTrigger(databases).removeCapture, { migrationId: 'capture-tz', plan });
  });

  it('captures the writes of a session_replication_role = replica session and refuses its TRUNCATE', { timeout: 30_000 }, async () => {
    await sql(
      url,
      `CREATE TABLE accounts (id int PRIMARY KEY, v int NOT NULL, note text);
       INSERT INTO accounts SELECT i, i, 'n' || i FROM generate_series(1, 50) AS i;
       CREATE TABLE accounts_v2 (LIKE accounts INCLUDING ALL);
       INSERT INTO accounts_v2 SELECT * FROM accounts;`,
    );
    const plan = capturePlan('capture-replica', 'accounts', 'id');
    const trigger = createCaptureTrigger(databases);
    expect(await runActivity(trigger.installCapture, { migrationId: 'capture-replica', plan })).toMatchObject({ installed: true });
    expect(await runActivity(trigger.installCapture, { migrationId: 'capture-replica', plan })).toMatchObject({ installed: false });
    const enabled = await sql<{ tgname: string; tgenabled: string }>(
      url,
      `SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal ORDER BY tgname`,
    );
    expect(enabled).toEqual(
      [captureObjectName('capture-replica'), truncateGuardName('capture-replica')].sort().map((tgname) => ({ tgname, tgenabled: 'A' })),
    );

    // A bulk loader or a restore: ordinary triggers do not fire in its session.
    await asWriter(url, `SET session_replication_role = replica`, `UPDATE accounts SET v = v + 100 WHERE id <= 10; DELETE FROM accounts WHERE id BETWEEN 11 AND 15; INSERT INTO accounts VALUES (900, 900, NULL);`);
    const digest = `SELECT count(*)::int AS n, md5(string_agg(accounts::text, ',' ORDER BY id)) AS h FROM accounts`;
    const before = await sql(url, digest);
    await expect(asWriter(url, `SET session_replication_role = replica`, `TRUNCATE accounts`)).rejects.toThrow(/TRUNCATE of public\.accounts is refused/);
    expect(await sql(url, digest)).toEqual(before);

    await applyAll('capture-replica', plan);
    expect(await differingKeys(url, 'accounts', 'id')).toEqual([]);
    await runActivity(trigger.removeCapture, { migrationId: 'capture-replica', plan });

    // Logical capture's guard, alone on the table: a replica-role TRUNCATE is refused too.
    const logical = capturePlan('capture-replica-logical', 'accounts', 'id', 'logical');
    await installTruncateGuard(databases.pool('SOURCE_URL'), 'capture-replica-logical', logical);
    await expect(asWriter(url, `SET session_replication_role = replica`, `TRUNCATE accounts`)).rejects.toThrow(/TRUNCATE of public\.accounts is refused/);
    expect(await sql(url, digest)).toEqual(before);
  });

  it.each(['trigger', 'logical'] as const)(
    'stops the change apply, naming why, once the %s capture no longer sees the table the plan names (renamed and replaced)',
    { timeout: 30_000 },
    async (mode) => {
      const table = `replaced_${mode}`;
      await sql(url, `CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, note text); CREATE TABLE ${table}_v2 (LIKE ${table} INCLUDING ALL);`);
      const plan = capturePlan(`capture-replaced-${mode}`, table, 'id', mode);
      const migrationId = `capture-replaced-${mode}`;
      const setup = createLogicalCaptureSetup(databases);
      if (mode === 'logical') await runActivity(setup.installLogicalCapture, { migrationId, plan });
      else await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
      try {
        await sql(url, `ALTER TABLE ${table} RENAME TO ${table}_aside; CREATE TABLE ${table} (LIKE ${table}_aside INCLUDING ALL); INSERT INTO ${table} VALUES (1, 1, 'unseen');`);
        await expect(applyAll(migrationId, plan)).rejects.toThrow(
          mode === 'logical' ? `does not publish public.${table} (any more)` : `on public.${table} is gone: writes to the source since then were not captured`,
        );
      } finally {
        if (mode === 'logical') await runActivity(setup.removeLogicalCapture, { migrationId, plan });
        else await runActivity(createCaptureTrigger(databases).removeCapture, { migrationId, plan });
      }
      // The removal finds the triggers on the table set aside too: nothing of the migration's is left.
      expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid IN ($1::regclass, $2::regclass) AND NOT tgisinternal`, [table, `${table}_aside`])).toEqual([]);
    },
  );

  it('reads, under logical capture, the update of a row whose key is stored out of line (sent as an unchanged TOAST value)', { timeout: 30_000 }, async () => {
    await sql(
      url,
      `CREATE TABLE long_keys (id text PRIMARY KEY, v int NOT NULL, note text);
       ALTER TABLE long_keys ALTER COLUMN id SET STORAGE EXTERNAL;
       INSERT INTO long_keys SELECT repeat(chr(96 + i), 2100), i, NULL FROM generate_series(1, 5) AS i;
       INSERT INTO long_keys VALUES ('short', 0, NULL);
       CREATE TABLE long_keys_v2 (LIKE long_keys INCLUDING ALL);
       INSERT INTO long_keys_v2 SELECT * FROM long_keys;`,
    );
    const migrationId = 'capture-long-keys';
    const plan = capturePlan(migrationId, 'long_keys', 'id', 'logical');
    const setup = createLogicalCaptureSetup(databases);
    await runActivity(setup.installLogicalCapture, { migrationId, plan });
    try {
      await sql(url, `UPDATE long_keys SET v = v + 10, note = 'changed' WHERE v <= 3; DELETE FROM long_keys WHERE v = 4;`);
      const reading = runActivity(createLogicalReader(databases).readLogicalChanges, { migrationId, plan, maxSeconds: 4 });
      await applyAll(migrationId, plan);
      expect(await reading).toMatchObject({ keysLogged: 5 });
      expect(await differingKeys(url, 'long_keys', 'id')).toEqual([]);
    } finally {
      await runActivity(setup.removeLogicalCapture, { migrationId, plan });
    }
  });

  it('refuses a partitioned source, or one with inheritance children, under capture', { timeout: 30_000 }, async () => {
    await sql(
      url,
      `CREATE TABLE parts (id int PRIMARY KEY, v int NOT NULL, note text) PARTITION BY RANGE (id);
       CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);
       CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (100) TO (200);
       INSERT INTO parts SELECT i, i, NULL FROM generate_series(1, 199) AS i;
       CREATE TABLE parts_v2 (id int PRIMARY KEY, v int NOT NULL, note text);
       CREATE TABLE parent (id int PRIMARY KEY, v int NOT NULL, note text);
       CREATE TABLE child (id int PRIMARY KEY) INHERITS (parent);
       CREATE TABLE parent_v2 (LIKE parent INCLUDING ALL);`,
    );
    const inspector = createInspector(databases, null);
    for (const mode of ['trigger', 'logical'] as const) {
      const partitioned = await inspector.inspect({ plan: capturePlan(`parts-${mode}`, 'parts', 'id', mode), showSampleValues: false });
      expect(partitioned.problems).toEqual([expect.stringMatching(`^source table public\\.parts is partitioned: a partition truncated, detached or dropped .*capture: ${mode}`)]);
      const inherited = await inspector.inspect({ plan: capturePlan(`parent-${mode}`, 'parent', 'id', mode), showSampleValues: false });
      expect(inherited.problems).toEqual([expect.stringMatching(/^source table public\.parent has inheritance children/)]);
    }
    // Without capture the same tables are fine: nothing relies on row triggers.
    const plain = capturePlan('parts-plain', 'parts', 'id', 'application');
    expect((await inspector.inspect({ plan: plain, showSampleValues: false })).problems).toEqual([]);
  });
});
