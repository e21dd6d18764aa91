/**
 * Trigger capture against real PostgreSQL: the trigger logs each changed key in the writer's own
 * transaction; a backfill copies while a writer inserts, updates, hard-deletes and changes keys,
 * the change applier runs beside it, and after the writer stops and the lag reaches zero the
 * test's own md5 of every row's text finds both sides equal, in one database and across two.
 */
import { runActivity } from '../support/activities';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChangeApplier } from '../../activities/capture/applier';
import { captureObjectName, truncateGuardName } from '../../activities/capture/statements';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createCopier, type CopyBatchesResult } from '../../activities/copy/copier';
import { createDoctor } from '../../activities/inspect/doctor';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { startOfCapture, type ApplyCursor, type CaptureLag } from '../../lib/capture';
import type { ShardSpec } from '../../lib/key-range';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan } from '../../lib/plan';
import { startWriter } from '../support/capture-writer';
import { createTestDatabase, rowsDigest, sql } from '../support/harness';

const ROWS = 6000;

const sourceDdl = `
  CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
  INSERT INTO accounts SELECT i, i * 1.25, CASE WHEN i % 7 = 0 THEN NULL ELSE 'note ' || i END FROM generate_series(1, ${ROWS}) AS i;`;

const targetDdl = `CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`;

/** The same reshaping as a module transform: numeric(12, 2) arrives as its exact text. */
const centsModule = `export default (row: { id: number; balance: string; note: string | null }) => ({ id: row.id, cents: row.balance.replace('.', ''), note: row.note });`;

function capturePlan(name: string, targetEnv: string, module?: string): Plan {
  return validatePlan({
    name,
    source: { connection: 'SOURCE_URL', table: 'accounts', key: 'id' },
    target: { connection: targetEnv, table: 'accounts_v2' },
    transform: module ? { module, columns: ['id', 'cents', 'note'] } : { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
    capture: { mode: 'trigger', applyBatchSize: 200 },
    // The copy and the apply run at the rates the calls give: the pacing controller, which the
    // writer's load would hold at its floor, has tests of its own.
    throttle: { budget: false },
  });
}

/** The test's own comparison: md5 of each row's text, the source through the same reshaping by hand. */
async function differingKeys(sourceUrl: string, targetUrl: string): Promise<string[]> {
  const [source, target] = await Promise.all([
    sql<{ key: string; h: string }>(sourceUrl, `SELECT id::text AS key, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM accounts`),
    sql<{ key: string; h: string }>(targetUrl, `SELECT id::text AS key, md5(row(id, cents, note)::text) AS h FROM accounts_v2`),
  ]);
  const want = new Map(source.map((r) => [r.key, r.h]));
  const have = new Map(target.map((r) => [r.key, r.h]));
  const keys = new Set([...want.keys(), ...have.keys()]);
  return [...keys].filter((k) => want.get(k) !== have.get(k)).sort((a, b) => Number(a) - Number(b));
}

describe('the capture trigger', () => {
  let url: string;
  let databases: Databases;
  const plan = () => capturePlan('capture-trigger', 'SOURCE_URL');

  beforeAll(async () => {
    url = await createTestDatabase('capture_trigger');
    await sql(url, sourceDdl + targetDdl);
    databases = createDatabases({ env: { SOURCE_URL: url } });
  });
  afterAll(() => databases?.close());

  it('logs each changed key in the writer transaction, with its id; installs and removes idempotently', async () => {
    const trigger = createCaptureTrigger(databases);
    const id = 'capture-trigger-1';
    expect(await runActivity(trigger.installCapture, { migrationId: id, plan: plan() })).toEqual({ installed: true, functionName: captureObjectName(id) });
    expect(await runActivity(trigger.installCapture, { migrationId: id, plan: plan() })).toMatchObject({ installed: false });

    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    await writer.query('BEGIN');
    await writer.query(`INSERT INTO accounts VALUES (900001, 1, 'new')`);
    await writer.query(`UPDATE accounts SET balance = 2 WHERE id = 1`);
    await writer.query(`UPDATE accounts SET id = 900002 WHERE id = 2`);
    await writer.query(`DELETE FROM accounts WHERE id = 3`);
    const xid = (await writer.query<{ xid: string }>(`SELECT pg_current_xact_id()::text AS xid`)).rows[0]!.xid;
    await writer.query('COMMIT');
    await writer.end();
    await sql(url, `BEGIN; UPDATE accounts SET balance = 3 WHERE id = 4; ROLLBACK;`);
    const logged = await sql<{ key: string; xid: string }>(url, `SELECT key, xid::text FROM ferry.change_log WHERE migration_id = $1 ORDER BY seq`, [id]);
    expect(logged).toEqual(['900001', '1', '2', '900002', '3'].map((key) => ({ key, xid })));

    // A TRUNCATE would delete every row with no key logged: refused, and the table is unchanged.
    const before = await sql(url, `SELECT count(*)::int AS rows, md5(string_agg(accounts::text, ',' ORDER BY id)) AS digest FROM accounts`);
    await expect(sql(url, `TRUNCATE accounts`)).rejects.toThrow(`TRUNCATE of public.accounts is refused while Ferry captures its changes for migration ${id}`);
    expect(await sql(url, `SELECT count(*)::int AS rows, md5(string_agg(accounts::text, ',' ORDER BY id)) AS digest FROM accounts`)).toEqual(before);

    // A writer with no privilege on Ferry's schema writes as before.
    await sql(url, `CREATE ROLE capture_app LOGIN; GRANT ALL ON accounts TO capture_app;`);
    const app = new URL(url);
    app.username = 'capture_app';
    app.password = '';
    await sql(app.toString(), `UPDATE accounts SET note = 'from the app' WHERE id = 5`);
    expect(await sql(url, `SELECT key FROM ferry.change_log WHERE migration_id = $1 AND key = '5'`, [id])).toHaveLength(1);

    expect(await runActivity(trigger.removeCapture, { migrationId: id, plan: plan() })).toEqual({ removedEntries: 6 });
    expect(await runActivity(trigger.removeCapture, { migrationId: id, plan: plan() })).toEqual({ removedEntries: 0 });
    const name = captureObjectName(id);
    expect(await sql(url, `SELECT 1 FROM pg_trigger WHERE tgname IN ($1, $2) UNION ALL SELECT 1 FROM pg_proc WHERE proname = $1`, [name, truncateGuardName(id)])).toEqual([]);
    await sql(url, `UPDATE accounts SET balance = 5 WHERE id = 6`);
    expect(await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });

  it('needs the table owner: doctor prints the GRANTs, the install says what to grant, and after them it installs', async () => {
    const role = `capture_limited_${Date.now()}`;
    const database = new URL(url).pathname.slice(1);
    await sql(url, `CREATE ROLE ${role} LOGIN PASSWORD 'limited'; GRANT SELECT ON accounts TO ${role}; REVOKE CREATE ON DATABASE ${database} FROM PUBLIC;`);
    const limitedUrl = new URL(url);
    limitedUrl.username = role;
    limitedUrl.password = 'limited';
    const limited = createDatabases({ env: { LIMITED_URL: limitedUrl.toString() } });
    try {
      const limitedPlan = validatePlan({ ...plan(), source: { ...plan().source, connection: 'LIMITED_URL' }, target: { ...plan().target, connection: 'LIMITED_URL' } });
      const capturing = (await runActivity(createDoctor(limited).doctor, { plan: limitedPlan })).checks.filter((c) => /capture|change log/.test(c.name));
      expect(capturing).toEqual([
        expect.objectContaining({ name: 'capture trigger on public.accounts', status: 'fail', fix: expect.stringMatching(/^GRANT "\w+" TO "capture_limited_\d+";$/) }),
        expect.objectContaining({ name: 'schema ferry (change log)', status: 'fail', fix: `ALTER SCHEMA ferry OWNER TO "${role}";` }),
      ]);
      await expect(runActivity(createCaptureTrigger(limited).installCapture, { migrationId: 'capture-limited', plan: limitedPlan })).rejects.toThrow(
        /may not install capture on public\.accounts: .*own the table/,
      );
      expect(await sql(url, `SELECT 1 FROM pg_proc WHERE proname = $1`, [captureObjectName('capture-limited')])).toEqual([]);
      // The schema exists already here (the first test made it), so the owner of the table is what is missing.
      await sql(url, capturing[0]!.fix!);
      await sql(url, `ALTER SCHEMA ferry OWNER TO ${role}; ALTER TABLE ferry.change_log OWNER TO ${role};`);
      const after = (await runActivity(createDoctor(limited).doctor, { plan: limitedPlan })).checks.filter((c) => /capture|change log/.test(c.name));
      expect(after.map((c) => c.status)).toEqual(['ok', 'ok']);
      expect(await runActivity(createCaptureTrigger(limited).installCapture, { migrationId: 'capture-limited', plan: limitedPlan })).toMatchObject({ installed: true });
      await runActivity(createCaptureTrigger(limited).removeCapture, { migrationId: 'capture-limited', plan: limitedPlan });
    } finally {
      await limited.close();
    }
  });

  it('refuses a source table that does not exist, and creates nothing for it', async () => {
    const trigger = createCaptureTrigger(databases);
    const missing = validatePlan({ ...plan(), source: { ...plan().source, table: 'no_such_table' } });
    await expect(runActivity(trigger.installCapture, { migrationId: 'capture-missing', plan: missing })).rejects.toThrow(/no_such_table does not exist/);
    expect(await sql(url, `SELECT 1 FROM pg_proc WHERE proname = $1`, [captureObjectName('capture-missing')])).toEqual([]);
  });
});

describe('a chunk whose read is older than the changes made before its write', () => {
  let url: string;
  let databases: Databases;

  beforeAll(async () => {
    url = await createTestDatabase('capture_watermark');
    await sql(url, sourceDdl + targetDdl);
    databases = createDatabases({ env: { SOURCE_URL: url } });
    await installFerrySchema(databases.pool('SOURCE_URL'));
  });
  afterAll(() => databases?.close());

  it('loses to them: the keys its snapshot could not see are applied again after its write', { timeout: 30_000 }, async () => {
    const plan = capturePlan('capture-watermark', 'SOURCE_URL');
    const migrationId = 'capture-watermark-1';
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    const changes = createChangeApplier(databases, null);
    const range = { after: '0', upTo: '100' };
    const reader = new pg.Client({ connectionString: url });
    await reader.connect();
    try {
      const { reapplied } = await changes.copyChunkWithWatermark(migrationId, plan, range, async () => {
        // The chunk's read: its snapshot is taken here, before the writes below.
        await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        const stale = await reader.query(`SELECT id, (balance * 100)::bigint AS cents, note FROM accounts WHERE id > 0 AND id <= 100 ORDER BY id`);
        await sql(url, `DELETE FROM accounts WHERE id = 5; UPDATE accounts SET balance = 0.01 WHERE id = 6; UPDATE accounts SET id = 99999 WHERE id = 7;`);
        await reader.query('COMMIT');
        // The chunk's write, as the copier's: rows the target already holds are kept.
        for (const row of stale.rows as { id: number; cents: string; note: string | null }[]) {
          await sql(url, `INSERT INTO accounts_v2 VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, [row.id, row.cents, row.note]);
        }
        return { read: stale.rowCount, failures: [] };
      });
      expect(reapplied).toMatchObject({ keys: 3, written: 1, deleted: 2 });
    } finally {
      await reader.end();
    }
    const target = await sql<{ id: number; cents: string }>(url, `SELECT id, cents FROM accounts_v2 WHERE id IN (5, 6, 7, 99999) ORDER BY id`);
    // 99999 is outside the chunk's range: the change apply brings it.
    expect(target).toEqual([{ id: 6, cents: '1' }]);
    const applied = await runActivity(changes.activities.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, maxSeconds: 0.3 });
    expect(applied.keysApplied).toBe(4);
    const differing = await sql(
      url,
      `SELECT s.id, t.id FROM (SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM accounts WHERE id <= 100 OR id = 99999) AS s
         FULL JOIN (SELECT id, md5(row(id, cents, note)::text) AS h FROM accounts_v2) AS t ON s.id = t.id WHERE s.h IS DISTINCT FROM t.h`,
    );
    expect(differing).toEqual([]);
  });
});

describe.each([
  ['in one database', false, false],
  ['across two databases', true, false],
  ['across two databases through a JavaScript module', true, true],
])('a backfill with changes captured %s', (_label, acrossDatabases, throughModule) => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-capture-'));
  const module = path.join(dir, 'cents.ts');

  beforeAll(async () => {
    sourceUrl = await createTestDatabase('capture_src');
    targetUrl = acrossDatabases ? await createTestDatabase('capture_tgt') : sourceUrl;
    await sql(sourceUrl, sourceDdl);
    await sql(targetUrl, targetDdl);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    writeFileSync(module, centsModule);
  });
  afterAll(async () => {
    await databases?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends equal to the source, row for row, once the writer stops and the lag is zero', async () => {
    const plan = capturePlan('capture-backfill', acrossDatabases ? 'TARGET_URL' : 'SOURCE_URL', throughModule ? module : undefined);
    const migrationId = `capture-backfill-${acrossDatabases ? 'across' : 'within'}${throughModule ? '-module' : ''}`;
    const trigger = createCaptureTrigger(databases);
    const copier = createCopier(databases, undefined, dir);
    const { activities: applier } = createChangeApplier(databases, dir);
    await runActivity(trigger.installCapture, { migrationId, plan });

    const writer = startWriter(sourceUrl, { table: 'accounts', keys: ROWS, freshKeysFrom: 10_000_000 });
    let cursor: ApplyCursor = startOfCapture;
    let backfillDone = false;
    let applied = 0;
    // The applier runs beside the backfill, as it will in a migration.
    const applying = (async () => {
      while (!backfillDone) {
        const result = await runActivity(applier.applyChanges, { migrationId, plan, cursor, rowsPerSecond: null, maxSeconds: 0.5 });
        cursor = result.cursor;
        applied += result.keysApplied;
      }
    })();
    let copy: CopyBatchesResult;
    let copyCursor: string | null = null;
    do {
      copy = await runActivity(copier.copyBatches, {
        migrationId,
        plan,
        shard: { range: wholeKeySpace, partitionValue: null },
        cursor: copyCursor,
        batchSize: 150,
        maxBatchSize: 150,
        rowsPerSecond: 2000,
        failureBudget: 10,
        maxSeconds: 1,
      });
      copyCursor = copy.cursor;
    } while (!copy.done);
    backfillDone = true;
    await applying;
    const counts = await writer.stop();
    expect(counts.updates + counts.inserts + counts.deletes + counts.keyChanges).toBeGreaterThan(500);
    expect(counts.keyChanges).toBeGreaterThan(20);
    expect(applied).toBeGreaterThan(0);

    // Catch-up: the writer has stopped; apply until nothing waits, removing what was applied.
    let lag: CaptureLag = { changesWaiting: -1, oldestSeconds: 0 };
    for (let round = 0; round < 20 && lag.changesWaiting !== 0; round += 1) {
      const result = await runActivity(applier.applyChanges, { migrationId, plan, cursor, rowsPerSecond: null, prune: true, maxSeconds: 0.5 });
      cursor = result.cursor;
      lag = result.lag;
    }
    expect(lag).toMatchObject({ changesWaiting: 0, oldestSeconds: 0 });
    expect(await differingKeys(sourceUrl, targetUrl)).toEqual([]);
    expect(await sql(sourceUrl, `SELECT count(*)::int AS n FROM ferry.change_log WHERE migration_id = $1`, [migrationId])).toEqual([{ n: 0 }]);
    expect(await sql(targetUrl, `SELECT count(*)::int AS n FROM ferry.failed_records WHERE migration_id = $1`, [migrationId])).toEqual([{ n: 0 }]);

    await runActivity(trigger.removeCapture, { migrationId, plan });
    expect(await sql(sourceUrl, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal`)).toEqual([]);
  });
});

describe('a subset of partition values written otherwise than Postgres prints them', () => {
  const tenant = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
  const other = 'b1ffcd88-8d1a-4ef8-bb6d-6bb9bd380a22';
  let url: string;
  let databases: Databases;

  beforeAll(async () => {
    url = await createTestDatabase('capture_partition');
    await sql(url, `
      CREATE TABLE tenant_rows (id int PRIMARY KEY, tenant uuid NOT NULL, v text NOT NULL);
      INSERT INTO tenant_rows SELECT i, CASE WHEN i % 2 = 0 THEN '${tenant}'::uuid ELSE '${other}'::uuid END, 'v ' || i FROM generate_series(1, 200) i;
      CREATE TABLE tenant_rows_v2 (id int PRIMARY KEY, tenant uuid NOT NULL, v text NOT NULL);`);
    databases = createDatabases({ env: { SOURCE_URL: url } });
    await installFerrySchema(databases.pool('SOURCE_URL'));
  });
  afterAll(() => databases?.close());

  it('selects the same rows in the backfill, the change apply and repair: a changed row stays, with its new value', { timeout: 30_000 }, async () => {
    const upper = tenant.toUpperCase();
    const plan = validatePlan({
      name: 'capture-partition',
      source: { connection: 'SOURCE_URL', table: 'tenant_rows', key: 'id' },
      target: { connection: 'SOURCE_URL', table: 'tenant_rows_v2' },
      transform: { sql: { id: 'id', tenant: 'tenant', v: 'v' } },
      shards: { partitionColumn: 'tenant' },
      subset: { partitionValues: [upper] },
      capture: 'trigger',
      throttle: { budget: false },
      verify: { captureWaitSeconds: 0, inFlightDelaySeconds: 0 },
    });
    const migrationId = 'capture-partition-1';
    const shard: ShardSpec = { range: wholeKeySpace, partitionValue: upper };
    const inScope = `SELECT id, tenant, v FROM tenant_rows WHERE tenant = '${tenant}'`;
    const copied = 'SELECT id, tenant, v FROM tenant_rows_v2';
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    const copy = await runActivity(createCopier(databases, undefined, null).copyBatches, {
      migrationId, plan, shard, cursor: null, batchSize: 500, maxBatchSize: 500, rowsPerSecond: null, failureBudget: 10, maxSeconds: 10,
    });
    expect(copy.done).toBe(true);
    expect(await rowsDigest(url, copied)).toEqual(await rowsDigest(url, inScope));

    await sql(url, `UPDATE tenant_rows SET v = 'changed' WHERE id IN (2, 3)`);
    const { activities: applier } = createChangeApplier(databases, null);
    let cursor: ApplyCursor = startOfCapture;
    let lag: CaptureLag = { changesWaiting: -1, oldestSeconds: 0 };
    for (let round = 0; round < 20 && lag.changesWaiting !== 0; round += 1) {
      ({ cursor, lag } = await runActivity(applier.applyChanges, { migrationId, plan, cursor, rowsPerSecond: null, prune: true, maxSeconds: 0.5 }));
    }
    expect(await sql(url, `SELECT id, v FROM tenant_rows_v2 WHERE id IN (2, 3)`)).toEqual([{ id: 2, v: 'changed' }]);
    expect(await rowsDigest(url, copied)).toEqual(await rowsDigest(url, inScope));

    // Repair brings back what verification finds wrong in the target.
    await sql(url, `UPDATE tenant_rows_v2 SET v = 'damaged' WHERE id = 4; DELETE FROM tenant_rows_v2 WHERE id = 6`);
    const verifier = createVerifier(databases);
    const verify = async (pass: number): Promise<VerifyShardResult> =>
      runActivity(verifier.verifyShard, { migrationId, plan, shard, cursor: null, chunkSize: 500, pass, inFlightDelayMs: 0 });
    expect((await verify(1)).mismatches).toEqual({ missing: 1, extra: 0, value: 1 });
    expect(await runActivity(verifier.repairMismatches, { migrationId, plan, pass: 1 })).toMatchObject({ repaired: 2 });
    expect((await verify(2)).mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(await rowsDigest(url, copied)).toEqual(await rowsDigest(url, inScope));
  });
});
