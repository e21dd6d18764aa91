/**
 * An abort waits two minutes at most for the shards to stop copying, then answers. A shard whose
 * copier is inside a batch that outlasts the wait (here a transform function sleeping in the
 * database) has not confirmed it stopped: the abort's record must name it, and `ferry status`
 * say so, rather than answer "aborted" as if nothing could still write. Real PostgreSQL and
 * Temporal; takes over two minutes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { validatePlan } from '../../lib/plan';
import { migrationReport, requestAbort, startMigration } from '../../operator';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

describe('an abort whose shard does not stop within its wait', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('abort_unstopped');
    await sql(url, `
      CREATE TABLE hold (sleeping boolean NOT NULL);
      INSERT INTO hold VALUES (false);
      CREATE FUNCTION slow(v int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
      BEGIN IF (SELECT sleeping FROM hold) THEN PERFORM pg_sleep(600); END IF; RETURN v; END $$;
      CREATE TABLE parts (id int PRIMARY KEY, qty int NOT NULL);
      INSERT INTO parts SELECT i, i % 13 FROM generate_series(1, 5000) AS i;
      CREATE TABLE parts_v2 (id int PRIMARY KEY, qty int NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await sql(url, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%slow(%' AND pid <> pg_backend_pid()`).catch(() => {});
    await worker?.stop();
  });

  it('names the shard that had not confirmed it stopped', { timeout: 300_000 }, async () => {
    const plan = validatePlan({
      name: 'abort-unstopped',
      source: { connection: 'DB', table: 'parts', key: 'id' },
      target: { connection: 'DB', table: 'parts_v2' },
      transform: { sql: { id: 'id', qty: 'slow(qty)' } },
      throttle: { rowsPerSecond: 200, batchSize: 50, concurrency: 1 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => (await sql(url, 'SELECT 1 FROM parts_v2 LIMIT 1')).length > 0 || undefined, 60_000, 'rows copied');
    // The next batch sleeps in the database, beyond the abort's wait for the shards.
    await sql(url, 'UPDATE hold SET sleeping = true');
    await eventually(async () => (await sql(url, `SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'`)).length > 0 || undefined, 30_000, 'a batch sleeping');
    const running = (await migrationReport(worker.client, id)).status!.shards.filter((s) => s.state === 'running').map((s) => s.index);
    expect(running.length).toBeGreaterThan(0);

    await requestAbort(worker.client, id, { by: 'test', reason: 'the shard must be named' });
    const status = await handle.result();
    expect(status.phase).toBe('aborted');
    expect(status.abort?.shardsNotStopped).toEqual(running);

    const shown = await ferry(['status', id], worker.temporal);
    expect(shown.code, shown.stderr).toBe(ExitCode.aborted);
    expect(shown.stdout).toMatch(new RegExp(`shards? ${running.join(', ')} had not confirmed it stopped copying`));
    const report = await ferry(['report', id], worker.temporal);
    expect(report.stdout).toMatch(/had not confirmed it stopped copying/);

    await sql(url, `UPDATE hold SET sleeping = false; SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'`);
  });
});
