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
import { sampleOnThread } from '../../activities/transform/transform-threads';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';
import { startWorkerProcess } from '../support/worker-process';

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

  /** The dry run's status, or its failure's message; fails the test if it does not end within 30 s. */
  async function dryRun(plan: Plan, on: TestWorker = worker): Promise<string> {
    const handle = await startMigration(on.client, on.temporal, plan, { execute: false });
    const ended = handle.result().then(
      (status) => JSON.stringify(status),
      (error: unknown) => rootMessage(error),
    );
    const timeout = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('the dry run did not end within 30 s')), 30_000));
    return Promise.race([ended, timeout]);
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
    // Nor anything else: not even Ferry's schema.
    expect(await sqlRow(url, `SELECT to_regnamespace('ferry') IS NULL AS none, (SELECT count(*)::int FROM pg_class WHERE relnamespace = 'public'::regnamespace) AS relations`)).toEqual({ none: true, relations: 4 });
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

  it("runs a module's sample off the worker's event loop: a module that ends its thread fails the dry run, not the worker", async () => {
    writeFileSync(path.join(dir, 'exits.ts'), 'export default () => process.exit(3);');
    writeFileSync(path.join(dir, 'exits-on-load.ts'), 'process.exit(4);\nexport default (row: unknown) => row;');
    const client = await connectClient();
    // A process of its own: a module that ended the worker's process would end the test's.
    const child = await startWorkerProcess(client.temporal, { DB: url, FERRY_TRANSFORM_DIR: dir });
    try {
      for (const module of ['exits.ts', 'exits-on-load.ts']) {
        const plan = validatePlan({ ...planWith({}, true), transform: { module: path.join(dir, module), columns: ['id', 'note'] } });
        const problems = JSON.parse(await dryRun(plan, client)).inspection.problems.join('\n');
        expect(problems).toMatch(/transform does not run on public\.src: a transform thread exited \(code [34]\)/);
        expect(child.process.exitCode).toBeNull();
      }
      // The same worker goes on serving.
      expect(JSON.parse(await dryRun(validatePlan(planWith({}, true)), client)).inspection.problems).toEqual([]);
    } finally {
      await child.stop();
      await client.stop();
    }
  });

  it('gives up on a sample whose transform never returns, and ends its thread', async () => {
    writeFileSync(path.join(dir, 'spins.ts'), 'export default () => { for (;;) {} };');
    writeFileSync(path.join(dir, 'waits.ts'), 'export default () => new Promise(() => {});');
    for (const module of ['spins.ts', 'waits.ts']) {
      const rows = { fields: [{ name: 'id', oid: 23 }], text: new TextEncoder().encode('1\t1\n') };
      await expect(sampleOnThread(path.join(dir, module), rows, { columns: ['id'], kinds: {}, traceColumn: 'id' }, 500)).rejects.toThrow(
        'the transform did not return within 0.5 s on the sample',
      );
    }
  });

  it('finds that the target is the source table itself when two connection variables reach the same database', async () => {
    // Another spelling of the same database: the plan's own check compares variable names only.
    const again = await startWorker({ DB: url, DB_AGAIN: `${url}${url.includes('?') ? '&' : '?'}application_name=again` }, { transformDir: dir });
    try {
      const plan = validatePlan({ ...planWith({}), target: { connection: 'DB_AGAIN', table: 'src' } });
      const problems = JSON.parse(await dryRun(plan, again)).inspection.problems.join('\n');
      expect(problems).toContain('target table public.src is the source table itself (DB and DB_AGAIN reach the same database)');
      expect(JSON.parse(await dryRun(validatePlan({ ...planWith({}), target: { connection: 'DB_AGAIN', table: 'dst' } }), again)).inspection.problems).toEqual([]);
    } finally {
      await again.stop();
    }
  });
});
