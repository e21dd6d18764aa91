/**
 * A flood of messages does not wedge a migration. Anyone who can reach Temporal can pause and
 * resume a migration (signals, taken with no worker running) as often as they like, with long
 * reasons, and each is recorded: the status the migration carries across continue-as-new must
 * stay small enough to carry, while ferry.audit keeps every decision.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

/** Pairs of pause and resume, each with a reason at the longest a note may be: about 3 MB of decisions. */
const PAIRS = 400;

describe('a flood of messages', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('message_flood');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('hundreds of long pauses and resumes at a gate: the migration continues-as-new, answers, and takes an approval; the audit has every one', async () => {
    const plan = validatePlan({
      name: 'message-flood',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', label: 'label' } },
      // Figures every second: the gate wakes, and continues-as-new as the tests' server suggests it.
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2, gates: { figuresEverySeconds: 1 } },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const reason = 'r'.repeat(2000);
    for (let i = 0; i < PAIRS; i++) {
      await handle.signal('pause', { by: 'bob', reason });
      await handle.signal('resume', { by: 'bob', reason });
    }
    const runsNow = async () => {
      let runs = 0;
      for await (const _ of worker.client.workflow.list({ query: `WorkflowId = '${id}'` })) runs += 1;
      return runs;
    };
    const runsBefore = await runsNow();

    // Every decision reaches ferry.audit, and a later run carries what it can.
    const audited = await eventually(async () => {
      const rows = await sql(url, `SELECT count(*)::int AS n FROM ferry.audit WHERE migration_id = $1 AND kind IN ('pause', 'resume')`, [id]);
      return rows[0]!.n === 2 * PAIRS ? rows[0]!.n : undefined;
    }, 60_000, 'every pause and resume in ferry.audit');
    expect(audited).toBe(2 * PAIRS);
    await eventually(async () => ((await runsNow()) > runsBefore ? true : undefined), 60_000, 'a continue-as-new after the flood');
    const status = await handle.query<MigrationStatus>('status');
    expect(status.eventsDropped).toBeGreaterThan(0);
    expect(JSON.stringify(status.events).length).toBeLessThan(300 * 1024);
    const { n: eventRows } = (await sql(url, `SELECT count(*)::int AS n FROM ferry.audit WHERE migration_id = $1 AND entry LIKE 'event %'`, [id]))[0]!;
    expect(status.eventsDropped! + status.events.length).toBe(eventRows);
    // The CLI counts every decision and says where the older ones are.
    const shown = await ferry(['status', id], worker.temporal);
    expect(shown.stdout).toMatch(new RegExp(`decisions \\(the last 10 of \\d+; \`ferry report ${id} --from-audit --connection TARGET_DB\` has them all\\)`));
    const report = await ferry(['report', id], worker.temporal);
    expect(report.stdout).toContain(`The first ${status.eventsDropped} are in ferry.audit on the target only`);

    // Not wedged: it takes an approval and moves on.
    await handle.executeUpdate('approve', { args: [{ gate: 'cutover-reads', by: 'carol' }] });
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'stop-old-writes' ? true : undefined), 60_000, 'the next gate');
    await handle.executeUpdate('abort', { args: [{ by: 'carol', reason: 'test over' }] });
    expect((await handle.result()).phase).toBe('aborted');
  });
});
