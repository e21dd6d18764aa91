/**
 * A flag change waits for every live application process, not the first to follow: the
 * migration takes its next step only once each process that acknowledged flags lately has
 * acknowledged the new version (or the soak time runs out). A process acknowledges only once
 * the writes it began under the earlier flags have settled, so this is what keeps a step from
 * overtaking a write made under the flags before it. With no live process known the wait lasts
 * the whole soak time, and a process still behind when it runs out is named in the record.
 */
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFerryClient } from '../../client';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import type { MigrationEvent } from '../../lib/status';
import { createTestDatabase, eventually, rowsDigest, sql, startWorker, type TestWorker } from '../support/harness';

describe('the flag gate', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('flag_gate');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, 500) i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  /** Milliseconds from each flag change to the record of how the applications answered it. */
  const soakWaits = (events: MigrationEvent[]): number[] => {
    const changes = events.filter((e) => e.kind === 'flags');
    const answers = events.filter((e) => e.kind === 'apps');
    expect(answers).toHaveLength(changes.length);
    return changes.map((change, i) => Date.parse(answers[i]!.at) - Date.parse(change.at));
  };

  /**
   * Two application processes on the migration's flags: the first reads them all along; the
   * second, not listening for changes, reads them only while `secondReads` is true.
   */
  const twoProcesses = (migration: string, ackEveryMs?: number) => {
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    const first = createFerryClient({ pool, migration, registry: new Registry(), cacheMs: 50, ackEveryMs });
    const second = createFerryClient({ pool, migration, registry: new Registry(), cacheMs: 50, listen: false, ackEveryMs });
    const processes = {
      first,
      second,
      secondReads: true,
      async close() {
        clearInterval(reading);
        await first.close();
        await second.close();
        await pool.end();
      },
    };
    const reading = setInterval(() => {
      void first.flags.get().catch(() => {});
      if (processes.secondReads) void second.flags.get().catch(() => {});
    }, 50);
    return processes;
  };
  const gateOf = async (id: string) => (await migrationReport(worker.client, id)).status?.gate?.name ?? null;

  it('waits for a second process still on the earlier flags, though the first follows at once', { timeout: 60_000 }, async () => {
    const plan = validatePlan({
      name: 'flag-gate',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id', owner: 'owner' } },
      // Long enough that only the second process's acknowledgement can end the wait within the test.
      lifecycle: { dualWrites: true, cutover: true, soakSeconds: 40 },
      verify: { enabled: false },
    });
    const processes = twoProcesses(plan.name);
    const { first, second } = processes;
    const ackOf = async (client: typeof first) =>
      (await sql(url, `SELECT version::int FROM ferry.flag_acks WHERE migration = $1 AND client_id = $2`, [plan.name, client.flags.clientId]))[0]?.version ?? 0;
    try {
      const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      const id = handle.workflowId;
      await eventually(async () => ((await gateOf(id)) === 'cutover-reads' ? true : undefined), 40_000, 'the cutover-reads gate');
      expect([await ackOf(first), await ackOf(second)]).toEqual([1, 1]);

      processes.secondReads = false;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'test'], worker.temporal)).code).toBe(ExitCode.ok);
      await eventually(async () => ((await ackOf(first)) === 2 ? true : undefined), 10_000, 'the first process on version 2');
      // The second process is still on version 1: the migration has not gone on to the next gate.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(await ackOf(second)).toBe(1);
      expect(await gateOf(id)).toBeNull();

      processes.secondReads = true;
      await eventually(async () => ((await gateOf(id)) === 'stop-old-writes' ? true : undefined), 20_000, 'the stop-old-writes gate');
      expect(await ackOf(second)).toBe(2);

      expect((await ferry(['abort', id, '--by', 'test', '--reason', 'done'], worker.temporal)).code).toBe(ExitCode.ok);
      expect((await handle.result()).phase).toBe('aborted');
    } finally {
      await processes.close();
    }
  });

  it('still waits for a process that was idle longer than the live window when the flags change', { timeout: 60_000 }, async () => {
    await sql(url, `CREATE TABLE accounts_idle (id int PRIMARY KEY, owner text NOT NULL)`);
    const plan = validatePlan({
      name: 'flag-gate-idle',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_idle' },
      transform: { sql: { id: 'id', owner: 'owner' } },
      lifecycle: { dualWrites: true, cutover: true, soakSeconds: 40 },
      verify: { enabled: false },
    });
    // Each process renews its acknowledgement every 200 ms (30 s unless told): an idle one stays live.
    const processes = twoProcesses(plan.name, 200);
    const { first, second } = processes;
    const ackOf = async (client: typeof first) =>
      (await sql(url, `SELECT version::int FROM ferry.flag_acks WHERE migration = $1 AND client_id = $2`, [plan.name, client.flags.clientId]))[0]?.version ?? 0;
    try {
      const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      const id = handle.workflowId;
      await eventually(async () => ((await gateOf(id)) === 'cutover-reads' ? true : undefined), 40_000, 'the cutover-reads gate');
      await eventually(async () => (await ackOf(first)) === 1 && (await ackOf(second)) === 1, 5000, 'both processes on version 1');
      // Both have been idle since: their last acknowledgement is older than the 120 s live window.
      processes.secondReads = false;
      await sql(url, `UPDATE ferry.flag_acks SET seen_at = now() - interval '5 minutes' WHERE migration = $1`, [plan.name]);
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect((await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'test'], worker.temporal)).code).toBe(ExitCode.ok);
      await eventually(async () => ((await ackOf(first)) === 2 ? true : undefined), 10_000, 'the first process on version 2');
      // The second process, live though idle, is still on version 1: the migration waits for it.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(await ackOf(second)).toBe(1);
      expect(await gateOf(id)).toBeNull();

      processes.secondReads = true;
      await eventually(async () => ((await gateOf(id)) === 'stop-old-writes' ? true : undefined), 20_000, 'the stop-old-writes gate');
      const events = (await migrationReport(worker.client, id)).status!.events;
      expect(events.filter((e) => e.kind === 'apps').at(-1)!.detail).toBe('2 application processes follow version 2');

      expect((await ferry(['abort', id, '--by', 'test', '--reason', 'done'], worker.temporal)).code).toBe(ExitCode.ok);
      expect((await handle.result()).phase).toBe('aborted');
    } finally {
      await processes.close();
    }
  });

  it('with no application process known, waits out the soak time after each flag change', { timeout: 60_000 }, async () => {
    await sql(url, `CREATE TABLE accounts_alone (id int PRIMARY KEY, owner text NOT NULL)`);
    const plan = validatePlan({
      name: 'flag-gate-alone',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_alone' },
      transform: { sql: { id: 'id', owner: 'owner' } },
      // A process that reads the flags without acknowledging them gets this long to follow.
      lifecycle: { dualWrites: true, noApps: true, soakSeconds: 3 },
      verify: { enabled: false },
    });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.phase).toBe('completed');
    const waits = soakWaits(status.events);
    expect(waits.length).toBeGreaterThan(0);
    for (const waited of waits) expect(waited).toBeGreaterThanOrEqual(3000);
    expect(status.events.find((e) => e.kind === 'apps')!.detail).toContain('0 application processes follow version 1');
    expect(await rowsDigest(url, 'SELECT id, owner FROM accounts_alone')).toEqual(await rowsDigest(url, 'SELECT id, owner FROM accounts'));
  });

  it('names a live process still on the earlier flags when the soak time runs out', { timeout: 60_000 }, async () => {
    await sql(url, `CREATE TABLE accounts_lagging (id int PRIMARY KEY, owner text NOT NULL)`);
    const plan = validatePlan({
      name: 'flag-gate-lagging',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_lagging' },
      transform: { sql: { id: 'id', owner: 'owner' } },
      lifecycle: { dualWrites: true, cutover: true, soakSeconds: 2 },
      verify: { enabled: false },
    });
    const processes = twoProcesses(plan.name);
    const { first, second } = processes;
    try {
      const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      const id = handle.workflowId;
      const acks = async () =>
        Object.fromEntries((await sql(url, `SELECT client_id, version::int FROM ferry.flag_acks WHERE migration = $1`, [plan.name])).map((a) => [a.client_id, a.version]));
      await eventually(async () => ((await gateOf(id)) === 'cutover-reads' ? true : undefined), 40_000, 'the cutover-reads gate');
      // Both processes live on version 1 (the second's first acknowledgement may come after the first's ended the wait).
      await eventually(async () => Object.keys(await acks()).length === 2, 5000, 'both processes on version 1');
      processes.secondReads = false;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'test'], worker.temporal)).code).toBe(ExitCode.ok);
      await eventually(async () => ((await gateOf(id)) === 'stop-old-writes' ? true : undefined), 20_000, 'the stop-old-writes gate');

      // By the test's own query: the second process is live and still on version 1.
      expect(await acks()).toEqual({ [first.flags.clientId]: 2, [second.flags.clientId]: 1 });
      const events = (await migrationReport(worker.client, id)).status!.events;
      expect(events.filter((e) => e.kind === 'apps').at(-1)!.detail).toBe(`1 application processes follow version 2; 1 had not after 2 s: ${second.flags.clientId}`);
      expect(soakWaits(events).at(-1)).toBeGreaterThanOrEqual(2000);

      expect((await ferry(['abort', id, '--by', 'test', '--reason', 'done'], worker.temporal)).code).toBe(ExitCode.ok);
      expect((await handle.result()).phase).toBe('aborted');
    } finally {
      await processes.close();
    }
  });
});
