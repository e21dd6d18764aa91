/**
 * The unmodified client: pgbench's TPC-B script (4 clients) updates pgbench_accounts for the
 * whole of a `capture: trigger` migration into a reshaped table (abalance to a bigint of cents),
 * in one database and across two. After pgbench stops and the change lag reaches zero, Ferry's
 * first verification pass is clean and the test's own md5 of every row finds no difference.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureObjectName } from '../../activities/capture/statements';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { initPgbench, startPgbench } from '../../scripts/bench/pgbench';
import { ensurePgTool } from '../../scripts/bench/pg-tools';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

/** pgbench -i -s 1: 100,000 accounts. */
const SCALE = 1;

describe.each([
  ['in one database', false],
  ['across two databases', true],
])('pgbench writing through a trigger-capture migration %s', (_label, acrossDatabases) => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let pgbench: string;

  beforeAll(async () => {
    pgbench = ensurePgTool('pgbench');
    sourceUrl = await createTestDatabase('capture_pgbench_src');
    targetUrl = acrossDatabases ? await createTestDatabase('capture_pgbench_tgt') : sourceUrl;
    await initPgbench(pgbench, sourceUrl, SCALE);
    await sql(targetUrl, `CREATE TABLE pgbench_accounts_v2 (aid int PRIMARY KEY, bid int, abalance_cents bigint NOT NULL, filler char(84))`);
    worker = await startWorker({ SOURCE_DB: sourceUrl, TARGET_DB: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('ends clean at the first verification pass once pgbench stops and the lag is zero', async () => {
    const plan = validatePlan({
      name: `capture-pgbench-${acrossDatabases ? 'across' : 'within'}`,
      source: { connection: 'SOURCE_DB', table: 'pgbench_accounts', key: 'aid' },
      target: { connection: 'TARGET_DB', table: 'pgbench_accounts_v2' },
      transform: { sql: { aid: 'aid', bid: 'bid', abalance_cents: 'abalance::bigint * 100', filler: 'filler' } },
      capture: 'trigger',
      // A row pgbench changes during a check is read again this much later (the default is 2 s).
      verify: { inFlightDelaySeconds: 0.5 },
    });
    const bench = startPgbench(pgbench, sourceUrl);
    let benchOutput: string;
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    try {
      // pgbench writes through the whole migration: the backfill, the catch-up and the verification.
      let last: MigrationStatus | undefined;
      await eventually(async () => {
        last = (await migrationReport(worker.client, id)).status ?? undefined;
        return last?.gate?.name === 'cleanup' ? true : undefined;
      }, 150_000, 'the cleanup gate').catch((error: Error) => {
        const phases = last?.phases.map((p) => `${p.name} ${p.startedAt}..${p.endedAt ?? ''}`).join(', ');
        throw new Error(`${error.message}; phases ${phases}; rows read ${last?.rowsRead}; capture ${JSON.stringify(last?.capture)}; verification ${JSON.stringify(last?.verification)}`);
      });
      expect(bench.process.exitCode, 'pgbench ran through the migration').toBeNull();
    } finally {
      benchOutput = await bench.stop();
    }
    const { n: transactions } = await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pgbench_history`);
    expect(transactions, benchOutput).toBeGreaterThan(200);

    // A lag measured after pgbench stopped: one measured before may read zero between two writes.
    const stoppedAt = new Date().toISOString();
    await eventually(
      async () => {
        const lag = (await migrationReport(worker.client, id)).status?.capture?.lag;
        return lag?.changesWaiting === 0 && (lag.measuredAt ?? '') > stoppedAt ? true : undefined;
      },
      60_000,
      'no change waiting',
    );
    const verified = await ferry(['verify', id, '--json'], worker.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0 });

    // The test's own comparison: md5 of each row's text, the source reshaped by hand.
    const [source, target] = await Promise.all([
      sql<{ aid: number; h: string }>(sourceUrl, `SELECT aid, md5(row(aid, bid, abalance::bigint * 100, filler)::text) AS h FROM pgbench_accounts ORDER BY aid`),
      sql<{ aid: number; h: string }>(targetUrl, `SELECT aid, md5(row(aid, bid, abalance_cents, filler)::text) AS h FROM pgbench_accounts_v2 ORDER BY aid`),
    ]);
    expect(source).toHaveLength(SCALE * 100_000);
    expect(target).toEqual(source);
    const { changed } = await sqlRow(sourceUrl, `SELECT count(*)::int AS changed FROM pgbench_accounts WHERE abalance <> 0`);
    expect(changed).toBeGreaterThan(100);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    console.log(`${_label}: ${result.phases.map((p) => `${p.name} ${((Date.parse(p.endedAt!) - Date.parse(p.startedAt)) / 1000).toFixed(1)} s`).join(', ')}`);
    expect(result.capture!.keysApplied).toBeGreaterThan(0);
    expect(await sql(sourceUrl, `SELECT 1 FROM pg_trigger WHERE tgname = $1`, [captureObjectName(id)])).toEqual([]);
    expect(await sql(sourceUrl, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });
});
