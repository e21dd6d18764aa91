/**
 * Workers SIGKILLed during a capture migration (trigger, and logical, whose slot reader dies with
 * its worker), once in the backfill and once while the changes are applied at the gate, with a
 * writer running across two databases: the run goes on on the other workers, and once the writer
 * stops and the lag is zero the test's own md5 of every row finds both sides equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { LOGICAL_CAPTURE_PREFIX, logicalCaptureName } from '../../lib/ids';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { startWriter } from '../support/capture-writer';
import { noChangeWaitingSince } from '../support/capture-lag';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const ROWS = 8000;

describe.each(['trigger', 'logical'] as const)('workers killed during a %s-capture migration', (mode) => {
  let sourceUrl: string;
  let targetUrl: string;
  let client: TestWorker;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('capture_fault_src'), createTestDatabase('capture_fault_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    await sql(targetUrl, `CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text)`);
    client = await connectClient();
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client?.stop();
  });

  it('lose no change: the others take over the copy and the change apply', { timeout: 360_000 }, async () => {
    const env = { SRC: sourceUrl, TGT: targetUrl };
    workers.push(await startWorkerProcess(client.temporal, env), await startWorkerProcess(client.temporal, env));
    const plan = validatePlan({
      name: `capture-faults-${mode}`,
      source: { connection: 'SRC', table: 'accounts', key: 'id' },
      target: { connection: 'TGT', table: 'accounts_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: mode,
      shards: { count: 2 },
      throttle: { rowsPerSecond: 2000, batchSize: 200, concurrency: 2, checkpointSeconds: 1 },
      verify: { chunkSize: 500, inFlightDelaySeconds: 0.5 },
    });
    // About 200 writes a second: well under the throttle, so the copy and the change apply keep up.
    const writer = startWriter(sourceUrl, { table: 'accounts', keys: ROWS, freshKeysFrom: 10_000_000, clients: 2, pauseMs: 10 });
    const handle = await startMigration(client.client, client.temporal, plan, { execute: true });
    const id = handle.workflowId;
    // Right after a kill a query may find no worker for a few seconds: that is no answer yet.
    let last: MigrationStatus | null = null;
    const statusOf = async () => {
      const status = (await migrationReport(client.client, id).catch(() => null))?.status ?? null;
      if (status) last = status;
      return status;
    };
    const story = () =>
      `phases ${last?.phases.map((p) => `${p.name} ${p.startedAt}..${p.endedAt ?? ''}`).join(', ')}; rows read ${last?.rowsRead}; ` +
      `shards ${JSON.stringify(last?.shards.map((s) => [s.state, s.cursor]))}; capture ${JSON.stringify(last?.capture)}`;
    const failWithStory = (error: Error) => {
      throw new Error(`${error.message}; ${story()}`);
    };
    try {
      await eventually(async () => (((await statusOf())?.rowsRead ?? 0) >= 2000 ? true : undefined), 60_000, '2,000 rows read').catch(failWithStory);
      await workers.shift()!.kill();
      workers.push(await startWorkerProcess(client.temporal, env));
      await eventually(async () => ((await statusOf())?.gate?.name === 'cleanup' ? true : undefined), 150_000, 'the cleanup gate').catch(failWithStory);
      // The change apply runs on one of the workers now: kill one while the writer still writes.
      await workers.shift()!.kill();
      workers.push(await startWorkerProcess(client.temporal, env));
      await new Promise((resolve) => setTimeout(resolve, 3000));
    } finally {
      await writer.stop();
    }
    // Logical capture: the reader first passes the writer's last WAL (the test reads the slot itself).
    if (mode === 'logical') {
      const { lsn } = await sqlRow(sourceUrl, `SELECT pg_current_wal_insert_lsn()::text AS lsn`);
      await eventually(
        async () => (await sqlRow(sourceUrl, `SELECT coalesce((SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1), false) AS read`, [logicalCaptureName(id), lsn])).read || undefined,
        60_000,
        'the reader past the writer',
      ).catch(failWithStory);
    }
    // A lag measured after the writer stopped: one measured before may read zero between two writes.
    await noChangeWaitingSince(client, id, new Date().toISOString()).catch(async (error: Error) => {
      await statusOf();
      failWithStory(error);
    });
    const [source, target] = await Promise.all([
      sql<{ id: number; h: string }>(sourceUrl, `SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM accounts ORDER BY id`),
      sql<{ id: number; h: string }>(targetUrl, `SELECT id, md5(row(id, cents, note)::text) AS h FROM accounts_v2 ORDER BY id`),
    ]);
    expect(target).toEqual(source);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], client.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('completed');
    expect(await sql(sourceUrl, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal`)).toEqual([]);
    // Of this database only: slots are the server's, and other test files run beside this one.
    expect(await sql(sourceUrl, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND database = current_database()`, [`${LOGICAL_CAPTURE_PREFIX}%`])).toEqual([]);
  });
});
