/**
 * The application grows slower on its own while Ferry copies: the copy must not sit at its lowest
 * rate for ever against a baseline measured in a quieter moment. It looks with the copy idle,
 * takes the budget from what it sees, and climbs again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { startPostgres, type PostgresServer } from '../../scripts/services/postgres';
import { eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 40_000;

describe('pacing when the foreground slows down on its own', () => {
  let server: PostgresServer;
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    // fsync on: commit_delay, which stands for the application's new load, delays only flushes.
    server = await startPostgres({ local: true, fsync: true });
    url = await server.createDatabase('pacing_idle_look');
    await sql(url, `
      CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL);
      INSERT INTO ledger SELECT i, i % 97 FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE ledger_new (id int PRIMARY KEY, amount int NOT NULL);`);
    worker = await startWorker({ DB: url });
  }, 60_000);
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
  });

  it('looks at the foreground with the copy idle once cuts stop helping, and climbs back to its ceiling', async () => {
    const plan = validatePlan({
      name: 'paced-idle-look',
      source: { connection: 'DB', table: 'ledger', key: 'id' },
      target: { connection: 'DB', table: 'ledger_new' },
      transform: { sql: { id: 'id', amount: 'amount' } },
      shards: { count: 1 },
      // Samples every half second: ten intervals at the lowest rate pass in five seconds.
      throttle: { rowsPerSecond: 2000, checkpointSeconds: 0.5, budget: { intervalSeconds: 0.5 } },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const copied = async () => (await sqlRow(url, 'SELECT count(*)::int AS n FROM ledger_new')).n as number;
    await eventually(async () => (await copied()) > 0, 30_000, 'the first rows');
    const reason = async () => (await migrationReport(worker.client, handle.workflowId)).status?.shards[0]?.throttleReason ?? null;

    // Every commit of the server now waits 30 ms before its flush: what the application feels
    // grows tenfold or more, and no cut of the copy's rate brings it back.
    await sql(url, 'ALTER SYSTEM SET commit_delay = 30000');
    await sql(url, 'ALTER SYSTEM SET commit_siblings = 0');
    await sql(url, 'SELECT pg_reload_conf()');

    const stuck = await eventually(async () => {
      const now = await reason();
      return now?.match(/^paced at 500 rows\/s by latency: median canary commit [\d.]+ ms, budget [\d.]+ ms \(1\.2x of [\d.]+ ms before the copy\)$/) ? now : undefined;
    }, 30_000, 'the copy at its lowest rate, held by latency');
    expect(stuck).toBeTruthy();

    // Without the look the copy stays at 500 rows/s until it ends; with it, the budget follows
    // the slower foreground and the rate comes back to the ceiling.
    const seen: string[] = [];
    await eventually(async () => {
      const now = await reason();
      if (now && seen.at(-1) !== now) seen.push(now);
      return now?.startsWith('rows/s limit (2000 rows/s') || undefined;
    }, 60_000, 'the copy back at its ceiling').catch((error: Error) => {
      throw new Error(`${error.message}; reasons seen: ${seen.slice(-8).join(' | ')}`);
    });

    const status = await handle.result();
    expect(status.phase).toBe('completed');
    // The test's own check, not Ferry's: every row arrived with its value.
    const [source, target] = await Promise.all(
      ['ledger', 'ledger_new'].map(async (table) => (await sqlRow(url, `SELECT md5(string_agg(id || ':' || amount, ',' ORDER BY id)) AS h FROM ${table}`)).h as string),
    );
    expect(target).toBe(source);
  });
});
