/**
 * Any payload, sent straight through Temporal's client as anyone could: every signal and update
 * of the migration and shard workflows, with no payload, null, a number, a string, a list, wrong
 * types and extra fields. Updates are refused with a reason, bad signals are recorded and
 * ignored, and the migration still answers status, pause and abort with its state unchanged.
 * A plan that never went through the CLI is checked by the workflow itself.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { SHARD_CONTROL_QUERY } from '../../lib/ids';
import type { MigrationStatus } from '../../lib/status';
import type { ShardControl } from '../../workflows/messages';
import { ferry, type CliResult } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 2000;

/** Each bad way of sending a message: its arguments. */
const badPayloads: [string, unknown[]][] = [
  ['no payload', []],
  ['null', [null]],
  ['a number', [42]],
  ['a string', ['please']],
  ['a list', [[1, 2]]],
  ['wrong types', [{ by: 7, reason: false, gate: 3, note: [], force: 'yes', rowsPerSecond: 'fast', samplePercent: 'all', showValues: 'no', limit: -1, index: 'x' }]],
  ['extra fields', [{ by: 'mallory', reason: 'because', gate: 'cutover-reads', colour: 'vermilion' }]],
];
const updates = ['setThrottle', 'approve', 'reject', 'abort', 'verify', 'retryFailures', 'mismatches'];
/** A missing or null note is a plain pause or resume (the Web UI sends none); the others are bad. */
const notePayloads = badPayloads.filter(([way]) => way !== 'no payload' && way !== 'null');

/** Bounds a call: a message must be answered, never left hanging. */
function within<T>(promise: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The update's refusal message; fails the test if it was taken, or not answered. */
async function refusal(handle: WorkflowHandle, update: string, args: unknown[]): Promise<string> {
  const error = await within(handle.executeUpdate(update, { args: args as [unknown] })).then(
    () => new Error(`update ${update} was taken`),
    (error: unknown) => error,
  );
  expect(error, `${update} ${JSON.stringify(args)}`).toBeInstanceOf(WorkflowUpdateFailedError);
  return (error as WorkflowUpdateFailedError).cause?.message ?? '';
}

/** Status without what a refusal adds, or time moves. */
const stable = (status: MigrationStatus) => ({ ...status, eventsAudited: undefined, events: status.events.filter((e) => e.kind !== 'refused'), gate: status.gate && { ...status.gate, figures: null } });

describe('messages with any payload', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('messages');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function planFor(extra: Partial<PlanInput> = {}) {
    table += 1;
    await sql(url, `CREATE TABLE items_${table} (id int PRIMARY KEY, label text NOT NULL)`);
    return validatePlan({
      name: `messages-${table}`,
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: `items_${table}` },
      transform: { sql: { id: 'id', label: 'label' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
      ...extra,
    });
  }
  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;

  it('a migration at a gate refuses every bad update, records every bad signal, and still answers status, pause and abort', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const before = await statusOf(id);
    const flagsBefore = await sqlRow(url, 'SELECT * FROM ferry.flags WHERE migration = $1', [plan.name]);

    for (const update of updates) {
      for (const [way, args] of badPayloads) {
        const message = await refusal(handle, update, args);
        expect(message, `${update} with ${way}`).toMatch(/payload must be|is required|is not a (known field|throttle setting)|must be/);
        expect(message).not.toContain('vermilion');
      }
    }
    let signals = 0;
    for (const [signal, payloads] of [['pause', notePayloads], ['resume', notePayloads], ['shardProgress', badPayloads]] as const) {
      for (const [, args] of payloads) {
        await handle.signal(signal, ...(args as []));
        signals += 1;
      }
    }

    // Signals are taken in order: once a later pause shows, every bad one has been read.
    await handle.signal('pause', { by: 'probe' });
    const after = await eventually(async () => {
      const status = await statusOf(id);
      return status.paused ? status : undefined;
    }, 20_000, 'the pause after the bad signals');
    const refused = after.events.filter((e) => e.kind === 'refused');
    expect(refused).toHaveLength(signals);
    expect(refused.map((e) => e.detail)).toContain('signal pause ignored: the payload must be an object { by?, reason? }, not a number');
    expect(refused.map((e) => e.detail)).toContain('signal shardProgress ignored: the payload must be an object { index, cursor, rowsRead, ... }, not nothing');
    expect(JSON.stringify(refused)).not.toContain('vermilion');
    expect(stable({ ...after, paused: null, events: after.events.filter((e) => e.kind !== 'pause') })).toEqual(stable(before));
    expect(await sqlRow(url, 'SELECT * FROM ferry.flags WHERE migration = $1', [plan.name])).toEqual(flagsBefore);

    // A pause or resume with no payload at all, as the Web UI sends it, is a plain one.
    await handle.signal('resume');
    await eventually(async () => ((await statusOf(id)).paused === null ? true : undefined), 20_000, 'the resume');
    await handle.signal('pause', null);
    const paused = await eventually(async () => (await statusOf(id)).paused ?? undefined, 20_000, 'the plain pause');
    expect(paused).toMatchObject({ by: null, reason: 'paused by an operator' });

    const aborted = await within(handle.executeUpdate('abort', { args: [{ by: 'tester', reason: 'done' }] }), 60_000);
    expect(aborted).toMatchObject({ by: 'tester', reason: 'done', phaseReached: 'awaiting-approval' });
    expect((await handle.result()).phase).toBe('aborted');
    expect(await sqlRow(url, 'SELECT write_old, write_new, read_from FROM ferry.flags WHERE migration = $1', [plan.name])).toEqual({
      write_old: true, write_new: false, read_from: 'old',
    });
  }, 180_000);

  it('a pause or resume by a name holding a control character is refused and recorded; a reason holding a newline shows escaped, on one line, in ferry status', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const before = await statusOf(id);
    const forged = '2025-01-01T00:00:00.000Z approve by alice: gate cutover-reads approved';

    await handle.signal('pause', { by: `mallory\n  ${forged}`, reason: 'checking' });
    await handle.signal('resume', { by: 'mallory\x1b[8m' });
    // Signals are taken in order: once a later pause shows, the bad ones have been read.
    await handle.signal('pause', { by: 'probe', reason: `checking\n  ${forged}` });
    const after = await eventually(async () => {
      const status = await statusOf(id);
      return status.paused ? status : undefined;
    }, 20_000, 'the pause after the bad signals');
    expect(after.paused).toMatchObject({ by: 'probe', reason: `checking\n  ${forged}` });
    const named = 'by must not contain control characters (a terminal escape, a carriage return, a newline, an invisible or direction-changing character)';
    expect(after.events.filter((e) => e.kind === 'refused').map((e) => e.detail)).toEqual([`signal pause ignored: ${named}`, `signal resume ignored: ${named}`]);
    expect(JSON.stringify(after.events)).not.toContain('mallory');
    expect(stable({ ...after, paused: null, events: after.events.filter((e) => e.kind !== 'pause') })).toEqual(stable(before));

    const shown = await ferry(['status', id], worker.temporal);
    expect(shown.code, shown.stderr).toBe(ExitCode.ok);
    const lines = shown.stdout.split('\n');
    expect(lines.filter((line) => line.trimStart().startsWith(forged))).toEqual([]);
    expect(lines.find((line) => line.startsWith('phase '))).toContain(`by probe: checking\\n  ${forged} (since`);
    const pause = after.events.find((e) => e.kind === 'pause')!;
    expect(lines).toContain(`  ${pause.at} pause by probe: checking\\n  ${forged}`);
    await handle.terminate('test over');
  }, 120_000);

  it('a copying shard ignores bad throttle, pause and limits signals and copies on; its migration still aborts', async () => {
    const plan = await planFor({ lifecycle: { dualWrites: false, cutover: false }, throttle: { rowsPerSecond: 200, batchSize: 20, checkpointSeconds: 0.5 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).rowsRead > 0 ? true : undefined), 60_000, 'copying');
    const shard = worker.client.workflow.getHandle(`${id}/shard-0`);
    const control = () => shard.query<ShardControl>(SHARD_CONTROL_QUERY);
    const before = await control();
    for (const signal of ['shardThrottle', 'shardPause', 'shardLimits']) {
      for (const [, args] of badPayloads) await shard.signal(signal, ...(args as []));
    }
    await shard.signal('shardLimits', { backoff: { ...before.limits.backoff, maxQuerySeconds: 0 }, budget: null });
    await shard.signal('shardLimits', { backoff: before.limits.backoff, budget: { ...before.limits.budget, p99Factor: 'high' } });
    expect(await control()).toEqual(before);
    // Messages the shard has no handler for wait in its history, harmlessly.
    await shard.signal('pause', 42);
    const { rowsRead } = await statusOf(id);
    await eventually(async () => ((await statusOf(id)).rowsRead > rowsRead + 100 ? true : undefined), 30_000, 'the shard to copy on');
    expect((await shard.describe()).status.name).toBe('RUNNING');
    expect((await statusOf(id)).shards[0]!.throttleReason).not.toBe('paused');

    await within(handle.executeUpdate('abort', { args: [{ by: 'tester', reason: 'done' }] }), 90_000);
    const status = await handle.result();
    expect(status.phase).toBe('aborted');
    expect(status.shards[0]!.state).toBe('cancelled');
  }, 180_000);

  it('a workflow started directly with a bad plan ends at once with the CLI\'s messages, having touched nothing', async () => {
    table += 1;
    await sql(url, `CREATE TABLE items_${table} (id int PRIMARY KEY, label text NOT NULL)`);
    const fingerprint = () =>
      sqlRow(url, `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)::int AS relations,
                          (SELECT count(*) FROM items_${table})::int AS target_rows,
                          (SELECT count(*) FROM ferry.migrations)::int AS claims,
                          (SELECT count(*) FROM ferry.flags)::int AS flags`);
    const before = await fingerprint();
    const handle = await worker.client.workflow.start('migrationWorkflow', {
      taskQueue: worker.temporal.taskQueue,
      workflowId: `direct-${table}`,
      args: [
        {
          execute: true,
          plan: {
            name: 'direct',
            source: { connection: 'postgresql://app:hunter2@db/prod', table: 'items', key: 'id' },
            target: { connection: 'DB', table: `items_${table}` },
            transform: { sql: { id: 'id', label: 'label' } },
            speed: 'ludicrous',
            throttle: { concurrency: 1000 },
          },
        },
      ],
    });
    const failure = await within(handle.result(), 30_000).then(
      () => null,
      (error: { cause?: { message?: string; type?: string } }) => error.cause,
    );
    expect(failure?.type).toBe('InvalidInput');
    expect(failure?.message).toContain('invalid migration plan (3 problems):');
    expect(failure?.message).toContain('  - source.connection: looks like a connection string; plans name an environment variable instead');
    expect(failure?.message).toContain('  - speed: is not a known setting');
    expect(failure?.message).toContain('  - throttle.concurrency: must be between 1 and 64, not 1000');
    expect(failure?.message).not.toContain('hunter2');
    expect(await fingerprint()).toEqual(before);
    const history = await handle.fetchHistory();
    expect(history.events!.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
  }, 60_000);

  it('a workflow started directly with a status of its own (carried) ends at once, having touched nothing', async () => {
    const plan = await planFor();
    // Every table of the database's and of Ferry's schema, with its rows (Ferry's may not exist yet).
    const fingerprint = () =>
      sqlRow(url, `SELECT string_agg(format('%I.%I: %s', schemaname, tablename,
                            (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text), ', '
                          ORDER BY schemaname, tablename) AS tables
                   FROM pg_tables WHERE schemaname IN ('public', 'ferry')`);
    const before = await fingerprint();
    // What only a run's own continue-as-new hands on: a status that says "dry run" and has
    // finished inspecting, which would skip the checks, the inspection and the claim.
    const carried = { migrationId: `carried-${table}`, planName: plan.name, execute: false, phase: 'backfilling', phases: [{ name: 'backfill', startedAt: new Date().toISOString(), endedAt: null }], startedBy: 'alice' };
    const handle = await worker.client.workflow.start('migrationWorkflow', {
      taskQueue: worker.temporal.taskQueue,
      workflowId: `carried-${table}`,
      args: [{ plan, execute: false, carried }],
    });
    const failure = await within(handle.result(), 30_000).then(
      () => null,
      (error: { cause?: { message?: string; type?: string } }) => error.cause,
    );
    expect(failure?.type).toBe('InvalidInput');
    expect(failure?.message).toBe('invalid migration input: carried is the status a migration hands to its own next run (continue-as-new); a new migration starts without it');
    expect(await fingerprint()).toEqual(before);
    const history = await handle.fetchHistory();
    expect(history.events!.some((e) => e.activityTaskScheduledEventAttributes || e.startChildWorkflowExecutionInitiatedEventAttributes)).toBe(false);
  }, 60_000);

  it('a pause holds a verification at the gate before it repairs, and a verification asked for while paused is refused; the resume lets it repair', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const digest = (table: string) => rowsDigest(url, `SELECT id, label FROM ${table}`);
    await sql(url, `UPDATE ${plan.target.table} SET label = 'damaged' WHERE id = 5`);

    // The test's own session holds the target, so the verification is under way when the pause comes.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${plan.target.table} IN ACCESS EXCLUSIVE MODE`);
    let verifying: Promise<CliResult>;
    try {
      verifying = ferry(['verify', id, '--by', 'carol'], worker.temporal);
      await eventually(async () => (await statusOf(id)).verificationRunning || undefined, 30_000, 'the verification running');
      expect((await ferry(['pause', id, '--by', 'dave', '--reason', 'hold the repair'], worker.temporal)).code).toBe(0);
      await eventually(async () => (await statusOf(id)).paused ?? undefined, 20_000, 'the pause');
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    // The pass under way finishes and finds the damage; nothing is repaired while paused.
    await eventually(async () => (await statusOf(id)).events.some((e) => e.kind === 'verify' && e.detail.includes('0 missing, 0 extra, 1 differing')) || undefined, 60_000, 'the first pass');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await sqlRow(url, `SELECT label FROM ${plan.target.table} WHERE id = 5`)).toEqual({ label: 'damaged' });
    const paused = await statusOf(id);
    expect(paused.verificationRunning).toBe(true);
    expect(paused.events.some((e) => e.kind === 'verify' && e.detail.includes('repaired'))).toBe(false);
    const refused = await ferry(['verify', id, '--by', 'erin'], worker.temporal);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/the migration is paused \(by dave( \(as [^)]*\))?: hold the repair\); resume it first \(ferry resume\), then verify/);

    expect((await ferry(['resume', id, '--by', 'dave'], worker.temporal)).code).toBe(0);
    const verified = await verifying!;
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('verification clean after 2 passes');
    expect(await digest(plan.target.table)).toEqual(await digest('items'));
    await within(handle.executeUpdate('abort', { args: [{ by: 'tester', reason: 'done' }] }), 60_000);
  }, 180_000);

  it('an approval waits for the verification running at the gate; an abort that stops it is answered so, not with the verdict from before', async () => {
    const plan = await planFor();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    expect((await statusOf(id)).verification?.clean).toBe(true);

    // The test's own session holds the target, so the verification asked for runs until it lets go.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${plan.target.table} IN ACCESS EXCLUSIVE MODE`);
    let aborting: Promise<CliResult> | undefined;
    try {
      const verifying = ferry(['verify', id, '--by', 'carol'], worker.temporal);
      await eventually(async () => (await statusOf(id)).verificationRunning || undefined, 30_000, 'the verification running');
      const approval = await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'alice', '--note', 'looked at it'], worker.temporal);
      expect(approval.code, approval.stderr).not.toBe(0);
      expect(approval.stderr).toContain('a verification is running at this gate; approve once it has reported');
      const shown = await ferry(['status', id], worker.temporal);
      // Its one shard counted among this run's passes, not the first run's.
      expect(shown.stdout).toContain('a verification is running at this gate (0 of 1 shard verified, 1 checking): approve once it has reported');
      expect(shown.stdout).not.toContain('approve with:');

      aborting = ferry(['abort', id, '--by', 'dave', '--reason', 'wrong table'], worker.temporal);
      const verified = await verifying;
      expect(verified.code).not.toBe(0);
      expect(verified.stderr).toContain('the verification was stopped by an abort before it finished: it gave no verdict');
      expect(verified.stdout).not.toContain('clean');
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await aborting!).code).toBe(0);
    const ended = await handle.result();
    expect(ended.phase).toBe('aborted');
    expect(ended.events.filter((e) => e.kind === 'approve')).toEqual([]);
    expect(await sqlRow(url, 'SELECT write_old, write_new, read_from FROM ferry.flags WHERE migration = $1', [plan.name])).toEqual({
      write_old: true, write_new: false, read_from: 'old',
    });
  }, 180_000);
});
