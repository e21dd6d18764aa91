/**
 * Pacing never holds the change apply below the rate the application writes at. pgbench (one
 * account a transaction: TPC-B without its tellers and branches) writes faster than the
 * controller's lowest rate, while sessions that are not Ferry's (eight that only sleep) put the
 * active-backends signal over its budget for as long as they run: the controller sits at its
 * floor, and only the keep-up floor lets the apply hold its lag. Before it, the apply was paced
 * at 500 rows/s below a writer of 900 changes/s, and the backlog grew without end.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { MIN_PACED_ROWS_PER_SECOND } from '../../lib/pacing-controller';
import { migrationReport, startMigration } from '../../operator';
import { startPgbench } from '../../scripts/bench/pgbench';
import { ferry } from '../support/cli';
import { eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { atCleanupGate, expectReshapedAccountsEqual, reshapedAccountsPlan, setUpPgbenchCapture } from '../support/pgbench-capture';
import { noChangeWaitingSince } from '../support/capture-lag';

/** Faster than the controller's floor, and within what pgbench's simple-update does beside Ferry on 2 cores. */
const WRITER_TPS = 900;
/** pgbench's 4 clients and a query of the test's own stay within it; the sleepers do not. */
const MAX_ACTIVE = 6;
const SLEEPERS = 8;
const WATCH_MS = 30_000;
const SLEEPER_NAME = 'ferry-test keep-up sleeper';

describe('the change apply under pacing that answers load not its own', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let pgbench: string;

  beforeAll(async () => {
    ({ pgbench, sourceUrl, targetUrl, worker } = await setUpPgbenchCapture('capture_keep_up', false));
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('keeps up with a writer faster than the controller would let it go, says so, and ends equal', { timeout: 300_000 }, async () => {
    const plan = reshapedAccountsPlan('capture-keep-up', 'trigger', {
      throttle: { budget: { maxActiveBackends: MAX_ACTIVE } },
      // The sleepers' queries run long on purpose: the backoff must not hold for them.
      backoff: { maxQuerySeconds: 3600 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const statusOf = async () => (await migrationReport(worker.client, id)).status!;
    const sleepers = Array.from({ length: SLEEPERS }, () => new pg.Client({ connectionString: sourceUrl, application_name: SLEEPER_NAME }));
    const samples: { waiting: number; oldest: number; differing: number }[] = [];
    let arrivalsPerSecond: number;
    let bench: ReturnType<typeof startPgbench> | undefined;
    try {
      // Only the apply runs at the gate: the writer and the sleepers start there, and load the
      // machine (and the tests running beside this one) for under a minute.
      await atCleanupGate(worker, id);
      bench = startPgbench(pgbench, sourceUrl, WRITER_TPS, 'simple-update');
      await Promise.all(sleepers.map((s) => s.connect()));
      // Under a minute: the backoff of tests running beside this one holds for a query on the
      // server older than that (backoff.maxQuerySeconds).
      for (const sleeper of sleepers) sleeper.query('SELECT pg_sleep(55)').catch(() => undefined);

      // The controller answers the sleepers by coming down to its floor; the apply's rate stays above
      // it. On a machine loaded by other test files latency may be the worse signal, which holds it
      // there as well.
      const atFloor = new RegExp(
        `^keeping up with the writes at \\d+ rows/s \\(\\d+ changes/s arrive\\); pacing alone would hold it to ${MIN_PACED_ROWS_PER_SECOND} rows/s by (active-backends: \\d+ active sessions, budget ${MAX_ACTIVE}|latency: .+)$`,
      );
      let lastReason: string | null = null;
      await eventually(async () => {
        lastReason = (await statusOf()).capture?.throttleReason ?? null;
        return atFloor.test(lastReason ?? '') || undefined;
      }, 20_000, 'the keep-up floor named in the capture status').catch((error: Error) => {
        throw new Error(`${error.message}; the last reason: ${lastReason}`);
      });

      // Watched with the test's own count of pgbench's transactions (one account each) as the writer's
      // rate, and its own count of the accounts whose balance differs on the target now (the one column
      // pgbench changes), beside Ferry's lag.
      const history = async () => (await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pgbench_history`)).n as number;
      const differing = async () =>
        (await sqlRow(sourceUrl, `SELECT count(*)::int AS n FROM pgbench_accounts a JOIN pgbench_accounts_v2 b USING (aid) WHERE b.abalance_cents <> a.abalance::bigint * 100`)).n as number;
      const [firstCount, from] = [await history(), Date.now()];
      while (Date.now() - from < WATCH_MS) {
        const lag = (await statusOf()).capture?.lag;
        samples.push({ waiting: lag?.changesWaiting ?? NaN, oldest: lag?.oldestSeconds ?? NaN, differing: await differing() });
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      arrivalsPerSecond = ((await history()) - firstCount) / ((Date.now() - from) / 1000);
    } finally {
      // Ended from the client, a backend in pg_sleep would sleep on, and other tests' backoff
      // (which watches the whole server's long queries) would hold for it.
      await sql(sourceUrl, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [SLEEPER_NAME]);
      await Promise.all(sleepers.map((s) => s.end().catch(() => undefined)));
      await bench?.stop();
    }
    const shown = `${arrivalsPerSecond.toFixed(0)} changes/s; [waiting, oldest s, accounts differing] ${JSON.stringify(samples.map((s) => [s.waiting, s.oldest, s.differing]))}`;
    console.log(`keep-up: ${shown}`);
    // The writer outran the controller's floor (on a busy machine pgbench may not reach its rate), or the test proves nothing.
    expect(arrivalsPerSecond, shown).toBeGreaterThan(MIN_PACED_ROWS_PER_SECOND);
    // Held at 500 rows/s the backlog grows by what the writer adds above it, and the oldest ages
    // by a second a second: at 900 changes/s, 17,725 waiting, the oldest 20 s old, after 30 s.
    const late = samples.slice(samples.length / 2);
    // Kept up, a lag reading here was 3 s at most; a busy machine's pause is allowed for.
    expect(Math.max(...late.map((s) => s.oldest)), shown).toBeLessThan(10);
    expect(Math.max(...late.map((s) => s.waiting)), shown).toBeLessThan(arrivalsPerSecond * 8);
    // The same bound on the test's own reading, which shares no code with Ferry's lag.
    expect(Math.max(...late.map((s) => s.differing)), shown).toBeLessThan(arrivalsPerSecond * 8);

    // Stopped, the apply drains, and the test's own md5 of every row finds both sides equal.
    await noChangeWaitingSince(worker, id, new Date().toISOString());
    await expectReshapedAccountsEqual(sourceUrl, targetUrl);
    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('completed');
  });
});
