/**
 * What a READ ONLY transaction does not stop: a session advisory lock outlives its rollback, and a
 * replication slot is made outside any transaction. A dry run leaves neither behind, checked with
 * the test's own queries of pg_locks and pg_replication_slots (test/unit/sql-fragment.test.ts
 * holds the other calls refused for the same reason).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { rootMessage } from '../../lib/errors';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { startMigration } from '../../operator';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';

/** An advisory lock key no other test takes. */
const LOCK_KEY = 741_852;

describe('a dry run leaves nothing behind in the session or the server', () => {
  let url: string;
  let worker: TestWorker;
  let plans = 0;
  const slot = uniqueName('ferry_dry_run_slot');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-dry-run-session-'));

  beforeAll(async () => {
    url = await createTestDatabase('dry_run_session');
    await sql(url, `
      CREATE TABLE src (id int PRIMARY KEY, note text NOT NULL);
      INSERT INTO src SELECT i, 'row ' || i FROM generate_series(1, 20) i;
      CREATE TABLE dst (id int PRIMARY KEY, note text NOT NULL);
      -- A function of the database's own, so no check of the plan's text can see the lock.
      CREATE FUNCTION hold_lock(key int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(key); RETURN true; END $$;`);
    writeFileSync(path.join(dir, 'copy.ts'), 'export default (row: { id: number; note: string }) => ({ id: row.id, note: row.note });');
    worker = await startWorker({ DB: url }, { transformDir: dir });
  });
  afterAll(async () => {
    await worker?.stop();
    await sql(url, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  function planWith(extra: Partial<PlanInput>, module = false): PlanInput {
    plans += 1;
    return {
      name: `dry-run-session-${plans}`,
      source: { connection: 'DB', table: 'src', key: 'id' },
      target: { connection: 'DB', table: 'dst' },
      transform: module ? { module: path.join(dir, 'copy.ts'), columns: ['id', 'note'] } : { sql: { id: 'id', note: 'note' } },
      ...extra,
    };
  }

  /** The dry run's status, or its failure's message. */
  async function dryRun(plan: Plan): Promise<string> {
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: false });
    return handle.result().then(
      (status) => JSON.stringify(status),
      (error: unknown) => rootMessage(error),
    );
  }

  async function heldLocks(): Promise<number> {
    return (await sqlRow(url, `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = ${LOCK_KEY}`)).n as number;
  }

  it('releases a session advisory lock the plan took, with a SQL or a module transform', async () => {
    for (const module of [false, true]) {
      const outcome = await dryRun(validatePlan(planWith({ subset: { where: `hold_lock(${LOCK_KEY})` } }, module)));
      expect(JSON.parse(outcome).inspection.problems).toEqual([]);
      // The worker's pooled connections stay open: a lock left on one would still be held here.
      expect(await heldLocks()).toBe(0);
    }
  });

  it('refuses a plan calling a function that acts outside its transaction, and creates no replication slot', async () => {
    const attack = `pg_create_physical_replication_slot('${slot}') IS NOT NULL`;
    const file = path.join(dir, 'slot.json');
    writeFileSync(file, JSON.stringify(planWith({ subset: { where: attack } })));
    const cli = await ferry(['start', file], worker.temporal);
    expect(cli.code).toBe(ExitCode.badInput);
    expect(cli.stderr).toContain('subset.where');
    expect(cli.stderr).toContain('pg_create_physical_replication_slot');

    // A plan sent straight through Temporal, past the CLI's checks.
    const unchecked = { ...validatePlan(planWith({})), subset: { where: attack } } as Plan;
    expect(await dryRun(unchecked)).toMatch(/subset\.where:? calls pg_create_physical_replication_slot/);
    expect((await sqlRow(url, `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = '${slot}'`)).n).toBe(0);
  });
});
