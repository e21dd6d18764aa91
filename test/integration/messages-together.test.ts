/**
 * Messages that reach a migration together, as those sent straight through Temporal while no
 * worker runs do when one comes back. A gate takes one decision: the one the migration sees first
 * is taken, and the others (an approval or a rejection of the gate already decided) are refused
 * with the reason, so nobody is told "approved" of a gate that was rejected, and the audit holds
 * one decision per gate. Which one the migration sees first Temporal does not promise. An abort that meets a migration failing at the same time is answered with the failure,
 * never as an abort that did not happen.
 */
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { workerPolls } from '../../operator/live-worker';
import { validatePlan } from '../../lib/plan';
import { temporalSettings, type TemporalSettings } from '../../lib/settings';
import { createFerryWorker } from '../../workers/worker';
import { connectClient, createTestDatabase, eventually, sql, uniqueName, type TestWorker } from '../support/harness';

/**
 * A worker on `temporal`'s task queue, stopped by the function it returns; once Temporal has seen
 * it poll, as status asks (on a loaded machine a new queue's first poll can come after a status).
 */
async function workerOn(client: Client, temporal: TemporalSettings, env: Record<string, string>): Promise<() => Promise<void>> {
  const worker = await createFerryWorker({ temporal, env, workflowBundle: { codePath: inject('workflowBundlePath') }, shutdownGraceSeconds: 1 });
  const running = worker.worker.run();
  await eventually(async () => (await workerPolls(client, temporal.taskQueue)) || undefined, 30_000, 'the worker polling');
  return async () => {
    worker.shutdown();
    await running;
  };
}

/** What an update came to: its answer, or the reason it was refused. */
const settle = (promise: Promise<unknown>) =>
  promise.then(
    (value) => ({ taken: true as const, value }),
    (error: unknown) => ({ taken: false as const, reason: error instanceof WorkflowUpdateFailedError ? (error.cause?.message ?? '') : String(error) }),
  );

describe('messages that arrive together', () => {
  let url: string;
  let connection: TestWorker;
  let client: Client;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('gate_decisions');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;`);
    connection = await connectClient();
    client = connection.client;
  });
  afterAll(async () => {
    await connection?.stop();
  });

  async function atGate() {
    table += 1;
    await sql(url, `CREATE TABLE items_${table} (id int PRIMARY KEY, label text NOT NULL)`);
    const plan = validatePlan({
      name: `gate-decisions-${table}`,
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: `items_${table}` },
      transform: { sql: { id: 'id', label: 'label' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const temporal = temporalSettings({}, { address: inject('temporalAddress'), taskQueue: uniqueName('gates') });
    const stopWorker = await workerOn(client, temporal, { DB: url });
    const handle = await startMigration(client, temporal, plan, { execute: true });
    await eventually(async () => (await migrationReport(client, handle.workflowId)).status?.gate?.name === 'cutover-reads', 60_000, 'the gate');
    return { plan, temporal, handle, stopWorker };
  }

  /** Stops the worker, sends `decisions` one after the other through Temporal, starts a worker again. */
  async function sentWhileNoWorker(temporal: TemporalSettings, stopWorker: () => Promise<void>, id: string, decisions: [string, object][]) {
    await stopWorker();
    const handle = client.workflow.getHandle(id);
    const outcomes = [];
    for (const [update, payload] of decisions) {
      outcomes.push(settle(handle.executeUpdate(update, { args: [payload] })));
      // The server usually hands them to the next worker in the order it admitted them, but an
      // update whose admission is retried (the server cleared its registry) comes after the others:
      // which decision is the gate's is not promised, only that there is one.
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const restart = await workerOn(client, temporal, { DB: url });
    return { outcomes: await Promise.all(outcomes), stopWorker: restart };
  }

  /** The one decision taken among `outcomes` (its index), checking that there is exactly one. */
  function theOneTaken(outcomes: { taken: boolean }[]): number {
    expect(outcomes.filter((o) => o.taken)).toHaveLength(1);
    return outcomes.findIndex((o) => o.taken);
  }

  const decisionsInAudit = async (id: string) => {
    const rows = await eventually(async () => {
      const found = await sql(url, 'SELECT kind, by, detail FROM ferry.audit WHERE migration_id = $1 ORDER BY at, entry', [id]);
      return found.some((r) => ['completed', 'aborted'].includes(r.kind)) ? found : undefined;
    }, 30_000, 'the end in ferry.audit');
    return rows.filter((r) => ['approve', 'reject', 'abort'].includes(r.kind)).map((r) => [r.kind, r.by, r.detail]);
  };
  const flagsOf = (name: string) => sql(url, 'SELECT write_old, write_new, read_from FROM ferry.flags WHERE migration = $1', [name]);

  it('an abort taken while the migration inspects a target that is missing is answered with the failure, not as an abort', async () => {
    const plan = validatePlan({
      name: 'gate-decisions-missing',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'no_such_table' },
      transform: { sql: { id: 'id', label: 'label' } },
    });
    const temporal = temporalSettings({}, { address: inject('temporalAddress'), taskQueue: uniqueName('gates') });
    // Started with no worker: the abort reaches the migration with its start, before it inspects.
    const handle = await startMigration(client, temporal, plan, { execute: true });
    const aborted = settle(handle.executeUpdate('abort', { args: [{ by: 'bob', reason: 'wrong target' }] }));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stopWorker = await workerOn(client, temporal, { DB: url });
    try {
      expect(await aborted).toEqual({
        taken: false,
        reason: 'the migration failed before the abort was served, so it was not aborted: nothing was rolled back (`ferry status` says why it failed)',
      });
      const failure = await handle.result().then(
        () => null,
        (error: { cause?: { message?: string } }) => error.cause?.message,
      );
      expect(failure).toContain('migration cannot start');
      expect(await sql(url, 'SELECT count(*)::int AS n FROM pg_tables WHERE tablename = $1', ['no_such_table'])).toEqual([{ n: 0 }]);
    } finally {
      await stopWorker();
    }
  });

  it('an approval and a rejection sent together while no worker runs: one is the gate\'s, the other is refused naming it', async () => {
    const { plan, temporal, handle, stopWorker } = await atGate();
    const id = handle.workflowId;
    let stop = stopWorker;
    try {
      const sent = await sentWhileNoWorker(temporal, stop, id, [
        ['approve', { gate: 'cutover-reads', by: 'alice' }],
        ['reject', { gate: 'cutover-reads', by: 'bob', reason: 'p99 doubled' }],
      ]);
      stop = sent.stopWorker;
      if (theOneTaken(sent.outcomes) === 0) {
        // Approved: the rejection must not abort what its sender's approval was told went ahead.
        expect(sent.outcomes[0]).toEqual({ taken: true, value: { gate: 'cutover-reads', forced: false } });
        expect(sent.outcomes[1]).toEqual({ taken: false, reason: 'gate cutover-reads was already approved by alice; a gate takes one decision' });
        await eventually(async () => ((await migrationReport(client, id)).status?.gate?.name === 'stop-old-writes' ? true : undefined), 60_000, 'the next gate');
        expect(await flagsOf(plan.name)).toEqual([{ write_old: true, write_new: true, read_from: 'new' }]);
        await handle.terminate('test over');
      } else {
        // Rejected: the approval is refused, and the migration aborts with the old store whole.
        expect(sent.outcomes[1]).toMatchObject({ taken: true });
        expect(sent.outcomes[0]).toEqual({ taken: false, reason: 'an abort is under way; it takes no more requests' });
        const status = await handle.result();
        expect(status.phase).toBe('aborted');
        expect(status.abort!.reason).toBe('rejected at gate cutover-reads: p99 doubled');
        expect(await decisionsInAudit(id)).toEqual([['reject', 'bob', expect.stringContaining('p99 doubled')]]);
        expect(await flagsOf(plan.name)).toEqual([{ write_old: true, write_new: false, read_from: 'old' }]);
      }
    } finally {
      await handle.terminate('test over').catch(() => {});
      await stop();
    }
  });

  it('two approvals of one gate sent together while no worker runs: one person approved it, the other hears who', async () => {
    const { plan, temporal, handle, stopWorker } = await atGate();
    const id = handle.workflowId;
    const waitAt = (gate: string) => eventually(async () => ((await migrationReport(client, id)).status?.gate?.name === gate ? true : undefined), 60_000, `gate ${gate}`);
    let stop = stopWorker;
    try {
      await handle.executeUpdate('approve', { args: [{ gate: 'cutover-reads', by: 'alice' }] });
      await waitAt('stop-old-writes');
      const sent = await sentWhileNoWorker(temporal, stop, id, [
        ['approve', { gate: 'stop-old-writes', by: 'carol', note: 'dashboards green' }],
        ['approve', { gate: 'stop-old-writes', by: 'dave' }],
      ]);
      stop = sent.stopWorker;
      const taken = theOneTaken(sent.outcomes);
      const [winner, loser] = taken === 0 ? ['carol', 1] : ['dave', 0];
      expect(sent.outcomes[taken]).toEqual({ taken: true, value: { gate: 'stop-old-writes', forced: false } });
      expect(sent.outcomes[loser]).toEqual({ taken: false, reason: `gate stop-old-writes was already approved by ${winner}; a gate takes one decision` });
      await waitAt('cleanup');

      // Not wedged: the next gate takes an approval as ever, and the migration completes.
      await handle.executeUpdate('approve', { args: [{ gate: 'cleanup', by: 'erin' }] });
      expect((await handle.result()).phase).toBe('completed');
      expect(await decisionsInAudit(id)).toEqual([
        ['approve', 'alice', 'gate cutover-reads approved'],
        ['approve', winner, winner === 'carol' ? 'gate stop-old-writes approved (dashboards green)' : 'gate stop-old-writes approved'],
        ['approve', 'erin', 'gate cleanup approved'],
      ]);
      expect(await flagsOf(plan.name)).toEqual([{ write_old: false, write_new: true, read_from: 'new' }]);
    } finally {
      await handle.terminate('test over').catch(() => {});
      await stop();
    }
  });
});
