/**
 * A pause sent while a shard's start is on its way to the server: the shard counts as running
 * in the migration and does not exist in Temporal yet, so the pause told to it then finds
 * nothing. It must still stop copying once it exists, as `ferry status` says "PAUSED". The start
 * is made slow on purpose (test/support/workflow-faults/slow-shard-start.ts), on real
 * PostgreSQL and a real Temporal server; the test's own SQL counts the rows and compares them.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardWorkflowId } from '../../lib/ids';
import { validatePlan } from '../../lib/plan';
import { migrationReport, pauseMigration, resumeMigration, startMigration } from '../../operator';
import { workflowsPath } from '../../workers/worker';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;

describe('a pause sent while a shard is being started', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('shard_start_race');
    await sql(url, `
      CREATE TABLE parcels (id int PRIMARY KEY, weight int NOT NULL);
      INSERT INTO parcels SELECT i, i % 31 FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE parcels_v2 (LIKE parcels INCLUDING ALL);`);
    const { code } = await bundleWorkflowCode({
      workflowsPath,
      workflowInterceptorModules: [path.join(__dirname, '..', 'support', 'workflow-faults', 'slow-shard-start.ts')],
      preloadModules: [path.join(path.dirname(workflowsPath), 'shared-modules.ts')],
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
    });
    worker = await startWorker({ DB: url }, { workflowBundle: { code } });
  }, 120_000);
  afterAll(async () => {
    await worker?.stop();
  });

  it('reaches the shard once it exists: no row is copied while the migration says paused', { timeout: 120_000 }, async () => {
    const plan = validatePlan({
      name: 'slow-shard-start',
      source: { connection: 'DB', table: 'parcels', key: 'id' },
      target: { connection: 'DB', table: 'parcels_v2' },
      transform: { sql: { id: 'id', weight: 'weight' } },
      shards: { count: 2 },
      // Slow enough that the copy is far from done when the test looks.
      throttle: { rowsPerSecond: 1000, batchSize: 100, budget: false },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const exists = (index: number) =>
      worker.client.workflow
        .getHandle(shardWorkflowId(id, index))
        .describe()
        .then(
          () => true,
          (error: unknown) => {
            if (error instanceof WorkflowNotFoundError) return false;
            throw error;
          },
        );
    // Shards count as running, and Temporal has not started them yet.
    const starting = await eventually(async () => {
      const running = (await migrationReport(worker.client, id)).status?.shards.filter((s) => s.state === 'running').map((s) => s.index) ?? [];
      if (running.length === 0) return undefined;
      const started = await Promise.all(running.map(exists));
      return started.some(Boolean) ? undefined : running;
    }, 60_000, 'shards being started');
    await pauseMigration(worker.client, id, { by: 'test', reason: 'paused while the shards start' });

    await eventually(async () => (await Promise.all(starting.map(exists))).every(Boolean), 30_000, 'the shards started');
    // Told once they exist, the shards stop after the batch under way.
    const paused = await eventually(async () => {
      const status = (await migrationReport(worker.client, id)).status;
      const reasons = status?.shards.filter((s) => starting.includes(s.index)).map((s) => s.throttleReason);
      return status?.paused && reasons?.every((reason) => reason === 'paused') ? status : undefined;
    }, 30_000, 'the started shards saying paused');
    expect(paused.paused?.reason).toBe('paused while the shards start');
    const count = async () => (await sqlRow(url, 'SELECT count(*)::int AS n FROM parcels_v2')).n as number;
    const before = await count();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await count()).toBe(before);
    expect(before).toBeLessThan(ROWS);

    await resumeMigration(worker.client, id, { by: 'test' });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    // The test's own check: every row arrived with its value.
    const digest = (table: string) => sqlRow(url, `SELECT count(*)::int AS n, md5(string_agg(id || ':' || weight, ',' ORDER BY id)) AS h FROM ${table}`);
    expect(await digest('parcels_v2')).toEqual(await digest('parcels'));
  });
});
