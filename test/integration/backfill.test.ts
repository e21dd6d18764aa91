/** The backfill on real Postgres and real Temporal: every row arrives exactly once. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 10_000;

/** Source rows with the values that break naive copiers: microseconds, jsonb, quotes, NULLs. */
async function createSource(url: string, table = 'accounts', key = 'id'): Promise<void> {
  await sql(url, `
    CREATE TABLE "${table.replace(/"/g, '""')}" (
      "${key.replace(/"/g, '""')}" bigint PRIMARY KEY,
      name text,
      balance numeric(12, 2),
      created_at timestamptz NOT NULL,
      profile jsonb
    );
    INSERT INTO "${table.replace(/"/g, '""')}"
    SELECT i,
           CASE WHEN i % 97 = 0 THEN NULL WHEN i % 89 = 0 THEN '' ELSE 'O''Brien "' || i || '" ☃ ' || md5(i::text) END,
           (i * 1.37)::numeric(12, 2),
           timestamptz '2024-02-29 23:59:59.999999+00' - i * interval '1.000001 seconds',
           jsonb_build_object('plan', CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END, 'tags', jsonb_build_array(i, 'x'), 'n', i * 0.5)
      FROM generate_series(1, ${ROWS}) AS i;
    ANALYZE;`);
}

const targetDdl = (table: string, key = 'id') => `
  CREATE TABLE "${table.replace(/"/g, '""')}" (
    "${key.replace(/"/g, '""')}" bigint PRIMARY KEY,
    name text,
    name_length int,
    balance numeric(12, 2),
    created_at timestamptz NOT NULL,
    plan text,
    profile jsonb
  )`;

const transform = (key = 'id') => ({
  [key]: `"${key.replace(/"/g, '""')}"`,
  name: 'name',
  name_length: 'length(name)',
  balance: 'balance',
  created_at: 'created_at',
  plan: "profile->>'plan'",
  profile: 'profile',
});

function planFor(overrides: Partial<PlanInput> & Pick<PlanInput, 'name'>) {
  return validatePlan({
    source: { connection: 'SOURCE_URL', table: 'accounts', key: 'id' },
    target: { connection: 'TARGET_URL', table: 'accounts_v2' },
    transform: { sql: transform() },
    ...overrides,
  });
}

/** The expected target, computed by the test's own SQL on the source, as text. */
const expectedRowsSql = (table = 'accounts', key = 'id') => `
  SELECT "${key.replace(/"/g, '""')}"::text AS key, name, length(name)::text AS name_length, balance::text,
         created_at::text, profile->>'plan' AS plan, profile::text
    FROM "${table.replace(/"/g, '""')}" ORDER BY "${key.replace(/"/g, '""')}"`;
const actualRowsSql = (table = 'accounts_v2', key = 'id') => `
  SELECT "${key.replace(/"/g, '""')}"::text AS key, name, name_length::text, balance::text,
         created_at::text, plan, profile::text
    FROM "${table.replace(/"/g, '""')}" ORDER BY "${key.replace(/"/g, '""')}"`;

describe('backfill', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('source'), createTestDatabase('target')]);
    await createSource(sourceUrl);
    worker = await startWorker({ SOURCE_URL: sourceUrl, TARGET_URL: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('copies 10,000 rows between two databases, every value intact', async () => {
    await sql(targetUrl, targetDdl('accounts_v2'));
    const plan = planFor({ name: 'two-databases', throttle: { batchSize: 700 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const status = await handle.result();

    expect(status).toMatchObject({ phase: 'completed', rowsRead: ROWS, rowsWritten: ROWS });
    expect(status.inspection!.sameDatabase).toBe(false);
    const [expected, actual] = await Promise.all([sql(sourceUrl, expectedRowsSql()), sql(targetUrl, actualRowsSql())]);
    expect(actual.length).toBe(ROWS);
    expect(actual).toEqual(expected);
    // Spot-check the values that naive copiers lose.
    expect(actual.find((r) => r.key === '1')!.created_at).toBe('2024-02-29 23:59:58.999998+00');
    expect(actual.find((r) => r.key === '89')!.name).toBe('');
    expect(actual.find((r) => r.key === '97')!.name).toBeNull();
  });

  it('plans its shards while it inspects, and claims the target in one call, before it copies', async () => {
    await sql(targetUrl, `DROP TABLE IF EXISTS accounts_soon; ${targetDdl('accounts_soon')}`);
    const plan = planFor({ name: 'soon', target: { connection: 'TARGET_URL', table: 'accounts_soon' }, shards: { count: 3 }, verify: { enabled: false } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    expect(await handle.result()).toMatchObject({ phase: 'completed', rowsRead: ROWS, rowsWritten: ROWS });
    // The start is in the first run (a test server continues a migration as new early).
    const latest = await handle.fetchHistory();
    const firstRunId = latest.events![0]!.workflowExecutionStartedEventAttributes!.firstExecutionRunId!;
    const events = (await worker.client.workflow.getHandle(handle.workflowId, firstRunId).fetchHistory()).events ?? [];
    const scheduled = events.flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : []));
    expect(scheduled.slice(0, 3)).toEqual(['planShards', 'inspect', 'claimTarget']);
    expect(scheduled).not.toContain('prepareTarget');
    // The claim installed Ferry's schema and took the table: the registry names this migration.
    const { holder } = await sqlRow(targetUrl, `SELECT migration_id AS holder FROM ferry.migrations WHERE target_table = 'public.accounts_soon'`);
    expect(holder).toBe(handle.workflowId);
    const { count } = await sqlRow(targetUrl, 'SELECT count(*)::int AS count FROM accounts_soon');
    expect(count).toBe(ROWS);
  });

  it('fails with the planner\'s reason when the shards planned beside the inspection cannot be, and copies nothing', async () => {
    await sql(targetUrl, `DROP TABLE IF EXISTS accounts_unplanned; ${targetDdl('accounts_unplanned')}`);
    // Some names are NULL: no partition shard would copy those rows.
    const plan = planFor({ name: 'unplanned', target: { connection: 'TARGET_URL', table: 'accounts_unplanned' }, shards: { partitionColumn: 'name' } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await expect(handle.result()).rejects.toThrow();
    // The migration ends through its failure ending, which names the step and the planner's reason.
    const failure = await handle.result().catch((error: { cause?: { message?: string } }) => error.cause?.message ?? '');
    expect(failure).toMatch(/^step backfill failed: partition column "name" .* has NULLs/);
    const { count } = await sqlRow(targetUrl, 'SELECT count(*)::int AS count FROM accounts_unplanned');
    expect(count).toBe(0);
  });

  it('keeps rows the target already has and copies the rest (safe to re-run)', async () => {
    await sql(targetUrl, `DROP TABLE IF EXISTS accounts_v3; ${targetDdl('accounts_v3')}`);
    await sql(targetUrl, `INSERT INTO accounts_v3 (id, name, created_at) VALUES (5, 'written by the app', now())`);
    // The application's row differs from the source on purpose: no verification to repair it.
    const plan = planFor({ name: 'rerun', target: { connection: 'TARGET_URL', table: 'accounts_v3' }, verify: { enabled: false } });
    const first = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(first).toMatchObject({ rowsRead: ROWS, rowsWritten: ROWS - 1 });
    const second = await (await startMigration(worker.client, worker.temporal, plan, { execute: true, rerun: true })).result();
    expect(second).toMatchObject({ rowsRead: ROWS, rowsWritten: 0 });
    const { name } = await sqlRow(targetUrl, 'SELECT name FROM accounts_v3 WHERE id = 5');
    expect(name).toBe('written by the app');
    const { count } = await sqlRow(targetUrl, 'SELECT count(*)::int AS count FROM accounts_v3');
    expect(count).toBe(ROWS);
  });

  it('falls back to staging when a straight COPY meets a key the target already has', async () => {
    // Keys folded by the transform: a batch's range looks empty on the target, but its rows
    // collide with earlier batches' rows, so the direct COPY is refused and staging takes over.
    await sql(targetUrl, `DROP TABLE IF EXISTS accounts_folded; ${targetDdl('accounts_folded')}`);
    const plan = planFor({
      name: 'folded',
      target: { connection: 'TARGET_URL', table: 'accounts_folded' },
      transform: { sql: { ...transform(), id: 'id % 100' } },
      throttle: { batchSize: 1000 },
      // Folded keys cannot match the source row for row.
      verify: { enabled: false },
    });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status).toMatchObject({ phase: 'completed', rowsRead: ROWS, rowsWritten: 100, rowsFailed: 0 });
    const { count } = await sqlRow(targetUrl, 'SELECT count(*)::int AS count FROM accounts_folded');
    expect(count).toBe(100);
  });

  it('falls back to the upsert when a plain INSERT into a clear range within one database meets a key it holds', async () => {
    // The same folded keys within one database: each batch's range is clear on the target, so
    // it tries a plain INSERT, which the unique key refuses from the second batch on.
    await sql(sourceUrl, `DROP TABLE IF EXISTS accounts_folded_here; ${targetDdl('accounts_folded_here')}`);
    const plan = planFor({
      name: 'folded-here',
      target: { connection: 'SOURCE_URL', table: 'accounts_folded_here' },
      transform: { sql: { ...transform(), id: 'id % 100' } },
      throttle: { batchSize: 1000, targetBatchSeconds: 0 },
      shards: { count: 1 },
      verify: { enabled: false },
    });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status).toMatchObject({ phase: 'completed', rowsRead: ROWS, rowsWritten: 100, rowsFailed: 0 });
    // The first batch's rows won (ignore): each key's row is the one of the lowest source id.
    const { count, wrong } = await sqlRow(
      sourceUrl,
      `SELECT count(*)::int AS count, count(*) FILTER (WHERE t.name IS DISTINCT FROM (SELECT a.name FROM accounts a WHERE a.id % 100 = t.id ORDER BY a.id LIMIT 1))::int AS wrong FROM accounts_folded_here t`,
    );
    expect(count).toBe(100);
    expect(wrong).toBe(0);
  });

  it('copies within one database between tables whose names hold quotes, spaces and SQL', async () => {
    const source = 'we"ird; DROP TABLE accounts; --';
    const target = 'target "table"';
    const key = 'the "key"';
    await createSource(sourceUrl, source, key);
    await sql(sourceUrl, targetDdl(target, key));
    const plan = validatePlan({
      name: 'hostile-names',
      source: { connection: 'SOURCE_URL', table: source, key },
      target: { connection: 'SOURCE_URL', table: target },
      transform: { sql: transform(key) },
      throttle: { batchSize: 999 },
    });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status).toMatchObject({ phase: 'completed', rowsWritten: ROWS });
    expect(status.inspection!.sameDatabase).toBe(true);
    expect(await sql(sourceUrl, actualRowsSql(target, key))).toEqual(await sql(sourceUrl, expectedRowsSql(source, key)));
    const { exists } = await sqlRow(sourceUrl, `SELECT to_regclass('accounts') IS NOT NULL AS exists`);
    expect(exists).toBe(true);
  });

  it('resumes from the heartbeat cursor after its connections are killed mid-copy', async () => {
    await sql(targetUrl, `
      DROP TABLE IF EXISTS accounts_resume; ${targetDdl('accounts_resume')};
      -- Counts every row the copier tries to insert, including ones ON CONFLICT then skips.
      CREATE SEQUENCE insert_attempts;
      CREATE FUNCTION count_attempt() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM nextval('insert_attempts'); RETURN NEW; END $$;
      CREATE TRIGGER count_attempts BEFORE INSERT ON accounts_resume FOR EACH ROW EXECUTE FUNCTION count_attempt();`);
    const plan = planFor({
      name: 'resume',
      target: { connection: 'TARGET_URL', table: 'accounts_resume' },
      throttle: { batchSize: 50, rowsPerSecond: 1000, targetBatchSeconds: 0 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });

    let copiedBeforeKill = 0;
    while (copiedBeforeKill < 3000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      ({ copied: copiedBeforeKill } = await sqlRow(targetUrl, 'SELECT count(*)::int AS copied FROM accounts_resume'));
    }
    // Hold the copier in the middle of an insert (blocked on a lock), then kill its connections:
    // the activity fails mid-batch and Temporal retries it.
    const locker = new pg.Client({ connectionString: targetUrl });
    await locker.connect();
    await locker.query('BEGIN; LOCK TABLE accounts_resume IN ACCESS EXCLUSIVE MODE');
    let killed = 0;
    while (killed === 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      ({ killed } = await sqlRow(targetUrl, `
        SELECT count(pg_terminate_backend(pid))::int AS killed FROM pg_stat_activity
         WHERE application_name = 'ferry' AND datname = current_database() AND wait_event_type = 'Lock'`));
    }
    await locker.query('COMMIT');
    await locker.end();

    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(await sql(targetUrl, actualRowsSql('accounts_resume'))).toEqual(await sql(sourceUrl, expectedRowsSql()));

    // A retried attempt really ran, and it started near the heartbeat cursor, not at the
    // beginning: from scratch it would have re-tried all the rows copied before the kill.
    const attempts: number[] = [];
    for await (const run of worker.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}/shard-0'` })) {
      const history = await worker.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      for (const event of history.events ?? []) {
        if (event.activityTaskStartedEventAttributes) attempts.push(event.activityTaskStartedEventAttributes.attempt ?? 1);
      }
    }
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    const { tried } = await sqlRow(targetUrl, `SELECT last_value::int AS tried FROM insert_attempts`);
    const repeated = tried - ROWS;
    expect(repeated).toBeLessThan(copiedBeforeKill / 2);
  });
});
