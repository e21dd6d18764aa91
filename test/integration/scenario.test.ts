/**
 * The proof: an application writes to users the whole time, through the client library and its
 * flags, while Ferry runs the whole lifecycle and a person approves each gate through the CLI.
 * Then the tables are compared by this test's own SQL, not by Ferry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';
import { startScenarioApp, type ScenarioApp } from '../support/scenario-app';

const USERS = 6000;

describe('a live migration with an application writing throughout', () => {
  let worker: TestWorker;

  beforeAll(async () => {
    worker = await startWorker({});
  });
  afterAll(async () => {
    await worker?.stop();
  });

  /** A database with users and an empty users_v2, a worker for it, and the plan. */
  async function setUp(name: string) {
    const url = await createTestDatabase(name.replace(/-/g, '_'));
    await sql(url, `
      CREATE TABLE users (id bigint PRIMARY KEY, full_name text NOT NULL, email text NOT NULL);
      INSERT INTO users SELECT i, 'First' || i || ' Last Name' || i, 'user' || i || '@example.com' FROM generate_series(1, ${USERS}) i;
      ANALYZE users;
      CREATE TABLE users_v2 (id bigint PRIMARY KEY, first_name text NOT NULL, last_name text, email text NOT NULL);`);
    const own = await startWorker({ APP_DB: url });
    const plan = validatePlan({
      name,
      source: { connection: 'APP_DB', table: 'users', key: 'id' },
      target: { connection: 'APP_DB', table: 'users_v2' },
      transform: {
        sql: {
          id: 'id',
          first_name: "split_part(full_name, ' ', 1)",
          last_name: "nullif(substr(full_name, length(split_part(full_name, ' ', 1)) + 2), '')",
          email: 'email',
        },
      },
      shards: { count: 2 },
      throttle: { rowsPerSecond: 1500, batchSize: 200, concurrency: 2, checkpointSeconds: 0.5 },
      lifecycle: { dualWrites: true, cutover: true, soakSeconds: 5, compareReadsPercent: 50, gates: { figuresEverySeconds: 1 } },
    });
    const app = startScenarioApp({ url, migration: name, firstNewId: USERS + 1, existingIds: Array.from({ length: USERS }, (_, i) => i + 1) });
    return { url, own, plan, app };
  }

  /** Rows of a table as the application knows them: id, full name, email. */
  type UserRecord = { id: number; full_name: string; email: string };
  const oldRows = (url: string) => sql<UserRecord>(url, `SELECT id::int, full_name, email FROM users ORDER BY id`);
  const newRows = (url: string) =>
    sql<UserRecord>(url, `SELECT id::int, concat_ws(' ', first_name, last_name) AS full_name, email FROM users_v2 ORDER BY id`);

  /** Every write the application was told succeeded is in `rows`; no deleted row is. */
  function expectAcknowledged(app: ScenarioApp, rows: UserRecord[]) {
    const byId = new Map(rows.map((r) => [r.id, r]));
    let checked = 0;
    for (const [id, row] of app.expected) {
      if (row === null) expect(byId.has(id), `deleted user ${id} came back`).toBe(false);
      else expect(byId.get(id), `user ${id}`).toEqual({ id, full_name: row.fullName, email: row.email });
      checked += 1;
    }
    return checked;
  }

  const waitAt = (id: string, gate: string) =>
    eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === gate ? true : undefined), 120_000, `gate ${gate}`);
  const approve = async (temporal: TestWorker['temporal'], id: string, gate: string, by: string) => {
    const result = await ferry(['approve', id, '--gate', gate, '--by', by, '--note', 'checked'], temporal);
    expect(result.code, result.stderr).toBe(ExitCode.ok);
  };

  it('moves users to users_v2 with nothing lost, nothing resurrected, and reads on the new table', async () => {
    const { url, own, plan, app } = await setUp('scenario-full');
    try {
      const handle = await startMigration(own.client, own.temporal, plan, { execute: true });
      const id = handle.workflowId;
      await waitAt(id, 'cutover-reads');
      expect(app.operations).toBeGreaterThan(50);

      await approve(own.temporal, id, 'cutover-reads', 'alice');
      await waitAt(id, 'stop-old-writes');
      // Reads now come from users_v2: let the application read a while.
      const readsBefore = app.readsFrom.new;
      await eventually(async () => (app.readsFrom.new > readsBefore + 20 ? true : undefined), 30_000, 'reads from the new table');

      // The approver sees the applications' dual-read comparisons: reads from new, compared with old.
      const figures = await eventually(async () => {
        const gate = (await migrationReport(worker.client, id)).status?.gate;
        return gate?.figures && gate.figures.readsCompared > 5 ? gate.figures : undefined;
      }, 30_000, 'dual-read figures at the gate');
      expect(figures.readsMismatched).toBe(0);
      expect((await ferry(['status', id], own.temporal)).stdout).toMatch(/look at: [\d,]+ dual reads compared, 0 differed \(0\.00%\) \(since each application process started, of those that reported in the last hour\)/);

      // Both tables still take every write: they must hold the same users, row for row.
      await app.pause();
      expect(await newRows(url)).toEqual(await oldRows(url));
      const checked = expectAcknowledged(app, await newRows(url));
      expect(checked).toBeGreaterThan(50);
      app.resume();

      await approve(own.temporal, id, 'stop-old-writes', 'bob');
      await waitAt(id, 'cleanup');
      const { version } = await sqlRow(url, `SELECT version::int FROM ferry.flags WHERE migration = $1`, [plan.name]);
      await eventually(async () => (app.client.flags.current().version === version ? true : undefined), 10_000, 'the app to follow');
      const opsAfterOldOff = app.operations;
      await eventually(async () => (app.operations > opsAfterOldOff + 30 ? true : undefined), 30_000, 'writes to the new table only');
      await approve(own.temporal, id, 'cleanup', 'carol');
      const status = await handle.result();
      await app.pause();

      expect(status.phase).toBe('completed');
      // Old writes are off: every acknowledged write since is in users_v2 alone.
      expectAcknowledged(app, await newRows(url));
      expect(app.errors).toEqual([]);
      expect(app.client.dualWriter.killSwitch().tripped).toBe(false);
      const report = await ferry(['report', id], own.temporal);
      for (const decision of ['gate cutover-reads approved (checked)', 'gate stop-old-writes approved (checked)', 'gate cleanup approved (checked)']) {
        expect(report.stdout).toContain(decision);
      }
      expect(report.stdout).toMatch(/\| flags \| ferry \| dual writes on/);
      expect(report.stdout).toMatch(/\| apps \| ferry \| 1 application processes follow version/);
    } finally {
      await app.stop();
      await own.stop();
    }
  });

  it.each(['backfill', 'cutover-reads', 'stop-old-writes'] as const)(
    'aborted at %s: the application keeps working and the old table stays complete',
    async (point) => {
      const { url, own, plan, app } = await setUp(`scenario-abort-${point}`);
      try {
        const handle = await startMigration(own.client, own.temporal, plan, { execute: true });
        const id = handle.workflowId;
        if (point === 'backfill') {
          await eventually(async () => ((await migrationReport(own.client, id)).status!.rowsRead > 500 ? true : undefined), 60_000, 'copying');
        } else {
          await waitAt(id, 'cutover-reads');
          if (point === 'stop-old-writes') {
            await approve(own.temporal, id, 'cutover-reads', 'alice');
            await waitAt(id, 'stop-old-writes');
          }
        }
        const aborted = await ferry(['abort', id, '--by', 'dave', '--reason', `abort at ${point}`], own.temporal);
        expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
        const status = await handle.result();
        expect(status.phase).toBe('aborted');

        // The application follows the rolled-back flags and goes on writing the old table.
        const { version } = await sqlRow(url, `SELECT version::int FROM ferry.flags WHERE migration = $1`, [plan.name]);
        await eventually(async () => (app.client.flags.current().version === version ? true : undefined), 10_000, 'the app to follow');
        expect(app.client.flags.current()).toMatchObject({ writeOld: true, writeNew: false, readFrom: 'old' });
        const ops = app.operations;
        await eventually(async () => (app.operations > ops + 30 ? true : undefined), 30_000, 'more writes');
        await app.pause();
        expect(app.errors).toEqual([]);
        expect(expectAcknowledged(app, await oldRows(url))).toBeGreaterThan(30);
      } finally {
        await app.stop();
        await own.stop();
      }
    },
  );
});
