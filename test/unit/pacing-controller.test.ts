import { describe, expect, it } from 'vitest';
import {
  afterQuietLook,
  carriedPacing,
  describeKeepingUp,
  describePacing,
  holdingSignalOf,
  keepUpFloor,
  KEEP_UP_MARGIN,
  MIN_PACED_ROWS_PER_SECOND,
  nextPacing,
  QUIET_LOOK_AFTER_INTERVALS,
  quietLookDue,
  RAISED_BASELINE_MAX_AGE_MS,
  START_PACED_ROWS_PER_SECOND,
  startPacing,
  type CopyPacing,
  type PacingBaseline,
  type PacingBudget,
  type PacingDecision,
  type PacingSample,
  type PacingState,
} from '../../lib/pacing-controller';
import { holdingSignals } from '../../lib/status';

const baseline: PacingBaseline = { latencyMs: 8, activeBackends: 4 };
const budget: PacingBudget = { p99Factor: 1.2, maxLockWaits: 0, maxActiveBackends: null, maxWalBytesPerSecond: null, maxReplicaLagSeconds: 2 };
const quiet: PacingSample = {
  latencyMs: 8,
  latencySource: 'statements',
  canaryMs: null,
  transactionsPerSecond: 2000,
  lockWaits: 0,
  activeBackends: 4,
  walBytesPerSecond: 1e6,
  checkpointsRequested: 0,
  replicaLagSeconds: 0,
  copiedRowsPerSecond: 1e9,
};

/** Feeds the samples in order; returns every decision. */
function run(samples: Partial<PacingSample>[], ceiling: number | null = null, from: PacingState = startPacing(ceiling)): PacingDecision[] {
  const decisions: PacingDecision[] = [];
  let state = from;
  for (const sample of samples) {
    const decision = nextPacing(state, { ...quiet, ...sample }, baseline, budget, ceiling);
    decisions.push(decision);
    state = decision.state;
  }
  return decisions;
}
const rates = (decisions: PacingDecision[]) => decisions.map((d) => d.state.rowsPerSecond);
const quietFor = (n: number) => Array.from({ length: n }, () => ({}));

describe('pacing controller', () => {
  it('starts slow and doubles while the application feels nothing, naming no signal', () => {
    const decisions = run(quietFor(4));
    expect(rates(decisions)).toEqual([2, 4, 8, 16].map((k) => k * START_PACED_ROWS_PER_SECOND));
    expect(decisions.every((d) => d.action === 'increase' && d.holding === null)).toBe(true);
  });

  it('stops at the rows/s ceiling and names it', () => {
    const decisions = run(quietFor(6), 10_000);
    expect(rates(decisions).at(-1)).toBe(10_000);
    expect(decisions.at(-1)!.holding).toEqual({ signal: 'ceiling', detail: 'the rows/s limit (10000 rows/s)' });
  });

  it('never climbs past twice what the copy really achieved', () => {
    const decisions = run(quietFor(8).map(() => ({ copiedRowsPerSecond: 5_000 })));
    expect(Math.max(...rates(decisions))).toBe(10_000);
  });

  it('cuts the rate when a session waits on a lock on the tables, names lock-waits, and recovers after', () => {
    const decisions = run([...quietFor(4), { lockWaits: 1 }, { lockWaits: 1 }, ...quietFor(6)]);
    const [before, first, second] = [decisions[3]!, decisions[4]!, decisions[5]!];
    expect(first.action).toBe('decrease');
    expect(first.holding?.signal).toBe('lock-waits');
    expect(first.holding?.detail).toContain('1 session waiting on a lock');
    expect(first.state.rowsPerSecond).toBe(before.state.rowsPerSecond / 2);
    expect(second.state.rowsPerSecond).toBe(first.state.rowsPerSecond / 2);
    // Recovery is additive: a tenth of the rate it was cut from, per interval.
    const after = rates(decisions.slice(6));
    expect(after.every((rate, i) => rate > (i === 0 ? second.state.rowsPerSecond : after[i - 1]!))).toBe(true);
    expect(after[1]! - after[0]!).toBe(Math.floor(first.state.rowsPerSecond * 0.1));
    expect(decisions.slice(6).every((d) => d.holding === null)).toBe(true);
  });

  it('holds on one interval of latency over budget, cuts on the second, and says what it read', () => {
    const decisions = run([...quietFor(3), { latencyMs: 11 }, { latencyMs: 11 }]);
    expect(decisions[3]!.action).toBe('steady');
    expect(decisions[3]!.holding?.signal).toBe('latency');
    expect(decisions[4]!.action).toBe('decrease');
    expect(decisions[4]!.state.rowsPerSecond).toBe(Math.floor(decisions[3]!.state.rowsPerSecond * 0.7));
    expect(decisions[4]!.holding?.detail).toBe("p99 of the database's statements 11 ms, budget 9.6 ms (1.2x of 8.0 ms before the copy)");
  });

  it('cuts at once when latency is far over budget', () => {
    const decisions = run([...quietFor(3), { latencyMs: 40 }]);
    expect(decisions[3]!.action).toBe('decrease');
    expect(decisions[3]!.state.rowsPerSecond).toBe(decisions[2]!.state.rowsPerSecond / 2);
  });

  it('does not mistake sub-millisecond jitter of a fast canary for harm', () => {
    const fast = { ...baseline, latencyMs: 0.3 };
    let state = startPacing(null);
    for (let i = 0; i < 3; i += 1) state = nextPacing(state, { ...quiet, latencySource: 'canary', latencyMs: 0.7 }, fast, budget, null).state;
    expect(state.rowsPerSecond).toBe(8 * START_PACED_ROWS_PER_SECOND);
  });

  it("counts the canary's commits beside the statements, whose times leave out the wait for the WAL flush", () => {
    const withCanary = { ...baseline, canaryMs: 0.5 };
    const over = { ...quiet, canaryMs: 4 };
    const first = nextPacing({ rowsPerSecond: 40_000, cutFrom: null, lastLatencyPressure: 0 }, over, withCanary, budget, null);
    expect(first.action).toBe('steady');
    const second = nextPacing(first.state, over, withCanary, budget, null);
    expect(second.action).toBe('decrease');
    expect(second.holding).toEqual({ signal: 'latency', detail: 'median canary commit 4.0 ms, budget 2.5 ms (1.2x of 0.5 ms before the copy)' });
    // The worse of the two is named.
    const both = nextPacing(second.state, { ...over, latencyMs: 40 }, withCanary, budget, null);
    expect(both.holding?.detail).toMatch(/^p99 of the database's statements 40 ms/);
    // A baseline carried from before canaries were timed beside statements: statements alone.
    expect(nextPacing(first.state, over, baseline, budget, null).action).toBe('increase');
  });

  it('keeps the rate near a budget without naming it as over', () => {
    const [decision] = run([{ activeBackends: 8 }], null, { rowsPerSecond: 50_000, cutFrom: 60_000, lastLatencyPressure: 0 });
    expect(decision!.action).toBe('steady');
    expect(decision!.state.rowsPerSecond).toBe(50_000);
    expect(decision!.holding?.signal).toBe('active-backends');
    expect(decision!.holding?.detail).toBe('near budget: 8 active sessions, budget 8');
  });

  it('names the worst of several signals, replica lag and forced checkpoints included', () => {
    const [lag] = run([{ replicaLagSeconds: 5, checkpointsRequested: 1 }], null, { rowsPerSecond: 50_000, cutFrom: null, lastLatencyPressure: 0 });
    expect(lag!.holding?.signal).toBe('replica-lag');
    const [checkpoint] = run([{ checkpointsRequested: 2 }], null, { rowsPerSecond: 50_000, cutFrom: null, lastLatencyPressure: 0 });
    expect(checkpoint!.holding?.signal).toBe('checkpoints');
    expect(checkpoint!.state.rowsPerSecond).toBe(35_000);
  });

  it('never goes below the floor, so the copy always moves', () => {
    const decisions = run(Array.from({ length: 20 }, () => ({ lockWaits: 3 })));
    expect(Math.min(...rates(decisions))).toBe(MIN_PACED_ROWS_PER_SECOND);
  });

  it('words the decision for status', () => {
    expect(describePacing(1234.4, { signal: 'lock-waits', detail: '2 sessions waiting' })).toBe('paced at 1234 rows/s by lock-waits: 2 sessions waiting');
    expect(describePacing(1234, null)).toBeNull();
  });
});

describe('the keep-up floor of the change apply', () => {
  it('stays above the rate changes arrive at, and is nothing while unmeasured', () => {
    expect(keepUpFloor(null)).toBe(0);
    expect(keepUpFloor(0)).toBe(0);
    expect(keepUpFloor(900)).toBe(900 * KEEP_UP_MARGIN);
    expect(KEEP_UP_MARGIN).toBeGreaterThan(1);
  });

  it('names the arrivals and what pacing alone would do, and no signal as holding the apply', () => {
    const reason = describeKeepingUp(1350.2, 900.4, 500, { signal: 'latency', detail: 'median canary commit 34 ms, budget 20 ms' });
    expect(reason).toBe('keeping up with the writes at 1350 rows/s (900 changes/s arrive); pacing alone would hold it to 500 rows/s by latency: median canary commit 34 ms, budget 20 ms');
    expect(holdingSignalOf(reason)).toBeNull();
    expect(describeKeepingUp(1350, 900, 1000, null)).toBe('keeping up with the writes at 1350 rows/s (900 changes/s arrive); pacing alone would hold it to 1000 rows/s');
  });
});

describe('the holding signal in status', () => {
  it('is read back from the reason the copier wrote, for running shards only', () => {
    const reason = describePacing(900, { signal: 'lock-waits', detail: '2 sessions waiting' });
    const shard = (index: number, state: 'running' | 'done', throttleReason: string | null) => ({ index, state, throttleReason });
    const status = {
      shards: [shard(0, 'running', reason), shard(1, 'running', 'rows/s limit (500 rows/s for this shard)'), shard(2, 'running', reason), shard(3, 'done', reason)],
    } as unknown as Parameters<typeof holdingSignals>[0];
    expect(holdingSignals(status)).toEqual([{ signal: 'lock-waits', shards: [0, 2] }]);
  });
});

describe('a look with the copy idle', () => {
  /** The copy's memory after `samples`, fed from `state` against `base`. */
  function paced(samples: Partial<PacingSample>[], base: PacingBaseline, state: PacingState = startPacing(null)): CopyPacing {
    let pacing: CopyPacing = { baseline: base, state };
    for (const sample of samples) {
      pacing = { ...pacing, state: nextPacing(pacing.state, { ...quiet, ...sample }, pacing.baseline, budget, null).state };
    }
    return pacing;
  }
  const busier = (n: number) => Array.from({ length: n }, () => ({ latencyMs: 30 }));
  const floor = { rowsPerSecond: MIN_PACED_ROWS_PER_SECOND, cutFrom: 1000, lastLatencyPressure: 5 };

  it('is due once the copy has sat at the lowest rate with latency over budget for ten intervals', () => {
    const cutDown = paced(busier(6), baseline, { rowsPerSecond: 20_000, cutFrom: null, lastLatencyPressure: 0 });
    expect(cutDown.state.rowsPerSecond).toBe(MIN_PACED_ROWS_PER_SECOND);
    expect(quietLookDue(cutDown, 0)).toBe(false);
    const stuck = paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor);
    expect(stuck.state.floorIntervals).toBe(QUIET_LOOK_AFTER_INTERVALS);
    expect(quietLookDue(stuck, 0)).toBe(true);
    // One interval within budget starts the count again: the cuts worked.
    const relieved = paced([...busier(QUIET_LOOK_AFTER_INTERVALS - 1), { latencyMs: 8 }, ...busier(QUIET_LOOK_AFTER_INTERVALS - 1)], baseline, floor);
    expect(quietLookDue(relieved, 0)).toBe(false);
    // Signals with budgets of their own are not the baseline's to answer for.
    expect(quietLookDue(paced(Array.from({ length: 20 }, () => ({ lockWaits: 3 })), baseline, floor), 0)).toBe(false);
  });

  it('holds, and keeps the count, through an interval in which too few canaries finished to read latency', () => {
    const canaryBaseline = { latencyMs: 1, canaryMs: 1, activeBackends: 4 };
    const slow = { latencySource: 'canary' as const, latencyMs: 33, canaryMs: 33 };
    const unread = { latencySource: 'canary' as const, latencyMs: null, canaryMs: null };
    // Commits slow enough that every other interval ends before five canaries finish.
    const alternating = Array.from({ length: 2 * QUIET_LOOK_AFTER_INTERVALS }, (_, i) => (i % 2 ? unread : slow));
    const stuck = paced(alternating, canaryBaseline, floor);
    expect(stuck.state.rowsPerSecond).toBe(MIN_PACED_ROWS_PER_SECOND);
    expect(stuck.state.floorIntervals).toBe(QUIET_LOOK_AFTER_INTERVALS);
    expect(quietLookDue(stuck, 0)).toBe(true);
    const waiting = nextPacing({ rowsPerSecond: 4000, cutFrom: 5000, lastLatencyPressure: 0.2 }, { ...quiet, ...unread }, canaryBaseline, budget, null);
    expect(waiting.action).toBe('steady');
    expect(waiting.state.rowsPerSecond).toBe(4000);
    expect(waiting.holding?.signal).toBe('latency');
    // With no canary in the baseline there is nothing to wait for.
    expect(nextPacing(waiting.state, { ...quiet, ...unread }, { latencyMs: null, activeBackends: 4 }, budget, null).action).toBe('increase');
  });

  it('is carried into the history with the count', () => {
    const stuck = paced(busier(4), baseline, floor);
    expect(carriedPacing(stuck).state.floorIntervals).toBe(4);
  });

  it('sets the budget by what the application feels without the copy, and climbs again from the lowest rate', () => {
    const stuck = paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor);
    const looked = afterQuietLook(stuck, { latencyMs: 27, canaryMs: 26, activeBackends: 6 }, Date.UTC(2026, 11, 2, 16, 30, 5));
    expect(looked.baseline).toEqual({ latencyMs: 27, canaryMs: 26, activeBackends: 6, idleAt: Date.UTC(2026, 11, 2, 16, 30, 5) });
    expect(looked.firstBaseline).toEqual(baseline);
    expect(looked.state).toEqual({ rowsPerSecond: MIN_PACED_ROWS_PER_SECOND, cutFrom: null, lastLatencyPressure: 0 });
    expect(quietLookDue(looked, 0)).toBe(false);
    const after = paced(busier(4).map((sample) => ({ ...sample, canaryMs: 26 })), looked.baseline, looked.state);
    expect(after.state.rowsPerSecond).toBe(MIN_PACED_ROWS_PER_SECOND * 16);
    // Status says where the budget comes from.
    const over = nextPacing(after.state, { ...quiet, latencyMs: 40 }, looked.baseline, budget, null);
    expect(over.holding?.detail).toBe('p99 of the database\'s statements 40 ms, budget 32 ms (1.2x of 27 ms with the copy idle at 16:30:05)');
  });

  it('lowers the budget too when the application is quieter than when the copy started', () => {
    const looked = afterQuietLook(paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor), { latencyMs: 3, canaryMs: null, activeBackends: 1 }, 1);
    expect(looked.baseline.latencyMs).toBe(3);
    expect(looked.baseline.activeBackends).toBe(1);
  });

  it('waits twice as long after each look, so a copy that is itself the load at the lowest rate is not idled often', () => {
    let pacing = paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor);
    const due: number[] = [];
    for (let look = 0; look < 3; look += 1) {
      pacing = afterQuietLook(pacing, { latencyMs: 8, canaryMs: null, activeBackends: 4 }, 1);
      pacing = { ...pacing, state: floor };
      let intervals = 0;
      while (!quietLookDue(pacing, 1)) {
        pacing = { ...pacing, state: nextPacing(pacing.state, { ...quiet, latencyMs: 30 }, pacing.baseline, budget, null).state };
        intervals += 1;
      }
      due.push(intervals);
    }
    expect(due).toEqual([20, 40, 80]);
  });

  it('looks again at a baseline it raised after a while, since the load that raised it may have left', () => {
    const looked = afterQuietLook(paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor), { latencyMs: 27, canaryMs: null, activeBackends: 4 }, 1_000);
    expect(quietLookDue(looked, 1_000 + RAISED_BASELINE_MAX_AGE_MS - 1)).toBe(false);
    expect(quietLookDue(looked, 1_000 + RAISED_BASELINE_MAX_AGE_MS)).toBe(true);
    const same = afterQuietLook(paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor), { latencyMs: 7, canaryMs: null, activeBackends: 4 }, 1_000);
    expect(quietLookDue(same, 1_000 + RAISED_BASELINE_MAX_AGE_MS)).toBe(false);
  });

  it('keeps the baseline when the look read nothing, and counts the look', () => {
    const stuck = paced(busier(QUIET_LOOK_AFTER_INTERVALS), baseline, floor);
    const failed = afterQuietLook(stuck, null, 5);
    expect(failed.baseline).toEqual(baseline);
    expect(failed.state.floorIntervals).toBeUndefined();
    expect(failed.idleLooks).toBe(1);
    expect(quietLookDue(failed, 5)).toBe(false);
  });
});
