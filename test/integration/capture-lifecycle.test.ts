/**
 * A whole migration with `capture: trigger` through the real workflow and CLI, while a writer
 * that knows nothing of Ferry inserts, updates, hard-deletes and changes keys: changes keep
 * flowing after the backfill until the cleanup gate, the test's own md5 finds both sides equal
 * once the writer stops and the lag is zero, and the trigger and its log entries are gone after
 * the gate, or at once after an abort.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureObjectName, truncateGuardName } from '../../activities/capture/statements';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { startWriter, type WriterCounts } from '../support/capture-writer';
import { noChangeWaitingSince } from '../support/capture-lag';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 6000;

describe('a migration that captures changes with a trigger', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('capture_lifecycle');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function capturePlan(rowsPerSecond: number) {
    table += 1;
    await sql(url, `CREATE TABLE accounts_${table} (id int PRIMARY KEY, cents bigint NOT NULL, note text)`);
    return validatePlan({
      name: `capture-lifecycle-${table}`,
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: `accounts_${table}` },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: 'trigger',
      throttle: { rowsPerSecond, batchSize: 200, checkpointSeconds: 0.5 },
      verify: { chunkSize: 500, inFlightDelaySeconds: 0.5 },
    });
  }
  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;
  const differing = () =>
    sql(
      url,
      `SELECT coalesce(s.id, t.id) AS id FROM (SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM accounts) AS s
         FULL JOIN (SELECT id, md5(row(id, cents, note)::text) AS h FROM accounts_${table}) AS t ON s.id = t.id WHERE s.h IS DISTINCT FROM t.h`,
    );
  const triggersOnSource = () => sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal`);
  const logEntries = async (id: string) => (await sqlRow(url, `SELECT count(*)::int AS n FROM ferry.change_log WHERE migration_id = $1`, [id])).n as number;

  it('applies changes until the cleanup gate; after the writer stops and the lag is zero, both sides are equal', async () => {
    const plan = await capturePlan(3000);
    const writer = startWriter(url, { table: 'accounts', keys: ROWS, freshKeysFrom: 10_000_000, pauseMs: 2 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const firstRunId = (await handle.describe()).runId;
    let counts: WriterCounts;
    try {
      await eventually(async () => ((await statusOf(id)).gate?.name === 'cleanup' ? true : undefined), 150_000, 'the cleanup gate');
    } finally {
      counts = await writer.stop();
    }
    expect(counts.updates + counts.inserts + counts.deletes + counts.keyChanges).toBeGreaterThan(500);
    const atGate = await statusOf(id);
    expect(atGate.phases.map((p) => p.name)).toEqual(['capture-on', 'backfill', 'catch-up', 'verify', 'gate:cleanup']);
    expect(await triggersOnSource()).toHaveLength(2);
    expect(await triggersOnSource()).toEqual(expect.arrayContaining([{ tgname: captureObjectName(id) }, { tgname: truncateGuardName(id) }]));

    // The writer has stopped: the change apply catches up on its own, and the lag reads zero.
    await noChangeWaitingSince(worker, id, new Date().toISOString());
    expect(await differing()).toEqual([]);

    // Pause governs the change apply: changes wait in the log until resume.
    expect((await ferry(['pause', id, '--by', 'erin'], worker.temporal)).code).toBe(ExitCode.ok);
    await eventually(async () => ((await statusOf(id)).paused ? true : undefined), 10_000, 'paused');
    await new Promise((resolve) => setTimeout(resolve, 6000)); // the apply call under way ends (5 s at most)
    const appliedBefore = (await statusOf(id)).capture!.keysApplied;
    await sql(url, `UPDATE accounts SET note = 'while paused' WHERE id IN (SELECT id FROM accounts ORDER BY id LIMIT 10)`);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect((await statusOf(id)).capture!.keysApplied).toBe(appliedBefore);
    expect(await sql(url, `SELECT id FROM accounts_${table} WHERE note = 'while paused'`)).toEqual([]);
    expect((await ferry(['resume', id, '--by', 'erin'], worker.temporal)).code).toBe(ExitCode.ok);
    await eventually(
      async () => ((await sql(url, `SELECT id FROM accounts_${table} WHERE note = 'while paused'`)).length === 10 ? true : undefined),
      30_000,
      'the changes made while paused, applied after resume',
    );
    await noChangeWaitingSince(worker, id, new Date().toISOString());
    expect(await differing()).toEqual([]);

    const status = await ferry(['status', id], worker.temporal);
    expect(status.stdout).toMatch(/^capture {3}trigger since \S+: up to date; \d+ changed keys applied/m);
    // Ferry's own verification agrees with the test's comparison at its first pass.
    const verified = await ferry(['verify', id, '--json'], worker.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0 });

    // The change apply's calls grow the history: the run continued-as-new (the test server suggests it
    // at 40 events), and the next run took the apply up from the carried cursor.
    expect((await worker.client.workflow.getHandle(id).describe()).runId).not.toBe(firstRunId);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.phases.map((p) => p.name)).toEqual(['capture-on', 'backfill', 'catch-up', 'verify', 'gate:cleanup', 'cleanup', 'capture-off']);
    expect(result.capture).toMatchObject({ removedAt: expect.any(String), lag: { changesWaiting: 0 } });
    expect(result.capture!.keysApplied).toBeGreaterThan(0);
    expect(await triggersOnSource()).toEqual([]);
    expect(await logEntries(id)).toBe(0);
    const report = await ferry(['report', id], worker.temporal);
    expect(report.stdout).toContain('## Captured changes');
  });

  it('removes the trigger and its log entries at once when aborted during the backfill', async () => {
    const plan = await capturePlan(300);
    const writer = startWriter(url, { table: 'accounts', keys: ROWS, freshKeysFrom: 20_000_000, clients: 1 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    try {
      await eventually(async () => ((await statusOf(id)).rowsRead > 0 && (await logEntries(id)) > 0 ? true : undefined), 60_000, 'copying with changes logged');
      const aborted = await ferry(['abort', id, '--reason', 'test abort', '--by', 'dave'], worker.temporal);
      expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
    } finally {
      await writer.stop();
    }
    const result = await handle.result();
    expect(result.phase).toBe('aborted');
    expect(result.capture?.removedAt).toEqual(expect.any(String));
    expect(await triggersOnSource()).toEqual([]);
    expect(await logEntries(id)).toBe(0);
    expect(await sql(url, `SELECT 1 FROM pg_proc WHERE proname = $1`, [captureObjectName(id)])).toEqual([]);
  });
});
