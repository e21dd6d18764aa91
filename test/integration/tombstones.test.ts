/**
 * Tombstones. A key the application deletes from the new store (ferry.record_delete, in the
 * transaction that deletes the row there) is never copied into it afterwards, on every path a
 * batch takes: within one database or across two, through a module transform, straight into an
 * empty range or through the staging table, into a plain or a partitioned target.
 *
 * The application deletes the old store's row only later, as a dual writer that deletes the new
 * store first does, or one whose old-store delete is retried. Until then the source still holds
 * the row, and only the tombstone keeps the backfill from bringing it back. (A delete of both
 * stores before the copier reads the row needs no tombstone: the copier never sees the row.)
 *
 * A delete that comes while a batch holding the key is in flight waits for the batch (the copy
 * lock) and then deletes what the batch wrote: the batch read the row, and its statement's
 * snapshot predates the tombstone. So does one that comes while verification's repair writes it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 5000;
/** Keys in the second half of the table, which the copier (at 2,000 rows/s) reaches after the delete. */
const VICTIMS = Array.from({ length: 100 }, (_, i) => 3001 + i * 20);

type Path = 'within one database' | 'across databases' | 'through a module, across databases';

describe.concurrent('a key deleted with a tombstone is never copied back', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let dir: string;
  let cases = 0;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('tomb_source'), createTestDatabase('tomb_target')]);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tombstones-'));
    writeFileSync(path.join(dir, 'copy.ts'), 'export default (row: { id: string; tenant: number; name: string }) => ({ id: row.id, tenant: row.tenant, name: row.name });');
    worker = await startWorker({ SOURCE: sourceUrl, TARGET: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const matrix: [Path, 'plain' | 'partitioned', 'empty' | 'written'][] = [
    ['within one database', 'plain', 'empty'],
    ['within one database', 'plain', 'written'],
    ['within one database', 'partitioned', 'empty'],
    ['within one database', 'partitioned', 'written'],
    ['across databases', 'plain', 'empty'],
    ['across databases', 'plain', 'written'],
    ['across databases', 'partitioned', 'empty'],
    ['across databases', 'partitioned', 'written'],
    ['through a module, across databases', 'partitioned', 'written'],
  ];

  it.each(matrix)('%s, into a %s target that is %s', { timeout: 90_000 }, async (route, shape, contents) => {
    cases += 1;
    const source = `parcels_${cases}`;
    const target = `${source}_v2`;
    const sameDatabase = route === 'within one database';
    const sourceDb = sameDatabase ? targetUrl : sourceUrl;
    await sql(sourceDb, `CREATE TABLE ${source} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
                         INSERT INTO ${source} SELECT i, i % 7, 'parcel ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    await sql(targetUrl, shape === 'plain'
      ? `CREATE TABLE ${target} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);`
      : `CREATE TABLE ${target} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL) PARTITION BY RANGE (id);
         CREATE TABLE ${target}_low PARTITION OF ${target} FOR VALUES FROM (1) TO (2501);
         CREATE TABLE ${target}_rest PARTITION OF ${target} DEFAULT;`);
    // Rows the application wrote already (as the source has them): a batch over them goes through staging.
    if (contents === 'written') await sql(targetUrl, `INSERT INTO ${target} SELECT i, i % 7, 'parcel ' || i FROM generate_series(500, ${ROWS}, 500) AS i`);

    const plan = validatePlan({
      name: `tombstones-${cases}`,
      source: { connection: sameDatabase ? 'TARGET' : 'SOURCE', table: source, key: 'id' },
      target: { connection: 'TARGET', table: target },
      transform: route.startsWith('through a module') ? { module: path.join(dir, 'copy.ts'), columns: ['id', 'tenant', 'name'] } : { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      shards: { count: 1 },
      throttle: { rowsPerSecond: 2000, batchSize: 250 },
      verify: { enabled: false },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });

    // The migration brings Ferry's schema, and its delete function, into the target first.
    await eventually(async () => ((await sqlRow(targetUrl, `SELECT to_regproc('ferry.record_delete') IS NOT NULL AS ready`)).ready ? true : undefined), 30_000, 'ferry.record_delete');
    const app = new pg.Client({ connectionString: targetUrl });
    await app.connect();
    let copiedBeforeDelete: number;
    try {
      await app.query('BEGIN');
      for (const id of VICTIMS) await app.query('SELECT ferry.record_delete($1, $2)', [`public.${target}`, String(id)]);
      // Read under the copy lock record_delete took: no batch is in flight.
      copiedBeforeDelete = (await app.query(`SELECT count(*)::int AS n FROM ${target} WHERE id = ANY($1::bigint[])`, [VICTIMS])).rows[0].n;
      await app.query(`DELETE FROM ${target} WHERE id = ANY($1::bigint[])`, [VICTIMS]);
      await app.query('COMMIT');
    } finally {
      await app.end();
    }
    // Most of the keys were still ahead of the copier: the tombstone is all that stops it.
    expect(copiedBeforeDelete - (contents === 'written' ? VICTIMS.filter((id) => id % 500 === 0).length : 0)).toBeLessThan(VICTIMS.length / 2);

    expect((await handle.result()).phase).toBe('completed');
    expect(await sqlRow(targetUrl, `SELECT count(*)::int AS resurrected FROM ${target} WHERE id = ANY($1::bigint[])`, [VICTIMS])).toEqual({ resurrected: 0 });
    // The application's delete from the old store lands now: the two sides are equal again.
    await sql(sourceDb, `DELETE FROM ${source} WHERE id = ANY($1::bigint[])`, [VICTIMS]);
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${target}`)).toEqual(await rowsDigest(sourceDb, `SELECT * FROM ${source}`));
    expect((await rowsDigest(targetUrl, `SELECT * FROM ${target}`)).rows).toBe(ROWS - VICTIMS.length);
  });

  it.each(['within one database', 'across databases'] as const)('a delete while a batch holding the key is in flight waits for it, %s', { timeout: 90_000 }, async (route) => {
    cases += 1;
    const source = `parcels_${cases}`;
    const target = `${source}_v2`;
    const sourceDb = route === 'within one database' ? targetUrl : sourceUrl;
    await sql(sourceDb, `CREATE TABLE ${source} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
                         INSERT INTO ${source} SELECT i, i % 7, 'parcel ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    // The batch that writes key 3001 stops there for 3 s, its rows read and its snapshot taken.
    await sql(targetUrl, `CREATE TABLE ${target} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
      CREATE FUNCTION ${target}_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
      CREATE TRIGGER stall BEFORE INSERT ON ${target} FOR EACH ROW WHEN (NEW.id = 3001) EXECUTE FUNCTION ${target}_stall();`);
    const plan = validatePlan({
      name: `tombstones-${cases}`,
      source: { connection: route === 'within one database' ? 'TARGET' : 'SOURCE', table: source, key: 'id' },
      target: { connection: 'TARGET', table: target },
      transform: { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      shards: { count: 1 },
      throttle: { rowsPerSecond: 5000, batchSize: 250 },
      verify: { enabled: false },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(
      async () => ((await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query ILIKE '%${target}%'`)).n > 0 ? true : undefined),
      60_000,
      'the batch holding key 3001 in flight',
    );
    const victims = Array.from({ length: 11 }, (_, i) => 2991 + i);
    const app = new pg.Client({ connectionString: targetUrl });
    await app.connect();
    try {
      await app.query('BEGIN');
      for (const id of victims) await app.query('SELECT ferry.record_delete($1, $2)', [`public.${target}`, String(id)]);
      await app.query(`DELETE FROM ${target} WHERE id = ANY($1::bigint[])`, [victims]);
      await app.query('COMMIT');
    } finally {
      await app.end();
    }
    expect((await handle.result()).phase).toBe('completed');
    expect(await sqlRow(targetUrl, `SELECT count(*)::int AS resurrected FROM ${target} WHERE id = ANY($1::bigint[])`, [victims])).toEqual({ resurrected: 0 });
    await sql(sourceDb, `DELETE FROM ${source} WHERE id = ANY($1::bigint[])`, [victims]);
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${target}`)).toEqual(await rowsDigest(sourceDb, `SELECT * FROM ${source}`));
  });

  it('a delete while a repair writing the key is in flight waits for it, within one database', { timeout: 90_000 }, async () => {
    cases += 1;
    const source = `parcels_${cases}`;
    const target = `${source}_v2`;
    // The target holds a wrong row 50 that the backfill keeps (conflict policy ignore): verification repairs it.
    await sql(targetUrl, `CREATE TABLE ${source} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
                          INSERT INTO ${source} SELECT i, i % 7, 'parcel ' || i FROM generate_series(1, 200) AS i;
                          CREATE TABLE ${target} (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
                          INSERT INTO ${target} VALUES (50, 0, 'wrong');`);
    const plan = validatePlan({
      name: `tombstones-${cases}`,
      source: { connection: 'TARGET', table: source, key: 'id' },
      target: { connection: 'TARGET', table: target },
      transform: { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      shards: { count: 1 },
      verify: { maxPasses: 2, inFlightDelaySeconds: 2 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const statusOf = async () => (await migrationReport(worker.client, handle.workflowId)).status;
    await eventually(async () => ((await statusOf())?.phase === 'verifying' ? true : undefined), 60_000, 'verification');
    // From here on the repair's write of key 50 stops there for 3 s, its row read and its snapshot taken.
    await sql(targetUrl, `CREATE FUNCTION ${target}_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
      CREATE TRIGGER stall BEFORE INSERT ON ${target} FOR EACH ROW WHEN (NEW.id = 50) EXECUTE FUNCTION ${target}_stall();`);
    await eventually(
      async () => ((await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query ILIKE '%${target}%'`)).n > 0 ? true : undefined),
      30_000,
      'the repair of key 50 in flight',
    );
    const app = new pg.Client({ connectionString: targetUrl });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query('SELECT ferry.record_delete($1, $2)', [`public.${target}`, '50']);
      await app.query(`DELETE FROM ${target} WHERE id = 50`);
      await app.query('COMMIT');
    } finally {
      await app.end();
    }
    await sql(targetUrl, `DELETE FROM ${source} WHERE id = 50`);
    const result = await handle.result();
    expect(await sqlRow(targetUrl, `SELECT count(*)::int AS resurrected FROM ${target} WHERE id = 50`)).toEqual({ resurrected: 0 });
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${target}`)).toEqual(await rowsDigest(targetUrl, `SELECT * FROM ${source}`));
    expect(result.verification).toMatchObject({ clean: true, passes: 2, repaired: 1 });
  });
});
