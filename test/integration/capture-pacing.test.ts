/** The change apply of trigger capture is paced like the backfill: a lock the application waits on holds it back, and status names the signal. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { formatStatus } from '../../cli/render';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { noChangeWaitingSince } from '../support/capture-lag';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;
const CEILING = 2000;

describe('pacing the change apply by the application', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('capture_pacing');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, ${ROWS}) AS i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const statusOf = async (id: string) => (await migrationReport(worker.client, id)).status!;
  const applied = async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM accounts_v2 WHERE note = 'changed'`)).n as number;
  /** The test's own comparison: md5 of every row's text, the source through the same reshaping by hand. */
  const digest = async () =>
    Promise.all([
      sqlRow(url, `SELECT md5(string_agg(row(id, (balance * 100)::bigint, note)::text, ',' ORDER BY id)) AS h FROM accounts`),
      sqlRow(url, `SELECT md5(string_agg(row(id, cents, note)::text, ',' ORDER BY id)) AS h FROM accounts_v2`),
    ]);

  it('slows down while the application waits on a lock on the source, says why, stops pacing when an operator turns the controller off, and catches up', async () => {
    const plan = validatePlan({
      name: 'capture-paced',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: 'trigger',
      throttle: { checkpointSeconds: 0.5 },
      verify: { chunkSize: 2000, inFlightDelaySeconds: 0.5 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await statusOf(id)).gate?.name === 'cleanup' ? true : undefined), 120_000, 'the cleanup gate');

    // A ceiling keeps the change apply going long enough to watch; the controller runs below it.
    const throttled = await ferry(['throttle', id, '--rows-per-second', String(CEILING), '--by', 'erin'], worker.temporal);
    expect(throttled.code, throttled.stderr).toBe(ExitCode.ok);
    await new Promise((resolve) => setTimeout(resolve, 6000)); // the apply call under way ends (5 s at most)

    // Every row changes, then a maintenance session takes a lock that lets the applier read the
    // source but makes the application's next write wait: the application feels the wait.
    await sql(url, `UPDATE accounts SET note = 'changed'`);
    const maintenance = new pg.Client({ connectionString: url, application_name: 'maintenance' });
    const app = new pg.Client({ connectionString: url, application_name: 'accounts app' });
    await Promise.all([maintenance.connect(), app.connect()]);
    await maintenance.query('BEGIN; LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE');
    const writing = app.query(`UPDATE accounts SET balance = balance + 1 WHERE id = 1`);
    try {
      const reason = await eventually(async () => {
        const why = (await statusOf(id)).capture?.throttleReason;
        return why?.match(/^paced at \d+ rows\/s by lock-waits: 1 session waiting on a lock on the tables involved/) ? why : undefined;
      }, 30_000, 'the lock-wait signal in the capture status');
      expect(reason).toContain('(budget 0)');
      const shown = formatStatus(await migrationReport(worker.client, id));
      expect(shown).toMatch(/^capture {3}trigger since .*; paced at \d+ rows\/s by lock-waits/m);
      expect(shown).toMatch(/^held by {3}lock-waits \(change apply\)$/m);

      // Held back, the apply goes on below its ceiling (which would apply 4,000 keys in 2 s), and
      // the rate the controller names keeps falling while the lock is held. Keys counted over a
      // window also measure how loaded the machine is, so the test reads the controller's own rate.
      const pacedRate = async () => {
        const rate = /^paced at (\d+) rows\/s by lock-waits/.exec((await statusOf(id)).capture?.throttleReason ?? '')?.[1];
        return rate === undefined ? undefined : Number(rate);
      };
      const before = await applied();
      expect(before).toBeLessThan(ROWS);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect((await applied()) - before).toBeLessThan(2 * CEILING);
      await eventually(async () => ((await pacedRate()) ?? Infinity) <= CEILING / 2 || undefined, 30_000, 'the paced rate at half the ceiling or less');

      // The operator turns the controller off: the change apply's next call (5 s at most) is not paced.
      const off = await ferry(['throttle', id, '--pacing', 'off', '--by', 'erin'], worker.temporal);
      expect(off.code, off.stderr).toBe(ExitCode.ok);
      await eventually(async () => !((await statusOf(id)).capture?.throttleReason ?? '').startsWith('paced at') || undefined, 15_000, 'the change apply no longer paced');
    } finally {
      await maintenance.query('COMMIT');
      await writing;
      await Promise.all([maintenance.end(), app.end()]);
    }

    // Released, the apply catches up: no change waits, and the test's own md5 finds both sides equal.
    await noChangeWaitingSince(worker, id, new Date().toISOString());
    expect(await applied()).toBe(ROWS);
    const [source, target] = await digest();
    expect(target.h).toBe(source.h);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('completed');
  });
});
