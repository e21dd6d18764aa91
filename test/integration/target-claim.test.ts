/**
 * The claim of a target on real PostgreSQL and Temporal: two claims of a target no one held,
 * queued at once, leave it to exactly one; and a migration id used before is refused whether
 * Temporal still knows it (the start) or only the target does (the claim). The test's own SQL
 * reads the registry, the flags and the audit.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createMigrationRegistry } from '../../activities/state/migration-registry';
import { ExitCode } from '../../cli/exit-codes';
import { validatePlan, type Plan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-claim-'));

function planOf(name: string, target: string): Plan {
  return validatePlan({
    name,
    source: { connection: 'CLAIM_DB', table: 'items', key: 'id' },
    target: { connection: 'CLAIM_DB', table: target },
    transform: { sql: { id: 'id', label: 'label' } },
  });
}

describe('the claim of a target', () => {
  let url: string;
  let databases: Databases;
  let idle: TestWorker;
  const started: string[] = [];

  beforeAll(async () => {
    url = await createTestDatabase('claim');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) i;
      CREATE TABLE items_fresh (LIKE items INCLUDING ALL);
      CREATE TABLE items_again (LIKE items INCLUDING ALL);
      CREATE TABLE items_twice (LIKE items INCLUDING ALL);
      CREATE TABLE items_over (LIKE items INCLUDING ALL);`);
    databases = createDatabases({ env: { CLAIM_DB: url } });
    await installFerrySchema(databases.pool('CLAIM_DB'));
    idle = await connectClient();
  });
  afterAll(async () => {
    for (const id of started) await idle.client.workflow.getHandle(id).terminate('test over').catch(() => {});
    await idle?.stop();
    await databases?.close();
  });

  /** A migration workflow that runs (no worker takes it): the claim asks Temporal whether its holder still runs. */
  async function runningMigration(): Promise<string> {
    const id = `ferry/claim/${uniqueName('run')}`;
    await idle.client.workflow.start('migrationWorkflow', { taskQueue: uniqueName('nobody'), workflowId: id, args: [] });
    started.push(id);
    return id;
  }

  const claim = (plan: Plan, migrationId: string, rerun = false) =>
    new MockActivityEnvironment(undefined, { client: idle.client }).run(createMigrationRegistry(databases).claimTarget, { plan, migrationId, rerun });

  it('leaves a target no one held to one of two claims queued at once, and refuses the other naming the holder', { timeout: 60_000 }, async () => {
    const plan = planOf('claim-race', 'items_fresh');
    const [first, second] = [await runningMigration(), await runningMigration()];
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK ferry.migrations IN EXCLUSIVE MODE');
      const claims = [claim(plan, first), claim(plan, second)].map((p) => p.then(() => null, (error: Error) => error));
      await eventually(async () => {
        const { waiting } = await sqlRow<{ waiting: number }>(url, `SELECT count(*)::int AS waiting FROM pg_locks WHERE relation = 'ferry.migrations'::regclass AND NOT granted`);
        return waiting === 2;
      }, 4_000, 'both claims to queue behind the lock');
      await blocker.query('COMMIT');
      const outcomes = await Promise.all(claims);
      const refused = outcomes.filter((e): e is Error => e !== null);
      expect(refused, String(refused)).toHaveLength(1);
      const { holder } = await sqlRow<{ holder: string }>(url, `SELECT migration_id AS holder FROM ferry.migrations WHERE target_table = 'public.items_fresh'`);
      expect(outcomes[[first, second].indexOf(holder)]).toBeNull();
      expect(refused[0]!.message).toContain(`target public.items_fresh is being migrated by ${holder}`);
      expect(refused[0]!.name === 'ApplicationFailure' ? (refused[0] as Error & { type?: string }).type : refused[0]!.name).toBe('TargetBusy');
    } finally {
      await blocker.end();
    }
  });

  it('refuses a finished migration its own id again: as finished without --rerun, as used once its record is there', async () => {
    const plan = planOf('claim-again', 'items_again');
    const id = await runningMigration();
    await claim(plan, id);
    await claim(plan, id); // a retried claim of the same run
    await sql(url, `UPDATE ferry.migrations SET state = 'completed', finished_at = now() WHERE migration_id = $1`, [id]);
    await expect(claim(plan, id)).rejects.toThrow(`target public.items_again already holds a finished migration (${id}); start with --rerun`);
    await sql(url, `INSERT INTO ferry.audit (migration_id, entry, plan_name, at, kind, by, detail) VALUES ($1, 'start', 'claim-again', now(), 'start', 'test', '')`, [id]);
    for (const rerun of [false, true]) await expect(claim(plan, id, rerun)).rejects.toThrow(`migration id ${id} was used by an earlier run`);
    const rows = await sql(url, `SELECT migration_id, state FROM ferry.migrations WHERE target_table = 'public.items_again'`);
    expect(rows).toEqual([{ migration_id: id, state: 'completed' }]);
  });

  it("forgets an ended run's tombstones when a claim takes the target over, after a delete in flight, and keeps them on a retried claim", { timeout: 60_000 }, async () => {
    const plan = planOf('claim-over', 'items_over');
    const tombstones = async () => (await sql(url, `SELECT key FROM ferry.tombstones WHERE target_table = 'public.items_over' ORDER BY key`)).map((r) => r.key as string);
    const [earlier, later] = [await runningMigration(), await runningMigration()];
    await claim(plan, earlier);
    await sql(url, `SELECT ferry.record_delete('public.items_over', '1')`);
    await sql(url, `UPDATE ferry.migrations SET state = 'aborted', finished_at = now() WHERE migration_id = $1`, [earlier]);

    // An application delete in flight when the claim comes: the claim waits for it (the copy
    // lock), and its tombstone, from before the claim, goes with the earlier run's.
    const app = new pg.Client({ connectionString: url });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query(`SELECT ferry.record_delete('public.items_over', '2')`);
      const claimed = claim(plan, later);
      await eventually(async () => {
        const { waiting } = await sqlRow<{ waiting: number }>(url, `SELECT count(*)::int AS waiting FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
        return waiting > 0;
      }, 10_000, 'the claim to wait for the delete in flight');
      await app.query('COMMIT');
      await claimed;
    } finally {
      await app.end();
    }
    expect(await tombstones()).toEqual([]);

    // A delete after the claim guards this run; a retry of the claim keeps it.
    await sql(url, `SELECT ferry.record_delete('public.items_over', '3')`);
    await claim(plan, later);
    expect(await tombstones()).toEqual(['3']);
    expect(await sql(url, `SELECT migration_id, state FROM ferry.migrations WHERE target_table = 'public.items_over'`)).toEqual([{ migration_id: later, state: 'running' }]);
  });
});

describe('ferry start with the id of a finished migration', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('claim_cli');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) i;
      CREATE TABLE items_v2 (LIKE items INCLUDING ALL);`);
    worker = await startWorker({ CLAIM_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('is refused, and leaves the flags and the audit as the finished run left them', { timeout: 120_000 }, async () => {
    const file = path.join(dir, 'reused.yaml');
    writeFileSync(file, [
      'name: reused',
      'source: { connection: CLAIM_DB, table: items, key: id }',
      'target: { connection: CLAIM_DB, table: items_v2 }',
      'transform: { sql: { id: id, label: label } }',
      'lifecycle: { dualWrites: true, noApps: true, soakSeconds: 0 }',
    ].join('\n'));
    const id = `ferry/reused/${uniqueName('once')}`;
    const first = await ferry(['start', file, '--execute', '--wait', '--id', id], worker.temporal);
    expect(first.code, first.stdout + first.stderr).toBe(ExitCode.ok);
    const record = () =>
      sql(url, `SELECT (SELECT json_agg(f ORDER BY f::text) FROM ferry.flags f)::text AS flags,
                       (SELECT json_agg(a ORDER BY a::text) FROM ferry.audit a)::text AS audit`);
    const before = await record();
    expect(before[0]!.audit).toContain(id);
    const again = await ferry(['start', file, '--execute', '--id', id], worker.temporal);
    expect(again.code, again.stdout + again.stderr).not.toBe(ExitCode.ok);
    expect(again.stdout).not.toContain('started migration');
    expect(again.stderr).toContain(`migration id ${id} is taken`);
    // Whatever a second run would have done, it would have done by now.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await record()).toEqual(before);
    const description = await worker.client.workflow.getHandle(id).describe().catch((e: unknown) => e);
    expect(description).not.toBeInstanceOf(WorkflowNotFoundError);
    expect((description as { status: { name: string } }).status.name).toBe('COMPLETED');
  });

  it('may follow dry runs with the same id, which wrote nothing; once it has run, the id is taken', { timeout: 120_000 }, async () => {
    await sql(url, 'CREATE TABLE items_v3 (LIKE items INCLUDING ALL)');
    const file = path.join(dir, 'previewed.yaml');
    writeFileSync(file, [
      'name: previewed',
      'source: { connection: CLAIM_DB, table: items, key: id }',
      'target: { connection: CLAIM_DB, table: items_v3 }',
      'transform: { sql: { id: id, label: label } }',
    ].join('\n'));
    const id = `ferry/previewed/${uniqueName('dry')}`;
    for (const preview of [1, 2]) {
      const dry = await ferry(['start', file, '--id', id], worker.temporal);
      expect(dry.code, `dry run ${preview}: ${dry.stdout}${dry.stderr}`).toBe(ExitCode.ok);
      // The line to copy runs what was previewed, under its id.
      expect(dry.stdout).toContain(`to copy for real: ferry start ${file} --execute --id ${id}`);
    }
    expect(await sql(url, 'SELECT count(*)::int AS n FROM items_v3')).toEqual([{ n: 0 }]);
    const run = await ferry(['start', file, '--execute', '--wait', '--id', id], worker.temporal);
    expect(run.code, run.stdout + run.stderr).toBe(ExitCode.ok);
    // The test's own check: every row arrived with its value.
    const digest = (table: string) => sql(url, `SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS h FROM ${table} t`);
    expect(await digest('items_v3')).toEqual(await digest('items'));
    const description = await worker.client.workflow.getHandle(id).describe();
    expect(description.status.name).toBe('COMPLETED');
    for (const args of [['start', file, '--id', id], ['start', file, '--execute', '--id', id]]) {
      const again = await ferry(args, worker.temporal);
      expect(again.code, again.stdout + again.stderr).not.toBe(ExitCode.ok);
      expect(again.stderr).toContain(`migration id ${id} is taken`);
    }
  });
});
