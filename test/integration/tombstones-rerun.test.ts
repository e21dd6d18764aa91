/**
 * Tombstones guard one run. A key the application deletes through the client library while a
 * migration dual-writes leaves a tombstone; once that migration has ended (aborted or completed)
 * and the source holds the key again, a re-run into the same target (--rerun) copies it: its
 * claim forgets the earlier run's tombstones. Proved by the test's own SQL (md5 of the rows' text
 * on both sides), not by Ferry's verifier.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFerryClient } from '../../client';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { memoryLogger } from '../support/client-fakes';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 2000;
/** Deleted during the first run; the first two come back to the source after it ended. */
const DELETED = [7, 500, 1999];
const BACK = [7, 500];

describe('a re-run into a target whose earlier run left tombstones', () => {
  let url: string;
  let worker: TestWorker;
  let pool: pg.Pool;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('tomb_rerun');
    pool = new pg.Pool({ connectionString: url, max: 4 });
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
    await pool?.end();
  });

  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;
  const waitingAt = (id: string, gate: string) =>
    eventually(async () => ((await statusOf(id)).gate?.name === gate ? true : undefined), 90_000, `gate ${gate} of ${id}`);
  const approve = async (id: string, gate: string) => {
    await waitingAt(id, gate);
    const approved = await ferry(['approve', id, '--gate', gate, '--by', 'alice'], worker.temporal);
    expect(approved.code, approved.stderr).toBe(ExitCode.ok);
  };

  it.each(['aborted', 'completed'] as const)('copies a key the source holds again after the earlier run %s', { timeout: 240_000 }, async (ending) => {
    table += 1;
    const source = `members_${table}`;
    const target = `${source}_v2`;
    await sql(url, `CREATE TABLE ${source} (id int PRIMARY KEY, name text NOT NULL);
                    INSERT INTO ${source} SELECT i, 'member ' || i FROM generate_series(1, ${ROWS}) AS i;
                    CREATE TABLE ${target} (id int PRIMARY KEY, name text NOT NULL);`);
    const plan = validatePlan({
      name: `tomb-rerun-${table}`,
      source: { connection: 'DB', table: source, key: 'id' },
      target: { connection: 'DB', table: target },
      transform: { sql: { id: 'id', name: 'name' } },
      shards: { count: 1 },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });

    // Run 1: while it dual-writes, the application deletes keys from both stores, with tombstones.
    const first = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await waitingAt(first.workflowId, 'cutover-reads');
    const app = createFerryClient({ pool, migration: plan.name, cacheMs: 0, listen: false, logger: memoryLogger() });
    try {
      expect((await app.flags.get()).writeNew).toBe(true);
      for (const id of DELETED) {
        await app.delete('delete-member', {
          table: `public.${target}`,
          key: String(id),
          old: () => pool.query(`DELETE FROM ${source} WHERE id = $1`, [id]),
          new: (tx) => tx.query(`DELETE FROM ${target} WHERE id = $1`, [id]),
        });
      }
    } finally {
      await app.close();
    }
    const tombstones = await sql(url, `SELECT key FROM ferry.tombstones WHERE target_table = $1 ORDER BY key::int`, [`public.${target}`]);
    expect(tombstones.map((r) => r.key)).toEqual(DELETED.map(String));

    if (ending === 'aborted') {
      const aborted = await ferry(['abort', first.workflowId, '--reason', 'test: end run 1', '--by', 'dave'], worker.temporal);
      expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
    } else {
      for (const gate of ['cutover-reads', 'stop-old-writes', 'cleanup']) await approve(first.workflowId, gate);
    }
    expect((await first.result()).phase).toBe(ending);

    // After run 1 ended, natural keys it saw deleted come back to the source, with other values.
    await sql(url, `INSERT INTO ${source} SELECT i, 'member ' || i || ', back again' FROM unnest($1::int[]) AS i`, [BACK]);

    // Run 2 into the same target: by the cutover gate its backfill and verification are done.
    const second = await startMigration(worker.client, worker.temporal, plan, { execute: true, rerun: true });
    await waitingAt(second.workflowId, 'cutover-reads');
    const rowsOf = (table: string, ids: number[]) => rowsDigest(url, `SELECT t.* FROM ${table} AS t WHERE t.id = ANY('{${ids.join(',')}}'::int[])`);
    expect(await rowsOf(target, BACK)).toEqual(await rowsOf(source, BACK));
    expect((await rowsOf(target, BACK)).rows).toBe(BACK.length);
    expect(await rowsDigest(url, `SELECT * FROM ${target}`)).toEqual(await rowsDigest(url, `SELECT * FROM ${source}`));
    expect((await rowsDigest(url, `SELECT * FROM ${target}`)).rows).toBe(ROWS - DELETED.length + BACK.length);
    expect((await statusOf(second.workflowId)).verification).toMatchObject({ clean: true, missing: 0 });

    const stopped = await ferry(['abort', second.workflowId, '--reason', 'test over', '--by', 'dave'], worker.temporal);
    expect(stopped.code, stopped.stderr).toBe(ExitCode.ok);
    expect((await second.result()).phase).toBe('aborted');
  });
});
