/**
 * The unmodified client: pgbench's TPC-B script (4 clients, 500 tps) updates pgbench_accounts for the
 * whole of a `capture: trigger` migration into a reshaped table (abalance to a bigint of cents),
 * in one database and across two. After pgbench stops and the change lag reaches zero, Ferry's
 * first verification pass is clean and the test's own md5 of every row finds no difference.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureObjectName } from '../../activities/capture/statements';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration } from '../../operator';
import { startPgbench } from '../../scripts/bench/pgbench';
import { ferry } from '../support/cli';
import { sql, sqlRow, type TestWorker } from '../support/harness';
import { atCleanupGate, expectReshapedAccountsEqual, PGBENCH_TPS, reshapedAccountsPlan, setUpPgbenchCapture } from '../support/pgbench-capture';
import { noChangeWaitingSince } from '../support/capture-lag';

describe.each([
  ['in one database', false],
  ['across two databases', true],
])('pgbench writing through a trigger-capture migration %s', (_label, acrossDatabases) => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let pgbench: string;

  beforeAll(async () => {
    ({ pgbench, sourceUrl, targetUrl, worker } = await setUpPgbenchCapture('capture_pgbench', acrossDatabases));
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('ends clean at the first verification pass once pgbench stops and the lag is zero', async () => {
    const plan = reshapedAccountsPlan(`capture-pgbench-${acrossDatabases ? 'across' : 'within'}`, 'trigger');
    const bench = startPgbench(pgbench, sourceUrl, PGBENCH_TPS);
    let benchOutput: string;
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    try {
      // pgbench writes through the whole migration: the backfill, the catch-up and the verification.
      await atCleanupGate(worker, id);
      expect(bench.process.exitCode, 'pgbench ran through the migration').toBeNull();
    } finally {
      benchOutput = await bench.stop();
    }
    const { n: transactions } = await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pgbench_history`);
    expect(transactions, benchOutput).toBeGreaterThan(200);

    await noChangeWaitingSince(worker, id, new Date().toISOString());
    const verified = await ferry(['verify', id, '--json'], worker.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0 });

    await expectReshapedAccountsEqual(sourceUrl, targetUrl);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    console.log(`${_label}: ${result.phases.map((p) => `${p.name} ${((Date.parse(p.endedAt!) - Date.parse(p.startedAt)) / 1000).toFixed(1)} s`).join(', ')}`);
    expect(result.capture!.keysApplied).toBeGreaterThan(0);
    expect(await sql(sourceUrl, `SELECT 1 FROM pg_trigger WHERE tgname = $1`, [captureObjectName(id)])).toEqual([]);
    expect(await sql(sourceUrl, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });
});
