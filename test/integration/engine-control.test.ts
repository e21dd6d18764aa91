/** Steering a running backfill: throttle, refused throttles, pause and resume, continue-as-new. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { SHARD_CONTROL_QUERY, shardWorkflowId } from '../../lib/ids';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { ShardControl } from '../../workflows/messages';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;

describe('steering a backfill', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('control');
    await sql(url, `
      CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) i;
      ANALYZE items;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  /** A fresh target and a plan copying into it. */
  async function planWith(throttle: PlanInput['throttle'], extra: Partial<PlanInput> = {}) {
    table += 1;
    await sql(url, `CREATE TABLE items_${table} (id bigint PRIMARY KEY, name text NOT NULL)`);
    return {
      target: `items_${table}`,
      plan: validatePlan({
        name: `control-${table}`,
        source: { connection: 'DB', table: 'items', key: 'id' },
        target: { connection: 'DB', table: `items_${table}` },
        transform: { sql: { id: 'id', name: 'name' } },
        throttle,
        // These tests steer the copy; verification has tests of its own.
        verify: { enabled: false },
        ...extra,
      }),
    };
  }
  const countOf = async (target: string) => (await sqlRow(url, `SELECT count(*)::int AS n FROM ${target}`)).n as number;

  it('applies a throttle change within seconds and records who made it', async () => {
    const { plan, target } = await planWith({ rowsPerSecond: 400, batchSize: 100, concurrency: 1, checkpointSeconds: 1 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => (await countOf(target)) > 0, 20_000, 'the first rows');

    // At 400 rows/s this would take 50 s; opened up it takes a second or two.
    const changed = await ferry(['throttle', handle.workflowId, '--rows-per-second', '50000', '--batch-size', '5000', '--by', 'alice', '--reason', 'night'], worker.temporal);
    expect(changed.stderr).toBe('');
    expect(changed.code).toBe(ExitCode.ok);
    expect(changed.stdout).toContain('50,000 rows/s, batches up to 5,000 rows');
    const changedAt = Date.now();
    const status = await handle.result();
    expect(Date.now() - changedAt).toBeLessThan(20_000);
    expect(status.rowsWritten).toBe(ROWS);
    expect(status.throttle).toEqual({ rowsPerSecond: 50000, batchSize: 5000, concurrency: 1 });
    expect(status.events).toEqual([
      expect.objectContaining({ kind: 'throttle', by: expect.stringMatching(/^alice \(as \S+\)$/), detail: 'rowsPerSecond 400 -> 50000, batchSize 100 -> 5000 (night)' }),
    ]);
  });

  it('a lower concurrency stops no running shard: those still copying share the rows/s limit, and the answer says so', async () => {
    const { plan } = await planWith({ rowsPerSecond: 400, batchSize: 20, concurrency: 4, checkpointSeconds: 1 }, { shards: { count: 4 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => {
      const { status } = await migrationReport(worker.client, id);
      return status!.shards.length === 4 && status!.shards.every((s) => s.state === 'running' && s.rowsRead > 0);
    }, 30_000, 'four shards copying');
    // Each shard's own throttle: the rate its copy calls keep to.
    const shardRates = () =>
      Promise.all([0, 1, 2, 3].map(async (index) => (await worker.client.workflow.getHandle(shardWorkflowId(id, index)).query<ShardControl>(SHARD_CONTROL_QUERY)).throttle.rowsPerSecond!));
    expect(await shardRates()).toEqual([100, 100, 100, 100]);

    const lowered = await ferry(['throttle', id, '--concurrency', '1', '--by', 'alice'], worker.temporal);
    expect(lowered.code, lowered.stderr).toBe(ExitCode.ok);
    const overrun = '1 shard at once (the 4 shards already copying finish their ranges, sharing the rows/s limit; no new shard starts until they have all finished)';
    expect(lowered.stdout).toContain(`400 rows/s, batches up to 20 rows, ${overrun}`);
    // The change is answered once every running shard has been told of it.
    const rates = await shardRates();
    expect(rates.reduce((sum, rate) => sum + rate, 0)).toBeLessThanOrEqual(400);
    expect(rates).toEqual([100, 100, 100, 100]);
    const status = await ferry(['status', id], worker.temporal);
    expect(status.stdout).toContain(`throttle  400 rows/s, batches up to 20 rows, ${overrun}`);
    await handle.terminate('test done');
  });

  it('refuses bad throttle values with a reason and changes nothing', async () => {
    const { plan } = await planWith({ rowsPerSecond: 200, batchSize: 50, concurrency: 1, checkpointSeconds: 1 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    for (const [flags, message] of [
      [['--rows-per-second', '-5'], 'rowsPerSecond must be between 1 and 10000000, not -5'],
      [['--rows-per-second', '0'], 'rowsPerSecond must be between 1 and 10000000, not 0'],
      [['--rows-per-second', 'fast'], '--rows-per-second must be a whole number, not "fast"'],
      [['--batch-size', '1e9'], '--batch-size must be a whole number, not "1e9"'],
      [['--batch-size', '1000000000'], 'batchSize must be between 10 and 100000'],
      [['--concurrency', '0'], 'concurrency must be between 1 and 64, not 0'],
      [[], 'nothing to change'],
    ] as const) {
      const result = await ferry(['throttle', handle.workflowId, ...flags], worker.temporal);
      expect(result.code, flags.join(' ')).toBe(ExitCode.badInput);
      expect(result.stderr).toContain(message);
    }
    // The workflow's own validator refuses too (for Temporal's CLI and UI, which skip ours).
    await expect(handle.executeUpdate('setThrottle', { args: [{ batchSize: -1 }] })).rejects.toMatchObject({
      cause: { message: expect.stringContaining('batchSize must be between 10 and 100000, not -1') },
    });

    const report = await migrationReport(worker.client, handle.workflowId);
    expect(report.status!.throttle).toEqual({ rowsPerSecond: 200, batchSize: 50, concurrency: 1 });
    expect(report.status!.events).toEqual([]);
    const history = await handle.fetchHistory();
    expect(history.events!.some((e) => e.workflowExecutionUpdateAcceptedEventAttributes)).toBe(false);
    await handle.terminate('test done');
  });

  it('pauses and resumes: no rows move while paused', async () => {
    const { plan, target } = await planWith({ rowsPerSecond: 2000, batchSize: 100, checkpointSeconds: 0.5 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => (await countOf(target)) > 0, 20_000, 'the first rows');

    const paused = await ferry(['pause', handle.workflowId, '--by', 'bob', '--reason', 'deploy'], worker.temporal);
    expect(paused.code).toBe(ExitCode.ok);
    await eventually(async () => {
      const { status } = await migrationReport(worker.client, handle.workflowId);
      return status!.shards.every((s) => s.state !== 'running' || s.throttleReason === 'paused');
    }, 20_000, 'the shards to pause');
    const whilePaused = await countOf(target);
    const status = await ferry(['status', handle.workflowId], worker.temporal);
    expect(status.stdout).toMatch(/PAUSED for \S+ by bob \(as \S+\): deploy/);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await countOf(target)).toBe(whilePaused);
    expect(whilePaused).toBeLessThan(ROWS);

    expect((await ferry(['resume', handle.workflowId, '--by', 'bob'], worker.temporal)).code).toBe(ExitCode.ok);
    await ferry(['throttle', handle.workflowId, '--rows-per-second', 'unlimited'], worker.temporal);
    const result = await handle.result();
    expect(result.rowsWritten).toBe(ROWS);
    expect(await countOf(target)).toBe(ROWS);
    expect(result.events.map((e) => [e.kind, e.by])).toEqual([
      ['pause', expect.stringMatching(/^bob \(as /)],
      ['resume', expect.stringMatching(/^bob \(as /)],
      ['throttle', expect.any(String)],
    ]);
  });

  it('reaches a copy call that runs for minutes: a pause and a throttle change apply within seconds', async () => {
    // One shard, one call of up to 300 s: only its watch on the shard can make it return early.
    const { plan, target } = await planWith({ rowsPerSecond: 400, batchSize: 100, concurrency: 1, checkpointSeconds: 300 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => (await countOf(target)) > 0, 20_000, 'the first rows');

    expect((await ferry(['pause', handle.workflowId, '--by', 'dan'], worker.temporal)).code).toBe(ExitCode.ok);
    await eventually(async () => {
      const { status } = await migrationReport(worker.client, handle.workflowId);
      return status!.shards.every((s) => s.state !== 'running' || s.throttleReason === 'paused');
    }, 10_000, 'the shard to pause');
    const whilePaused = await countOf(target);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await countOf(target)).toBe(whilePaused);

    expect((await ferry(['resume', handle.workflowId, '--by', 'dan'], worker.temporal)).code).toBe(ExitCode.ok);
    await eventually(async () => (await countOf(target)) > whilePaused, 10_000, 'rows after the resume');
    // At 400 rows/s the rest takes most of a minute; opened up, a few seconds.
    expect((await ferry(['throttle', handle.workflowId, '--rows-per-second', '50000', '--batch-size', '5000'], worker.temporal)).code).toBe(ExitCode.ok);
    const changedAt = Date.now();
    const result = await handle.result();
    expect(Date.now() - changedAt).toBeLessThan(15_000);
    expect(result.rowsWritten).toBe(ROWS);
    expect(await countOf(target)).toBe(ROWS);
    // Three calls: until the pause, until the throttle change, to the end (over the shard's runs:
    // the tests' server has shards continue-as-new every few dozen events).
    let calls = 0;
    for await (const run of worker.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}/shard-0'` })) {
      const history = await worker.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      calls += history.events!.filter((e) => e.activityTaskScheduledEventAttributes).length;
    }
    expect(calls).toBe(3);
  });

  it('takes a pause while no worker runs, since pause is a signal', async () => {
    const { plan } = await planWith({ rowsPerSecond: 100, batchSize: 10, checkpointSeconds: 1 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await handle.signal('pause', { by: 'carol' });
    await eventually(async () => (await migrationReport(worker.client, handle.workflowId)).status!.paused?.by === 'carol', 20_000);
    await handle.terminate('test done');
  });

  it('continues-as-new mid-shard without losing or repeating a row', async () => {
    // The test server suggests continue-as-new after 40 history events: a few copy calls.
    const { plan, target } = await planWith({ rowsPerSecond: 10_000, batchSize: 200, checkpointSeconds: 0.2 });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const status = await handle.result();
    expect(status.rowsRead).toBe(ROWS);
    expect(status.rowsWritten).toBe(ROWS);
    expect(await countOf(target)).toBe(ROWS);
    const runs = [];
    for await (const run of worker.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}/shard-0'` })) runs.push(run.status.name);
    expect(runs.length).toBeGreaterThan(2);
    expect(runs.filter((s) => s === 'CONTINUED_AS_NEW').length).toBe(runs.length - 1);
    const { differ } = await sqlRow(url, `SELECT count(*)::int AS differ FROM items i FULL JOIN ${target} t USING (id) WHERE i.name IS DISTINCT FROM t.name`);
    expect(differ).toBe(0);
  });
});
