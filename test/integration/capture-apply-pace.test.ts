/**
 * The change apply's throttle against real PostgreSQL: the controller at its floor never holds
 * the apply below 1.5 times the changes arriving (the rows/s limit still caps it), and a page that
 * waited seconds for the apply lock (a verification look, a chunk's copy) owes no pace for that
 * wait, so the pages after it go on at once. Before, it owed its whole page again after the wait
 * and lost the lock's next turn as well. The arrivals it keeps up with are the median of whole
 * seconds, and a migration not counted for a minute is forgotten. While it keeps up it takes no
 * look at the foreground with the copy idle, which stopped it for 2.5 s (about 1,800 accounts
 * behind in capture-keep-up.test.ts, drained over 5 s).
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { arrivalRate, countArrivals, FORGET_AFTER_MS } from '../../activities/capture/arrivals';
import { installChangeLog } from '../../activities/capture/trigger';
import { openCopyThrottle, type CopyPacing } from '../../activities/copy/throttle';
import { KEEP_UP_MARGIN, MIN_PACED_ROWS_PER_SECOND, QUIET_LOOK_AFTER_INTERVALS } from '../../lib/pacing-controller';
import { validatePlan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase } from '../support/harness';

const ARRIVING = 1000;
const KEEP_UP = ARRIVING * KEEP_UP_MARGIN;

describe("the change apply's pace", () => {
  let pool: pg.Pool;
  let url: string;

  beforeAll(async () => {
    url = await createTestDatabase('apply_pace');
    pool = new pg.Pool({ connectionString: url, max: 4 });
  });
  afterAll(() => pool?.end());
  afterEach(() => vi.restoreAllMocks());

  const plan = validatePlan({
    name: 'apply-pace',
    source: { connection: 'DB', table: 'accounts', key: 'id' },
    target: { connection: 'DB', table: 'accounts_v2' },
    transform: { sql: { id: 'id' } },
    capture: 'trigger',
  });
  /** The controller's memory as a call carries it in: cut to its floor by latency. */
  const atFloor = (): CopyPacing => ({
    baseline: { latencyMs: 10, canaryMs: 10, activeBackends: 1 },
    state: { rowsPerSecond: MIN_PACED_ROWS_PER_SECOND, cutFrom: 1000, lastLatencyPressure: 3 },
    holding: { signal: 'latency', detail: 'median canary commit 34 ms, budget 12 ms' },
  });
  const applyThrottle = (rowsPerSecond: number | null, arriving: number | null) =>
    openCopyThrottle({ pool, plan, rowsPerSecond, pacing: atFloor(), writer: 'the change apply', keepUpWith: () => arriving });

  it('keeps the controller memory unchanged while an operator has the controller off, and goes at the ceiling', async () => {
    const off = await openCopyThrottle({ pool, plan: validatePlan({ ...plan, throttle: { budget: false } }), rowsPerSecond: 1200, pacing: atFloor(), writer: 'the change apply' });
    expect(off.afterBatch(1200).reason).toBe('rows/s limit (1200 rows/s for the change apply)');
    expect(off.pacing()).toEqual(atFloor());
  });

  it('keeps up with the changes arriving, below the rows/s limit, and says so', async () => {
    const unmeasured = await applyThrottle(null, null);
    expect(unmeasured.batchSize(100_000)).toBe(MIN_PACED_ROWS_PER_SECOND);
    expect(unmeasured.afterBatch(MIN_PACED_ROWS_PER_SECOND).reason).toMatch(/^paced at 500 rows\/s by latency: /);

    const keepingUp = await applyThrottle(null, ARRIVING);
    expect(keepingUp.batchSize(100_000)).toBe(KEEP_UP);
    const wait = keepingUp.afterBatch(KEEP_UP);
    expect(wait.reason).toBe(
      `keeping up with the writes at ${KEEP_UP} rows/s (${ARRIVING} changes/s arrive); pacing alone would hold it to 500 rows/s by latency: median canary commit 34 ms, budget 12 ms`,
    );
    // About one second for a second's worth of the keep-up rate.
    expect(wait.ms).toBeGreaterThan(500);
    expect(wait.ms).toBeLessThanOrEqual(1000);

    const limited = await applyThrottle(1200, ARRIVING);
    expect(limited.batchSize(100_000)).toBe(1200);
    expect(limited.afterBatch(1200).reason).toMatch(/^keeping up with the writes at 1200 rows\/s \(1000 changes\/s arrive\)/);

    // A limit below what arrives cannot keep up, and status says so.
    const tooLow = await applyThrottle(800, ARRIVING);
    expect(tooLow.batchSize(100_000)).toBe(800);
    expect(tooLow.afterBatch(800).reason).toBe('rows/s limit (800 rows/s for the change apply) is below the 1000 changes/s arriving: the lag grows');
  });

  it('owes no pace for the time a page waited for the apply lock, up to two seconds', async () => {
    const throttle = await applyThrottle(null, ARRIVING);
    const first = Date.now();
    await delay(2500); // the page waits out a look's hold of the lock
    expect(throttle.afterBatch(KEEP_UP, first).ms).toBe(0);
    // The next page, right away, is covered too; the one after it pays the rest.
    expect(throttle.afterBatch(KEEP_UP, Date.now()).ms).toBe(0);
    const third = throttle.afterBatch(KEEP_UP, Date.now()).ms;
    expect(third).toBeGreaterThan(0);
    expect(third).toBeLessThanOrEqual(1000);

    // Without the page's start, the wait earns only the controller's short burst.
    const unaware = await applyThrottle(null, ARRIVING);
    await delay(2500);
    expect(unaware.afterBatch(KEEP_UP).ms).toBeGreaterThan(500);

    // However long the apply sat idle before a page, it earns two seconds at most.
    const idle = await applyThrottle(null, ARRIVING);
    await delay(3500);
    expect(idle.afterBatch(2 * KEEP_UP, Date.now()).ms).toBeLessThan(100);
    const over = idle.afterBatch(KEEP_UP, Date.now()).ms;
    expect(over).toBeGreaterThan(800);
    expect(over).toBeLessThanOrEqual(1000);
  });

  it('takes no look at the foreground with the copy idle while it keeps up, and takes it once pacing sets its rate', async () => {
    // Sessions not Ferry's keep the active-backends signal over its budget: the controller stays
    // at its floor, where a look with the copy idle (2.5 s with nothing applied) is due.
    const sleepers = Array.from({ length: 4 }, () => new pg.Client({ connectionString: url, application_name: 'apply-pace sleeper' }));
    await Promise.all(sleepers.map((s) => s.connect()));
    for (const sleeper of sleepers) sleeper.query('SELECT pg_sleep(30)').catch(() => undefined);
    try {
      const busy = validatePlan({ ...plan, throttle: { budget: { maxActiveBackends: 2 } } });
      const lookDue: CopyPacing = { ...atFloor(), state: { ...atFloor().state, floorIntervals: QUIET_LOOK_AFTER_INTERVALS } };
      let arriving = ARRIVING;
      const throttle = await openCopyThrottle({ pool, plan: busy, rowsPerSecond: null, pacing: lookDue, writer: 'the change apply', keepUpWith: () => arriving });
      await runActivity(() => throttle.beforeBatch(), undefined);
      expect(throttle.pacing()!.idleLooks ?? 0).toBe(0);
      expect(throttle.afterBatch(KEEP_UP).reason).toMatch(/^keeping up with the writes at 1500 rows\/s .* to 500 rows\/s by active-backends: /);
      // The writes slow to what pacing allows: the look is taken.
      arriving = 100;
      // In an activity's context, where the look logs what it saw.
      await runActivity(() => throttle.beforeBatch(), undefined);
      expect(throttle.pacing()!.idleLooks).toBe(1);
    } finally {
      await pool.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'apply-pace sleeper'`);
      await Promise.all(sleepers.map((s) => s.end().catch(() => undefined)));
    }
  });

  it('reads the arrivals as the median of whole seconds, and forgets a migration not counted for a minute', async () => {
    await installChangeLog(pool);
    let now = Date.now();
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const arrive = (migration: string, entries: number) =>
      pool.query(`INSERT INTO ferry.change_log (migration_id, key) SELECT $1, i::text FROM generate_series(1, $2) i`, [migration, entries]);
    /** Each second's entries, counted at its end as the apply's loop does. */
    const seconds = async (migration: string, perSecond: number[]) => {
      for (const entries of perSecond) {
        await arrive(migration, entries);
        now += 1000;
        await countArrivals(pool, migration);
      }
    };
    await arrive('arrivals-a', 50); // before the first count: not an arrival
    await countArrivals(pool, 'arrivals-a');
    await seconds('arrivals-a', [100, 5000]);
    expect(arrivalRate('arrivals-a')).toBeNull();
    // A one-off bulk write does not move the median.
    await seconds('arrivals-a', [120, 110, 90]);
    expect(arrivalRate('arrivals-a')).toBe(110);
    await countArrivals(pool, 'arrivals-b');
    await seconds('arrivals-b', [10, 10, 10]);
    expect(arrivalRate('arrivals-b')).toBe(10);

    // B goes on counting; A (its migration ended, or its apply stopped) is forgotten after a minute.
    for (let counted = 0; counted < FORGET_AFTER_MS; counted += 1000) await seconds('arrivals-b', [10]);
    expect(arrivalRate('arrivals-a')).toBeNull();
    expect(arrivalRate('arrivals-b')).toBe(10);
    // Measured afresh when its apply runs again: the entries of the minute it was away are not an arrival.
    await arrive('arrivals-a', 9000);
    await countArrivals(pool, 'arrivals-a');
    await seconds('arrivals-a', [30, 30, 30]);
    expect(arrivalRate('arrivals-a')).toBe(30);
  });
});
