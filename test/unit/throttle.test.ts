import { describe, expect, it } from 'vitest';
import { holdKindOf } from '../../activities/copy/backoff';
import { formatThrottle } from '../../cli/render';
import { isRowError, redactMessage } from '../../lib/errors';
import {
  applyThrottleChange,
  budgetOf,
  limitsInForce,
  nextBatchSize,
  plannedLimits,
  shardRate,
  throttleChangeProblems,
  throttleChangeRefusal,
  throttleChanges,
  type BackoffLimits,
  type PlanLimits,
  type Throttle,
} from '../../lib/throttle';

const throttle: Throttle = { rowsPerSecond: 1000, batchSize: 500, concurrency: 2 };
const backoff: BackoffLimits = { maxReplicaLagSeconds: 10, maxQuerySeconds: 60, maxUnreadSlotWalMb: 10_240 };
const planned: PlanLimits = { backoff, budget: budgetOf({}) };

describe('throttle changes', () => {
  it('accepts absolute values and null to lift the rows/s limit', () => {
    expect(throttleChangeProblems({ rowsPerSecond: 5000, by: 'alice' })).toEqual([]);
    expect(throttleChangeProblems({ rowsPerSecond: null })).toEqual([]);
    expect(applyThrottleChange(throttle, { batchSize: 2000 }, planned)).toEqual({ rowsPerSecond: 1000, batchSize: 2000, concurrency: 2 });
    expect(applyThrottleChange(throttle, { rowsPerSecond: null, concurrency: 4 }, planned)).toEqual({ rowsPerSecond: null, batchSize: 500, concurrency: 4 });
  });

  it("changes the backoff limits on the plan's, and keeps them through later changes", () => {
    expect(throttleChangeProblems({ maxQuerySeconds: 3600, maxUnreadSlotWalMb: null })).toEqual([]);
    const raised = applyThrottleChange(throttle, { maxQuerySeconds: 3600 }, planned);
    expect(raised).toEqual({ ...throttle, backoff: { ...backoff, maxQuerySeconds: 3600 } });
    expect(throttleChanges(throttle, raised, planned)).toEqual(['backoff.maxQuerySeconds 60 -> 3600']);
    const lifted = applyThrottleChange(raised, { maxUnreadSlotWalMb: null, batchSize: 800 }, planned);
    expect(lifted).toEqual({ ...throttle, batchSize: 800, backoff: { ...backoff, maxQuerySeconds: 3600, maxUnreadSlotWalMb: null } });
    expect(throttleChanges(raised, lifted, planned)).toEqual(['batchSize 500 -> 800', 'backoff.maxUnreadSlotWalMb 10240 -> unlimited']);
    expect(applyThrottleChange(lifted, { concurrency: 3 }, planned).backoff).toEqual(lifted.backoff);
    // A limit set to what is in force changes nothing: the throttle keeps following the plan.
    expect(applyThrottleChange(throttle, { maxQuerySeconds: 60 }, planned)).toEqual(throttle);
    // Plans recorded before the unread-slot limit carry none: its default is in force.
    const older = { backoff: { maxReplicaLagSeconds: 10, maxQuerySeconds: 60 } as BackoffLimits, throttle: {} };
    expect(plannedLimits(older).backoff.maxUnreadSlotWalMb).toBe(10_240);
  });

  it("turns the pacing controller off and on, and sets its p99 factor only while it is on", () => {
    const off = applyThrottleChange(throttle, { pacing: false }, planned);
    expect(off).toEqual({ ...throttle, budget: null });
    expect(throttleChanges(throttle, off, planned)).toEqual(['pacing on -> off']);
    expect(throttleChangeRefusal(off, { p99Factor: 2, maxLockWaits: 1 }, planned)).toBe(
      'the pacing controller is off: turn it on in the same change (ferry throttle --pacing on) to set p99Factor, maxLockWaits',
    );
    expect(throttleChangeRefusal(throttle, { p99Factor: 2, pacing: false }, planned)).toBe('pacing: false turns off the controller that p99Factor would set');
    expect(throttleChangeRefusal(off, { p99Factor: 2, pacing: true }, planned)).toBeNull();
    const on = applyThrottleChange(off, { pacing: true, p99Factor: 2 }, planned);
    expect(limitsInForce(on, planned).budget).toEqual({ ...planned.budget, p99Factor: 2 });
    expect(throttleChanges(off, on, planned)).toEqual(['pacing off -> on']);
    expect(throttleChanges(throttle, on, planned)).toEqual(['budget.p99Factor 1.2 -> 2']);
    // On when on, or the factor it has, changes nothing.
    expect(applyThrottleChange(throttle, { pacing: true, p99Factor: 1.2 }, planned)).toEqual(throttle);
    // Lock waits and active sessions: what the application feels; a null active-session limit goes back to the one from before the copy.
    const roomier = applyThrottleChange(throttle, { maxLockWaits: 2, maxActiveBackends: 40 }, planned);
    expect(limitsInForce(roomier, planned).budget).toMatchObject({ maxLockWaits: 2, maxActiveBackends: 40 });
    expect(throttleChanges(throttle, roomier, planned)).toEqual(['budget.maxLockWaits 0 -> 2', 'budget.maxActiveBackends auto -> 40']);
    const auto = applyThrottleChange(roomier, { maxActiveBackends: null }, planned);
    expect(limitsInForce(auto, planned).budget).not.toHaveProperty('maxActiveBackends');
    expect(throttleChanges(roomier, auto, planned)).toEqual(['budget.maxActiveBackends 40 -> auto']);
    // A plan that turned the controller off gets the default budget when an operator turns it on.
    const unpaced: PlanLimits = { backoff, budget: null };
    expect(limitsInForce(applyThrottleChange(throttle, { pacing: true }, unpaced), unpaced).budget).toEqual(budgetOf({}));
  });

  it.each([
    [{ maxQuerySeconds: 0 }, 'maxQuerySeconds must be above 0, not 0'],
    [{ maxReplicaLagSeconds: -1 }, 'maxReplicaLagSeconds must be above 0, not -1'],
    [{ maxQuerySeconds: null }, 'maxQuerySeconds must be a number, not null'],
    [{ maxUnreadSlotWalMb: '10' }, 'maxUnreadSlotWalMb must be a number, not "10"'],
    [{ p99Factor: 0.5 }, 'p99Factor must be between 1 and 100, not 0.5'],
    [{ pacing: 'off' }, 'pacing must be true or false, not "off"'],
    [{ maxLockWaits: -1 }, 'maxLockWaits must be at least 0, not -1'],
    [{ maxActiveBackends: 2.5 }, 'maxActiveBackends must be a whole number, not 2.5'],
    [{ rowsPerSecond: 0 }, 'rowsPerSecond must be between 1 and 10000000, not 0'],
    [{ rowsPerSecond: -5 }, 'rowsPerSecond must be between 1 and 10000000, not -5'],
    [{ rowsPerSecond: Number.NaN }, 'rowsPerSecond must be a number, not null'],
    [{ rowsPerSecond: '5000' }, 'rowsPerSecond must be a number, not "5000"'],
    [{ batchSize: 1e9 }, 'batchSize must be between 10 and 100000, not 1000000000'],
    [{ batchSize: 10.5 }, 'batchSize must be a whole number, not 10.5'],
    [{ concurrency: 65 }, 'concurrency must be between 1 and 64, not 65'],
    [{ speed: 3 }, 'speed is not a throttle setting (known: rowsPerSecond, batchSize, concurrency, maxReplicaLagSeconds, maxQuerySeconds, maxUnreadSlotWalMb, pacing, p99Factor, maxLockWaits, maxActiveBackends)'],
    [{}, 'nothing to change: give at least one of rowsPerSecond, batchSize, concurrency, maxReplicaLagSeconds, maxQuerySeconds, maxUnreadSlotWalMb, pacing, p99Factor, maxLockWaits, maxActiveBackends'],
    [null, 'a throttle change must be an object'],
  ])('refuses %j', (change, problem) => {
    expect(throttleChangeProblems(change)).toContain(problem);
  });

  it("splits the migration's rows/s between running shards", () => {
    expect(shardRate(throttle, 2)).toBe(500);
    expect(shardRate(throttle, 0)).toBe(1000);
    expect(shardRate({ ...throttle, rowsPerSecond: 3 }, 4)).toBe(1);
    expect(shardRate({ ...throttle, rowsPerSecond: null }, 4)).toBeNull();
  });
});

describe('pacing', () => {
  it('grows the batch toward the target time, at most doubling', () => {
    expect(nextBatchSize({ current: 1000, rows: 1000, elapsedMs: 100, targetMs: 500, max: 100_000 })).toBe(2000);
    expect(nextBatchSize({ current: 1000, rows: 1000, elapsedMs: 400, targetMs: 500, max: 100_000 })).toBe(1250);
  });

  it('shrinks a slow batch, at most halving, never below the minimum', () => {
    expect(nextBatchSize({ current: 1000, rows: 1000, elapsedMs: 5000, targetMs: 500, max: 100_000 })).toBe(500);
    expect(nextBatchSize({ current: 12, rows: 12, elapsedMs: 5000, targetMs: 500, max: 100_000 })).toBe(10);
  });

  it('never exceeds the throttle batch size, and keeps a size fixed when adaptation is off', () => {
    expect(nextBatchSize({ current: 1000, rows: 1000, elapsedMs: 1, targetMs: 500, max: 1500 })).toBe(1500);
    expect(nextBatchSize({ current: 1000, rows: 1000, elapsedMs: 9000, targetMs: 0, max: 1500 })).toBe(1500);
  });

  it('learns nothing from a batch cut short by the end of the range', () => {
    expect(nextBatchSize({ current: 1000, rows: 3, elapsedMs: 1, targetMs: 500, max: 100_000 })).toBe(1000);
  });

  it('tells row errors from database and plan errors', () => {
    expect(isRowError('23502')).toBe(true); // not_null_violation
    expect(isRowError('22P02')).toBe(true); // invalid_text_representation
    expect(isRowError('P0001')).toBe(true); // raised by a trigger
    expect(isRowError('57P01')).toBe(false); // admin shutdown: retry the batch
    expect(isRowError('42P01')).toBe(false); // undefined table: the plan is wrong
    expect(isRowError(undefined)).toBe(false);
  });

  it('keeps row values out of error messages', () => {
    expect(redactMessage('invalid input syntax for type integer: "4 apples"')).toBe(
      'invalid input syntax for type integer: "<redacted>"',
    );
    expect(redactMessage(`value 'secret' is too long`)).toBe("value '<redacted>' is too long");
    expect(redactMessage('null value in column "name" of relation "t" violates not-null constraint')).toBe(
      'null value in column "name" of relation "t" violates not-null constraint',
    );
  });
});

describe('hold kinds', () => {
  it('labels each back-off hold by what holds it, for the ferry_throttled metric', () => {
    expect(holdKindOf('replica lag 3.9 s is over backoff.maxReplicaLagSeconds (1 s)')).toBe('replica-lag');
    expect(holdKindOf('a query on the source (pid 42) has run 3 s, over backoff.maxQuerySeconds (1 s)')).toBe('long-query');
    expect(holdKindOf('replication slot "standby_1", which nothing reads, holds 10.2 GB of WAL, over backoff.maxUnreadSlotWalMb (10240 MB): start its standby or consumer, or drop the slot')).toBe(
      'unread-slot',
    );
    expect(holdKindOf('backoff.probe returned 9, over its max 5')).toBe('probe');
  });
});

describe('the throttle as ferry status shows it', () => {
  it("names what an operator changed from the plan's, and nothing when they changed nothing", () => {
    expect(formatThrottle(throttle)).toBe('1,000 rows/s, batches up to 500 rows, 2 shards at once');
    const changed = applyThrottleChange(throttle, { maxQuerySeconds: 3600, maxUnreadSlotWalMb: null, p99Factor: 2 }, planned);
    expect(formatThrottle(changed)).toBe(
      "1,000 rows/s, batches up to 500 rows, 2 shards at once; changed from the plan's: pacing within 2x of the p99 before the copy, 0 lock waits; holds: queries 3600 s, replica lag 10 s, no unread-slot limit",
    );
    expect(formatThrottle(applyThrottleChange(throttle, { pacing: false }, planned))).toBe("1,000 rows/s, batches up to 500 rows, 2 shards at once; changed from the plan's: pacing off");
  });

  it('says that shards running beyond a lowered concurrency copy on, and when the next starts', () => {
    expect(formatThrottle(throttle, 2)).toBe('1,000 rows/s, batches up to 500 rows, 2 shards at once');
    expect(formatThrottle(throttle, 3)).toBe(
      '1,000 rows/s, batches up to 500 rows, 2 shards at once (the 3 shards already copying finish their ranges, sharing the rows/s limit; no new shard starts until fewer than 2 run)',
    );
    expect(formatThrottle({ ...throttle, rowsPerSecond: null, concurrency: 1 }, 4)).toBe(
      'no rows/s limit, batches up to 500 rows, 1 shard at once (the 4 shards already copying finish their ranges; no new shard starts until they have all finished)',
    );
  });
});
