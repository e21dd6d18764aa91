/**
 * A change that makes a module transform skip a row (return null) removes the row the backfill
 * wrote: the change apply deletes the target rows of keys whose source row the transform now
 * skips, as a deleted source row's. Real PostgreSQL and Temporal; the test's own SQL digests
 * what the target must hold.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatePlan } from '../../lib/plan';
import { startMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { createTestDatabase, eventually, rowsDigest, sql, startWorker, type TestWorker } from '../support/harness';

describe('a row the module transform now skips', () => {
  let url: string;
  let worker: TestWorker;
  let dir: string;

  beforeAll(async () => {
    url = await createTestDatabase('capture_module_skip');
    await sql(url, `
      CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, note text);
      INSERT INTO orders SELECT i, CASE WHEN i % 5 = 0 THEN 'archived' ELSE 'active' END, 'note ' || i FROM generate_series(1, 40) AS i;
      CREATE TABLE orders_v2 (id int PRIMARY KEY, status text NOT NULL, note text);`);
    // Inside the tests' transform directory (FERRY_TRANSFORM_DIR is the system's temporary folder).
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-capture-skip-'));
    writeFileSync(path.join(dir, 'active.ts'), `export default (row: { status: string }) => (row.status === 'archived' ? null : row);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is deleted from the target, and a kept row changed beside it is written', { timeout: 180_000 }, async () => {
    const plan = validatePlan({
      name: 'capture-module-skip',
      source: { connection: 'DB', table: 'orders', key: 'id' },
      target: { connection: 'DB', table: 'orders_v2' },
      transform: { module: path.join(dir, 'active.ts'), columns: ['id', 'status', 'note'] },
      capture: 'trigger',
    });
    const expected = () => rowsDigest(url, `SELECT id, status, note FROM orders WHERE status <> 'archived'`);
    const actual = () => rowsDigest(url, `SELECT id, status, note FROM orders_v2`);
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    try {
      await atCleanupGate(worker, handle.workflowId);
      expect(await actual()).toEqual(await expected());
      expect((await sql(url, `SELECT 1 FROM orders_v2 WHERE id = 3`)).length).toBe(1);

      await sql(url, `UPDATE orders SET status = 'archived' WHERE id = 3`);
      await sql(url, `UPDATE orders SET note = 'changed' WHERE id = 4`);
      const want = await expected();
      expect(want.rows).toBe(40 - 8 - 1);
      await eventually(async () => {
        const got = await actual();
        return got.rows === want.rows && got.md5 === want.md5 ? true : undefined;
      }, 30_000, 'the target holding the kept rows only');
      expect(await sql(url, `SELECT id, status, note FROM orders_v2 WHERE id IN (3, 4) ORDER BY id`)).toEqual([{ id: 4, status: 'active', note: 'changed' }]);
    } finally {
      await handle.terminate('test done').catch(() => {});
    }
  });
});
