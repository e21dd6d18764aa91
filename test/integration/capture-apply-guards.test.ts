/**
 * What the change apply promises beyond "a change reaches the target", each against real
 * PostgreSQL, run in Temporal's activity environment: a key updated out of the plan's subset
 * leaves the target (and one updated into it arrives), and a chunk's re-apply and the applier,
 * racing on one key, end with the source's latest row, not the older one written last; a key the
 * application deleted from the target with its tombstone is not written back while the source
 * still holds it. Each case checks with its own SQL (md5 of the rows' text on both sides, or the
 * row itself).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runActivity } from '../support/activities';
import { createChangeApplier } from '../../activities/capture/applier';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createCopier, type CopyBatchesResult } from '../../activities/copy/copier';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { startOfCapture } from '../../lib/capture';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow } from '../support/harness';

const ROWS = 2000;

describe.concurrent('the change apply', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('apply_guards_src'), createTestDatabase('apply_guards_tgt')]);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    await installFerrySchema(databases.pool('SOURCE_URL'));
  });
  afterAll(() => databases?.close());

  it('deletes from the target a key updated out of the subset, and brings one updated into it', { timeout: 30_000 }, async () => {
    await sql(sourceUrl, `CREATE TABLE members (id int PRIMARY KEY, active boolean NOT NULL, name text NOT NULL);
                          INSERT INTO members SELECT i, i % 2 = 0, 'member ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    await sql(targetUrl, `CREATE TABLE members_v2 (id int PRIMARY KEY, name text NOT NULL);`);
    const plan = validatePlan({
      name: 'apply-subset',
      source: { connection: 'SOURCE_URL', table: 'members', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'members_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
      subset: { where: 'active' },
      capture: { mode: 'trigger', applyBatchSize: 100 },
    });
    const migrationId = 'apply-subset-1';
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    const copier = createCopier(databases, undefined, null);
    let cursor: string | null = null;
    for (let done = false; !done; ) {
      const copied: CopyBatchesResult = await runActivity(copier.copyBatches, {
        migrationId, plan, shard: { range: wholeKeySpace, partitionValue: null }, cursor,
        batchSize: 500, maxBatchSize: 500, rowsPerSecond: null, failureBudget: 10, maxSeconds: 5,
      });
      ({ cursor, done } = copied);
    }
    expect((await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM members_v2`)).n).toBe(ROWS / 2);

    // 100 members leave the subset, 100 others join it, 100 stay in and are renamed.
    await sql(sourceUrl, `UPDATE members SET active = false WHERE id % 2 = 0 AND id <= 200;
                          UPDATE members SET active = true WHERE id % 2 = 1 AND id > 1800;
                          UPDATE members SET name = name || ' (renamed)' WHERE id % 2 = 0 AND id > 1800;`);
    const { activities: applier } = createChangeApplier(databases, null);
    const applied = await runActivity(applier.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, returnWhenCaughtUp: true, maxSeconds: 10 });
    expect(applied.keysApplied).toBe(300);

    expect(await sqlRow(targetUrl, `SELECT count(*)::int AS left_behind FROM members_v2 WHERE id % 2 = 0 AND id <= 200`)).toEqual({ left_behind: 0 });
    const want = await rowsDigest(sourceUrl, `SELECT id, name FROM members WHERE active`);
    expect(want.rows).toBe(ROWS / 2);
    expect(await rowsDigest(targetUrl, `SELECT id, name FROM members_v2`)).toEqual(want);
  });

  it('lets a chunk\'s re-apply and the applier race on a key and still ends with the source\'s latest row', { timeout: 30_000 }, async () => {
    // Within one database: the target's trigger stalls the re-apply's write of the row it read.
    await sql(sourceUrl, `CREATE TABLE ledgers (id int PRIMARY KEY, balance int NOT NULL);
                          INSERT INTO ledgers SELECT i, 0 FROM generate_series(1, 100) AS i;
                          CREATE TABLE ledgers_v2 (id int PRIMARY KEY, balance int NOT NULL);
                          CREATE FUNCTION ledgers_v2_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
                          CREATE TRIGGER stall BEFORE INSERT ON ledgers_v2 FOR EACH ROW WHEN (NEW.id = 50 AND NEW.balance = 2) EXECUTE FUNCTION ledgers_v2_stall();`);
    const plan = validatePlan({
      name: 'apply-race',
      source: { connection: 'SOURCE_URL', table: 'ledgers', key: 'id' },
      target: { connection: 'SOURCE_URL', table: 'ledgers_v2' },
      transform: { sql: { id: 'id', balance: 'balance' } },
      capture: { mode: 'trigger' },
    });
    const migrationId = 'apply-race-1';
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    const changes = createChangeApplier(databases, null);

    // The chunk copies keys 1..100, then key 50 changes (balance 2) after its low watermark: the
    // chunk applies key 50 again once written, and that write, having read balance 2, stalls.
    const chunk = changes.copyChunkWithWatermark(migrationId, plan, { after: '0', upTo: '100' }, async () => {
      await sql(sourceUrl, `INSERT INTO ledgers_v2 SELECT * FROM ledgers ORDER BY id`);
      await sql(sourceUrl, `UPDATE ledgers SET balance = 2 WHERE id = 50`);
      return { failures: [] };
    });
    chunk.catch(() => {}); // awaited below; a failure before then must not go unhandled
    await eventually(
      async () => ((await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query ILIKE '%ledgers_v2%'`)).n > 0 ? true : undefined),
      10_000,
      'the re-apply of key 50 in flight',
    );
    // Meanwhile the application writes key 50 again, and the applier applies that change.
    await sql(sourceUrl, `UPDATE ledgers SET balance = 3 WHERE id = 50`);
    const applying = runActivity(changes.activities.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, returnWhenCaughtUp: true, maxSeconds: 10 });
    const [, applied] = await Promise.all([chunk, applying]);
    expect(applied.keysApplied).toBeGreaterThan(0);

    expect(await sqlRow(sourceUrl, `SELECT balance FROM ledgers_v2 WHERE id = 50`)).toEqual({ balance: 3 });
    expect(await rowsDigest(sourceUrl, `SELECT * FROM ledgers_v2`)).toEqual(await rowsDigest(sourceUrl, `SELECT * FROM ledgers`));
  });

  it('does not write back a key the application deleted from the target with its tombstone, while the source still has it', { timeout: 30_000 }, async () => {
    await sql(sourceUrl, `CREATE TABLE parcels (id int PRIMARY KEY, weight int NOT NULL);
                          INSERT INTO parcels SELECT i, i FROM generate_series(1, 100) AS i;`);
    await sql(targetUrl, `CREATE TABLE parcels_v2 (id int PRIMARY KEY, weight int NOT NULL);`);
    const plan = validatePlan({
      name: 'apply-tombstone',
      source: { connection: 'SOURCE_URL', table: 'parcels', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'parcels_v2' },
      transform: { sql: { id: 'id', weight: 'weight' } },
      capture: { mode: 'trigger' },
    });
    const migrationId = 'apply-tombstone-1';
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    await sql(sourceUrl, `UPDATE parcels SET weight = weight + 1000 WHERE id <= 20`);
    // The application deletes keys 1..10 from the new store first, with their tombstones; the
    // old store's delete comes later. Meanwhile the source still holds them, changed since.
    await sql(targetUrl, `BEGIN; SELECT ferry.record_delete('public.parcels_v2', i::text) FROM generate_series(1, 10) AS i; COMMIT;`);
    const { activities: applier } = createChangeApplier(databases, null);
    const apply = () => runActivity(applier.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, returnWhenCaughtUp: true, maxSeconds: 10 });
    await apply();
    expect(await sqlRow(targetUrl, `SELECT count(*)::int AS back FROM parcels_v2 WHERE id <= 10`)).toEqual({ back: 0 });
    expect(await rowsDigest(targetUrl, `SELECT * FROM parcels_v2`)).toEqual(await rowsDigest(sourceUrl, `SELECT * FROM parcels WHERE id BETWEEN 11 AND 20`));

    // The old store's delete lands: the two sides agree.
    await sql(sourceUrl, `DELETE FROM parcels WHERE id <= 10`);
    await apply();
    expect(await rowsDigest(targetUrl, `SELECT * FROM parcels_v2`)).toEqual(await rowsDigest(sourceUrl, `SELECT * FROM parcels WHERE id <= 20`));
  });
});
