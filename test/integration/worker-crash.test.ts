/** A worker process killed with SIGKILL mid-copy: another takes over and no row is lost or doubled. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { startWorkerProcess } from '../support/worker-process';

const ROWS = 30_000;

describe('a worker killed mid-copy', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let client: TestWorker;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('crash_src'), createTestDatabase('crash_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE payments (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL);
      INSERT INTO payments SELECT i, i * 0.01, timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1.000001 s'
        FROM generate_series(1, ${ROWS}) i;`);
    await sql(targetUrl, `CREATE TABLE payments (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL)`);
    // Only a client: the workers here are processes of their own.
    client = await connectClient();
  });
  afterAll(async () => {
    await client?.stop();
  });

  it('finishes on a new worker with every row exactly once', async () => {
    const env = { SRC: sourceUrl, TGT: targetUrl };
    const first = await startWorkerProcess(client.temporal, env);
    const plan = validatePlan({
      name: 'crash',
      source: { connection: 'SRC', table: 'payments', key: 'id' },
      target: { connection: 'TGT', table: 'payments' },
      transform: { sql: { id: 'id', amount: 'amount', paid_at: 'paid_at' } },
      shards: { count: 2 },
      throttle: { rowsPerSecond: 3000, batchSize: 200, concurrency: 2, checkpointSeconds: 2 },
    });
    const handle = await startMigration(client.client, client.temporal, plan, { execute: true });
    await eventually(async () => (await sqlRow(targetUrl, 'SELECT count(*)::int AS n FROM payments')).n >= 6000, 60_000, '6,000 rows copied');
    await first.kill();
    const { n: atKill } = await sqlRow(targetUrl, 'SELECT count(*)::int AS n FROM payments');
    expect(atKill).toBeLessThan(ROWS);
    // Another migration's copy count on the same target, which this one's end must leave alone.
    const ledger = async () => (await sql(targetUrl, 'SELECT shard_workflow_id AS id FROM ferry.copy_ledger ORDER BY 1')).map((r) => r.id as string);
    expect((await ledger()).some((id) => id.startsWith(`${handle.workflowId}/shard-`))).toBe(true);
    await sql(targetUrl, "INSERT INTO ferry.copy_ledger (shard_workflow_id, copy_call, rows_written) VALUES ('ferry/other/1/shard-0', 'run/1', 5)");

    const second = await startWorkerProcess(client.temporal, env);
    try {
      await ferryThrottleOpen(handle);
      const status = await handle.result();
      expect(status.phase).toBe('completed');
      // The retried copy calls went over batches the killed worker had written since its last
      // heartbeat reached the server: those rows are still Ferry's, not found already present.
      expect(status).toMatchObject({ rowsRead: ROWS, rowsWritten: ROWS, rowsFailed: 0 });
    } finally {
      await second.stop();
    }
    // The test's own comparison, not Ferry's: every source row once, with the same values.
    const target = await sql(targetUrl, `SELECT id::text, amount::text, paid_at::text FROM payments ORDER BY id`);
    const source = await sql(sourceUrl, `SELECT id::text, amount::text, paid_at::text FROM payments ORDER BY id`);
    expect(target.length).toBe(ROWS);
    expect(target).toEqual(source);
    // The shards' copy counts go with the migration's end.
    expect(await ledger()).toEqual(['ferry/other/1/shard-0']);
  });

  /** After the kill there is no need to dawdle. */
  async function ferryThrottleOpen(handle: Awaited<ReturnType<typeof startMigration>>) {
    await handle.executeUpdate('setThrottle', { args: [{ rowsPerSecond: null, by: 'test' }] });
  }
});
