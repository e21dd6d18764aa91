/**
 * Bad input, one row each, as a table: plans, command-line arguments, and Temporal messages and
 * starts sent directly. Each row checks the clear message naming the problem, the exit code (or
 * the refusal), and that tables, flags and the state of a migration waiting at a gate are
 * unchanged.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bad-'));
const planFile = (name: string, text: string) => {
  const file = path.join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
  writeFileSync(file, text);
  return file;
};
const plan = (overrides: Record<string, string> = {}) => {
  const fields = {
    name: 'bad-input',
    source: '{ connection: DB, table: items, key: id }',
    target: '{ connection: DB, table: items_v2 }',
    transform: '{ sql: { id: id, label: label } }',
    ...overrides,
  };
  return Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n');
};
const good = plan();

/** The migration every row may aim at: it waits at its first gate throughout. */
const GATED = '<gated>';

type BadInput =
  /** A plan file given to `ferry start --execute --wait`. */
  | { kind: 'plan'; name: string; text: string; code: number; message: string }
  /** A command line; GATED stands for the waiting migration's id. */
  | { kind: 'cli'; name: string; args: string[]; code: number; message: string; stream?: 'stdout' }
  /** An update sent straight to the waiting migration: refused, with the message. */
  | { kind: 'update'; name: string; update: string; args: unknown[]; message: string }
  /** A signal sent straight to the waiting migration: ignored, its refusal recorded. */
  | { kind: 'signal'; name: string; signal: string; args: unknown[]; message: string }
  /** A migration workflow started straight through Temporal: it fails at once, touching nothing. */
  | { kind: 'workflow'; name: string; args: unknown[]; message: string };

const planRows: BadInput[] = (
  [
    ['malformed YAML', 'name: [oops\nsource: {', ExitCode.badInput, 'YAML:'],
    ['an unknown key', `${good}\nspeed: 11`, ExitCode.badInput, 'speed: is not a known setting'],
    ['a connection string in the plan', plan({ source: "{ connection: 'postgresql://u:pw@h/db', table: items, key: id }" }), ExitCode.badInput, 'source.connection: looks like a connection string'],
    ['source and target the same table', plan({ target: '{ connection: DB, table: items }' }), ExitCode.badInput, 'target.table: is the source table itself'],
    ['a throttle out of bounds', `${good}\nthrottle: { batchSize: 0, concurrency: 100 }`, ExitCode.badInput, 'throttle.batchSize'],
    ['an empty approvers list', `${good}\nlifecycle: { gates: { approvers: [] } }`, ExitCode.badInput, 'lifecycle.gates.approvers: must name at least one approver'],
    ['a gate expiry no date can hold', `${good}\nlifecycle: { gates: { expirySeconds: 9000000000000 } }`, ExitCode.badInput, 'lifecycle.gates.expirySeconds: must be at most 315360000 (10 years)'],
    ['fourEyes that is not true or false', `${good}\nlifecycle: { gates: { fourEyes: maybe } }`, ExitCode.badInput, 'lifecycle.gates.fourEyes'],
    ['a key that is not a column', plan({ source: '{ connection: DB, table: items, key: nope }', transform: '{ sql: { id: nope, label: label } }', target: '{ connection: DB, table: items_v2, key: id }' }), ExitCode.failed, 'source key column "nope" is not a column of public.items'],
    ['a key that is not unique', plan({ source: '{ connection: DB, table: items, key: not_unique }', transform: '{ sql: { id: not_unique, label: label } }', target: '{ connection: DB, table: items_v2, key: id }' }), ExitCode.failed, 'has no unique index on it alone'],
    ['a transform that does not parse', plan({ transform: "{ sql: { id: id, label: 'upper(label) label label' } }" }), ExitCode.failed, 'transform does not run on public.items: syntax error'],
    ['a transform that could end the statement', plan({ transform: "{ sql: { id: id, label: 'upper(label' } }" }), ExitCode.badInput, 'transform.sql.label: opens a parenthesis it never closes'],
    ['stacked statements in subset.where', `${plan()}\nsubset: { where: 'true; DELETE FROM items' }`, ExitCode.badInput, 'subset.where: must be one SQL expression'],
    ['capture with a computed target key', `${plan({ transform: "{ sql: { id: 'id * 10', label: label } }" })}\ncapture: trigger\nverify: { enabled: false }`, ExitCode.badInput, 'transform.sql.id: must be the source key column "id" itself, not `id * 10`: capture: trigger applies a change'],
    ['a partition value its column cannot hold', `${plan()}\nshards: { partitionColumn: not_unique }\nsubset: { partitionValues: ['1', 'two'] }`, ExitCode.failed, 'subset.partitionValues[1] cannot be read as the type of partition column "not_unique" (integer): invalid input syntax for type integer'],
    ['a transform column the target lacks', plan({ transform: '{ sql: { id: id, colour: label } }' }), ExitCode.failed, 'transform column "colour" is not a column of public.items_v2'],
    ['a missing target table', plan({ target: '{ connection: DB, table: nowhere }' }), ExitCode.failed, 'target table public.nowhere does not exist'],
    ['a table name with SQL in it', plan({ source: `{ connection: DB, table: 'items; DROP TABLE items_v2; --', key: id }` }), ExitCode.failed, 'source table public.items; DROP TABLE items_v2; -- does not exist'],
    ['a connection variable the worker does not have', plan({ target: '{ connection: NOT_SET_ANYWHERE, table: items_v2 }' }), ExitCode.failed, 'environment variable NOT_SET_ANYWHERE is not set on this worker'],
  ] as const
).map(([name, text, code, message]) => ({ kind: 'plan', name, text, code, message }));

const unknownIdRows: BadInput[] = [
  ['status'], ['failures'], ['report'], ['pause'], ['resume'], ['retry'],
  ['throttle', '--rows-per-second', '10'], ['approve', '--gate', 'cleanup'], ['abort', '--reason', 'x'], ['reject', '--gate', 'cleanup', '--reason', 'x'],
].map(([command, ...flags]) => ({
  kind: 'cli',
  name: `an unknown migration id: ferry ${command}`,
  args: [command!, 'ferry/no-such/1', ...flags],
  code: ExitCode.unknownMigration,
  message: 'no migration with id "ferry/no-such/1"',
}));

const cliRows: BadInput[] = (
  [
    ['a rate that is not a number', ['throttle', GATED, '--rows-per-second', 'fast'], ExitCode.badInput, '--rows-per-second must be a whole number, not "fast"'],
    ['a batch size below its bound', ['throttle', GATED, '--batch-size', '5'], ExitCode.badInput, 'batchSize must be between 10 and 100000, not 5'],
    ['a concurrency above its bound', ['throttle', GATED, '--concurrency', '1000'], ExitCode.badInput, 'concurrency must be between 1 and 64, not 1000'],
    ['a throttle that changes nothing', ['throttle', GATED], ExitCode.badInput, 'nothing to change'],
    ['a query limit that is not a number', ['throttle', GATED, '--max-query-seconds', '1h'], ExitCode.badInput, '--max-query-seconds must be a number, not "1h"'],
    ['a replica lag limit of 0', ['throttle', GATED, '--max-replica-lag-seconds', '0'], ExitCode.badInput, 'maxReplicaLagSeconds must be above 0, not 0'],
    ['pacing neither on nor off', ['throttle', GATED, '--pacing', 'maybe'], ExitCode.badInput, '--pacing must be on or off, not "maybe"'],
    ['approving a gate that is not waiting', ['approve', GATED, '--gate', 'cleanup'], ExitCode.badInput, 'gate "cleanup" is not the one waiting; the migration waits at "cutover-reads"'],
    ['approving a gate that does not exist', ['approve', GATED, '--gate', 'nope'], ExitCode.badInput, 'gate "nope" is not the one waiting'],
    ['approving without a gate', ['approve', GATED], ExitCode.badInput, "required option '--gate <name>' not specified"],
    ['rejecting without a reason', ['reject', GATED, '--gate', 'cutover-reads'], ExitCode.badInput, "required option '--reason <text>' not specified"],
    ['aborting without a reason', ['abort', GATED], ExitCode.badInput, "required option '--reason <text>' not specified"],
    ['a verify sample of 0%', ['verify', GATED, '--sample', '0'], ExitCode.badInput, '--sample must be a percentage above 0 and at most 100, not "0"'],
    ['a verify sample that is not a number', ['verify', GATED, '--sample', 'half'], ExitCode.badInput, '--sample must be a percentage above 0 and at most 100'],
    ['a mismatches limit that is not a number', ['mismatches', GATED, '--limit', 'ten'], ExitCode.badInput, '--limit must be a whole number, not "ten"'],
    ['a report format nobody knows', ['report', GATED, '--format', 'pdf'], ExitCode.badInput, '--format must be markdown, json or html, not "pdf"'],
    ['a report from the audit without its connection', ['report', GATED, '--from-audit'], ExitCode.badInput, '--from-audit needs --connection NAME'],
    ['a list limit that is not a number', ['list', '--limit', 'ten'], ExitCode.badInput, '--limit must be a whole number, not "ten"'],
    ['a migration id with a space', ['start', '<plan>', '--execute', '--id', 'ferry/x/my run'], ExitCode.badInput, '--id "ferry/x/my run" holds a space or a control character; nothing was started'],
    ['a key range without ..', ['start', '<plan>', '--key-range', '5'], ExitCode.badInput, '--key-range must look like FROM..TO'],
    ['a subset sample that is not a number', ['start', '<plan>', '--sample', 'some'], ExitCode.badInput, '--sample must be a percentage, not "some"'],
    ['partition values without a partition column', ['start', '<plan>', '--partition-values', 'a,b'], ExitCode.badInput, 'subset.partitionValues: needs shards.partitionColumn'],
    ['a command nobody knows', ['frobnicate'], ExitCode.badInput, "unknown command 'frobnicate'"],
  ] as const
).map(([name, args, code, message]) => ({ kind: 'cli', name, args: [...args], code, message }));

const vermilion = 'vermilion';
const updateRows: BadInput[] = (
  [
    ['setThrottle with no payload', 'setThrottle', [], 'the payload must be an object { rowsPerSecond?, batchSize?, concurrency?, maxReplicaLagSeconds?, maxQuerySeconds?, maxUnreadSlotWalMb?, pacing?, p99Factor?, maxLockWaits?, maxActiveBackends?, by?, reason? }, not nothing'],
    ['setThrottle with a batch size of 0', 'setThrottle', [{ batchSize: 0 }], 'batchSize must be between 10 and 100000, not 0'],
    ['setThrottle with a rate as text', 'setThrottle', [{ rowsPerSecond: 'fast' }], 'rowsPerSecond must be a number'],
    ['setThrottle with an unknown setting', 'setThrottle', [{ colour: vermilion, batchSize: 100 }], 'colour is not a throttle setting'],
    ['approve with no payload', 'approve', [], 'the payload must be an object { gate, by, note?, force?, verdictPass? }, not nothing'],
    ['approve with no approver', 'approve', [{ gate: 'cutover-reads' }], 'by is required'],
    ['approve with force as text', 'approve', [{ gate: 'cutover-reads', by: 'x', force: 'yes' }], 'force must be true or false, not a string'],
    ['approve with an extra field', 'approve', [{ gate: 'cutover-reads', by: 'x', colour: vermilion }], 'colour is not a known field'],
    ['reject with no reason', 'reject', [{ gate: 'cutover-reads', by: 'x' }], 'reason is required'],
    ['reject as a list', 'reject', [['cutover-reads']], 'the payload must be an object { gate, by, reason }, not a list'],
    ['abort with null', 'abort', [null], 'the payload must be an object { by, reason }, not null'],
    ['abort as a string', 'abort', ['now'], 'the payload must be an object { by, reason }, not a string'],
    ['abort with no reason', 'abort', [{ by: 'x' }], 'reason is required'],
    ['abort with a blank reason', 'abort', [{ by: 'x', reason: '   ' }], 'reason must say why'],
    ['verify with a sample of 500%', 'verify', [{ samplePercent: 500 }], 'samplePercent must be at most 100'],
    ['verify as a number', 'verify', [7], 'the payload must be an object { samplePercent?, by? }, not a number'],
    ['retryFailures with no payload', 'retryFailures', [], 'the payload must be an object { by?, reason? }, not nothing'],
    ['mismatches with a negative limit', 'mismatches', [{ limit: -1 }], 'limit'],
  ] as const
).map(([name, update, args, message]) => ({ kind: 'update', name, update, args: [...args], message }));

const signalRows: BadInput[] = (
  [
    ['pause with a number', 'pause', [42], 'signal pause ignored: the payload must be an object { by?, reason? }, not a number'],
    ['resume with a string', 'resume', ['go'], 'signal resume ignored: the payload must be an object { by?, reason? }, not a string'],
    ['pause with by as a number', 'pause', [{ by: 5 }], 'signal pause ignored: by must be text, not a number'],
    ['pause with an extra field', 'pause', [{ by: 'x', colour: vermilion }], 'signal pause ignored: colour is not a known field'],
    ['approve sent as a signal', 'approve', [{ gate: 'cutover-reads', by: 'x' }], 'signal approve ignored: approve is an update, which is answered, not a signal'],
    ['abort sent as a signal with no payload', 'abort', [], 'signal abort ignored: abort is an update, which is answered, not a signal'],
    ['shardProgress with nothing', 'shardProgress', [], 'signal shardProgress ignored: the payload must be an object { index, cursor, rowsRead, ... }, not nothing'],
    ['shardProgress with negative counts', 'shardProgress', [{ index: 0, cursor: null, rowsRead: -5, rowsWritten: 0, rowsFailed: 0, batchSize: 10, throttleReason: null, failures: [], done: true, error: null }], 'signal shardProgress ignored: rowsRead'],
  ] as const
).map(([name, signal, args, message]) => ({ kind: 'signal', name, signal, args: [...args], message }));

const directPlan = {
  name: 'direct',
  source: { connection: 'postgresql://app:hunter2@db/prod', table: 'items', key: 'id' },
  target: { connection: 'DB', table: 'items_v2' },
  transform: { sql: { id: 'id', label: 'label' } },
  speed: 'ludicrous',
  throttle: { concurrency: 1000 },
};
const workflowRows: BadInput[] = [
  { kind: 'workflow', name: 'a direct start with a connection URL, an unknown key and a value out of range', args: [{ plan: directPlan, execute: true }], message: 'invalid migration plan (3 problems)' },
  { kind: 'workflow', name: 'a direct start with no input', args: [], message: 'the input must be an object { plan, execute, showSampleValues?, rerun? }, not nothing' },
  { kind: 'workflow', name: 'a direct start with execute as text', args: [{ plan: validatePlan({ name: 'direct', source: { connection: 'DB', table: 'items', key: 'id' }, target: directPlan.target, transform: directPlan.transform }), execute: 'yes' }], message: 'execute must be true or false, not a string' },
];

const cases: BadInput[] = [...planRows, ...unknownIdRows, ...cliRows, ...updateRows, ...signalRows, ...workflowRows];

describe('bad input', () => {
  let url: string;
  let worker: TestWorker;
  let gated: WorkflowHandle;
  let gatedPlan: string;
  const fingerprint = () =>
    sqlRow(url, `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)::int AS relations,
                        (SELECT count(*) FROM items_v2)::int AS target_rows,
                        (SELECT count(*) FROM items_gated)::int AS gated_rows,
                        (SELECT count(*) FROM ferry.migrations)::int AS claims,
                        (SELECT json_agg(f ORDER BY migration) FROM ferry.flags f)::text AS flags,
                        (SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry')::int AS ferry_schema`);
  const gatedStatus = async () => (await migrationReport(worker.client, gated.workflowId)).status!;
  /** The waiting migration's state, without the refusals a bad signal records or the audit's progress. */
  const stable = (status: MigrationStatus) => ({
    ...status,
    eventsAudited: undefined,
    events: status.events.filter((e) => e.kind !== 'refused'),
    gate: status.gate && { ...status.gate, figures: null },
  });

  beforeAll(async () => {
    url = await createTestDatabase('bad_input');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text, not_unique int);
      INSERT INTO items SELECT i, 'item ' || i, i % 3 FROM generate_series(1, 100) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text);
      CREATE TABLE items_gated (id int PRIMARY KEY, label text);`);
    worker = await startWorker({ DB: url });
    const waiting = validatePlan({
      name: 'gated',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_gated' },
      transform: { sql: { id: 'id', label: 'label' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    gatedPlan = planFile('gated', plan({ name: 'gated-subset', target: '{ connection: DB, table: items_gated }' }));
    gated = await startMigration(worker.client, worker.temporal, waiting, { execute: true });
    await eventually(async () => ((await gatedStatus()).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
  });
  afterAll(async () => {
    await gated?.terminate('test done').catch(() => {});
    await worker?.stop();
  });

  it('counts at least 40 rows', () => {
    console.log(`bad inputs in the table: ${cases.length}`);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [`${c.kind}: ${c.name}`, c] as const))('%s', async (_, row) => {
    const before = await fingerprint();
    const stateBefore = stable(await gatedStatus());
    const refusedBefore = (await gatedStatus()).events.filter((e) => e.kind === 'refused').length;

    if (row.kind === 'plan' || row.kind === 'cli') {
      const args = row.kind === 'plan'
        ? ['start', planFile(row.name, row.text), '--execute', '--wait']
        : row.args.map((a) => (a === GATED ? gated.workflowId : a === '<plan>' ? gatedPlan : a));
      const result = await ferry(args, worker.temporal);
      expect(result.code, result.stdout + result.stderr).toBe(row.code);
      expect(result.stdout + result.stderr).toContain(row.message);
      expect(result.stdout + result.stderr).not.toContain('hunter2');
    } else if (row.kind === 'update') {
      const error = await gated.executeUpdate(row.update, { args: row.args as [unknown] }).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((error as WorkflowUpdateFailedError).cause?.message).toContain(row.message);
      expect((error as WorkflowUpdateFailedError).cause?.message).not.toContain(vermilion);
    } else if (row.kind === 'signal') {
      await gated.signal(row.signal, ...(row.args as []));
      const refused = await eventually(async () => {
        const events = (await gatedStatus()).events.filter((e) => e.kind === 'refused');
        return events.length > refusedBefore ? events.at(-1) : undefined;
      }, 20_000, 'the refusal to be recorded');
      expect(refused.detail).toContain(row.message);
      expect(refused.detail).not.toContain(vermilion);
    } else {
      const handle = await worker.client.workflow.start('migrationWorkflow', {
        taskQueue: worker.temporal.taskQueue,
        workflowId: `bad-input/${row.name.replace(/\W+/g, '-')}`,
        args: row.args as [unknown],
      });
      const failure = await handle.result().then(() => null, (e: { cause?: { message: string; type: string } }) => e.cause);
      expect(failure?.type).toBe('InvalidInput');
      expect(failure?.message).toContain(row.message);
      expect(failure?.message).not.toContain('hunter2');
      const history = await handle.fetchHistory();
      expect(history.events!.some((e) => e.activityTaskScheduledEventAttributes)).toBe(false);
    }

    expect(await fingerprint()).toEqual(before);
    const stateAfter = await gatedStatus();
    expect(stable(stateAfter)).toEqual(stateBefore);
    expect(stateAfter.phase).toBe('awaiting-approval');
  }, 150_000);
});
