/**
 * An approval forced past unclean verification is judged against the verdict its sender looked
 * at, and the record says which verdict it forced past: bob sees 3 values differ, another
 * verification then finds rows missing, and bob's approval naming the pass he saw is refused.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport } from '../../operator';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 2000;
const MISSING = 500;
const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-forced-verdict-'));

describe('an approval forced past a verdict', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('forced_verdict');
    // Three target rows the backfill keeps (they are there first) differ from the source in value.
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts_v2 VALUES (10, 'someone else'), (20, 'someone else'), (30, 'someone else');`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const as = (operator: string, args: string[]) => ferry(args, worker.temporal, { FERRY_OPERATOR: operator, DB: url });
  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;
  const approveRows = (id: string) => sql<{ entry: string; by: string; detail: string }>(url, `SELECT entry, by, detail FROM ferry.audit WHERE migration_id = $1 AND kind = 'approve'`, [id]);

  it('refuses an approval naming a pass another verification has replaced, and records the verdict a forced one passed', async () => {
    const plan = path.join(dir, 'plan.yaml');
    writeFileSync(plan, `
name: forced-verdict
source: { connection: DB, table: accounts, key: id }
target: { connection: DB, table: accounts_v2 }
transform: { sql: { id: id, owner: owner } }
verify: { chunkSize: 500, maxPasses: 1, inFlightDelaySeconds: 0.2 }
lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 }
`);
    const started = await as('alice', ['start', plan, '--execute']);
    expect(started.code, started.stderr).toBe(ExitCode.ok);
    const id = /started migration (\S+)/.exec(started.stdout)![1]!;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');

    // What bob looks at: pass 1, three values differ.
    expect((await statusOf(id)).verification).toMatchObject({ clean: false, missing: 0, extra: 0, value: 3, lastPassId: 1 });
    const looked = await as('bob', ['status', id]);
    expect(looked.stdout).toContain(`or force past this verdict (pass 1), if the plan lets you: ferry approve ${id} --gate cutover-reads --force --verdict 1`);

    // Meanwhile rows go missing from the target, and another verification finds them.
    await sql(url, `DELETE FROM accounts_v2 WHERE id > ${ROWS - MISSING}`);
    const verified = await as('carol', ['verify', id]);
    expect(verified.code, verified.stderr).toBe(ExitCode.failed);
    expect((await statusOf(id)).verification).toMatchObject({ clean: false, missing: MISSING, extra: 0, value: 3, run: 2, lastPassId: 2 });
    const before = await statusOf(id);
    await eventually(async () => ((await sql(url, `SELECT count(*)::int AS n FROM ferry.audit WHERE migration_id = $1 AND kind = 'verify'`, [id]))[0]!.n >= 2 ? true : undefined), 30_000, 'the verify rows');
    const auditBefore = await sql(url, `SELECT entry, kind, by, detail FROM ferry.audit WHERE migration_id = $1 ORDER BY entry`, [id]);

    // bob's forced approval names the pass he saw: refused, and nothing of it stays.
    const stale = await as('bob', ['approve', id, '--gate', 'cutover-reads', '--force', '--verdict', '1', '--note', 'three known values']);
    expect(stale.code).toBe(ExitCode.badInput);
    expect(stale.stderr).toContain(`the verification changed since you looked: pass 2 now says NOT clean: ${MISSING} missing, 0 extra, 3 differing; look again (ferry status)`);
    const after = await statusOf(id);
    expect(after.gate?.name).toBe('cutover-reads');
    expect(after.events).toEqual(before.events);
    expect(after.verification).toEqual(before.verification);
    expect(await sql(url, `SELECT entry, kind, by, detail FROM ferry.audit WHERE migration_id = $1 ORDER BY entry`, [id])).toEqual(auditBefore);
    const history = await worker.client.workflow.getHandle(id).fetchHistory();
    expect(history.events!.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'approve')).toEqual([]);

    // Looking again, bob forces past the verdict that stands, and the record says which one that was.
    const forced = await as('bob', ['approve', id, '--gate', 'cutover-reads', '--force', '--verdict', '2', '--note', 'rows reloaded tonight']);
    expect(forced.code, forced.stderr).toBe(ExitCode.ok);
    const verdict = `pass 2 (run 2, pass 1 of it): NOT clean, ${MISSING} missing, 0 extra, 3 differing in ${ROWS} rows checked, 0 rows with unresolved failed records left out`;
    expect(forced.stdout).toContain(`gate cutover-reads of ${id} approved by bob, forced past verification ${verdict} (recorded)`);
    await eventually(async () => ((await statusOf(id)).gate?.name === 'stop-old-writes' ? true : undefined), 60_000, 'the next gate');
    const status = await statusOf(id);
    expect(status.verification).toMatchObject({ forcedBy: 'bob', forcedPast: { pass: 2, run: 2, passInRun: 1, clean: false, rowsChecked: ROWS, missing: MISSING, extra: 0, value: 3, samplePercent: null, rowsLeftOut: 0 } });
    const detail = `gate cutover-reads approved with --force, past verification ${verdict} (rows reloaded tonight)`;
    expect(status.events.filter((e) => e.kind === 'approve')).toEqual([expect.objectContaining({ by: 'bob', detail })]);
    const audited = await eventually(async () => {
      const rows = await approveRows(id);
      return rows.length > 0 ? rows : undefined;
    }, 30_000, 'the approve row');
    expect(audited).toEqual([expect.objectContaining({ by: 'bob', detail })]);

    const report = await as('bob', ['report', id]);
    expect(report.stdout).toContain(`A gate was approved past it with --force by bob, at ${verdict}.`);
    expect(report.stdout).toContain(`| approve | bob | gate cutover-reads approved with --force, past verification ${verdict} (rows reloaded tonight) |`);
    const html = path.join(dir, 'report.html');
    expect((await as('bob', ['report', id, '--format', 'html', '--out', html])).code).toBe(ExitCode.ok);
    expect(readFileSync(html, 'utf8')).toContain(`A gate was approved past it with --force by bob, at ${verdict}.`);
    const fromAudit = await as('bob', ['report', id, '--from-audit', '--connection', 'DB']);
    expect(fromAudit.stdout).toContain(`past verification ${verdict}`);

    await as('alice', ['abort', id, '--reason', 'test done']);
  });
});
