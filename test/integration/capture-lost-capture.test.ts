/**
 * A capture that stops for good after the verification (a replication slot dropped by hand, or
 * invalidated past max_slot_wal_keep_size; a capture trigger dropped or disabled by hand; a column
 * the transform reads dropped, which no retry of the change apply can get past) while
 * the migration waits at its cleanup gate: the source's later changes never reach the target, so
 * the migration must fail naming why, not complete. Real PostgreSQL and Temporal; the test's own
 * md5 of every row shows the difference Ferry would otherwise have left unsaid.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureObjectName } from '../../activities/capture/statements';
import { ExitCode } from '../../cli/exit-codes';
import { logicalCaptureName } from '../../lib/ids';
import { validatePlan } from '../../lib/plan';
import { migrationReport, startMigration } from '../../operator';
import { atCleanupGate } from '../support/pgbench-capture';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

/** Keys whose row differs between source and target, by md5 of the row's text (cents by hand; the note while the source has one). */
async function differingKeys(url: string, source: string, target: string): Promise<number[]> {
  const note = source === 'accounts_dropped' ? '' : ', note';
  const rows = await sql<{ id: number }>(
    url,
    `SELECT COALESCE(s.id, t.id) AS id FROM (SELECT id, md5(row(id, (balance * 100)::bigint${note})::text) AS h FROM ${source}) AS s
       FULL JOIN (SELECT id, md5(row(id, cents${note})::text) AS h FROM ${target}) AS t ON s.id = t.id
      WHERE s.h IS DISTINCT FROM t.h ORDER BY 1`,
  );
  return rows.map((r) => r.id);
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('a capture lost while the migration waits at its cleanup gate', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_lost');
    for (const name of ['logical', 'trigger', 'dropped']) {
      await sql(url, `
        CREATE TABLE accounts_${name} (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
        INSERT INTO accounts_${name} SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, 300) AS i;
        CREATE TABLE accounts_${name}_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`);
    }
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each([
    ['logical', 'its replication slot dropped by hand', /replication slot .* is gone/],
    ['trigger', 'its trigger disabled by hand', /capture trigger .* on public\.accounts_trigger is disabled/],
    ['trigger', 'a column of its transform dropped', /change apply cannot run on the tables as the plan names them: column .*note.* does not exist/],
  ] as const)('with capture: %s, %s, fails rather than completes', { timeout: 120_000 }, async (mode, what, why) => {
    const source = `accounts_${what.startsWith('a column') ? 'dropped' : mode}`;
    const plan = validatePlan({
      name: `capture-lost-${source.replace(/_/g, "-")}`,
      source: { connection: 'DB', table: source, key: 'id' },
      target: { connection: 'DB', table: `${source}_v2` },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: mode,
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await atCleanupGate(worker, id);
    expect((await migrationReport(worker.client, id)).status?.verification).toMatchObject({ clean: true });
    expect(await differingKeys(url, source, `${source}_v2`)).toEqual([]);

    if (mode === 'logical') {
      const slot = logicalCaptureName(id);
      await eventually(async () => {
        await sql(url, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, [slot]);
        return (await sql(url, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [slot])).length > 0 || undefined;
      }, 20_000, 'the slot dropped');
    } else if (source === 'accounts_dropped') {
      await sql(url, `ALTER TABLE ${source} DROP COLUMN note`);
    } else {
      await sql(url, `ALTER TABLE ${source} DISABLE TRIGGER ${captureObjectName(id)}`);
    }
    await sql(url, `UPDATE ${source} SET balance = balance + 1 WHERE id <= 20; DELETE FROM ${source} WHERE id BETWEEN 21 AND 25`);
    // The change apply has had time to see what it could.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    const lost = await differingKeys(url, source, `${source}_v2`);
    // The deletes name no dropped column: only they reach the target then.
    expect(lost).toEqual(source === 'accounts_dropped' ? range(1, 20) : range(1, 25));

    // Recorded where the operator sees it, and carried by continue-as-new, while the gate still waits.
    expect((await migrationReport(worker.client, id)).status?.capture?.stoppedBecause).toMatch(why);

    const approved = await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal);
    expect(approved.code, approved.stderr).toBe(ExitCode.ok);
    const ended = await handle.result().then(
      (status) => ({ phase: status.phase, error: null as string | null }),
      (error: Error) => ({ phase: 'failed', error: `${error.message} ${(error.cause as Error | undefined)?.message ?? ''}` }),
    );
    expect(ended.phase).toBe('failed');
    expect(ended.error).toMatch(why);
    // The failure takes the capture down, as any failure does.
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal`, [source])).toEqual([]);
    expect(await sql(url, `SELECT pubname FROM pg_publication WHERE pubname = $1`, [logicalCaptureName(id)])).toEqual([]);
    expect(await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });
});
