/** Several worker processes share one task queue: shards spread across them, and one dying costs nothing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const ROWS = 40_000;

describe('several workers', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let client: TestWorker;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('multi_src'), createTestDatabase('multi_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE events (id bigint PRIMARY KEY, payload jsonb NOT NULL);
      INSERT INTO events SELECT i, jsonb_build_object('n', i) FROM generate_series(1, ${ROWS}) i;`);
    await sql(targetUrl, 'CREATE TABLE events (id bigint PRIMARY KEY, payload jsonb NOT NULL)');
    client = await connectClient();
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client?.stop();
  });

  it('spreads shards over three workers and finishes after one is killed, every row once', async () => {
    const env = { SRC: sourceUrl, TGT: targetUrl };
    for (let i = 0; i < 3; i += 1) workers.push(await startWorkerProcess(client.temporal, env));
    const plan = validatePlan({
      name: 'multi-worker',
      source: { connection: 'SRC', table: 'events', key: 'id' },
      target: { connection: 'TGT', table: 'events' },
      transform: { sql: { id: 'id', payload: 'payload' } },
      shards: { count: 6 },
      throttle: { rowsPerSecond: 6000, batchSize: 200, concurrency: 6, checkpointSeconds: 1 },
    });
    const handle = await startMigration(client.client, client.temporal, plan, { execute: true });
    await eventually(async () => ((await sqlRow(targetUrl, 'SELECT count(*)::int AS n FROM events')).n > ROWS / 4 ? true : undefined), 60_000, 'a quarter copied');
    await workers[0]!.kill();
    await handle.executeUpdate('setThrottle', { args: [{ rowsPerSecond: null, by: 'test' }] });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.verification).toMatchObject({ clean: true, rowsChecked: ROWS });

    // The test's own comparison: every row once, equal.
    const { n, differ } = await sqlRow(targetUrl, `SELECT count(*)::int AS n, count(*) FILTER (WHERE payload->>'n' <> id::text)::int AS differ FROM events`);
    expect({ n, differ }).toEqual({ n: ROWS, differ: 0 });

    // Copy calls ran on more than one worker.
    const identities = new Set<string>();
    for await (const run of client.client.workflow.list({ query: `WorkflowId STARTS_WITH '${handle.workflowId}/shard-'` })) {
      const history = await client.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      for (const event of history.events ?? []) {
        const identity = event.activityTaskStartedEventAttributes?.identity;
        if (identity) identities.add(identity);
      }
    }
    expect(identities.size).toBeGreaterThan(1);
  });
});
