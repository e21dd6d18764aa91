/** Rows that cannot be copied: isolated, recorded, counted, paused for, retried after a fix. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';
import { historiesText } from '../support/history-text';

const ROWS = 5000;
/** Keys whose quantity is not a number: the transform's cast refuses them. */
const BAD_KEYS = [17, 1234, 1235, 4999];

describe('failed rows', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('fail_src'), createTestDatabase('fail_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE orders (id int PRIMARY KEY, quantity text NOT NULL, note text);
      INSERT INTO orders SELECT i, CASE WHEN i IN (${BAD_KEYS.join(',')}) THEN 'twelve (secret ' || i || ')' ELSE i::text END, 'n' || i
        FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ SRC: sourceUrl, TGT: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function planFor(extra: Partial<PlanInput> = {}, sameDatabase = false) {
    table += 1;
    const url = sameDatabase ? sourceUrl : targetUrl;
    await sql(url, `CREATE TABLE orders_${table} (id int PRIMARY KEY, quantity int NOT NULL, note text)`);
    return validatePlan({
      name: `failures-${table}`,
      source: { connection: 'SRC', table: 'orders', key: 'id' },
      target: { connection: sameDatabase ? 'SRC' : 'TGT', table: `orders_${table}` },
      transform: { sql: { id: 'id', quantity: 'quantity::int', note: 'note' } },
      throttle: { batchSize: 500, checkpointSeconds: 1 },
      // These tests follow failed rows through the copy; verification has tests of its own.
      verify: { enabled: false },
      ...extra,
    });
  }

  it.each([
    ['within one database', true],
    ['between two databases', false],
  ])('isolates each bad row %s, copies the rest, and waits for a person', async (_, sameDatabase) => {
    const plan = await planFor({}, sameDatabase);
    const url = sameDatabase ? sourceUrl : targetUrl;
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const waiting = await eventually(async () => {
      const { status } = await migrationReport(worker.client, handle.workflowId);
      return status?.paused ? status : undefined;
    }, 60_000, 'the pause for failed rows');
    expect(waiting.paused!.reason).toContain('4 rows failed');
    expect(waiting.rowsFailed).toBe(4);
    expect(waiting.rowsWritten).toBe(ROWS - 4);
    expect(waiting.recentFailures.map((f) => f.key).sort()).toEqual(BAD_KEYS.map(String).sort());
    expect(waiting.recentFailures[0]).toEqual({ key: expect.any(String), code: '22P02', error: 'invalid input syntax for type integer: "<redacted>"' });
    const { copied } = await sqlRow(url, `SELECT count(*)::int AS copied FROM orders_${table}`);
    expect(copied).toBe(ROWS - 4);
    const recorded = await sql(url, `SELECT key, error_code, error FROM ferry.failed_records WHERE migration_id = $1 ORDER BY key::int`, [handle.workflowId]);
    expect(recorded.map((r) => r.key)).toEqual(BAD_KEYS.map(String));
    expect(recorded[0]!.error).toContain('invalid input syntax for type integer');

    const listed = await ferry(['failures', handle.workflowId], worker.temporal);
    expect(listed.code).toBe(ExitCode.ok);
    expect(listed.stdout).toContain('4 rows failed, 4 unresolved');
    expect(listed.stdout).toContain('key 1234: [22P02] invalid input syntax for type integer: "<redacted>"');
    expect(listed.stdout).not.toContain('secret');

    // Retrying before the fix changes nothing; after it, every row arrives and the run ends.
    const early = await ferry(['retry', handle.workflowId], worker.temporal);
    expect(early.code).toBe(ExitCode.failed);
    expect(early.stdout).toContain('retried 4 rows: 0 copied, 4 still failing');
    await sql(sourceUrl, `UPDATE orders SET quantity = '12' WHERE id IN (${BAD_KEYS.join(',')})`);
    const fixed = await ferry(['retry', handle.workflowId, '--by', 'dana'], worker.temporal);
    expect(fixed.stdout).toContain('retried 4 rows: 4 copied, 0 still failing');
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.failuresFixed).toBe(4);
    expect(status.events.map((e) => e.kind)).toEqual(['auto-pause', 'retry', 'retry', 'resume']);
    const { n } = await sqlRow(url, `SELECT count(*)::int AS n FROM orders_${table} WHERE quantity = 12 AND id IN (${BAD_KEYS.join(',')})`);
    expect(n).toBe(4);
    await sql(sourceUrl, `UPDATE orders SET quantity = 'twelve (secret ' || id || ')' WHERE id IN (${BAD_KEYS.join(',')})`);
  });

  it("withholds the text a target's trigger raises on a row, which quotes its value bare", async () => {
    const plan = await planFor({ subset: { where: `id NOT IN (${BAD_KEYS.join(',')})` } });
    // The trigger's author writes the value into free text, with no quotes a redaction could find.
    await sql(targetUrl, `
      CREATE FUNCTION refuse_${table}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.note = 'n77' THEN RAISE EXCEPTION 'note % already used by customer card-4111-SECRET', NEW.note; END IF;
        IF NEW.note = 'n78' THEN RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'customer card-4111-SECRET refused ' || NEW.note; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON orders_${table} FOR EACH ROW EXECUTE FUNCTION refuse_${table}();`);
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const waiting = await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status?.paused ?? undefined, 60_000, 'the pause for the refused row');
    expect(waiting.reason).toContain('2 rows failed');
    const recorded = await sql(targetUrl, `SELECT key, error_code, error FROM ferry.failed_records WHERE migration_id = $1 ORDER BY key`, [handle.workflowId]);
    // The target keeps the full text, beside the data; nothing that leaves it carries the text.
    expect(recorded).toMatchObject([
      { key: '77', error_code: 'P0001', error: expect.stringContaining('card-4111-SECRET') },
      { key: '78', error_code: '23514', error: expect.stringContaining('card-4111-SECRET') },
    ]);
    const listed = await ferry(['failures', handle.workflowId, '--json'], worker.temporal);
    expect(listed.code).toBe(ExitCode.ok);
    expect(listed.stdout).toContain('raised by a trigger or function on the target (SQLSTATE P0001); its message is withheld');
    const texts = [listed.stdout, listed.stderr, (await ferry(['failures', handle.workflowId], worker.temporal)).stdout, await historiesText(worker.client, handle.workflowId)];
    for (const text of texts) {
      expect(text).not.toContain('4111-SECRET');
      expect(text).not.toMatch(/n7[78]/);
    }
    await handle.terminate('the test has seen the failure');
  });

  it('pauses itself mid-run once failures pass the plan\'s limit', async () => {
    const plan = await planFor({ failures: { maxCount: 2 }, throttle: { batchSize: 100, rowsPerSecond: 2000, checkpointSeconds: 0.5 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const paused = await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status?.paused ?? undefined, 60_000);
    expect(paused.reason).toContain('over failures.maxCount (2)');
    expect(paused.by).toBe('ferry');
    const { status } = await migrationReport(worker.client, handle.workflowId);
    expect(status!.rowsRead).toBeLessThan(ROWS);
    await handle.terminate('test done');
  });

  it('finishes without the failed rows when a person resumes', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status?.paused ?? undefined, 60_000);
    await ferry(['resume', handle.workflowId, '--by', 'erin', '--reason', 'rows are junk'], worker.temporal);
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.unresolvedFailures).toBe(4);
    expect(status.events.at(-1)).toMatchObject({ kind: 'resume', by: expect.stringMatching(/^erin \(as /) });
  });

  it('records rows a transform module throws on, and copies the others', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-module-'));
    const modulePath = path.join(dir, 'orders.ts');
    writeFileSync(modulePath, `
      export default function (row: { id: number; quantity: string; note: string }) {
        const quantity = Number(row.quantity);
        if (!Number.isInteger(quantity)) throw new Error('quantity is not a whole number');
        return row.id % 10 === 0 ? null : { id: row.id, quantity, note: row.note.toUpperCase() };
      }`);
    const plan = await planFor({ transform: { module: modulePath, columns: ['id', 'quantity', 'note'] } });
    const dryRun = await (await startMigration(worker.client, worker.temporal, plan, { execute: false, showSampleValues: true })).result();
    expect(dryRun.inspection!.problems).toEqual([]);
    expect(dryRun.inspection!.sample!.rows[0]).toEqual(['1', '1', '1', 'N1']);

    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status?.paused ?? undefined, 60_000);
    const { status } = await migrationReport(worker.client, handle.workflowId);
    expect(status!.recentFailures.map((f) => f.key).sort()).toEqual(BAD_KEYS.map(String).sort());
    expect(status!.recentFailures[0]!.error).toBe('Error thrown by the transform (its message is withheld: it may carry row values)');
    const { n } = await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM orders_${table}`);
    const kept = Array.from({ length: ROWS }, (_, i) => i + 1).filter((id) => id % 10 !== 0 && !BAD_KEYS.includes(id)).length;
    expect(n).toBe(kept);
    await handle.terminate('test done');
  });

  it('fails the migration, naming the cause, when a transform module never returns on a row; the worker goes on', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-module-'));
    const spins = path.join(dir, 'spins.ts');
    // Far past the dry run's sample: only the copy meets it.
    writeFileSync(spins, `export default (row: { id: number; note: string }) => { if (row.id === 3000) for (;;) {} return { id: row.id, quantity: row.id, note: row.note }; };`);
    const plan = await planFor({ transform: { module: spins, columns: ['id', 'quantity', 'note'] } });
    process.env.FERRY_TRANSFORM_STUCK_SECONDS = '2';
    try {
      const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      const chain = await handle.result().then(
        (status) => `ended ${status.phase}`,
        (error: unknown) => {
          const messages: string[] = [];
          for (let at = error as Error | undefined; at; at = at.cause as Error | undefined) messages.push(at.message);
          return messages.join(' <- ');
        },
      );
      expect(chain).toContain('the module transform returned nothing for 2 s on its thread');
      // The batch holding the row wrote nothing of it.
      expect((await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM orders_${table} WHERE id = 3000`)).n).toBe(0);
    } finally {
      delete process.env.FERRY_TRANSFORM_STUCK_SECONDS;
    }
    // The same worker copies the next migration through a new thread.
    writeFileSync(spins, `export default (row: { id: number; note: string }) => ({ id: row.id, quantity: row.id, note: row.note });`);
    const next = await planFor({ transform: { module: spins, columns: ['id', 'quantity', 'note'] } });
    const status = await (await startMigration(worker.client, worker.temporal, next, { execute: true })).result();
    expect(status.phase).toBe('completed');
    expect((await sqlRow(targetUrl, `SELECT count(*)::int AS n FROM orders_${table}`)).n).toBe(ROWS);
  });
});
