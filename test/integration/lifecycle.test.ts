/** The whole lifecycle through the CLI: flags, gates, abort at each phase, one migration per target, the report. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 3000;

describe('the lifecycle', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('lifecycle');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function planFor(extra: Partial<PlanInput> = {}) {
    table += 1;
    await sql(url, `CREATE TABLE accounts_${table} (id int PRIMARY KEY, owner text NOT NULL)`);
    return validatePlan({
      name: `lifecycle-${table}`,
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: `accounts_${table}` },
      transform: { sql: { id: 'id', owner: 'owner' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
      ...extra,
    });
  }
  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;
  const waitingAt = (id: string, gate: string) =>
    eventually(async () => ((await statusOf(id)).gate?.name === gate ? true : undefined), 60_000, `gate ${gate}`);
  const flagsRow = async (name: string) =>
    sqlRow(url, `SELECT write_old, write_new, read_from, compare_percent, version::int FROM ferry.flags WHERE migration = $1`, [name]);

  it('moves reads and writes behind approved gates, and records every decision', async () => {
    const plan = await planFor({ lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2, compareReadsPercent: 10 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await waitingAt(id, 'cutover-reads');
    expect(await flagsRow(plan.name)).toMatchObject({ write_old: true, write_new: true, read_from: 'old' });
    // Findable by Ferry's search attributes, in ferry list and in Temporal's own list and UI.
    await eventually(async () => {
      const listed = await ferry(['list', '--plan', plan.name, '--phase', 'awaiting-approval', '--target', `public.accounts_${table}`], worker.temporal);
      return new RegExp(`^${id}\\s+${plan.name}\\s+public\\.accounts_${table}\\s+awaiting-approval\\s`, 'm').test(listed.stdout) ? true : undefined;
    }, 20_000, 'the listing by search attributes');
    expect((await ferry(['list', '--phase', 'completed'], worker.temporal)).stdout).not.toContain(id);
    const status = await ferry(['status', id], worker.temporal);
    expect(status.stdout).toContain('GATE      waiting at cutover-reads');
    expect(status.stdout).toContain(`ferry approve ${id} --gate cutover-reads`);

    // Refused: the wrong gate, no approver; nothing changes.
    const wrong = await ferry(['approve', id, '--gate', 'stop-old-writes', '--by', 'alice'], worker.temporal);
    expect(wrong.code).toBe(ExitCode.badInput);
    expect(wrong.stderr).toContain('gate "stop-old-writes" is not the one waiting; the migration waits at "cutover-reads"');
    const noGate = await ferry(['approve', id, '--by', 'alice'], worker.temporal);
    expect(noGate.code).toBe(ExitCode.badInput);
    expect(noGate.stderr).toContain("required option '--gate <name>' not specified");
    await expect(handle.executeUpdate('approve', { args: [{ gate: 'cutover-reads', by: ' ' }] })).rejects.toMatchObject({
      cause: { message: expect.stringContaining('the approver is missing') },
    });
    expect((await statusOf(id)).gate?.name).toBe('cutover-reads');

    expect((await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'alice', '--note', 'dashboards green'], worker.temporal)).code).toBe(ExitCode.ok);
    await waitingAt(id, 'stop-old-writes');
    expect(await flagsRow(plan.name)).toMatchObject({ write_old: true, write_new: true, read_from: 'new', compare_percent: 10 });
    expect((await ferry(['approve', id, '--gate', 'stop-old-writes', '--by', 'bob'], worker.temporal)).code).toBe(ExitCode.ok);
    await waitingAt(id, 'cleanup');
    expect(await flagsRow(plan.name)).toMatchObject({ write_old: false, write_new: true, read_from: 'new' });
    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);

    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.rowsWritten).toBe(ROWS);
    expect(result.phases.map((p) => p.name)).toEqual([
      'dual-write', 'backfill', 'verify', 'gate:cutover-reads', 'reads-to-new', 'gate:stop-old-writes', 'old-writes-off', 'gate:cleanup', 'cleanup',
    ]);
    // --by names are kept beside the identity the CLI runs as.
    expect(result.events.filter((e) => e.kind === 'approve').map((e) => [e.by, e.detail])).toEqual([
      [expect.stringMatching(/^alice \(as \S+@\S+\)$/), 'gate cutover-reads approved (dashboards green)'],
      [expect.stringMatching(/^bob \(as /), 'gate stop-old-writes approved'],
      [expect.stringMatching(/^carol \(as /), 'gate cleanup approved'],
    ]);

    const markdown = await ferry(['report', id], worker.temporal);
    expect(markdown.code).toBe(ExitCode.ok);
    expect(markdown.stdout).toContain(`# Migration ${id}`);
    expect(markdown.stdout).toContain('outcome: **completed**');
    expect(markdown.stdout).toMatch(/\| approve \| alice \(as [^|]+\) \| gate cutover-reads approved \(dashboards green\) \|/);
    expect(markdown.stdout).toContain('drop or archive public.accounts once nothing reads it');
    const json = JSON.parse((await ferry(['report', id, '--format', 'json'], worker.temporal)).stdout);
    expect(json).toMatchObject({ outcome: 'completed', rows: { read: ROWS, copied: ROWS }, flags: { writeOld: false, readFrom: 'new' } });
    expect(json.phases).toHaveLength(9);
    expect(json.verification).toMatchObject({ clean: true, rowsChecked: ROWS });
  });

  /** Runs a migration to a point, aborts it there, and returns the final status. */
  async function abortAt(point: 'backfill' | 'cutover-reads' | 'stop-old-writes' | 'cleanup'): Promise<{ status: MigrationStatus; name: string }> {
    const plan = await planFor(point === 'backfill' ? { throttle: { rowsPerSecond: 300, batchSize: 50, checkpointSeconds: 0.5 } } : {});
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    if (point === 'backfill') {
      await eventually(async () => ((await statusOf(id)).rowsRead > 0 ? true : undefined), 60_000, 'copying');
    } else {
      const gates = ['cutover-reads', 'stop-old-writes', 'cleanup'];
      for (const gate of gates.slice(0, gates.indexOf(point))) {
        await waitingAt(id, gate);
        await ferry(['approve', id, '--gate', gate, '--by', 'alice'], worker.temporal);
      }
      await waitingAt(id, point);
    }
    const aborted = await ferry(['abort', id, '--reason', `test abort at ${point}`, '--by', 'dave'], worker.temporal);
    expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
    expect(aborted.stdout).toContain(`migration ${id} aborted in phase`);
    return { status: await handle.result(), name: plan.name };
  }

  it.each(['backfill', 'cutover-reads', 'stop-old-writes'] as const)('aborts at %s back to the old table alone', async (point) => {
    const { status, name } = await abortAt(point);
    expect(status.phase).toBe('aborted');
    expect(status.abort).toMatchObject({ by: expect.stringMatching(/^dave \(as /), reason: `test abort at ${point}` });
    expect(await flagsRow(name)).toMatchObject({ write_old: true, write_new: false, read_from: 'old' });
    const { state } = await sqlRow(url, `SELECT state FROM ferry.migrations WHERE plan_name = $1`, [name]);
    expect(state).toBe('aborted');
    if (point === 'backfill') {
      // The shards were cancelled: no more rows arrive.
      const { n } = await sqlRow(url, `SELECT count(*)::int AS n FROM accounts_${table}`);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await sqlRow(url, `SELECT count(*)::int AS n FROM accounts_${table}`)).n).toBe(n);
      expect(n).toBeLessThan(ROWS);
    }
  });

  it('after old writes are off, an abort turns them back on first and keeps reads on the new table', async () => {
    const { status, name } = await abortAt('cleanup');
    expect(status.abort!.flagsNote).toContain('old writes were off');
    expect(await flagsRow(name)).toMatchObject({ write_old: true, write_new: true, read_from: 'new' });
  });

  it('aborts when a gate is rejected, and when it expires', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await waitingAt(handle.workflowId, 'cutover-reads');
    const rejected = await ferry(['reject', handle.workflowId, '--gate', 'cutover-reads', '--by', 'erin', '--reason', 'p99 doubled'], worker.temporal);
    expect(rejected.code).toBe(ExitCode.ok);
    const status = await handle.result();
    expect(status.abort).toMatchObject({ by: expect.stringMatching(/^erin \(as /), reason: 'rejected at gate cutover-reads: p99 doubled' });

    const expiring = await planFor({ lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2, gates: { expirySeconds: 2, reminderSeconds: 0.5 } } });
    const expired = await (await startMigration(worker.client, worker.temporal, expiring, { execute: true })).result();
    expect(expired.phase).toBe('aborted');
    expect(expired.abort!.reason).toBe('gate cutover-reads expired after 2 s');
    expect(expired.events.map((e) => e.kind)).toContain('gate-expired');
    expect(await flagsRow(expiring.name)).toMatchObject({ write_old: true, write_new: false });
  });

  it('a gate that waits long continues-as-new and goes on waiting where it was', async () => {
    // The test server suggests continue-as-new at 40 events; reminders and figures every half
    // second make the gate's history reach that within seconds.
    const plan = await planFor({ lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2, gates: { reminderSeconds: 0.5, figuresEverySeconds: 0.5 } } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await waitingAt(id, 'cutover-reads');
    const first = (await statusOf(id)).gate!;
    const runIds = new Set<string>();
    await eventually(async () => {
      runIds.add((await worker.client.workflow.getHandle(id).describe()).runId);
      return runIds.size >= 3 ? true : undefined;
    }, 60_000, 'two continue-as-new runs at the gate');
    const later = (await statusOf(id)).gate!;
    expect(later).toMatchObject({ name: 'cutover-reads', waitingSince: first.waitingSince, expiresAt: first.expiresAt });
    expect(later.reminders).toBeGreaterThanOrEqual(first.reminders);

    for (const gate of ['cutover-reads', 'stop-old-writes', 'cleanup']) {
      await waitingAt(id, gate);
      const approved = await ferry(['approve', id, '--gate', gate, '--by', 'alice'], worker.temporal);
      expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    }
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.rowsWritten).toBe(ROWS);
    // One record a gate, however many runs it waited through.
    expect(result.phases.map((p) => p.name)).toEqual([
      'dual-write', 'backfill', 'verify', 'gate:cutover-reads', 'reads-to-new', 'gate:stop-old-writes', 'old-writes-off', 'gate:cleanup', 'cleanup',
    ]);
    expect(result.events.filter((e) => e.kind === 'approve')).toHaveLength(3);
  });

  it('refuses a second migration on a target while one runs, and a re-run without --rerun', async () => {
    const plan = await planFor({ lifecycle: { dualWrites: false, cutover: false }, throttle: { rowsPerSecond: 200, batchSize: 50 } });
    const first = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(async () => ((await statusOf(first.workflowId)).rowsRead > 0 ? true : undefined), 60_000, 'copying');
    const second = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await expect(second.result()).rejects.toMatchObject({ cause: { cause: { message: expect.stringContaining(`is being migrated by ${first.workflowId}`) } } });
    const refused = await ferry(['status', second.workflowId], worker.temporal);
    expect(refused.code).toBe(ExitCode.failed);
    expect(refused.stdout).toContain(`failure: target public.accounts_${table} is being migrated by ${first.workflowId}; wait for it to end or abort it (ferry abort)`);
    const listed = await ferry(['list'], worker.temporal);
    expect(listed.stdout).toMatch(new RegExp(`^${first.workflowId}\\s+\\S+\\s+\\S+\\s+backfilling\\s`, 'm'));

    await ferry(['throttle', first.workflowId, '--rows-per-second', 'unlimited'], worker.temporal);
    await first.result();
    const third = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await expect(third.result()).rejects.toMatchObject({ cause: { cause: { message: expect.stringContaining('already holds a finished migration') } } });
    const rerun = await startMigration(worker.client, worker.temporal, plan, { execute: true, rerun: true });
    expect((await rerun.result()).phase).toBe('completed');
  });

  it('a pure backfill touches no flags and needs no gate', async () => {
    const plan = await planFor({ lifecycle: { dualWrites: false, cutover: false } });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.phase).toBe('completed');
    expect(status.flags).toBeNull();
    expect(status.phases.map((p) => p.name)).toEqual(['backfill', 'verify']);
    expect(await sql(url, 'SELECT 1 FROM ferry.flags WHERE migration = $1', [plan.name])).toEqual([]);
  });
});
