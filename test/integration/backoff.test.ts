/** The copier holds off while the source is unwell, says why, and goes on when it recovers. */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { changeThrottle, migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;

describe('back-off', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('backoff');
    await sql(url, `
      CREATE TABLE readings (id int PRIMARY KEY, value int NOT NULL);
      INSERT INTO readings SELECT i, i FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE health (load int NOT NULL);
      INSERT INTO health VALUES (0);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function start(backoff: PlanInput['backoff'], more: Pick<PlanInput, 'throttle' | 'shards'> = {}) {
    table += 1;
    await sql(url, `CREATE TABLE readings_${table} (id int PRIMARY KEY, value int NOT NULL)`);
    const plan = validatePlan({
      name: `backoff-${table}`,
      source: { connection: 'DB', table: 'readings', key: 'id' },
      target: { connection: 'DB', table: `readings_${table}` },
      transform: { sql: { id: 'id', value: 'value' } },
      throttle: { rowsPerSecond: 4000, batchSize: 200, checkpointSeconds: 0.5, ...more.throttle },
      backoff: { checkEverySeconds: 0.2, ...backoff },
      ...(more.shards ? { shards: more.shards } : {}),
    });
    return { handle: await startMigration(worker.client, worker.temporal, plan, { execute: true }), target: `readings_${table}` };
  }
  const copied = async (target: string) => (await sqlRow(url, `SELECT count(*)::int AS n FROM ${target}`)).n as number;
  const backendPid = async (client: pg.Client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  /** A report's two-minute query in `dbUrl`; `stop` cancels it. */
  async function longQuery(dbUrl: string) {
    const report = new pg.Client({ connectionString: dbUrl, application_name: 'nightly report' });
    await report.connect();
    const pid = await backendPid(report);
    const long = report.query('SELECT pg_sleep(120)').catch((error: Error) => error);
    const stop = async () => {
      await sql(url, `SELECT pg_cancel_backend(${pid})`);
      await long;
      await report.end();
    };
    return { pid, stop };
  }
  const stillRunning = async (pid: number) => (await sqlRow(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ${pid} AND state = 'active'`)).n === 1;
  const reasonOf = async (id: string) => (await migrationReport(worker.client, id)).status!.shards[0]?.throttleReason ?? null;

  it("holds while the plan's probe reads over its limit, and says so in status", async () => {
    await sql(url, 'UPDATE health SET load = 0');
    const { handle, target } = await start({ probe: { sql: 'SELECT load FROM health', max: 5 } });
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    await sql(url, 'UPDATE health SET load = 9');
    await eventually(async () => (await reasonOf(handle.workflowId))?.includes('holding: backoff.probe returned 9, over its max 5'), 20_000, 'the hold');
    const held = await copied(target);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await copied(target)).toBe(held);
    await sql(url, 'UPDATE health SET load = 1');
    const status = await handle.result();
    expect(status.rowsWritten).toBe(ROWS);
  });

  it('holds while a query on the source runs too long', async () => {
    const { handle, target } = await start({ maxQuerySeconds: 1 });
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    const report = new pg.Client({ connectionString: url, application_name: 'nightly report' });
    await report.connect();
    const pid = await backendPid(report);
    const long = report.query('SELECT pg_sleep(4)');
    // The reason names the session, so that an operator finds it in pg_stat_activity.
    await eventually(async () => (await reasonOf(handle.workflowId))?.match(/holding: a query on the source \(pid (\d+)\) has run \d+ s, over backoff.maxQuerySeconds \(1 s\)/)?.[1] === String(pid), 20_000, 'the hold');
    await long;
    await report.end();
    const status = await handle.result();
    expect(status.rowsWritten).toBe(ROWS);
  });

  it('goes on when an operator raises the query limit while a long query holds it, in every shard, and refuses a limit of 0', async () => {
    // Two shards, one at a time: the second starts after the change, and must start with it.
    const { handle, target } = await start({ maxQuerySeconds: 1 }, { throttle: { checkpointSeconds: 30, concurrency: 1 }, shards: { count: 2 } });
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    const { pid, stop } = await longQuery(url);
    try {
      await eventually(async () => (await reasonOf(handle.workflowId))?.includes('over backoff.maxQuerySeconds (1 s)'), 20_000, 'the hold');
      const before = (await migrationReport(worker.client, handle.workflowId)).status!;

      // A limit of 0 is refused by Ferry's operator API, and by the workflow itself when sent
      // straight through Temporal; nothing about the migration moves.
      await expect(changeThrottle(worker.client, handle.workflowId, { maxQuerySeconds: 0, by: 'alice' })).rejects.toThrow('maxQuerySeconds must be above 0, not 0');
      const direct = await handle.executeUpdate('setThrottle', { args: [{ maxQuerySeconds: 0, by: 'alice' }] }).then(() => null, (error: unknown) => error);
      expect(direct).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((direct as WorkflowUpdateFailedError).cause?.message).toContain('maxQuerySeconds must be above 0, not 0');
      const refused = (await migrationReport(worker.client, handle.workflowId)).status!;
      expect(refused.throttle).toEqual(before.throttle);
      expect(refused.events.filter((e) => e.kind === 'throttle')).toEqual([]);
      const held = await copied(target);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await copied(target)).toBe(held);

      const changed = await ferry(['throttle', handle.workflowId, '--max-query-seconds', '3600', '--reason', 'the report runs for an hour'], worker.temporal);
      expect(changed.code, changed.stderr).toBe(ExitCode.ok);
      expect(changed.stdout).toContain("changed from the plan's: holds: queries 3600 s, replica lag 10 s, unread slots 10240 MB");
      // The running copy call makes way within about a second (its checkpoint is 30 s away), and
      // both shards copy past the query.
      await eventually(async () => (await copied(target)) > held, 8_000, 'rows copied under the new limit');
      const status = await handle.result();
      expect(status.phase).toBe('completed');
      expect(status.rowsWritten).toBe(ROWS);
      expect(status.events).toContainEqual(expect.objectContaining({ kind: 'throttle', detail: 'backoff.maxQuerySeconds 1 -> 3600 (the report runs for an hour)' }));
      // The query was not waited out, and the rows are the source's, by this test's own digest.
      expect(await stillRunning(pid)).toBe(true);
      expect(await rowsDigest(url, `SELECT * FROM ${target}`)).toEqual(await rowsDigest(url, 'SELECT * FROM readings'));
    } finally {
      await stop();
    }
  });

  it("does not hold for a long query in another of the server's databases", async () => {
    const otherUrl = await createTestDatabase('backoff_other');
    const { handle, target } = await start({ maxQuerySeconds: 1 });
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    const { pid, stop } = await longQuery(otherUrl);
    try {
      await eventually(async () => stillRunning(pid), 10_000, 'the long query');
      const reasons: (string | null)[] = [];
      const watching = setInterval(() => void reasonOf(handle.workflowId).then((reason) => reasons.push(reason), () => {}), 200);
      // Held by it, the copy would wait the query's 120 s out.
      const status = await handle.result().finally(() => clearInterval(watching));
      expect(status.rowsWritten).toBe(ROWS);
      expect(reasons.filter((reason) => reason?.includes('a query on the source'))).toEqual([]);
      expect(await stillRunning(pid)).toBe(true);
    } finally {
      await stop();
    }
  });

  it('waits out a lock held on the target longer than its lock timeout, without piling up sessions', async () => {
    const { handle, target } = await start({});
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    await locker.query(`BEGIN; LOCK TABLE ${target} IN ACCESS EXCLUSIVE MODE`);
    // The most Ferry sessions of this database seen waiting on a lock at once, and what they ran:
    // other test files on the same server run Ferry into locks of their own.
    let mostWaiting: { pid: number; query: string; waitedMs: number }[] = [];
    const watching = (async () => {
      const started = Date.now();
      while (Date.now() - started < 8000) {
        const waiting = await sql<{ pid: number; query: string; waitedMs: number }>(
          url,
          `SELECT pid, left(query, 100) AS query, (extract(epoch FROM now() - query_start) * 1000)::int AS "waitedMs"
             FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'ferry' AND wait_event_type = 'Lock'`,
        );
        if (waiting.length > mostWaiting.length) mostWaiting = waiting;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    await eventually(async () => (await reasonOf(handle.workflowId))?.includes('the target table is locked'), 20_000, 'the lock to be noticed');
    await watching;
    await locker.query('COMMIT');
    await locker.end();
    const status = await handle.result();
    expect(status.rowsWritten).toBe(ROWS);
    // One shard, one batch at a time: never more than one Ferry session waits on the lock.
    expect(mostWaiting.length, JSON.stringify(mostWaiting)).toBeLessThanOrEqual(1);
  });

  it('pauses for a person when the target refuses writes (a revoked privilege), and loses nothing', async () => {
    const { handle, target } = await start({});
    await eventually(async () => (await copied(target)) > 0, 20_000, 'the first rows');
    await sql(url, `
      CREATE FUNCTION refuse_${target}() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'permission denied for table ${target}' USING ERRCODE = '42501'; END $$;
      CREATE TRIGGER refuse BEFORE INSERT ON ${target} FOR EACH ROW EXECUTE FUNCTION refuse_${target}();`);
    const paused = await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status?.paused ?? undefined, 30_000, 'the pause');
    expect(paused.by).toBe('ferry');
    // The refusal comes from a trigger here (the test's role is a superuser, whom REVOKE does not
    // stop), so its text is withheld as any raised text is; the SQLSTATE still says what it is.
    expect(paused.reason).toMatch(/the database refuses the copy: raised by a trigger or function on the target .*\[42501\]/);
    const held = await copied(target);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await copied(target)).toBe(held);

    await sql(url, `DROP TRIGGER refuse ON ${target}`);
    await handle.signal('resume', { by: 'test' });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(await copied(target)).toBe(ROWS);
  });
});
