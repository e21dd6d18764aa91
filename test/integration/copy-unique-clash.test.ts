/**
 * A source row that clashes with a target row on a unique index other than the key (an email the
 * application already gave another user in the new store) is a failed row, recorded and counted,
 * and the migration waits for a person: never skipped in silence, as ON CONFLICT without the key
 * named would. Within one database and across two; the test's own SQL checks that every other
 * row arrived (md5 of the rows' text on both sides) and which key is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 2000;
/** The source row whose email the application gave user 900000 in the new store. */
const CLASHING = 1234;

describe.concurrent('a row that clashes on another unique index', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('clash_src'), createTestDatabase('clash_tgt')]);
    const users = `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, name text NOT NULL);
                   INSERT INTO users SELECT i, 'user' || i || '@example.com', 'user ' || i FROM generate_series(1, ${ROWS}) AS i;`;
    await Promise.all([sql(sourceUrl, users), sql(targetUrl, users)]);
    worker = await startWorker({ SOURCE: sourceUrl, TARGET: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each([
    ['within one database', 'TARGET'],
    ['across databases', 'SOURCE'],
  ] as const)('is a failed row the migration waits on, %s', { timeout: 60_000 }, async (route, sourceConnection) => {
    const target = `users_${route.replace(/[^a-z]+/g, '_')}`;
    await sql(targetUrl, `CREATE TABLE ${target} (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
                          INSERT INTO ${target} VALUES (900000, 'user${CLASHING}@example.com', 'written by the application');`);
    const plan = validatePlan({
      name: `clash-${target.replace(/_/g, '-')}`,
      source: { connection: sourceConnection, table: 'users', key: 'id' },
      target: { connection: 'TARGET', table: target },
      transform: { sql: { id: 'id', email: 'email', name: 'name' } },
      throttle: { batchSize: 250 },
      verify: { enabled: false },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    try {
      const waiting = await eventually(async () => {
        const { status } = await migrationReport(worker.client, handle.workflowId);
        return status?.paused || status?.phase === 'completed' ? status : undefined;
      }, 45_000, 'the pause for the failed row');
      expect(waiting.phase).not.toBe('completed');
      expect(waiting.rowsFailed).toBe(1);
      expect(await sql(targetUrl, `SELECT key, error_code FROM ferry.failed_records WHERE migration_id = $1`, [handle.workflowId])).toEqual([{ key: String(CLASHING), error_code: '23505' }]);
    } finally {
      // Paused, it would wait for a person for ever; a completed run has nothing to end.
      await handle.terminate('the test has what it checks').catch(() => {});
    }
    // Every other row arrived as the source has it; the application's row is untouched.
    const sourceDb = sourceConnection === 'SOURCE' ? sourceUrl : targetUrl;
    const want = await rowsDigest(sourceDb, `SELECT * FROM users WHERE id <> ${CLASHING}`);
    expect(want.rows).toBe(ROWS - 1);
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${target} WHERE id <> 900000`)).toEqual(want);
    expect(await sqlRow(targetUrl, `SELECT name FROM ${target} WHERE id = 900000`)).toEqual({ name: 'written by the application' });
  });
});
