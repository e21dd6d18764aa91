/**
 * Requests are taken only while they can be served: `abort` and `verify`, sent at every phase
 * of a migration, are each either served or refused with a reason, and never left waiting;
 * every migration then ends.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { Phase } from '../../lib/status';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 3000;
const BOUND_MS = 90_000;

type Outcome = 'served' | `refused: ${string}`;

/** Sends a request bounded in time: served, or refused with the reason. Hanging fails the test. */
async function outcomeOf(request: Promise<unknown>): Promise<Outcome> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    await Promise.race([request, timeout]);
    return 'served';
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError) return `refused: ${error.cause?.message ?? ''}`;
    // A run that has ended takes no update: the server says so.
    if (/already completed|not found/i.test((error as Error).message)) return `refused: ${(error as Error).message}`;
    throw error;
  } finally {
    clearTimeout(timer!);
  }
}

/** Abort and verify sent together, as two operators might. */
async function probe(handle: WorkflowHandle, phase: string): Promise<{ abort: Outcome; verify: Outcome }> {
  const [verify, abort] = await Promise.all([
    outcomeOf(handle.executeUpdate('verify', { args: [{ by: 'tester' }] })),
    outcomeOf(handle.executeUpdate('abort', { args: [{ by: 'tester', reason: `abort in ${phase}` }] })),
  ]);
  for (const outcome of [verify, abort]) expect(outcome, phase).toMatch(/^(served|refused: \S.*)$/);
  return { abort, verify };
}

describe('requests at every phase', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('serving');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function start(extra: Partial<PlanInput> = {}, execute = true) {
    table += 1;
    await sql(url, `CREATE TABLE accounts_${table} (id int PRIMARY KEY, owner text NOT NULL)`);
    const plan = validatePlan({
      name: `serving-${table}`,
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: `accounts_${table}` },
      transform: { sql: { id: 'id', owner: 'owner' } },
      // Each flag change waits out its soak (no application acknowledges): reads-on-new and
      // old-writes-off last that long.
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 3 },
      ...extra,
    });
    return { handle: await startMigration(worker.client, worker.temporal, plan, { execute }), table };
  }
  const phaseOf = async (id: string) => (await migrationReport(worker.client, id)).status?.phase;
  const reach = (id: string, phase: Phase) => eventually(async () => ((await phaseOf(id)) === phase ? true : undefined), 60_000, `phase ${phase}`);
  const gate = (handle: WorkflowHandle, name: string) =>
    handle.executeUpdate('approve', { args: [{ gate: name, by: 'tester' }] });
  const waitAt = (id: string, name: string) =>
    eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === name ? true : undefined), 60_000, `gate ${name}`);
  /** The run ends, whatever was asked of it. */
  const ends = async (handle: WorkflowHandle) => {
    let timer: NodeJS.Timeout;
    const result = await Promise.race([
      handle.result().then((status: { phase: Phase }) => status.phase, () => 'failed' as const),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the run did not end')), BOUND_MS))),
    ]).finally(() => clearTimeout(timer));
    return result;
  };

  it('dry run: both refused (a dry run writes nothing and ends by itself)', async () => {
    const { handle } = await start({}, false);
    const { abort, verify } = await probe(handle, 'dry run');
    expect(abort).toMatch(/^refused: (a dry run writes nothing|.*completed)/);
    expect(verify).toMatch(/^refused: /);
    expect(await ends(handle)).toBe('dry-run');
  });

  it('backfilling: verify refused until the backfill ends, abort served', async () => {
    const { handle } = await start({ throttle: { rowsPerSecond: 300, batchSize: 50, checkpointSeconds: 0.5 } });
    await reach(handle.workflowId, 'backfilling');
    const { abort, verify } = await probe(handle, 'backfilling');
    // Sent beside the abort: the run may already have ended when it arrives.
    expect(verify).toMatch(/^refused: .*(the backfill has not finished|an abort is under way|already completed)/);
    expect(abort).toBe('served');
    expect(await ends(handle)).toBe('aborted');
  });

  it('verifying: verify refused while one runs, abort served', async () => {
    // A row that differs makes verification re-check it after the in-flight delay: the phase lasts.
    const { handle, table: n } = await start({ verify: { inFlightDelaySeconds: 8 } });
    await sql(url, `INSERT INTO accounts_${n} VALUES (1, 'changed by hand')`);
    await reach(handle.workflowId, 'verifying');
    const { abort, verify } = await probe(handle, 'verifying');
    expect(verify).toMatch(/^refused: .*(a verification is already running|an abort is under way)/);
    expect(abort).toBe('served');
    expect(await ends(handle)).toBe('aborted');
  });

  it('awaiting approval: verify and abort both served', async () => {
    const { handle } = await start();
    await waitAt(handle.workflowId, 'cutover-reads');
    expect(await outcomeOf(handle.executeUpdate('verify', { args: [{ by: 'tester' }] }))).toBe('served');
    const { abort } = await probe(handle, 'awaiting-approval');
    expect(abort).toBe('served');
    expect(await ends(handle)).toBe('aborted');
  });

  it.each([
    ['reads-on-new', ['cutover-reads']],
    ['old-writes-off', ['cutover-reads', 'stop-old-writes']],
  ] as const)('%s: abort served, verify served at the next gate or refused', async (phase, gates) => {
    const { handle } = await start();
    for (const name of gates) {
      await waitAt(handle.workflowId, name);
      await gate(handle, name);
    }
    await reach(handle.workflowId, phase);
    const { abort } = await probe(handle, phase);
    expect(abort).toBe('served');
    expect(await ends(handle)).toBe('aborted');
  });

  it('cleanup, while the target is released, then completed: both refused with the reason, never left waiting', async () => {
    const { handle } = await start();
    for (const name of ['cutover-reads', 'stop-old-writes']) {
      await waitAt(handle.workflowId, name);
      await gate(handle, name);
    }
    await waitAt(handle.workflowId, 'cleanup');
    // Holding the migration's row in the registry keeps it in its last step, releasing the target.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT * FROM ferry.migrations WHERE migration_id = $1 FOR UPDATE', [handle.workflowId]);
      await gate(handle, 'cleanup');
      await reach(handle.workflowId, 'cleanup');
      const { abort, verify } = await probe(handle, 'cleanup');
      expect(abort).toMatch(/^refused: .*past its last step/);
      expect(verify).toMatch(/^refused: .*(past its last step|no gate is left)/);
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    expect(await ends(handle)).toBe('completed');

    const after = await probe(handle, 'completed');
    expect(after.abort).toMatch(/^refused: /);
    expect(after.verify).toMatch(/^refused: /);
  });

  it('aborted: both refused', async () => {
    const { handle } = await start();
    await waitAt(handle.workflowId, 'cutover-reads');
    await handle.executeUpdate('abort', { args: [{ by: 'tester', reason: 'first' }] });
    expect(await ends(handle)).toBe('aborted');
    const { abort, verify } = await probe(handle, 'aborted');
    expect(abort).toMatch(/^refused: /);
    expect(verify).toMatch(/^refused: /);
  });
});
