/**
 * An abort whose capture cannot be removed, for a reason retrying cannot mend (the worker that
 * runs the abort lacks the source's connection), still ends as an abort: the target released,
 * the phase aborted, and its answer names the trigger left on the source with the SQL that
 * removes it by hand. Before, the abort failed where it stood, with the bare error. Real
 * PostgreSQL and Temporal; the test's own SQL looks at what is left, and runs the SQL given.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatePlan } from '../../lib/plan';
import { abortMigration, migrationReport, startMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

describe('an abort whose capture cannot be removed', () => {
  let url: string;
  let worker: TestWorker;
  let sourceless: TestWorker | undefined;

  beforeAll(async () => {
    url = await createTestDatabase('abort_capture_left');
    await sql(url, `
      CREATE TABLE crates (id int PRIMARY KEY, qty int NOT NULL);
      INSERT INTO crates SELECT i, i % 9 FROM generate_series(1, 300) AS i;
      CREATE TABLE crates_v2 (LIKE crates INCLUDING ALL);`);
    // Two names for one database: the worker that takes over knows only the target's.
    worker = await startWorker({ SRC: url, TGT: url });
  });
  afterAll(async () => {
    await sourceless?.stop();
    await worker?.stop();
  });

  it('ends aborted, releases the target, and names the trigger left with the SQL that removes it', { timeout: 180_000 }, async () => {
    const plan = validatePlan({
      name: 'abort-capture-left',
      source: { connection: 'SRC', table: 'crates', key: 'id' },
      target: { connection: 'TGT', table: 'crates_v2' },
      transform: { sql: { id: 'id', qty: 'qty' } },
      capture: { mode: 'trigger' },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await atCleanupGate(worker, id);
    const triggers = async () => (await sqlRow(url, "SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'crates'::regclass AND NOT tgisinternal")).n as number;
    expect(await triggers()).toBeGreaterThan(0);

    // The worker with the source's connection goes; one without it serves the task queue.
    sourceless = await startWorker({ TGT: url }, { taskQueue: worker.temporal.taskQueue });
    await worker.stop();
    const { client } = sourceless;

    const record = await abortMigration(client, id, { by: 'dana', reason: 'wrong table' });
    expect(record?.flagsNote).toMatch(/^the change capture could not be removed \(environment variable SRC is not set on this worker; .*\): its trigger still logs every write/);
    const status = (await migrationReport(client, id)).status;
    expect(status?.phase).toBe('aborted');
    // The abort answers once the phase says aborted; the run closes after its audit settles.
    await client.workflow.getHandle(id).result();
    expect((await client.workflow.getHandle(id).describe()).status.name).toBe('COMPLETED');
    expect(status?.abort?.flagsNote).toBe(record!.flagsNote);
    expect(await sql(url, "SELECT state FROM ferry.migrations WHERE target_table = 'public.crates_v2'")).toEqual([{ state: 'aborted' }]);

    // What the abort says is left is there, and its SQL removes it.
    expect(await triggers()).toBeGreaterThan(0);
    const byHand = /remove it by hand on the source: (.*)$/.exec(record!.flagsNote)?.[1];
    expect(byHand).toMatch(/^DROP FUNCTION IF EXISTS ferry\.\S+\(\) CASCADE; DELETE FROM ferry\.change_log WHERE migration_id = '/);
    await sql(url, byHand!);
    expect(await triggers()).toBe(0);
    expect(await sql(url, 'SELECT count(*)::int AS n FROM ferry.change_log WHERE migration_id = $1', [id])).toEqual([{ n: 0 }]);
  });
});
