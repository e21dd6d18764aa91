/**
 * SQL from a plan cannot write where Ferry promises to read only: stacked statements,
 * transaction control, comments, writing functions and set_config (the plan's own, or one a
 * function of the database makes out of sight of the plan's checks) are refused, and the test's
 * own checksums prove that the source and target rows are unchanged after every try.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createShardPlanner } from '../../activities/inspect/shard-planner';
import { holdReason } from '../../activities/copy/backoff';
import { createVerifier } from '../../activities/verify/verifier';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration } from '../../operator';
import { rootMessage } from '../../lib/errors';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

/** Each tries to end Ferry's statement and run another. */
const STACKED = [
  'SELECT 0; COMMIT; DELETE FROM src; SELECT 0',
  'true; ROLLBACK; DELETE FROM src; SELECT true',
  'true; COMMIT; DELETE FROM dst',
  "true -- hidden\n; DELETE FROM src",
  'true /* hidden */; DELETE FROM src /* */',
];

/** One statement each, so they pass the plan's checks; only a READ ONLY transaction stops them. */
const WRITING = [
  'wipe_src() = 0',
  "nextval('seq') > 0",
  'wipe_dst() = 0',
  'allow_writes() AND wipe_src() = 0',
];

describe('read-only promises', () => {
  let url: string;
  let worker: TestWorker;
  let databases: Databases;
  let before: Record<string, unknown>;
  let runs = 0;
  let plans = 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-read-only-'));

  beforeAll(async () => {
    url = await createTestDatabase('read_only');
    await sql(url, `
      CREATE TABLE src (id int PRIMARY KEY, note text NOT NULL);
      INSERT INTO src SELECT i, 'row ' || i FROM generate_series(1, 50) i;
      CREATE TABLE dst (id int PRIMARY KEY, note text NOT NULL);
      INSERT INTO dst VALUES (1000, 'already here');
      CREATE SEQUENCE seq;
      CREATE FUNCTION wipe_src() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM src WHERE id <= 10; RETURN 0; END $$;
      CREATE FUNCTION wipe_dst() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM dst; RETURN 0; END $$;
      -- Plan SQL may not call set_config for the session; a function of the database still can.
      CREATE FUNCTION allow_writes() RETURNS boolean LANGUAGE sql AS $$ SELECT set_config('default_transaction_read_only', 'off', false) IS NOT NULL $$;`);
    writeFileSync(path.join(dir, 'copy.ts'), 'export default (row: { id: number; note: string }) => ({ id: row.id, note: row.note });');
    worker = await startWorker({ DB: url }, { transformDir: dir });
    // One connection: a setting a statement changed would still be there for the next one.
    databases = createDatabases({ env: { DB: url }, poolSize: 1 });
    before = await fingerprint();
  });
  afterAll(async () => {
    await databases?.close();
    await worker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    expect(await fingerprint()).toEqual(before);
  });

  /** md5 over the text of every row of both tables, and the sequence's state. */
  function fingerprint() {
    return sqlRow(url, `
      SELECT (SELECT md5(string_agg(s::text, ',' ORDER BY id)) FROM src s) AS src,
             (SELECT count(*)::int FROM src) AS src_rows,
             (SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM dst d) AS dst,
             (SELECT last_value::text || is_called::text FROM seq) AS seq`);
  }

  function planWith(extra: Partial<PlanInput>, module = false): Plan {
    plans += 1;
    return validatePlan({
      name: `read-only-${plans}`,
      source: { connection: 'DB', table: 'src', key: 'id' },
      target: { connection: 'DB', table: 'dst' },
      transform: module ? { module: path.join(dir, 'copy.ts'), columns: ['id', 'note'] } : { sql: { id: 'id', note: 'note' } },
      backoff: { checkEverySeconds: 0.2 },
      ...extra,
    });
  }

  /** What a run ended with: its status, or its failure's message. Fails the test if it does not end within a minute. */
  async function outcomeOf(plan: Plan, execute: boolean): Promise<string> {
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute });
    const ended = handle.result().then(
      (status) => JSON.stringify(status),
      (error: unknown) => rootMessage(error),
    );
    const timeout = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('the run did not end within 60 s')), 60_000));
    return Promise.race([ended, timeout]);
  }

  it.each(STACKED)('the CLI refuses %j in subset.where, backoff.probe and a transform expression, before anything runs', async (attack) => {
    const file = path.join(dir, `plan-${runs++}.json`);
    writeFileSync(file, JSON.stringify({
      name: 'stacked',
      source: { connection: 'DB', table: 'src', key: 'id' },
      target: { connection: 'DB', table: 'dst' },
      transform: { sql: { id: 'id', note: attack } },
      subset: { where: attack },
      backoff: { probe: { sql: attack, max: 1 } },
    }));
    const result = await ferry(['start', file, '--execute'], worker.temporal);
    expect(result.code).toBe(ExitCode.badInput);
    for (const where of ['transform.sql.note', 'subset.where', 'backoff.probe.sql']) expect(result.stderr).toContain(where);
    expect(result.stderr).toMatch(/a semicolon is not allowed|comments/);
  });

  it('the CLI refuses stacked statements given with --where', async () => {
    const file = path.join(dir, 'plain-plan.json');
    writeFileSync(file, JSON.stringify({ ...planWith({}), name: 'where-flag' }));
    const result = await ferry(['start', file, '--execute', '--where', 'true; DELETE FROM src'], worker.temporal);
    expect(result.code).toBe(ExitCode.badInput);
    expect(result.stderr).toContain('subset.where: must be one SQL expression');
  });

  it('a plan that reaches the workflow unchecked still runs no stacked statement: the probe, subset.where, a module dry run', async () => {
    const valid = planWith({});
    const probe = { ...valid, backoff: { ...valid.backoff, probe: { sql: STACKED[0]!, max: 1 } } } as Plan;
    expect(await outcomeOf(probe, true)).toMatch(/backoff\.probe\.sql:? must be one SQL expression: a semicolon is not allowed/);
    const where = { ...valid, subset: { where: STACKED[1]! } } as Plan;
    expect(await outcomeOf(where, false)).toMatch(/subset\.where:? must be one SQL expression: a semicolon is not allowed/);
    const moduleDryRun = { ...planWith({}, true), subset: { where: STACKED[3]! } } as Plan;
    expect(await outcomeOf(moduleDryRun, false)).toMatch(/subset\.where:? must (be one SQL expression|not contain comments)/);
  });

  it.each(STACKED)('the probe runs as one statement even when nothing checked it first: %j', async (attack) => {
    const probe = attack.startsWith('SELECT') ? attack : `SELECT ${attack}`;
    const failure = await holdReason(databases.pool('DB'), { ...planWith({}).backoff, probe: { sql: probe, max: 1 } }).then(
      () => null,
      (error: unknown) => error as { type?: string; nonRetryable?: boolean; message: string },
    );
    expect(failure).toMatchObject({ type: 'BackoffProbeFailed', nonRetryable: true });
    expect(failure!.message).toMatch(/cannot insert multiple commands into a prepared statement/);
  });

  it.each(WRITING)('a dry run cannot write through subset.where %j, with a SQL or a module transform', async (attack) => {
    for (const module of [false, true]) {
      const outcome = await outcomeOf(planWith({ subset: { where: attack } }, module), false);
      expect(outcome).toMatch(/transform does not run on public\.src: cannot execute (DELETE|nextval\(\)) in a read-only transaction \[25006\]/);
    }
  });

  it('a dry run cannot write through a transform expression', async () => {
    const outcome = await outcomeOf(planWith({ transform: { sql: { id: 'id', note: 'note || wipe_dst()::text' } } }), false);
    expect(outcome).toMatch(/cannot execute DELETE in a read-only transaction \[25006\]/);
  });

  it('a probe that writes fails the migration once, with a clear redacted reason, and is not retried', async () => {
    for (const sqlText of ['SELECT wipe_src()', "SELECT nextval('seq')"]) {
      runs += 1;
      await sql(url, `CREATE TABLE dst_${runs} (id int PRIMARY KEY, note text NOT NULL)`);
      const plan = planWith({ target: { connection: 'DB', table: `dst_${runs}` }, backoff: { checkEverySeconds: 0.2, probe: { sql: sqlText, max: 1 } } });
      const outcome = await outcomeOf(plan, true);
      expect(outcome).toMatch(/backoff\.probe fails on the source: cannot execute (DELETE|nextval\(\)) in a read-only transaction \[25006\]/);
      expect((await sqlRow(url, `SELECT count(*)::int AS n FROM dst_${runs}`)).n).toBe(0);
    }
  });

  it('pg_try_advisory_xact_lock is fine: it writes nothing', async () => {
    const outcome = await outcomeOf(planWith({ subset: { where: 'pg_try_advisory_xact_lock(42)' } }), false);
    expect(JSON.parse(outcome).inspection.problems).toEqual([]);
  });

  it.each(WRITING)('shard planning and verification reads cannot write through subset.where %j', async (attack) => {
    // Partition values are read through subset.where (an integer key's min and max are not).
    const plan = planWith({ shards: { partitionColumn: 'note' }, subset: { where: attack } });
    const planner = createShardPlanner(databases);
    await expect(new MockActivityEnvironment().run(planner.planShards, { plan })).rejects.toThrow(/read-only transaction/);
    const verifier = createVerifier(databases);
    const input = { migrationId: 'read-only', plan, shard: { range: wholeKeySpace, partitionValue: null }, cursor: null, chunkSize: 100, pass: 1 };
    await expect(new MockActivityEnvironment().run(verifier.verifyShard, input)).rejects.toThrow(/read-only transaction/);
  });

  it('set_config cannot leave a session able to write for the next statement', async () => {
    const setter = planWith({ shards: { partitionColumn: 'note' }, subset: { where: 'allow_writes()' } });
    const planner = createShardPlanner(databases);
    await new MockActivityEnvironment().run(planner.planShards, { plan: setter });
    const writer = planWith({ shards: { partitionColumn: 'note' }, subset: { where: 'wipe_src() = 0' } });
    await expect(new MockActivityEnvironment().run(planner.planShards, { plan: writer })).rejects.toThrow(/read-only transaction/);
  });
});
