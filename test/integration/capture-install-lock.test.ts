/**
 * Installing the capture trigger needs a lock that waits for every open write transaction on the
 * source and holds new writers behind it. While an application transaction stays open on the
 * table, the install gives up within its lock timeout (and the activity is retried later), so the
 * application's other writes wait at most that long, never for as long as the open transaction.
 * Installs that start at once create the change log once, and none fails.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCaptureTrigger, installChangeLog } from '../../activities/capture/trigger';
import { captureObjectName } from '../../activities/capture/statements';
import { createDatabases, type Databases } from '../../activities/connections';
import { validatePlan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase, sql } from '../support/harness';

/** How long the application's open transaction stays open: well past the install's lock timeout. */
const OPEN_MS = 10_000;

describe('installing the capture trigger', () => {
  let url: string;
  let databases: Databases;

  beforeAll(async () => {
    url = await createTestDatabase('capture_install_lock');
    await sql(url, `CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL); INSERT INTO orders SELECT i, i FROM generate_series(1, 100) AS i;`);
    databases = createDatabases({ env: { DB: url } });
  });
  afterAll(() => databases?.close());

  it('gives up while a write transaction stays open, and holds the other writers back only briefly', { timeout: 30_000 }, async () => {
    const migrationId = 'install-lock-1';
    const plan = validatePlan({
      name: migrationId,
      source: { connection: 'DB', table: 'orders', key: 'id' },
      target: { connection: 'DB', table: 'orders_v2' },
      transform: { sql: { id: 'id', total: 'total' } },
      capture: { mode: 'trigger' },
    });
    const open = new pg.Client({ connectionString: url });
    const writer = new pg.Client({ connectionString: url });
    await Promise.all([open.connect(), writer.connect()]);
    try {
      await open.query('BEGIN');
      await open.query('UPDATE orders SET total = total + 1 WHERE id = 1');
      const ending = new Promise((resolve) => setTimeout(resolve, OPEN_MS)).then(() => open.query('COMMIT'));

      const installing = runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan }).then(
        () => ({ installed: true, code: null }),
        (error: { code?: string }) => ({ installed: false, code: error.code ?? null }),
      );
      // Another application write, queued behind the install's lock request.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const started = Date.now();
      await writer.query('UPDATE orders SET total = total + 1 WHERE id = 2');
      const waitedMs = Date.now() - started;

      expect(await installing).toEqual({ installed: false, code: '55P03' });
      expect(waitedMs).toBeLessThan(OPEN_MS / 2);
      await ending;
    } finally {
      await Promise.all([open.end(), writer.end()]);
    }
    // Nothing half-made; the retry, once the transaction has ended, installs.
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal`)).toEqual([]);
    expect(await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan })).toMatchObject({ installed: true });
    expect((await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND tgname = $1`, [captureObjectName(migrationId)])).length).toBe(1);
  });

  it('creates the change log once when many installs start at once (shards, workers, concurrent tests)', async () => {
    // Fifteen fresh databases, sixteen installs at once in each: before they took turns, some
    // failed with a deadlock in CREATE ... IF NOT EXISTS, or on the relation another had just made.
    for (let round = 0; round < 15; round++) {
      const fresh = await createTestDatabase('capture_install_race');
      const pool = new pg.Pool({ connectionString: fresh, max: 16 });
      try {
        const installs = await Promise.allSettled(Array.from({ length: 16 }, () => installChangeLog(pool)));
        expect(installs.filter((i) => i.status === 'rejected').map((i) => String((i as PromiseRejectedResult).reason))).toEqual([]);
        expect((await sql(fresh, `SELECT to_regclass('ferry.change_log')::text AS log`))[0]).toEqual({ log: 'ferry.change_log' });
      } finally {
        await pool.end();
      }
    }
  });
});
