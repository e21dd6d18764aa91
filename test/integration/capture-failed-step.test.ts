/**
 * An activity reached after the capture went on that fails all its attempts (here the
 * verification's record of a run, refused by a trigger of the test's own on the target) must end
 * the migration as a failure ends it: the capture trigger, or the replication slot and the
 * publication, removed from the source with the migration's log entries, the target released and
 * the phase failed (its search attribute), the workflow failing with a message that names the cause. Before, the
 * workflow failed where it stood and left the capture on the source for ever. Real PostgreSQL
 * and Temporal; the test's own SQL looks at what is left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureObjectName } from '../../activities/capture/statements';
import { logicalCaptureName } from '../../lib/ids';
import { phaseKey } from '../../lib/search-attributes';
import { validatePlan } from '../../lib/plan';
import { migrationReport, startMigration, verifyMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { createTestDatabase, sql, startWorker, type TestWorker } from '../support/harness';

describe('a step whose activity fails all its attempts after the capture went on', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_failed_step');
    for (const mode of ['trigger', 'logical']) {
      await sql(url, `
        CREATE TABLE items_${mode} (id int PRIMARY KEY, qty int NOT NULL);
        INSERT INTO items_${mode} SELECT i, i % 7 FROM generate_series(1, 200) AS i;
        CREATE TABLE items_${mode}_v2 (id int PRIMARY KEY, qty bigint NOT NULL);`);
    }
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each(['trigger', 'logical'] as const)('with capture: %s, fails through its ending: capture removed, phase failed, cause named', { timeout: 180_000 }, async (mode) => {
    const plan = validatePlan({
      name: `failed-step-${mode}`,
      source: { connection: 'DB', table: `items_${mode}`, key: 'id' },
      target: { connection: 'DB', table: `items_${mode}_v2` },
      transform: { sql: { id: 'id', qty: 'qty' } },
      capture: mode,
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await atCleanupGate(worker, id);
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [`items_${mode}`])).not.toEqual([]);

    // Every attempt of the verification's first activity is refused: a short outage, for it.
    await sql(url, `
      CREATE FUNCTION public.refuse_runs() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'verification runs refused by the test'; END $$;
      CREATE TRIGGER refuse_runs BEFORE INSERT ON ferry.verification_runs FOR EACH ROW EXECUTE FUNCTION public.refuse_runs();`);
    const asked = verifyMigration(worker.client, id, { by: 'test' }).catch((error: Error) => error);
    const ended = await handle
      .result()
      .then(
        (status) => ({ phase: status.phase, error: '' }),
        (error: Error) => ({ phase: 'failed', error: `${error.message} ${(error.cause as Error | undefined)?.message ?? ''}` }),
      )
      .finally(() => sql(url, `DROP TRIGGER refuse_runs ON ferry.verification_runs; DROP FUNCTION public.refuse_runs()`));
    await asked;
    expect(ended.phase).toBe('failed');

    // The source as the test's own SQL sees it: nothing of the capture is left.
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [`items_${mode}`])).toEqual([]);
    expect(await sql(url, `SELECT proname FROM pg_proc WHERE proname = $1`, [captureObjectName(id)])).toEqual([]);
    expect(await sql(url, `SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1`, [logicalCaptureName(id)])).toEqual([]);
    expect(await sql(url, `SELECT pubname FROM pg_publication WHERE pubname = $1`, [logicalCaptureName(id)])).toEqual([]);
    expect(await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
    expect(await sql(url, `SELECT state FROM ferry.migrations WHERE migration_id = $1`, [id])).toEqual([{ state: 'failed' }]);
    // The phase operators list migrations by; a failed run serves its failure, not its status.
    expect((await handle.describe()).typedSearchAttributes.get(phaseKey)).toBe('failed');
    // The cause is the test's trigger, whose raised text is withheld as any raised text is (it may carry row values).
    const raised = /raised by a trigger or function on the target \(SQLSTATE P0001\); its message is withheld/;
    expect((await migrationReport(worker.client, id)).failure).toMatch(raised);
    expect(ended.error).toMatch(/step gate:cleanup failed: raised by a trigger or function on the target/);
    expect(ended.error).not.toContain('refused by the test');
    // A TRUNCATE of the source is no longer refused.
    await sql(url, `TRUNCATE items_${mode}`);
  });
});
