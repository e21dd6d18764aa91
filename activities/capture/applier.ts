/**
 * Change applier brings the target up to date with the changes the capture trigger logged, and
 * lets the backfill's chunks and those changes interleave without locks on the source: a chunk
 * notes a snapshot before its read, and after its write applies again the keys of its range
 * changed by transactions that snapshot could not see, so a change always wins over an older row.
 */
import { activityInfo, ApplicationFailure, CancelledFailure, Context, heartbeat, sleep } from '@temporalio/activity';
import type pg from 'pg';
import { startOfCapture, captureOf, capturesLogically, type ApplyChangesResult, type ApplyCursor, type CaptureLag } from '../../lib/capture';
import type { KeyRange } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { withHeartbeats, type Heartbeats } from '../heartbeats';
import { openCopyThrottle, type CopyPacing, type ThrottleWait } from '../copy/throttle';
import { createKeyApplier, withApplyLock, type KeysApplied } from './apply-keys';
import { arrivalRate, countArrivals } from './arrivals';
import { MAX_REPORTED_FAILURES, type FailedRecord } from '../state/ferry-schema';
import { createCaptureMetrics, type CaptureMetrics } from './metrics';
import { captureObjectName, changedKeysInRangeSql, CURRENT_SNAPSHOT_SQL, keyTypeSql, lagSql, pruneAppliedSql, roundKeysSql, triggerExistsSql } from './statements';
import { displayName } from '../sql';
import { redactErrorText, redactRowError } from '../../lib/errors';
import { logicalCaptureName } from '../../lib/ids';
import { publishesTableSql } from './logical-statements';
import { snapshotReadThrough, waitForHighWatermark, walBytesHeld } from './logical-reader';

export interface ApplyChangesInput {
  migrationId: string;
  plan: Plan;
  cursor: ApplyCursor;
  /** Keys per second the applier writes at most; null for no limit. */
  rowsPerSecond: number | null;
  /** The pacing controller's memory from the previous call; null or absent to start it afresh. */
  pacing?: CopyPacing | null;
  /**
   * Remove applied entries from the log. Only once the backfill is over: a chunk still in
   * flight looks for entries its read could not see. (Default: false)
   */
  prune?: boolean;
  /** Return as soon as a round finds nothing to apply, rather than wait for more. (Default: false) */
  returnWhenCaughtUp?: boolean;
  /** Return after about this long, so the workflow can record the cursor and apply a new throttle. (Default: 5) */
  maxSeconds?: number;
  /**
   * The capture is ending: apply every change committed before the drain began, then return. A
   * round begun before it is finished, then one is begun (its snapshot the cut-off) and finished.
   * `round` is the cut-off round an earlier call of the drain began; null at the first call.
   */
  drain?: { round: string | null };
}

/** How long the applier waits before it looks at the log again once it has applied everything. */
const IDLE_POLL_MS = 200;

/** The current snapshot of the source as text: what a transaction starting now would see. */
export async function currentSnapshot(pool: pg.Pool): Promise<string> {
  return (await pool.query<{ snapshot: string }>(CURRENT_SNAPSHOT_SQL)).rows[0]!.snapshot;
}

async function keyTypeOf(pool: pg.Pool, plan: Plan): Promise<string> {
  const type = (await pool.query<{ type: string }>(keyTypeSql(plan.source, plan.source.key))).rows[0]?.type;
  if (!type) throw new Error(`the source key column ${plan.source.key} was not found`);
  return type;
}

/**
 * The capture must still see every write to the table the plan names: a trigger dropped or
 * disabled by hand (a bulk load's DISABLE TRIGGER ALL), or a table renamed and replaced (the
 * trigger and the publication stay with the old one), leaves writes that reach no log, which
 * nothing could apply. Fails for good, naming it.
 */
async function ensureCaptureSeesWrites(pool: pg.Pool, migrationId: string, plan: Plan): Promise<void> {
  const restart = 'writes to the source since then were not captured and cannot reach the target; abort the migration and start it again';
  if (capturesLogically(plan)) {
    const name = logicalCaptureName(migrationId);
    if ((await pool.query<{ published: boolean }>(publishesTableSql(name, plan.source))).rows[0]?.published) return;
    throw ApplicationFailure.nonRetryable(`the publication ${name} does not publish ${displayName(plan.source)} (any more): ${restart}`, 'CaptureTriggerMissing');
  }
  const trigger = (await pool.query<{ present: boolean; enabled: boolean }>(triggerExistsSql(migrationId, plan.source))).rows[0];
  if (trigger?.enabled) return;
  throw ApplicationFailure.nonRetryable(
    `the capture trigger ${captureObjectName(migrationId)} on ${displayName(plan.source)} is ${trigger?.present ? 'disabled' : 'gone'}: ${restart}`,
    'CaptureTriggerMissing',
  );
}

/**
 * A statement the tables no longer fit (class 42: a column or table the plan uses dropped or
 * renamed, a privilege gone) fails the same way at every retry, and an apply retried for ever
 * would let the migration complete with its changes never applied: it stops for good, naming it.
 */
function stopsForGood(error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('42')) return error;
  return ApplicationFailure.nonRetryable(`the change apply cannot run on the tables as the plan names them: ${redactErrorText(error)}`, 'CaptureApplyFailed');
}

export async function captureLagOf(pool: pg.Pool, migrationId: string, appliedThrough: string | null): Promise<CaptureLag> {
  const row = (await pool.query<{ waiting: number; oldest: number }>(lagSql(migrationId, appliedThrough))).rows[0];
  return { changesWaiting: Number(row?.waiting ?? 0), oldestSeconds: Number(row?.oldest ?? 0), measuredAt: new Date().toISOString() };
}

export function createChangeApplier(databases: Databases, transformDir: string | null, metrics: CaptureMetrics = createCaptureMetrics()) {
  const applyKeys = createKeyApplier(databases, transformDir);

  /**
   * Copies one chunk of the backfill by `copy`, then applies again the keys of its range changed
   * by transactions not visible in the snapshot taken just before. That snapshot is a low
   * watermark: the read's own snapshot (each statement takes one) sees at least as much, so
   * every change the read missed is among those keys; applying a key once more changes nothing.
   */
  async function copyChunkWithWatermark<T extends { failures: FailedRecord[] }>(
    migrationId: string,
    plan: Plan,
    range: KeyRange,
    copy: () => Promise<T>,
  ): Promise<{ copied: T; reapplied: KeysApplied & { keys: number } }> {
    const sourcePool = databases.pool(plan.source.connection);
    const low = await currentSnapshot(sourcePool);
    // Under the apply lock from before the read to the commit, as every write of re-read rows:
    // a change applied meanwhile cannot land between the chunk's read and its write, so a worker
    // that dies after the write and before the check below leaves nothing the applier will not fix.
    const copied = await withApplyLock(databases.pool(plan.target.connection), migrationId, copy);
    // Logical capture logs a change only once its reader has decoded it: the look below must
    // wait until the reader has passed the WAL position after the read (the high watermark).
    if (capturesLogically(plan)) await waitForHighWatermark(sourcePool, migrationId);
    const keyType = await keyTypeOf(sourcePool, plan);
    const changed = changedKeysInRangeSql(migrationId, keyType, low, range);
    const keys = (await sourcePool.query<{ key: string }>(changed)).rows.map((r) => r.key);
    const batch = captureOf(plan).applyBatchSize;
    const reapplied = { written: 0, deleted: 0, failed: [] as FailedRecord[], newlyFailed: [] as FailedRecord[], keys: keys.length };
    for (let i = 0; i < keys.length; i += batch) {
      // Its failures join the chunk's, which the copier records and counts once.
      const applied = await applyKeys(migrationId, plan, keys.slice(i, i + batch), keyType, false);
      reapplied.written += applied.written;
      reapplied.deleted += applied.deleted;
      reapplied.failed.push(...applied.failed);
    }
    const inChunk = new Set(copied.failures.map((f) => f.key));
    reapplied.newlyFailed = reapplied.failed.filter((f) => !inChunk.has(f.key));
    return { copied: { ...copied, failures: [...copied.failures, ...reapplied.newlyFailed] }, reapplied };
  }

  /**
   * Applies logged changes from the cursor on, round by round, for about `maxSeconds`; once it
   * has applied everything it waits for more until then. Progress is heartbeated; a retried
   * attempt resumes from it, and a key applied twice changes nothing.
   */
  async function applyChanges(input: ApplyChangesInput, heartbeats?: Heartbeats): Promise<ApplyChangesResult> {
    const { migrationId, plan } = input;
    const sourcePool = databases.pool(plan.source.connection);
    await ensureCaptureSeesWrites(sourcePool, migrationId, plan);
    const keyType = await keyTypeOf(sourcePool, plan);
    const batch = captureOf(plan).applyBatchSize;
    const maxMs = (input.maxSeconds ?? 5) * 1000;
    const resumed = activityInfo().heartbeatDetails as ApplyCursor | undefined;
    const cursor: ApplyCursor = { ...(resumed ?? input.cursor ?? startOfCapture) };
    heartbeats?.follow(() => cursor);
    // The backfill's throttle: backoff holds, the pacing controller (when the plan's budget is on)
    // and the rows/s limit as its ceiling, watching the source and the target. The controller
    // never paces the apply below the rate changes arrive at (counted in the loop below): the
    // load it answers may not be ours.
    const throttle = await openCopyThrottle({
      pool: sourcePool,
      targetPool: databases.sameDatabase(plan.source.connection, plan.target.connection) ? undefined : databases.pool(plan.target.connection),
      plan,
      rowsPerSecond: input.rowsPerSecond,
      pacing: input.pacing ?? null,
      writer: 'the change apply',
      keepUpWith: () => arrivalRate(migrationId),
    });
    const started = Date.now();
    const result = { keysApplied: 0, rowsWritten: 0, rowsDeleted: 0, rowsFailed: 0, failures: [] as FailedRecord[], throttleReason: null as string | null };
    const timeLeft = () => Math.max(0, maxMs - (Date.now() - started));
    /** The drain's cut-off round: every change committed before the drain is visible in its snapshot. */
    let drainRound = input.drain?.round ?? null;
    let drained = false;
    const show = (why: ThrottleWait) => {
      result.throttleReason = why.reason;
    };

    while (timeLeft() > 0) {
      await countArrivals(sourcePool, migrationId);
      const before = await throttle.beforeBatch();
      if (before.ms > 0) {
        // Holding or paying for the last batch: wait, but return on time so the status shows why.
        show(before);
        heartbeat(cursor);
        await sleep(Math.min(before.ms, timeLeft()));
        continue;
      }
      // The controller's signal shows while it holds the rate down; a lifted hold clears.
      if (before.reason !== null || result.throttleReason?.startsWith('holding: ')) show(before);
      if (cursor.round === null) {
        // Logical capture: a round's snapshot counts only once every change visible in it is logged.
        const round = capturesLogically(plan) ? await snapshotReadThrough(sourcePool, migrationId, timeLeft()) : await currentSnapshot(sourcePool);
        if (round === null) continue;
        cursor.round = round;
        cursor.afterKey = null;
        if (input.drain && drainRound === null) drainRound = round;
      }
      const pageStartedAt = Date.now();
      const page = roundKeysSql(migrationId, keyType, { ...cursor, round: cursor.round }, throttle.batchSize(batch));
      const keys = (await sourcePool.query<{ key: string }>(page)).rows.map((r) => r.key);
      if (keys.length === 0) {
        const wasEmpty = cursor.afterKey === null;
        if (input.prune) {
          await countArrivals(sourcePool, migrationId, true);
          await sourcePool.query(pruneAppliedSql(migrationId, cursor.round));
        }
        const finished = cursor.round;
        Object.assign(cursor, { appliedThrough: cursor.round, round: null, afterKey: null });
        heartbeat(cursor);
        if (input.drain && finished === drainRound) {
          drained = true;
          break;
        }
        if (wasEmpty && input.returnWhenCaughtUp) break;
        // Everything applied: look again shortly, until the call's time is up.
        if (wasEmpty) await sleep(Math.min(IDLE_POLL_MS, timeLeft()));
        continue;
      }
      const applied = await applyKeys(migrationId, plan, keys, keyType);
      cursor.afterKey = keys[keys.length - 1]!;
      metrics.captureKeysApplied.inc({ migration: plan.name }, keys.length);
      result.keysApplied += keys.length;
      result.rowsWritten += applied.written;
      result.rowsDeleted += applied.deleted;
      // Counted once a key: one the target keeps refusing fails at every change to it.
      result.rowsFailed += applied.newlyFailed.length;
      for (const failure of applied.newlyFailed) {
        if (result.failures.length < MAX_REPORTED_FAILURES) result.failures.push({ key: failure.key, code: failure.code, error: redactRowError(failure) });
      }
      heartbeat(cursor);
      if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('change apply cancelled');
      // The page's wait for the apply lock (a chunk's copy, a verification look) counts toward
      // its pace: otherwise every look would cost the apply its turn after it as well.
      const pace = throttle.afterBatch(keys.length, pageStartedAt);
      show(pace);
      if (pace.ms > 0) await sleep(Math.min(pace.ms, timeLeft()));
    }
    const lag = await captureLagOf(sourcePool, migrationId, cursor.appliedThrough);
    const logical = capturesLogically(plan);
    if (logical) lag.walBytesHeld = await walBytesHeld(sourcePool, migrationId);
    metrics.recordCaptureLag(plan.name, lag, logical);
    return { cursor, ...result, lag, pacing: throttle.pacing(), ...(input.drain ? { drain: { round: drainRound, done: drained } } : {}) };
  }

  return {
    copyChunkWithWatermark,
    activities: {
      /** applyChanges, heartbeating every few seconds too. */
      applyChanges: (input: ApplyChangesInput): Promise<ApplyChangesResult> =>
        withHeartbeats((heartbeats) => applyChanges(input, heartbeats)).catch((error: unknown) => {
          throw stopsForGood(error);
        }),
    },
  };
}
