/**
 * The unmodified application of the capture tests: pgbench's TPC-B tables in a source database,
 * a reshaped copy of pgbench_accounts to migrate into (abalance to a bigint of cents), and the
 * test's own comparison of the two, sharing no code with Ferry.
 */
import { expect } from 'vitest';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { migrationReport } from '../../operator';
import { initPgbench } from '../../scripts/bench/pgbench';
import { ensurePgTool } from '../../scripts/bench/pg-tools';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from './harness';

/** pgbench -i -s 1: 100,000 accounts. */
export const PGBENCH_SCALE = 1;
/**
 * pgbench's rate in these tests: every account written about once in 200 s, a busy application,
 * that leaves CI's two cores to the migration. Unthrottled, pgbench takes them, and every test
 * running beside it slows.
 */
export const PGBENCH_TPS = 500;

export interface PgbenchCapture {
  pgbench: string;
  sourceUrl: string;
  targetUrl: string;
  worker: TestWorker;
}

/**
 * pgbench's tables in `${prefix}_src`, the reshaped table in the same database or in
 * `${prefix}_tgt`, and a worker that knows them as SOURCE_DB and TARGET_DB. `checkSource` runs
 * on the source before anything is created in it.
 */
export async function setUpPgbenchCapture(prefix: string, acrossDatabases: boolean, checkSource?: (url: string) => Promise<void>): Promise<PgbenchCapture> {
  const pgbench = ensurePgTool('pgbench');
  const sourceUrl = await createTestDatabase(`${prefix}_src`);
  await checkSource?.(sourceUrl);
  const targetUrl = acrossDatabases ? await createTestDatabase(`${prefix}_tgt`) : sourceUrl;
  await initPgbench(pgbench, sourceUrl, PGBENCH_SCALE);
  await sql(targetUrl, `CREATE TABLE pgbench_accounts_v2 (aid int PRIMARY KEY, bid int, abalance_cents bigint NOT NULL, filler char(84))`);
  const worker = await startWorker({ SOURCE_DB: sourceUrl, TARGET_DB: targetUrl });
  return { pgbench, sourceUrl, targetUrl, worker };
}

/** The migration of pgbench_accounts into the reshaped table, capturing changes in `mode`; `more` adds settings. */
export function reshapedAccountsPlan(name: string, mode: 'trigger' | 'logical', more: Partial<PlanInput> = {}): Plan {
  return validatePlan({
    name,
    source: { connection: 'SOURCE_DB', table: 'pgbench_accounts', key: 'aid' },
    target: { connection: 'TARGET_DB', table: 'pgbench_accounts_v2' },
    transform: { sql: { aid: 'aid', bid: 'bid', abalance_cents: 'abalance::bigint * 100', filler: 'filler' } },
    capture: mode,
    // A row pgbench changes during a check is read again this much later (the default is 2 s).
    verify: { inFlightDelaySeconds: 0.5 },
    ...more,
  });
}

/** Waits for the migration at its cleanup gate; a timeout says where the migration was. */
export async function atCleanupGate(worker: TestWorker, id: string): Promise<void> {
  let last: MigrationStatus | undefined;
  await eventually(async () => {
    last = (await migrationReport(worker.client, id)).status ?? undefined;
    return last?.gate?.name === 'cleanup' ? true : undefined;
  }, 150_000, 'the cleanup gate').catch((error: Error) => {
    const phases = last?.phases.map((p) => `${p.name} ${p.startedAt}..${p.endedAt ?? ''}`).join(', ');
    throw new Error(`${error.message}; phases ${phases}; rows read ${last?.rowsRead}; capture ${JSON.stringify(last?.capture)}; verification ${JSON.stringify(last?.verification)}`);
  });
}

/**
 * The test's own comparison: md5 of each row's text on both sides, the source reshaped by hand;
 * and pgbench must have changed enough balances for the comparison to mean something.
 */
export async function expectReshapedAccountsEqual(sourceUrl: string, targetUrl: string): Promise<void> {
  const [source, target] = await Promise.all([
    sql<{ aid: number; h: string }>(sourceUrl, `SELECT aid, md5(row(aid, bid, abalance::bigint * 100, filler)::text) AS h FROM pgbench_accounts ORDER BY aid`),
    sql<{ aid: number; h: string }>(targetUrl, `SELECT aid, md5(row(aid, bid, abalance_cents, filler)::text) AS h FROM pgbench_accounts_v2 ORDER BY aid`),
  ]);
  expect(source).toHaveLength(PGBENCH_SCALE * 100_000);
  expect(target).toEqual(source);
  const { changed } = await sqlRow(sourceUrl, `SELECT count(*)::int AS changed FROM pgbench_accounts WHERE abalance <> 0`);
  expect(changed).toBeGreaterThan(100);
}
