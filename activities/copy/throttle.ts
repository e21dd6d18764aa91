/**
 * The copy throttle answers one question before and after every batch: wait how long, and why.
 * It holds while the source is unwell (the plan's backoff, backoff.ts), paces the rate by what the
 * application feels (lib/pacing-controller.ts), never above the rows/s limit, and caps the batch
 * so one batch never outruns the rate.
 */
import { log } from '@temporalio/activity';
import type pg from 'pg';
import {
  afterQuietLook,
  carriedPacing,
  describeKeepingUp,
  describePacing,
  keepUpFloor,
  nextPacing,
  quietLookDue,
  startPacing,
  type CopyPacing,
  type PacingDecision,
  type PacingSample,
} from '../../lib/pacing-controller';
import type { Plan } from '../../lib/plan';
import { budgetOf, MIN_BATCH_SIZE, type ThrottleBudget } from '../../lib/throttle';
import { holdKindOf, holdReason } from './backoff';
import type { SourceHealth, ThrottleKind } from './metrics';
import { sharedPacingSignals, type PacingSignals } from './pacing-signals';

export type { CopyPacing };

/** How long to wait before going on, and why; `ms` 0 to go on now. */
export interface ThrottleWait {
  ms: number;
  /** Shown in status; null when nothing slows the copy. */
  reason: string | null;
  /** The reason as a bounded metrics label. */
  kind: ThrottleKind | null;
}

export interface CopyThrottleOptions {
  pool: pg.Pool;
  /** The target's pool when it is another database: its sessions count too. */
  targetPool?: pg.Pool;
  plan: Plan;
  /** This shard's share of the rows/s limit; null for none. */
  rowsPerSecond: number | null;
  /** The controller's memory from the previous call; null for a copy about to start. */
  pacing: CopyPacing | null;
  /** Receives what each backoff check saw (for metrics). */
  observe?: (health: SourceHealth) => void;
  /** Who is paced, as the rows/s reason names it. (Default: this shard) */
  writer?: string;
  /**
   * For a writer that must keep up with work arriving (the change apply): how many rows a second
   * arrive now, null while unmeasured. The controller never paces it below keepUpFloor of that.
   */
  keepUpWith?: () => number | null;
}

export interface CopyThrottle {
  /** Before a batch: holds while the source is unwell, and steps the controller each interval. */
  beforeBatch(): Promise<ThrottleWait>;
  /** The batch to take now: never more than about a second of the paced rate. */
  batchSize(adapted: number): number;
  /**
   * After a batch of `rows`: the wait that keeps the rate. `startedAt` (epoch ms), for a writer
   * whose batches wait on others (the change apply waits for the apply lock): the batch's time
   * counts toward its pace, and up to WAITED_BURST_MS more, so the batches after a long wait go
   * on at once and make it up.
   */
  afterBatch(rows: number, startedAt?: number): ThrottleWait;
  /** For the next call; with the controller off, the memory it was given (null when none). */
  pacing(): CopyPacing | null;
}

const HOLD = (reason: string, kind: ThrottleKind, ms: number): ThrottleWait => ({ ms, reason: `holding: ${reason}`, kind });
const GO: ThrottleWait = { ms: 0, reason: null, kind: null };
/** With the controller on, time not spent copying earns at most this much burst. */
const MAX_BURST_MS = 250;
/**
 * A writer whose batches wait on others earns this much from the start of a batch: the change
 * apply waits out verification's looks (up to seconds under load), and gets the lock back for
 * about as long (activities/verify/capture-settle.ts); without it, the pace it owes would spend
 * that turn and a backlog could only grow.
 */
const WAITED_BURST_MS = 2000;

export async function openCopyThrottle(options: CopyThrottleOptions): Promise<CopyThrottle> {
  const { pool, plan } = options;
  const ceiling = options.rowsPerSecond;
  const checkEveryMs = plan.backoff.checkEverySeconds * 1000;
  const budget = budgetOf(plan.throttle);
  const watched = options.targetPool
    ? [{ pool, tables: [plan.source] }, { pool: options.targetPool, tables: [plan.target] }]
    : [{ pool, tables: [plan.source, plan.target] }];
  const signals = budget ? sharedPacingSignals(watched) : null;
  let pacing: CopyPacing | null = null;
  if (budget && signals) {
    const baseline = options.pacing?.baseline ?? (await signals.baseline());
    pacing = { ...options.pacing, baseline, state: options.pacing?.state ?? startPacing(ceiling) };
  }

  let lastHealthCheck = -Infinity;
  let holding = false;
  let lastStep = Date.now();
  let rowsSinceStep = 0;
  let rowsThisCall = 0;
  let lastSampleSeen = signals?.sampleNumber() ?? 0;
  let held: PacingDecision['holding'] = options.pacing?.holding ?? null;
  // Rows are paid for at the current rate; the copy may start its next batch once paid up. With
  // the controller, the debt outlives the call, so short calls cannot each take a free batch.
  let paidUntil = Math.max(Date.now(), options.pacing?.paidUntil ?? 0);
  // This call's rows are counted from the time the last call's were paid up to.
  let countedFrom = paidUntil;

  const rate = (): number | null => {
    if (!pacing) return ceiling;
    const floor = keepUpFloor(options.keepUpWith?.() ?? null);
    return Math.min(Math.max(pacing.state.rowsPerSecond, floor), ceiling ?? Infinity);
  };

  /** Whether the keep-up floor, not the controller, sets the rate now. */
  const keepingUp = (current: CopyPacing) => keepUpFloor(options.keepUpWith?.() ?? null) > current.state.rowsPerSecond;

  const stepController = async (budgetNow: ThrottleBudget, signalsNow: PacingSignals, current: CopyPacing) => {
    const sample = await signalsNow.latest(budgetNow.intervalSeconds * 1000);
    if (sample.number === lastSampleSeen) return;
    lastSampleSeen = sample.number;
    const seconds = (Date.now() - lastStep) / 1000;
    // Too short a look at this call's own copying says nothing: take the last call's.
    const copied = seconds >= budgetNow.intervalSeconds / 2 ? rowsSinceStep / seconds : (current.copiedRowsPerSecond ?? Infinity);
    const felt: PacingSample = { ...sample.sample, copiedRowsPerSecond: copied };
    const decision = nextPacing(current.state, felt, current.baseline, budgetNow, ceiling);
    current.state = decision.state;
    held = decision.holding;
    lastStep = Date.now();
    rowsSinceStep = 0;
  };

  return {
    async beforeBatch() {
      // While holding, every call checks again: copying resumes only on a healthy reading.
      if (holding || Date.now() - lastHealthCheck >= checkEveryMs) {
        lastHealthCheck = Date.now();
        const reason = await holdReason(pool, plan.backoff, options.observe);
        holding = reason !== null;
        if (reason) return HOLD(reason, holdKindOf(reason), checkEveryMs);
      }
      if (budget && signals && pacing) {
        // Another shard's look at the foreground: nothing of this process copies meanwhile, but a
        // writer keeping up with the application's writes, whose load comes with them and which a
        // pause only leaves behind (2.5 s of changes to drain, each look), neither waits for it
        // nor takes one. Its look comes once pacing alone sets its rate again.
        if (!keepingUp(pacing)) await signals.looking();
        await stepController(budget, signals, pacing);
        if (quietLookDue(pacing, Date.now()) && !keepingUp(pacing)) pacing = await lookWithCopyIdle(signals, pacing);
        const owed = paidUntil - Date.now();
        if (owed > 0) return explain(owed);
      }
      return GO;
    },

    batchSize(adapted) {
      const now = rate();
      if (!pacing || now === null) return adapted;
      return Math.max(MIN_BATCH_SIZE, Math.min(adapted, Math.ceil(now)));
    },

    afterBatch(rows, startedAt) {
      rowsSinceStep += rows;
      rowsThisCall += rows;
      const now = rate();
      if (now === null) return GO;
      if (startedAt !== undefined) paidUntil = Math.max(paidUntil, Math.min(startedAt, Date.now()) - WAITED_BURST_MS);
      else if (pacing) paidUntil = Math.max(paidUntil, Date.now() - MAX_BURST_MS);
      paidUntil += (rows / now) * 1000;
      return explain(Math.max(0, paidUntil - Date.now()));
    },

    pacing: () => {
      // With the controller off (by an operator, while it runs), the memory goes on unchanged for
      // when it is turned on again: its baseline is the foreground before the copy, which a look
      // taken now, with the other shards copying, would not see.
      if (!pacing) return options.pacing ?? null;
      // Rows count over the time they are paid for: a short call whose last batch waits out its
      // pace after the call ends still copied at that rate. (Counted up to now only, a call of one
      // batch never reached half a second, and the rate it carried on never changed.)
      const seconds = (Math.max(Date.now(), paidUntil) - countedFrom) / 1000;
      const copiedRowsPerSecond = seconds >= 0.5 ? rowsThisCall / seconds : pacing.copiedRowsPerSecond;
      return carriedPacing({ ...pacing, state: { ...pacing.state }, paidUntil, holding: held, ...(copiedRowsPerSecond !== undefined ? { copiedRowsPerSecond } : {}) });
    },
  };

  /** The memory after a look at the foreground with this process's copies idle (quietLookDue says why). */
  async function lookWithCopyIdle(signalsNow: PacingSignals, current: CopyPacing): Promise<CopyPacing> {
    const idle = await signalsNow.idleLook();
    const next = afterQuietLook(current, idle, Date.now());
    if (idle) {
      const was = current.baseline.canaryMs ?? current.baseline.latencyMs;
      const now = next.baseline.canaryMs ?? next.baseline.latencyMs;
      log.info(`pacing: looked at the foreground with the copy idle: latency ${now?.toFixed(1) ?? 'unread'} ms (was ${was?.toFixed(1) ?? 'unread'} ms); the budget follows it`);
      held = null;
      lastStep = Date.now();
      rowsSinceStep = 0;
    }
    paidUntil = Math.max(paidUntil, Date.now());
    // The time spent looking is no copying's.
    countedFrom = paidUntil;
    rowsThisCall = 0;
    return next;
  }

  /** A wait of `ms` for the rate, and its reason: the controller's signal, its ramp, or the ceiling. */
  function explain(ms: number): ThrottleWait {
    const now = rate();
    if (now === null) return GO;
    const arrivals = options.keepUpWith?.() ?? null;
    if (arrivals !== null && ceiling !== null && arrivals > ceiling) {
      return { ms, reason: `rows/s limit (${ceiling} rows/s for ${options.writer ?? 'this shard'}) is below the ${Math.round(arrivals)} changes/s arriving: the lag grows`, kind: 'rate' };
    }
    if (pacing && arrivals !== null && now > pacing.state.rowsPerSecond) {
      return { ms, reason: describeKeepingUp(now, arrivals, pacing.state.rowsPerSecond, held), kind: 'pacing' };
    }
    if (pacing && held && held.signal !== 'ceiling') {
      return { ms, reason: describePacing(now, held), kind: 'pacing' };
    }
    if (ms <= 0) return GO;
    if (pacing && (ceiling === null || now < ceiling)) {
      return { ms, reason: `paced at ${Math.round(now)} rows/s, rising while the database shows room`, kind: 'pacing' };
    }
    return { ms, reason: `rows/s limit (${ceiling} rows/s for ${options.writer ?? 'this shard'})`, kind: 'rate' };
  }
}

/**
 * For a writer without a batch loop of its own (applying captured changes): waits until `rows`
 * more may be written, holding while the source is unwell, and says why it waited (null when
 * it did not). `sleep` is the caller's (the activity's, so cancellation ends the wait).
 */
export async function waitForRoom(throttle: CopyThrottle, rows: number, sleep: (ms: number) => Promise<void>): Promise<string | null> {
  let waited: string | null = null;
  for (let hold = await throttle.beforeBatch(); hold.ms > 0; hold = await throttle.beforeBatch()) {
    waited = hold.reason;
    await sleep(hold.ms);
  }
  const pace = throttle.afterBatch(rows);
  if (pace.ms > 0) await sleep(pace.ms);
  return pace.reason ?? waited;
}
