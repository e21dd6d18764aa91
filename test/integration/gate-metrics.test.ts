/**
 * A `ferry worker` process's metrics port, as Prometheus and a load balancer see it: bound to
 * 127.0.0.1 by default, /healthz and /readyz, and the gate a migration waits at, gone once it ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration, verifyPassProgress } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { freePort } from '../../scripts/services/ports';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, type TestWorker } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

/** The value of one series in an exposition, or undefined when it is absent. */
function seriesValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('gate metrics and health on a worker process', () => {
  let url: string;
  let client: TestWorker;
  let worker: WorkerProcess;
  let port: number;

  beforeAll(async () => {
    url = await createTestDatabase('gate_metrics');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, 300) i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL);`);
    client = await connectClient();
    port = await freePort();
    worker = await startWorkerProcess(client.temporal, { DB: url, FERRY_METRICS_PORT: String(port) });
  });
  afterAll(async () => {
    await worker?.stop();
    await client?.stop();
  });

  it('binds 127.0.0.1 unless told otherwise, and answers /healthz and /readyz', async () => {
    expect(worker.output()).toContain(`ferry metrics at http://127.0.0.1:${port}/metrics`);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, 'ok\n']);
    const ready = await eventually(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      return response.status === 200 ? response.text() : undefined;
    }, 20_000, 'readyz');
    expect(ready).toBe('ready\n');
  });

  it('serves how long a gate waits and whether verification is clean, and drops the gate once approved', async () => {
    const plan = validatePlan({
      name: 'gate-metrics',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id', owner: 'owner' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const handle = await startMigration(client.client, client.temporal, plan, { execute: true });
    await eventually(async () => (await handle.query<MigrationStatus>('status')).gate?.name === 'cutover-reads', 60_000, 'the gate');

    // The first pass's shards, counted from visibility as the live view counts a pass under way.
    const atGate = await handle.query<MigrationStatus>('status');
    const counted = await eventually(
      async () => (await verifyPassProgress(client.client, { ...atGate, phase: 'verifying', verification: null }))?.shardsVerified === atGate.shards.length || undefined,
      20_000,
      'the verified shards in visibility',
    );
    expect(counted).toBe(true);

    // The gate's story in status: how long, verification clean, and the command that would be taken.
    const status = await ferry(['status', handle.workflowId], client.temporal);
    expect(status.stdout).toMatch(/GATE {6}waiting at cutover-reads for \S+/);
    expect(status.stdout).toContain('verification clean after 1 pass, 300 rows checked');
    expect(status.stdout).toContain(`approve with: ferry approve ${handle.workflowId} --gate cutover-reads`);
    expect(status.stdout).not.toContain('ETA');

    const labels = { migration: 'gate-metrics', gate: 'cutover-reads' };
    const waiting = await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const seconds = seriesValue(text, 'ferry_gate_waiting_seconds', labels);
      return seconds !== undefined && seconds > 0 ? text : undefined;
    }, 30_000, 'gate metrics');
    expect(seriesValue(waiting, 'ferry_gate_verification_clean', labels)).toBe(1);
    expect(seriesValue(waiting, 'ferry_gate_reminders', labels)).toBe(0);

    const verified = await ferry(['verify', handle.workflowId, '--json'], client.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ migrationId: handle.workflowId, clean: true });

    const approved = await ferry(['approve', handle.workflowId, '--gate', 'cutover-reads', '--by', 'alice', '--json'], client.temporal);
    expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(approved.stdout)).toMatchObject({ migrationId: handle.workflowId, gate: 'cutover-reads', approvedBy: expect.stringContaining('alice') });
    await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return seriesValue(text, 'ferry_gate_waiting_seconds', labels) === undefined;
    }, 30_000, 'the approved gate to leave the metrics');
    await handle.terminate('test over');
  });
});
