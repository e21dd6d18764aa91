/**
 * A worker killed with SIGKILL while it repairs: another finishes the repair, and the verdict's
 * "repaired" counts every row the repair wrote once, those of the lost attempt included. Proved
 * by the test's own SQL: the rows it damaged, and md5 of every row on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { startWorkerProcess } from '../support/worker-process';

const ROWS = 120_000;

describe('a worker killed mid-repair', () => {
  let url: string;
  let client: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('repair_crash');
    await sql(url, `
      CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL);
      INSERT INTO orders SELECT i, i % 1000 FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE orders_new (id int PRIMARY KEY, amount int NOT NULL);`);
    // Only a client: the workers here are processes of their own.
    client = await connectClient();
  });
  afterAll(async () => {
    await client?.stop();
  });

  const digest = async (table: string) => (await sqlRow(url, `SELECT md5(string_agg(t::text, '|' ORDER BY id)) AS d FROM ${table} t`)).d as string;

  it('counts the rows the lost attempt repaired, once', async () => {
    const env = { DB: url };
    const first = await startWorkerProcess(client.temporal, env);
    let second: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
    try {
      const plan = validatePlan({
        name: 'repair-crash',
        source: { connection: 'DB', table: 'orders', key: 'id' },
        target: { connection: 'DB', table: 'orders_new' },
        transform: { sql: { id: 'id', amount: 'amount' } },
        verify: { inFlightDelaySeconds: 0.1 },
      });
      const id = (await startMigration(client.client, client.temporal, plan, { execute: true })).workflowId;
      expect((await client.client.workflow.getHandle(id).result()).phase).toBe('completed');

      // Half the rows damaged after completion: 60,000 value mismatches, 120 repair batches.
      const damaged = (await sqlRow(url, 'WITH d AS (UPDATE orders_new SET amount = -1 - amount WHERE id % 2 = 0 RETURNING 1) SELECT count(*)::int AS n FROM d')).n as number;
      expect(damaged).toBe(ROWS / 2);

      const verifying = ferry(['verify', id, '--repair'], client.temporal);
      // Killed once the repair has resolved some of the mismatches and not all.
      const resolved = async () => (await sqlRow(url, `SELECT count(*) FILTER (WHERE resolved_at IS NOT NULL)::int AS n FROM ferry.mismatches WHERE migration_id = $1`, [id])).n as number;
      await eventually(async () => (await resolved()) > 0 || undefined, 60_000, 'the first repaired batch');
      await first.kill();
      const atKill = await resolved();
      expect(atKill).toBeGreaterThan(0);
      expect(atKill).toBeLessThan(damaged);

      second = await startWorkerProcess(client.temporal, env);
      const verified = await verifying;
      expect(verified.code, verified.stderr).toBe(ExitCode.ok);
      // Without the ledger: only the rows the retried attempt wrote (60,000 less those resolved at the kill).
      expect(verified.stdout).toContain(`(every row, repairing): clean after 2 passes: ${ROWS.toLocaleString('en-US')} rows checked, 0 missing, 0 extra, 0 differing, ${damaged} repaired, 0 in flight`);
      const recorded = await sqlRow(url, `SELECT repaired::int AS n FROM ferry.verification_runs WHERE migration_id = $1 AND kind = 'after-finish'`, [id]);
      expect(recorded.n).toBe(damaged);
      // The test's own check, not Ferry's verifier: every row as the source has it.
      expect(await digest('orders_new')).toBe(await digest('orders'));
      // The counts went with the run's record.
      expect((await sqlRow(url, 'SELECT count(*)::int AS n FROM ferry.repair_ledger')).n).toBe(0);
    } finally {
      await first.stop();
      await second?.stop();
    }
  });
});
