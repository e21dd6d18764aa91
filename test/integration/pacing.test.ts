/** The default throttle paces the copy by what the application feels, and status names why. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { changeThrottle, migrationReport, startMigration } from '../../operator';
import { formatStatus } from '../../cli/render';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 40_000;

describe('pacing by the application', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('pacing_copy');
    await sql(url, `
      CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL);
      INSERT INTO ledger SELECT i, i % 97 FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE ledger_new (id int PRIMARY KEY, amount int NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  /** Copies ledger into `target` under a rows/s ceiling, which keeps the copy going long enough to watch; the controller runs below it. */
  async function startCopy(target: string, throttle: PlanInput['throttle']) {
    const plan = validatePlan({
      name: target.replace(/_/g, '-'),
      source: { connection: 'DB', table: 'ledger', key: 'id' },
      target: { connection: 'DB', table: target },
      transform: { sql: { id: 'id', amount: 'amount' } },
      throttle,
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const copied = async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM ${target}`)).n as number;
    await eventually(async () => (await copied()) > 0, 30_000, 'the first rows');
    return { handle, copied };
  }

  /**
   * A maintenance session takes a lock that lets the copy read but makes the application's write
   * of row `id` wait: the application feels the wait, the copier does not. Returns its release.
   */
  async function appWaitingOnLock(id: number): Promise<() => Promise<void>> {
    const maintenance = new pg.Client({ connectionString: url, application_name: 'maintenance' });
    const app = new pg.Client({ connectionString: url, application_name: 'ledger app' });
    await Promise.all([maintenance.connect(), app.connect()]);
    await maintenance.query('BEGIN; LOCK TABLE ledger IN SHARE ROW EXCLUSIVE MODE');
    const writing = app.query(`UPDATE ledger SET amount = amount + 1 WHERE id = ${id}`);
    return async () => {
      await maintenance.query('COMMIT');
      await writing;
      await Promise.all([maintenance.end(), app.end()]);
    };
  }

  it('slows down while the application waits on a lock on the source, says so, and finishes once it is gone', async () => {
    const { handle, copied } = await startCopy('ledger_new', { rowsPerSecond: 4000, checkpointSeconds: 0.5 });
    const release = await appWaitingOnLock(1);

    const reason = await eventually(async () => {
      const shard = (await migrationReport(worker.client, handle.workflowId)).status?.shards[0];
      return shard?.throttleReason?.match(/^paced at \d+ rows\/s by lock-waits: 1 session waiting on a lock on the tables involved/) ? shard.throttleReason : undefined;
    }, 30_000, 'the lock-wait signal in status');
    expect(reason).toContain('(budget 0)');
    const report = await migrationReport(worker.client, handle.workflowId);
    expect(formatStatus(report)).toMatch(/^held by {3}lock-waits \(shard 0\)$/m);
    expect(formatStatus(report)).toContain(`\nloosen    ferry throttle ${handle.workflowId} --max-lock-waits N (or --pacing off)\n`);

    // Held back, the copy goes on well below its ceiling (which would copy 8,000 rows in 2 s): the
    // rate the controller names keeps falling while the lock is held. Rows counted over a window
    // would also measure how loaded the machine is, so the test reads the controller's own rate.
    const pacedRate = async () => {
      const shard = (await migrationReport(worker.client, handle.workflowId)).status?.shards[0];
      const rate = /^paced at (\d+) rows\/s by lock-waits/.exec(shard?.throttleReason ?? '')?.[1];
      return rate === undefined ? undefined : Number(rate);
    };
    const before = await copied();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await copied()) - before).toBeLessThan(8000);
    await eventually(async () => ((await pacedRate()) ?? Infinity) <= 2000 || undefined, 30_000, 'the paced rate at half the ceiling or less');

    await release();
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    // The test's own check, not Ferry's: every row arrived with its value (row 1 as updated).
    const [source, target] = await Promise.all(
      ['ledger', 'ledger_new'].map(async (table) => (await sqlRow(url, `SELECT md5(string_agg(id || ':' || amount, ',' ORDER BY id)) AS h FROM ${table} WHERE id > 1`)).h as string),
    );
    expect(target).toBe(source);
    expect(await copied()).toBe(ROWS);
  });

  it('lets an operator turn the controller off and on again and widen its budget while it runs; a p99 factor with it off is refused and changes nothing', async () => {
    await sql(url, 'CREATE TABLE ledger_ops (id int PRIMARY KEY, amount int NOT NULL)');
    const { handle } = await startCopy('ledger_ops', { rowsPerSecond: 2000, checkpointSeconds: 30 });
    const id = handle.workflowId;
    const reasonNow = async () => (await migrationReport(worker.client, id)).status?.shards[0]?.throttleReason ?? '';
    const release = await appWaitingOnLock(2);
    try {
      await eventually(async () => /^paced at \d+ rows\/s by lock-waits/.test(await reasonNow()) || undefined, 30_000, 'the controller pacing');

      // Off: the running copy call makes way (its checkpoint is 30 s away) and the next one is not paced.
      const off = await ferry(['throttle', id, '--pacing', 'off', '--reason', 'the lock is expected'], worker.temporal);
      expect(off.code, off.stderr).toBe(ExitCode.ok);
      expect(off.stdout).toContain("changed from the plan's: pacing off");
      await eventually(async () => !(await reasonNow()).startsWith('paced at') || undefined, 10_000, 'the copy no longer paced');

      // A p99 factor while the controller is off has nothing to set: refused, nothing moves.
      const before = (await migrationReport(worker.client, id)).status!;
      await expect(changeThrottle(worker.client, id, { p99Factor: 2 })).rejects.toThrow('the pacing controller is off: turn it on in the same change (ferry throttle --pacing on) to set p99Factor');
      const after = (await migrationReport(worker.client, id)).status!;
      expect(after.throttle).toEqual(before.throttle);
      expect(after.events.filter((e) => e.kind === 'throttle')).toEqual(before.events.filter((e) => e.kind === 'throttle'));

      // On again, with a budget of its own: the lock wait paces the copy once more.
      const on = await changeThrottle(worker.client, id, { pacing: true, p99Factor: 3, by: 'alice' });
      expect(on.budget).toMatchObject({ p99Factor: 3, maxLockWaits: 0 });
      await eventually(async () => /^paced at \d+ rows\/s by lock-waits/.test(await reasonNow()) || undefined, 10_000, 'the controller pacing again');

      // One waiting session is within a budget of one: the lock no longer holds the copy back.
      const roomier = await ferry(['throttle', id, '--max-lock-waits', '1', '--by', 'alice'], worker.temporal);
      expect(roomier.code, roomier.stderr).toBe(ExitCode.ok);
      expect(roomier.stdout).toContain("changed from the plan's: pacing within 3x of the p99 before the copy, 1 lock wait");
      await eventually(async () => !/by lock-waits/.test(await reasonNow()) || undefined, 10_000, 'the copy no longer paced by the lock wait');
    } finally {
      await release();
    }
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.events.filter((e) => e.kind === 'throttle').map((e) => e.detail)).toEqual([
      'pacing on -> off (the lock is expected)',
      'pacing off -> on',
      'budget.maxLockWaits 0 -> 1',
    ]);
    const digest = (table: string) => rowsDigest(url, `SELECT id, amount FROM ${table}`);
    expect(await digest('ledger_ops')).toEqual(await digest('ledger'));
  });
});
