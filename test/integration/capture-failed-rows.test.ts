/**
 * Rows the change apply cannot write (the target refuses a changed row) are failed rows like a
 * backfill's: recorded in ferry.failed_records, and counted in status and `ferry failures`, once
 * a key however often it fails again. Real PostgreSQL and Temporal; the test's own SQL reads
 * ferry.failed_records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatePlan } from '../../lib/plan';
import { migrationReport, startMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

describe('rows the change apply cannot write', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_failed_rows');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, 200) AS i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL CHECK (cents < 100000000), note text);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('are counted in status and ferry failures, each key once however often it fails', { timeout: 120_000 }, async () => {
    const plan = validatePlan({
      name: 'capture-failed-rows',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: 'trigger',
      failures: { maxCount: 10 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    try {
      await atCleanupGate(worker, id);
      expect((await migrationReport(worker.client, id)).status).toMatchObject({ rowsFailed: 0, unresolvedFailures: 0 });

      // Balances the target's check refuses, one of them changed twice.
      const attempts = () => sql<{ key: string; attempts: number }>(url, `SELECT key, attempts FROM ferry.failed_records WHERE migration_id = $1 ORDER BY key`, [id]);
      await sql(url, `UPDATE accounts SET balance = 4444444.44 WHERE id IN (7, 8)`);
      await eventually(async () => ((await attempts()).length === 2 ? true : undefined), 30_000, 'both keys recorded');
      await sql(url, `UPDATE accounts SET balance = 5555555.55 WHERE id = 7`);
      await eventually(async () => ((await attempts()).find((r) => r.key === '7')?.attempts === 2 ? true : undefined), 30_000, 'key 7 failing again');

      const status = await eventually(async () => {
        const found = (await migrationReport(worker.client, id)).status;
        return found && found.capture && found.capture.keysApplied >= 3 && found.rowsFailed >= 2 ? found : undefined;
      }, 30_000, 'the failures counted');
      expect({ rowsFailed: status.rowsFailed, unresolvedFailures: status.unresolvedFailures }).toEqual({ rowsFailed: 2, unresolvedFailures: 2 });
      expect(status.recentFailures.map((f) => f.key).sort()).toEqual(['7', '8']);
      expect(status.recentFailures[0]!.code).toBe('23514');
      expect(JSON.stringify(status.recentFailures)).not.toContain('444444444');

      const listed = await ferry(['failures', id], worker.temporal);
      expect(listed.stdout).toContain('2 rows failed, 2 unresolved');
      expect(listed.stdout).not.toContain('444444444');
    } finally {
      await handle.terminate('test done').catch(() => {});
    }
  });
});
