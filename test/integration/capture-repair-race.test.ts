/**
 * A repair under trigger capture and the change apply, racing on one key, against real
 * PostgreSQL and Temporal: the repair reads the source row, the application changes it and the
 * change apply comes to write it while the repair's write is still on its way. The repair holds
 * the apply lock from its read to its commit, so the apply writes the newer row after it; the
 * target ends equal to the source by the test's own md5, and verification's next pass is clean.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

describe('a repair and the change apply on the same key', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_repair_race');
    // The target holds a wrong row 50 that the backfill keeps (conflict policy ignore): verification repairs it.
    await sql(url, `
      CREATE TABLE ledgers (id int PRIMARY KEY, balance int NOT NULL);
      INSERT INTO ledgers SELECT i, 0 FROM generate_series(1, 100) AS i;
      CREATE TABLE ledgers_v2 (id int PRIMARY KEY, balance int NOT NULL);
      INSERT INTO ledgers_v2 VALUES (50, -1);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('lets the apply write the newer row only after the repair has committed the row it read', { timeout: 90_000 }, async () => {
    const plan = validatePlan({
      name: 'capture-repair-race',
      source: { connection: 'DB', table: 'ledgers', key: 'id' },
      target: { connection: 'DB', table: 'ledgers_v2' },
      transform: { sql: { id: 'id', balance: 'balance' } },
      capture: { mode: 'trigger' },
      verify: { maxPasses: 2, inFlightDelaySeconds: 2, captureWaitSeconds: 5 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    let status: MigrationStatus | undefined;
    const statusOf = async () => (status = (await migrationReport(worker.client, id)).status ?? undefined);
    await eventually(async () => (await statusOf())?.phase === 'verifying' || undefined, 60_000, 'verification');
    // From here on the repair's write of row 50 as the source held it (balance 0) stalls on the target.
    await sql(url, `
      CREATE FUNCTION ledgers_v2_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(4); RETURN NEW; END $$;
      CREATE TRIGGER stall BEFORE INSERT ON ledgers_v2 FOR EACH ROW WHEN (NEW.id = 50 AND NEW.balance = 0) EXECUTE FUNCTION ledgers_v2_stall();`);
    await eventually(
      async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query ILIKE '%ledgers_v2%'`)).n > 0 || undefined,
      30_000,
      "the repair's write of row 50 in flight",
    );
    // Meanwhile the application writes row 50 again: the change apply comes to write balance 2.
    await sql(url, `UPDATE ledgers SET balance = 2 WHERE id = 50`);

    await eventually(async () => {
      const verification = (await statusOf())?.verification;
      return (verification?.clean || (verification?.passes === 2 && status?.phase !== 'verifying')) ?? undefined;
    }, 60_000, 'the end of verification');
    expect(await sqlRow(url, `SELECT balance FROM ledgers_v2 WHERE id = 50`)).toEqual({ balance: 2 });
    expect(await rowsDigest(url, `SELECT * FROM ledgers_v2`)).toEqual(await rowsDigest(url, `SELECT * FROM ledgers`));
    expect(status?.verification).toMatchObject({ clean: true, passes: 2, repaired: 1 });

    await eventually(async () => (await statusOf())?.gate?.name === 'cleanup' || undefined, 30_000, 'the cleanup gate');
    await handle.executeUpdate('approve', { args: [{ gate: 'cleanup', by: 'tester' }] });
    expect((await handle.result()).phase).toBe('completed');
  });
});
