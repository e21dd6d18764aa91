/** No password and no row value leaves the databases: histories, logs and reports stay clean. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, type TestWorker } from '../support/harness';
import { historiesText } from '../support/history-text';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const PASSWORD = 'Pa55-word-never-logged';
const VALUE = 'SENSITIVE-row-value';

describe('secrets and data', () => {
  let url: string;
  let client: TestWorker;
  let worker: WorkerProcess;

  beforeAll(async () => {
    const base = await createTestDatabase('secrets');
    await sql(base, `
      CREATE ROLE ferry_app LOGIN PASSWORD '${PASSWORD}' SUPERUSER;
      CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, age text NOT NULL);
      INSERT INTO customers SELECT i, '${VALUE}-' || i || '@example.com', CASE WHEN i = 7 THEN '${VALUE}' ELSE (20 + i % 50)::text END
        FROM generate_series(1, 200) i;
      CREATE TABLE customers_v2 (id int PRIMARY KEY, email text NOT NULL, age int NOT NULL);`).catch(async (error) => {
      // The role is cluster-wide: a second run of this file finds it already there.
      if (!String(error).includes('already exists')) throw error;
    });
    const parsed = new URL(base);
    parsed.username = 'ferry_app';
    parsed.password = PASSWORD;
    url = parsed.toString();
    client = await connectClient();
    worker = await startWorkerProcess(client.temporal, { APP_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
    await client?.stop();
  });

  it('keeps them out of workflow histories, worker logs, status and reports', async () => {
    const plan = validatePlan({
      name: 'secrets',
      source: { connection: 'APP_DB', table: 'customers', key: 'id' },
      target: { connection: 'APP_DB', table: 'customers_v2' },
      transform: { sql: { id: 'id', email: 'email', age: 'age::int' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const dryRun = await (await startMigration(client.client, client.temporal, plan, { execute: false })).result();
    expect(dryRun.inspection!.sample!.redacted).toBe(true);

    const handle = await startMigration(client.client, client.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(client.client, id)).status?.paused ? true : undefined), 60_000, 'the failed row');
    await ferry(['resume', id, '--by', 'test'], client.temporal);
    for (const gate of ['cutover-reads', 'stop-old-writes', 'cleanup']) {
      await eventually(async () => ((await migrationReport(client.client, id)).status?.gate?.name === gate ? true : undefined), 60_000, gate);
      expect((await ferry(['approve', id, '--gate', gate, '--by', 'test'], client.temporal)).code).toBe(ExitCode.ok);
    }
    const status = await handle.result();
    expect(status.rowsFailed).toBe(1);

    const texts: string[] = [JSON.stringify(status), worker.output()];
    for (const run of [dryRun.migrationId, id]) texts.push(await historiesText(client.client, run));
    for (const args of [['status', id, '--json'], ['failures', id], ['report', id], ['report', id, '--format', 'json']]) {
      const result = await ferry(args, client.temporal);
      texts.push(result.stdout, result.stderr);
    }
    const all = texts.join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    expect(all).toContain('customers_v2'); // the scan did read the histories
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(VALUE);
    expect(all).not.toContain('ferry_app:');
  });
});
