/**
 * Approvals worth auditing: the CLI acts as its caller's identity, the plan says who may approve
 * and force and keeps the starter from approving, every decision lands in ferry.audit on the
 * target, and `ferry report` rebuilds the record from there once Temporal has forgotten the run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport } from '../../operator';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-audit-'));

describe('approvals worth auditing', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('audit');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, 500) i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const as = (operator: string, args: string[]) => ferry(args, worker.temporal, { FERRY_OPERATOR: operator, DB: url });
  const gateOf = async (id: string) => (await migrationReport(worker.client, id)).status?.gate?.name;
  const waitAt = (id: string, gate: string) => eventually(async () => ((await gateOf(id)) === gate ? true : undefined), 60_000, `gate ${gate}`);

  it('checks approvers, forcers and four eyes against the identity, records every decision in ferry.audit, and rebuilds the report from it', async () => {
    const plan = path.join(dir, 'plan.yaml');
    writeFileSync(plan, `
name: audited
source: { connection: DB, table: accounts, key: id }
target: { connection: DB, table: accounts_v2 }
transform: { sql: { id: id, owner: owner } }
lifecycle:
  dualWrites: true
  noApps: true
  cutover: true
  soakSeconds: 0.2
  gates: { approvers: [alice, carol], forcers: [erin], fourEyes: true }
`);
    const started = await as('alice', ['start', plan, '--execute']);
    expect(started.code, started.stderr).toBe(ExitCode.ok);
    const id = /started migration (\S+)/.exec(started.stdout)![1]!;
    await waitAt(id, 'cutover-reads');
    const { status } = await migrationReport(worker.client, id);
    expect(status!.startedBy).toBe('alice');
    // The CLI is the Temporal client identity too (on the first run; later ones are continued by the worker).
    const latest = await worker.client.workflow.getHandle(id).fetchHistory();
    const firstRunId = latest.events![0]!.workflowExecutionStartedEventAttributes!.firstExecutionRunId!;
    const history = await worker.client.workflow.getHandle(id, firstRunId).fetchHistory();
    expect(history.events![0]!.workflowExecutionStartedEventAttributes!.identity).toBe('alice');

    const refusals: [string, string[], string][] = [
      ['alice', [], 'alice started this migration and may not approve it: the plan asks for four eyes (lifecycle.gates.fourEyes)'],
      ['mallory@laptop', [], "mallory@laptop may not approve gates of this migration; the plan's lifecycle.gates.approvers are: alice, carol"],
      ['mallory@laptop', ['--by', 'carol'], 'mallory@laptop may not approve gates'],
      ['carol', ['--force'], 'carol may not approve with --force; the plan allows it to: erin'],
    ];
    for (const [operator, extra, message] of refusals) {
      const refused = await as(operator, ['approve', id, '--gate', 'cutover-reads', ...extra]);
      expect(refused.code, `${operator} ${extra.join(' ')}`).toBe(ExitCode.badInput);
      expect(refused.stderr).toContain(message);
    }
    expect(await gateOf(id)).toBe('cutover-reads');
    const rejected = await as('mallory@laptop', ['reject', id, '--gate', 'cutover-reads', '--reason', 'no']);
    expect(rejected.stderr).toContain('mallory@laptop may not reject gates');

    expect((await as('bob@ops', ['pause', id, '--reason', 'deploy'])).code).toBe(ExitCode.ok);
    expect((await as('bob@ops', ['resume', id, '--by', 'robert'])).code).toBe(ExitCode.ok);
    expect((await as('bob@ops', ['throttle', id, '--rows-per-second', '900'])).code).toBe(ExitCode.ok);
    const approved = await as('carol', ['approve', id, '--gate', 'cutover-reads', '--note', 'dashboards green']);
    expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    expect(approved.stdout).toContain('approved by carol');
    await waitAt(id, 'stop-old-writes');
    const aborted = await as('dave', ['abort', id, '--reason', 'p99 doubled']);
    expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);

    // The audit, read with the test's own SQL.
    const rows = await eventually(async () => {
      const found = await sql(url, `SELECT entry, kind, by, detail FROM ferry.audit WHERE migration_id = $1 ORDER BY at, entry`, [id]);
      return found.some((r) => r.entry === 'end') ? found : undefined;
    }, 30_000, 'the end in ferry.audit');
    const decisions = rows.filter((r) => ['start', 'pause', 'resume', 'throttle', 'approve', 'abort', 'aborted'].includes(r.kind)).map((r) => [r.kind, r.by]);
    expect(decisions).toEqual([
      ['start', 'alice'],
      ['pause', 'bob@ops'],
      ['resume', 'robert (as bob@ops)'],
      ['throttle', 'bob@ops'],
      ['approve', 'carol'],
      ['abort', 'dave'],
      ['aborted', 'dave'],
    ]);
    expect(rows.find((r) => r.kind === 'approve')!.detail).toBe('gate cutover-reads approved (dashboards green)');
    expect(rows.find((r) => r.kind === 'pause')!.detail).toBe('deploy');
    expect(rows.find((r) => r.entry === 'end')!.detail).toMatch(/^aborted by dave: p99 doubled; 500 rows read, 500 copied/);
    const { status: final } = await migrationReport(worker.client, id);
    expect(rows.filter((r) => r.entry.startsWith('event '))).toHaveLength(final!.events.length);

    // Once Temporal has forgotten the run, the report comes from the audit.
    // Every run of it: a migration that continued-as-new has several.
    await eventually(async () => {
      const runs: string[] = [];
      for await (const run of worker.client.workflow.list({ query: `WorkflowId = '${id}'` })) runs.push(run.runId);
      for (const runId of runs) {
        await worker.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: id, runId } }).catch(() => {});
      }
      return (await ferry(['status', id], worker.temporal)).code === ExitCode.unknownMigration ? true : undefined;
    }, 60_000, 'every run to be gone');
    const noConnection = await as('carol', ['report', id]);
    expect(noConnection.code).toBe(ExitCode.unknownMigration);
    const report = await as('carol', ['report', id, '--connection', 'DB']);
    expect(report.code, report.stderr).toBe(ExitCode.ok);
    expect(report.stdout).toContain(`# Migration ${id}`);
    expect(report.stdout).toContain('Rebuilt from ferry.audit');
    expect(report.stdout).toContain('outcome: **aborted**');
    expect(report.stdout).toMatch(/started .* by alice: plan audited: public\.accounts -> public\.accounts_v2/);
    expect(report.stdout).toMatch(/\| approve \| carol \| gate cutover-reads approved \(dashboards green\) \|/);
    expect(report.stdout).toMatch(/\| resume \| robert \(as bob@ops\) \|/);
    const json = JSON.parse((await as('carol', ['report', id, '--from-audit', '--connection', 'DB', '--format', 'json'])).stdout);
    expect(json).toMatchObject({ rebuiltFromAudit: true, migrationId: id, planName: 'audited' });
    const bad = await as('carol', ['report', id, '--from-audit']);
    expect(bad.code).toBe(ExitCode.badInput);
    expect(bad.stderr).toContain('--from-audit needs --connection NAME');
  }, 180_000);
});
