/**
 * The pacing controller: from what the database's own sessions feel, the copy rate now and the
 * signal holding it back. Pure (no clock, no database), so it is fed sample sequences in tests.
 *
 * Additive increase, multiplicative decrease with a slow start: the rate doubles each interval
 * until a signal first goes over its budget, is cut by 30% (50% when far over) whenever one
 * does, and then climbs back by a tenth of the rate it was cut from per interval.
 */

/** What the controller listens to, named in `ferry status` when it holds the copy back. */
export type PacingSignal = 'latency' | 'lock-waits' | 'active-backends' | 'checkpoints' | 'wal' | 'replica-lag' | 'ceiling';

/** One interval of what the database's sessions (not Ferry's) felt, from the sampler. */
export interface PacingSample {
  /** The foreground's latency, ms: p99 estimate from pg_stat_statements, else `canaryMs`. */
  latencyMs: number | null;
  latencySource: 'statements' | 'canary';
  /**
   * The median of the interval's canary commits, ms: a commit that waits for the WAL flush, as
   * the application's do. Statement times do not include that wait, so it counts beside them.
   */
  canaryMs: number | null;
  /** Commits and rollbacks per second of the database (Ferry's included); reported, not acted on. */
  transactionsPerSecond: number | null;
  /** Sessions waiting on a lock on the tables involved, or on one of Ferry's sessions. */
  lockWaits: number;
  /** Client sessions running a statement, not Ferry's. */
  activeBackends: number;
  /** WAL written per second, bytes. */
  walBytesPerSecond: number;
  /** Checkpoints forced by WAL volume during the interval. */
  checkpointsRequested: number;
  /** The largest replay lag among the database's replicas, seconds. */
  replicaLagSeconds: number;
  /** Rows Ferry copied per second during the interval. */
  copiedRowsPerSecond: number;
}

/** What the foreground looked like before the copy started. */
export interface PacingBaseline {
  latencyMs: number | null;
  /** Absent from baselines measured before canary commits were timed beside statements. */
  canaryMs?: number | null;
  /** The most client sessions (not Ferry's) seen running a statement at once. */
  activeBackends: number;
  /** Epoch ms of a look taken with the copy idle; absent for the look before the copy. */
  idleAt?: number;
}

/** The plan's budget: how much the copy may cost the application. */
export interface PacingBudget {
  /** The foreground's p99 latency may grow to this multiple of the baseline. */
  p99Factor: number;
  /** Sessions that may wait on a lock on the tables involved. */
  maxLockWaits: number;
  /** Active client sessions; null for 1.5 times the most the baseline saw, plus 2. */
  maxActiveBackends?: number | null;
  /** WAL bytes per second; null for no limit (forced checkpoints still count). */
  maxWalBytesPerSecond?: number | null;
  /** Replay lag of any replica, seconds. */
  maxReplicaLagSeconds: number;
}

export interface PacingState {
  /** The rate now, rows/s. */
  rowsPerSecond: number;
  /** The rate before the last cut; null while in slow start. */
  cutFrom: number | null;
  /** Latency pressure of the previous interval: one noisy sample does not cut the rate. */
  lastLatencyPressure: number;
  /**
   * Intervals in a row spent at the lowest rate with the foreground still over the budget its
   * baseline sets: load the copy may not be causing. Absent for none.
   */
  floorIntervals?: number;
}

/** The controller's memory, carried by a shard's workflow from one copy call to the next. */
export interface CopyPacing {
  baseline: PacingBaseline;
  state: PacingState;
  /** Epoch ms until which the rows copied so far are paid for at the paced rate: the next call waits for it. */
  paidUntil?: number;
  /** The signal holding the rate back at the last decision. */
  holding?: PacingDecision['holding'];
  /** Rows per second the last call really copied: a call's first step has seen too little of its own. */
  copiedRowsPerSecond?: number;
  /** Looks at the foreground taken with the copy idle since it started (see quietLookDue). */
  idleLooks?: number;
  /** Epoch ms of the last such look, whether or not it read anything. */
  lastIdleLookAt?: number;
  /** The baseline measured before the copy, kept once a look with the copy idle replaced it. */
  firstBaseline?: PacingBaseline;
}

const roundTo = (value: number, places: number) => Math.round(value * 10 ** places) / 10 ** places;

/**
 * The memory as a shard carries it into its history: latencies to the microsecond, pressure to a
 * thousandth, rates to the row. Short figures keep the history small, and a float's last digits
 * (0.005694999999999992) cannot be mistaken for, or hide, a value from a row.
 */
export function carriedPacing(pacing: CopyPacing): CopyPacing {
  const { baseline, state } = pacing;
  const short = (b: PacingBaseline): PacingBaseline => ({
    ...b,
    latencyMs: b.latencyMs === null ? null : roundTo(b.latencyMs, 3),
    ...(b.canaryMs != null ? { canaryMs: roundTo(b.canaryMs, 3) } : {}),
  });
  return {
    ...pacing,
    baseline: short(baseline),
    ...(pacing.firstBaseline ? { firstBaseline: short(pacing.firstBaseline) } : {}),
    state: {
      rowsPerSecond: Math.round(state.rowsPerSecond),
      cutFrom: state.cutFrom === null ? null : Math.round(state.cutFrom),
      lastLatencyPressure: roundTo(state.lastLatencyPressure, 3),
      ...(state.floorIntervals ? { floorIntervals: state.floorIntervals } : {}),
    },
    ...(pacing.copiedRowsPerSecond !== undefined ? { copiedRowsPerSecond: Math.round(pacing.copiedRowsPerSecond) } : {}),
  };
}

export interface PacingDecision {
  state: PacingState;
  /** What the controller did this interval. */
  action: 'increase' | 'decrease' | 'steady';
  /** The signal holding the rate back, and what it read; null when nothing does. */
  holding: { signal: PacingSignal; detail: string } | null;
}

/** The lowest rate: the copy always moves, however loaded the database is. */
export const MIN_PACED_ROWS_PER_SECOND = 500;
/** The rate a copy starts at before it has heard from the database. */
export const START_PACED_ROWS_PER_SECOND = 10_000;
/**
 * Below this much latency growth, a change is noise, not harm: statement times measured by the
 * server jitter less than a canary's round trip, which also carries the worker's own timers.
 */
export const LATENCY_NOISE_MS = { statements: 0.5, canary: 2 } as const;
/** Pressure over this fraction of a budget stops the increase. */
const HEADROOM = 0.8;
/** Between HEADROOM and 1: a first latency reading over budget holds the rate. */
const NOT_YET = 0.95;
/** Pressure over this multiple of a budget cuts harder. */
const FAR_OVER = 2;

export function startPacing(ceiling: number | null): PacingState {
  return { rowsPerSecond: Math.min(START_PACED_ROWS_PER_SECOND, ceiling ?? Infinity), cutFrom: null, lastLatencyPressure: 0 };
}

interface Pressure {
  signal: PacingSignal;
  /** Reading over budget: above 1 is over. */
  ratio: number;
  detail: string;
}

const ms = (value: number) => `${value.toFixed(value < 10 ? 1 : 0)} ms`;

/** A latency reading against its baseline: the share of the allowed growth used up, 0 at the baseline and 1 at the budget. */
function latencyPressure(
  reading: number | null,
  before: number | null,
  source: PacingSample['latencySource'],
  budget: PacingBudget,
  measured: string,
): Pressure | null {
  if (reading === null || before === null) return null;
  const limit = Math.max(before * budget.p99Factor, before + LATENCY_NOISE_MS[source]);
  const what = source === 'statements' ? "p99 of the database's statements" : 'median canary commit';
  return {
    signal: 'latency',
    ratio: (reading - before) / (limit - before),
    detail: `${what} ${ms(reading)}, budget ${ms(limit)} (${budget.p99Factor}x of ${ms(before)} ${measured})`,
  };
}

/** Each signal's reading as a share of its budget. */
export function pressures(sample: PacingSample, baseline: PacingBaseline, budget: PacingBudget): Pressure[] {
  const found: Pressure[] = [];
  const measured = baseline.idleAt === undefined ? 'before the copy' : `with the copy idle at ${new Date(baseline.idleAt).toISOString().slice(11, 19)}`;
  const latency = [
    latencyPressure(sample.latencyMs, baseline.latencyMs, sample.latencySource, budget, measured),
    // With statement times, the canary's commits stand for the wait for the WAL flush they leave out.
    sample.latencySource === 'statements' ? latencyPressure(sample.canaryMs, baseline.canaryMs ?? null, 'canary', budget, measured) : null,
  ].filter((p): p is Pressure => p !== null);
  if (latency.length) found.push(latency.reduce((a, b) => (b.ratio > a.ratio ? b : a)));
  const waits = sample.lockWaits;
  found.push({
    signal: 'lock-waits',
    ratio: waits <= budget.maxLockWaits ? (waits / (budget.maxLockWaits + 1)) * HEADROOM : waits / Math.max(budget.maxLockWaits, 0.5),
    detail: `${waits} session${waits === 1 ? '' : 's'} waiting on a lock on the tables involved (budget ${budget.maxLockWaits})`,
  });
  const maxActive = budget.maxActiveBackends ?? Math.ceil(baseline.activeBackends * 1.5) + 2;
  found.push({
    signal: 'active-backends',
    ratio: sample.activeBackends / maxActive,
    detail: `${sample.activeBackends} active sessions, budget ${maxActive}`,
  });
  if (sample.checkpointsRequested > 0) {
    found.push({ signal: 'checkpoints', ratio: 1.5, detail: `${sample.checkpointsRequested} checkpoint(s) forced by WAL volume (max_wal_size)` });
  }
  if (budget.maxWalBytesPerSecond != null) {
    const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB/s`;
    found.push({
      signal: 'wal',
      ratio: sample.walBytesPerSecond / budget.maxWalBytesPerSecond,
      detail: `WAL ${mb(sample.walBytesPerSecond)}, budget ${mb(budget.maxWalBytesPerSecond)}`,
    });
  }
  found.push({
    signal: 'replica-lag',
    ratio: sample.replicaLagSeconds / budget.maxReplicaLagSeconds,
    detail: `replica lag ${sample.replicaLagSeconds.toFixed(1)} s, budget ${budget.maxReplicaLagSeconds} s`,
  });
  return found;
}

/**
 * The next interval's rate from this interval's sample. `ceiling` is the plan's or operator's
 * rows/s limit (null for none): the controller never goes above it.
 */
export function nextPacing(
  state: PacingState,
  sample: PacingSample,
  baseline: PacingBaseline,
  budget: PacingBudget,
  ceiling: number | null,
): PacingDecision {
  const all = pressures(sample, baseline, budget);
  const latency = all.find((p) => p.signal === 'latency');
  // Latency over budget in one interval only stops the increase; it cuts the rate once it shows
  // in two intervals running, or is far over.
  const counted = all.map((p) =>
    p.signal === 'latency' && p.ratio > 1 && p.ratio < FAR_OVER ? { ...p, ratio: Math.min(p.ratio, Math.max(state.lastLatencyPressure, NOT_YET)) } : p,
  );
  const worst = counted.reduce((a, b) => (b.ratio > a.ratio ? b : a));
  const lastLatencyPressure = latency?.ratio ?? 0;
  const top = ceiling ?? Infinity;

  if (worst.ratio > 1) {
    const factor = worst.ratio >= FAR_OVER ? 0.5 : 0.7;
    const rate = Math.max(MIN_PACED_ROWS_PER_SECOND, Math.min(top, Math.floor(state.rowsPerSecond * factor)));
    // Held at the lowest rate by a signal measured against the baseline, the load may be the
    // application's own: counted, so that the throttle takes a look with the copy idle.
    const atFloor = state.rowsPerSecond <= MIN_PACED_ROWS_PER_SECOND && (worst.signal === 'latency' || worst.signal === 'active-backends');
    const floorIntervals = atFloor ? (state.floorIntervals ?? 0) + 1 : 0;
    return {
      state: { rowsPerSecond: rate, cutFrom: state.rowsPerSecond, lastLatencyPressure, ...(floorIntervals ? { floorIntervals } : {}) },
      action: 'decrease',
      holding: { signal: worst.signal, detail: worst.detail },
    };
  }
  // Fewer canaries finished than a reading takes: no word on latency is no sign of room. The
  // rate holds, and so does the count of intervals at the lowest rate, so that commits slow
  // enough to leave every other interval without a reading still lead to a look with the copy idle.
  if (sample.canaryMs === null && baseline.canaryMs != null) {
    return {
      state: { ...state, rowsPerSecond: Math.min(top, state.rowsPerSecond) },
      action: 'steady',
      holding: { signal: 'latency', detail: 'too few canary commits finished since the last sample to read latency' },
    };
  }
  if (worst.ratio > HEADROOM) {
    const rate = Math.min(top, state.rowsPerSecond);
    return { state: { ...withoutFloor(state), rowsPerSecond: rate, lastLatencyPressure }, action: 'steady', holding: { signal: worst.signal, detail: `near budget: ${worst.detail}` } };
  }
  const step = state.cutFrom === null ? state.rowsPerSecond : Math.max(MIN_PACED_ROWS_PER_SECOND * 5, state.cutFrom * 0.1);
  // Never more than twice what the copy really achieved: a rate it cannot reach would take
  // many cuts to come down once a signal fires.
  const reachable = Math.max(state.rowsPerSecond, sample.copiedRowsPerSecond * 2);
  const rate = Math.floor(Math.min(top, reachable, state.rowsPerSecond + step));
  const atCeiling = ceiling !== null && rate >= ceiling;
  return {
    state: { ...withoutFloor(state), rowsPerSecond: Math.max(MIN_PACED_ROWS_PER_SECOND, rate), lastLatencyPressure },
    action: rate > state.rowsPerSecond ? 'increase' : 'steady',
    holding: atCeiling ? { signal: 'ceiling', detail: `the rows/s limit (${ceiling} rows/s)` } : null,
  };
}

function withoutFloor(state: PacingState): PacingState {
  const { floorIntervals: _, ...rest } = state;
  return rest;
}

/**
 * Intervals at the lowest rate, over budget, before the first look with the copy idle; each
 * further look waits twice as long, up to QUIET_LOOK_MAX_DOUBLINGS times.
 */
export const QUIET_LOOK_AFTER_INTERVALS = 10;
const QUIET_LOOK_MAX_DOUBLINGS = 5;
/** A baseline raised by a look is looked at again after this long: the load that raised it may have left. */
export const RAISED_BASELINE_MAX_AGE_MS = 10 * 60_000;

/**
 * Whether the throttle should stop copying for a moment and measure the foreground anew.
 *
 * A baseline measured once, in a quiet moment, would hold the copy at the lowest rate for ever
 * once the application grows busier on its own (more traffic, a batch job, a neighbour on the
 * machine): the latency over budget is not the copy's, and no cut brings it down. At 500 rows/s
 * a capture can then never catch up with an application writing faster. So, when cuts stop
 * working, the foreground is measured with this copy idle, and the budget follows what the
 * application feels without it. A baseline raised so is measured again after a while.
 */
export function quietLookDue(pacing: CopyPacing, nowMs: number): boolean {
  const looks = pacing.idleLooks ?? 0;
  const after = QUIET_LOOK_AFTER_INTERVALS * 2 ** Math.min(looks, QUIET_LOOK_MAX_DOUBLINGS);
  if ((pacing.state.floorIntervals ?? 0) >= after) return true;
  const last = pacing.lastIdleLookAt;
  return last !== undefined && nowMs - last >= RAISED_BASELINE_MAX_AGE_MS && raisedByLook(pacing.baseline, pacing.firstBaseline);
}

function raisedByLook(baseline: PacingBaseline, first: PacingBaseline | undefined): boolean {
  if (!first) return false;
  const over = (now: number | null | undefined, then: number | null | undefined) => now != null && then != null && now > then;
  return over(baseline.latencyMs, first.latencyMs) || over(baseline.canaryMs, first.canaryMs) || baseline.activeBackends > first.activeBackends;
}

/**
 * The memory after a look with the copy idle: the foreground as the look found it (a reading it
 * lacks keeps the old one), and the rate starting again from the lowest, doubling while there is
 * room. `firstBaseline` keeps the look before the copy.
 */
export function afterQuietLook(pacing: CopyPacing, idle: PacingBaseline | null, nowMs: number): CopyPacing {
  const before = pacing.baseline;
  const looked = { idleLooks: (pacing.idleLooks ?? 0) + 1, lastIdleLookAt: nowMs };
  // A look that read nothing (the database did not answer) changes nothing but when the next is due.
  if (!idle) return { ...pacing, state: withoutFloor(pacing.state), ...looked };
  // The rate the copy reached at the lowest pace says nothing of what it can reach now.
  const { copiedRowsPerSecond: _, ...rest } = pacing;
  return {
    ...rest,
    firstBaseline: pacing.firstBaseline ?? stripIdle(before),
    baseline: {
      latencyMs: idle.latencyMs ?? before.latencyMs,
      canaryMs: idle.canaryMs ?? before.canaryMs ?? null,
      activeBackends: idle.activeBackends,
      idleAt: nowMs,
    },
    state: { rowsPerSecond: MIN_PACED_ROWS_PER_SECOND, cutFrom: null, lastLatencyPressure: 0 },
    ...looked,
  };
}

function stripIdle(baseline: PacingBaseline): PacingBaseline {
  const { idleAt: _, ...rest } = baseline;
  return rest;
}

const SIGNALS: readonly PacingSignal[] = ['latency', 'lock-waits', 'active-backends', 'checkpoints', 'wal', 'replica-lag', 'ceiling'];

/** How a shard's throttle reason words a decision: the rate, and the signal holding it back. */
export function describePacing(rowsPerSecond: number, holding: PacingDecision['holding']): string | null {
  if (!holding) return null;
  return `paced at ${Math.round(rowsPerSecond)} rows/s by ${holding.signal}: ${holding.detail}`;
}

/**
 * The change apply is never paced below this multiple of the rate changes arrive at. Pacing may
 * slow how fast a backlog drains, but an apply held at or below the arrival rate falls behind for
 * as long as the application writes (and, under logical capture, the slot holds the source's WAL
 * all that time). The margin drains a backlog at half the arrival rate.
 */
export const KEEP_UP_MARGIN = 1.5;

/** The lowest rate that keeps up with `arrivalsPerSecond`; 0 when nothing has been measured. */
export function keepUpFloor(arrivalsPerSecond: number | null): number {
  return arrivalsPerSecond === null ? 0 : arrivalsPerSecond * KEEP_UP_MARGIN;
}

/** How the apply's throttle reason words a rate raised above the controller's to keep up. */
export function describeKeepingUp(rowsPerSecond: number, arrivalsPerSecond: number, pacedRowsPerSecond: number, holding: PacingDecision['holding']): string {
  const pacedBy = holding && holding.signal !== 'ceiling' ? ` by ${holding.signal}: ${holding.detail}` : '';
  return `keeping up with the writes at ${Math.round(rowsPerSecond)} rows/s (${Math.round(arrivalsPerSecond)} changes/s arrive); pacing alone would hold it to ${Math.round(pacedRowsPerSecond)} rows/s${pacedBy}`;
}

/** The signal a reason written by describePacing names; null for any other reason. */
export function holdingSignalOf(reason: string | null): PacingSignal | null {
  const named = /^paced at \d+ rows\/s by ([a-z-]+):/.exec(reason ?? '')?.[1];
  return SIGNALS.find((signal) => signal === named) ?? null;
}
