/**
 * Changes to the source committed before the cleanup gate's approval reach the target before
 * the capture goes: the change apply, held to a low rows/s limit so that many still wait at the
 * approval, applies every one of them, then the trigger (or the slot) and the log entries are
 * removed. Before, capture-off cancelled the apply and the removal deleted what it had not
 * applied, and the migration still completed. Real PostgreSQL and Temporal; the test's own md5
 * of every row on both sides decides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatePlan } from '../../lib/plan';
import { approveGate, changeThrottle, migrationReport, startMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

/** Keys whose row differs between the source and the target, by md5 of the row's text. */
async function differingKeys(url: string, source: string): Promise<number[]> {
  const rows = await sql<{ id: number }>(
    url,
    `SELECT COALESCE(s.id, t.id) AS id FROM (SELECT id, md5(row(id, qty, note)::text) AS h FROM ${source}) AS s
       FULL JOIN (SELECT id, md5(row(id, qty, note)::text) AS h FROM ${source}_v2) AS t ON s.id = t.id
      WHERE s.h IS DISTINCT FROM t.h ORDER BY 1`,
  );
  return rows.map((r) => r.id);
}

describe('the cleanup gate approved while captured changes wait', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_off_drain');
    for (const mode of ['trigger', 'logical']) {
      await sql(url, `
        CREATE TABLE stock_${mode} (id int PRIMARY KEY, qty int NOT NULL, note text);
        INSERT INTO stock_${mode} SELECT i, i % 11, 'n' || i FROM generate_series(1, 400) AS i;
        CREATE TABLE stock_${mode}_v2 (id int PRIMARY KEY, qty int NOT NULL, note text);`);
    }
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each(['trigger', 'logical'] as const)('with capture: %s, every change committed before the approval reaches the target', { timeout: 180_000 }, async (mode) => {
    const source = `stock_${mode}`;
    const plan = validatePlan({
      name: `capture-off-drain-${mode}`,
      source: { connection: 'DB', table: source, key: 'id' },
      target: { connection: 'DB', table: `${source}_v2` },
      transform: { sql: { id: 'id', qty: 'qty', note: 'note' } },
      // One key a page: the rows/s limit then paces each key, with no page of them all at once.
      capture: { mode, applyBatchSize: 1 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await atCleanupGate(worker, id);
    expect(await differingKeys(url, source)).toEqual([]);

    // The apply goes at 20 keys a second, one at a time: the 250 keys changed below mostly wait at the approval.
    await changeThrottle(worker.client, id, { rowsPerSecond: 20, by: 'test' });
    // The applier's call under way (5 s at most) ends; the next one takes the limit.
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    await sql(url, `
      UPDATE ${source} SET qty = qty + 100, note = note || ' changed' WHERE id <= 200;
      DELETE FROM ${source} WHERE id BETWEEN 201 AND 230;
      INSERT INTO ${source} SELECT i, i, 'new ' || i FROM generate_series(1001, 1020) AS i;`);
    if (mode === 'logical') {
      // The changes count once the reader has them in the log: they are waiting, not yet applied.
      await eventually(async () => ((await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1 LIMIT 1`, [id])).length > 0) || undefined, 30_000, 'the changes read');
    }
    const waiting = await differingKeys(url, source);
    expect(waiting.length).toBeGreaterThan(100);

    await approveGate(worker.client, id, { gate: 'cleanup', by: 'carol', note: 'the application reads and writes the new table from now on' });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect((await migrationReport(worker.client, id)).status?.capture?.removedAt).not.toBeNull();

    // Every change committed before the approval is in the target.
    expect(await differingKeys(url, source)).toEqual([]);
    expect(await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [source])).toEqual([]);
  });
});
