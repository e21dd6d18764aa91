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
import { createTestDatabase, eventually, rowsDigest, sql, startWorker, type TestWorker } from '../support/harness';

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

  it('a delete the target refuses (another table still points at the row) fails that key alone; the others apply, and ferry retry deletes it once freed', { timeout: 120_000 }, async () => {
    await sql(url, `
      CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL, note text);
      INSERT INTO ledger SELECT i, i * 3, 'entry ' || i FROM generate_series(1, 100) AS i;
      CREATE TABLE ledger_v2 (id int PRIMARY KEY, amount int NOT NULL, note text);
      CREATE TABLE holds (ledger_id int NOT NULL REFERENCES ledger_v2 (id));`);
    const plan = validatePlan({
      name: 'capture-refused-delete',
      source: { connection: 'DB', table: 'ledger', key: 'id' },
      target: { connection: 'DB', table: 'ledger_v2' },
      transform: { sql: { id: 'id', amount: 'amount', note: 'note' } },
      capture: 'trigger',
      failures: { maxCount: 10 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const digest = (query: string) => rowsDigest(url, query);
    try {
      await atCleanupGate(worker, id);
      await sql(url, `INSERT INTO holds VALUES (9)`);
      await sql(url, `DELETE FROM ledger WHERE id IN (9, 10); UPDATE ledger SET note = 'changed' WHERE id = 11`);
      // Key 9's row stays (holds points at it) and is recorded against key 9; 10 and 11 apply.
      const failed = await eventually(async () => {
        const rows = await sql<{ key: string; code: string }>(url, `SELECT key, error_code AS code FROM ferry.failed_records WHERE migration_id = $1 AND resolved_at IS NULL`, [id]);
        return rows.length > 0 ? rows : undefined;
      }, 30_000, 'the refused delete recorded');
      expect(failed).toEqual([{ key: '9', code: '23503' }]);
      await eventually(async () => ((await sql(url, `SELECT 1 FROM ledger_v2 WHERE id = 10 OR (id = 11 AND note <> 'changed')`)).length === 0 ? true : undefined), 30_000, 'keys 10 and 11 applied');
      expect(await digest(`SELECT id, amount, note FROM ledger_v2 WHERE id <> 9`)).toEqual(await digest(`SELECT id, amount, note FROM ledger`));

      await sql(url, `DELETE FROM holds`);
      const retried = await ferry(['retry', id], worker.temporal);
      expect(retried.code, retried.stderr).toBe(0);
      expect(await digest(`SELECT id, amount, note FROM ledger_v2`)).toEqual(await digest(`SELECT id, amount, note FROM ledger`));
      expect(await sql(url, `SELECT key FROM ferry.failed_records WHERE migration_id = $1 AND resolved_at IS NULL`, [id])).toEqual([]);
    } finally {
      await handle.terminate('test done').catch(() => {});
    }
  });
});
