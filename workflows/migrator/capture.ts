/**
 * Change capture in the migration workflow: the trigger (or, for logical capture, the publication
 * and the replication slot, with a reader that logs their changes) goes on before the backfill;
 * the change apply runs beside the backfill and after it, under the throttle and pause, until the
 * cleanup gate; then the capture and the log entries go, or on an abort (once the shards stopped)
 * or a failure.
 */
import { ApplicationFailure, CancellationScope, condition, isCancellation, patched, proxyActivities } from '@temporalio/workflow';
import { rootMessage } from '../../lib/errors';
import type { FerryActivities } from '../../activities';
import { capturesLogically, isCaughtUp, newCaptureStatus, type ApplyChangesResult, type CaptureStatus } from '../../lib/capture';
import type { Plan } from '../../lib/plan';
import type { FailedRow, MigrationStatus } from '../../lib/status';

/** Silence for this long means the activity's worker is gone (every activity beats every 2 s). */
const HEARTBEAT_TIMEOUT = '10 seconds';

/** Installing and removing retry until the database answers: a trigger must never be left behind. */
const { installCapture, removeCapture, installLogicalCapture, removeLogicalCapture } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: ['MissingConnection', 'CaptureSourceMissing', 'CaptureNotAllowed', 'LogicalCaptureNotPossible'],
  },
});

/**
 * The reader of a logical slot: retried until the database answers, unless the slot is gone. A
 * stop does not wait for a cancelled call to end (a continue-as-new must not wait with messages
 * arriving): the next reader, or the removal, ends its session on the slot.
 */
const { readLogicalChanges } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    nonRetryableErrorTypes: ['MissingConnection', 'LogicalCaptureSlotMissing', 'LogicalCaptureNotPossible'],
  },
});

/** One call of the reader a minute: the history grows by a few events a minute, not one a change. */
const READ_CALL_SECONDS = 60;

const { applyChanges } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['MissingConnection'] },
});

/** How long one call of the applier runs before the workflow records its cursor and takes a new throttle. */
const APPLY_CALL_SECONDS = 5;

export interface CaptureContext {
  plan: Plan;
  /** The plan with the back-off limits and pacing budget an operator set since (`ferry throttle`), for the change apply. */
  planInForce: () => Plan;
  migrationId: string;
  status: MigrationStatus;
  now: () => string;
  backfillDone: () => boolean;
  /** Counts rows the change apply could not write, as a shard's failed rows are. */
  countFailures: (count: number, failures: readonly FailedRow[]) => void;
}

export interface CaptureRunner {
  /** Installs the trigger (safe to run twice) and starts the change apply. */
  install(): Promise<void>;
  /** Starts the change apply again in a continued run, when the trigger is on. */
  resume(): void;
  /** Resolves once a call of the applier begun after the backfill left at most one batch waiting. */
  caughtUp(): Promise<void>;
  /** Why the change apply stopped on its own (its activity failed for good); null while it runs. */
  failed(): unknown;
  /**
   * The capture is ending: the change apply finishes its call under way, applies every change
   * committed before now (a pause holds it, as it holds the apply), and ends. Resolves once done,
   * or once the apply failed (failed() says why); at once when the apply is not running.
   */
  drain(): Promise<void>;
  /** Stops the change apply (cancelling a call under way) and waits for it. */
  stop(): Promise<void>;
  /** Stops the change apply and removes the trigger and the migration's log entries. */
  remove(): Promise<void>;
}

export function captureRunner(ctx: CaptureContext): CaptureRunner {
  const logical = capturesLogically(ctx.plan);
  const state = (): CaptureStatus => (ctx.status.capture ??= newCaptureStatus(logical ? 'logical' : 'trigger'));
  let scope: CancellationScope | null = null;
  let loop: Promise<void> | null = null;
  /** Why the change apply stopped on its own: the workflow fails with it at its next wait for the apply. */
  let failure: unknown = null;
  /** A drain asked (the apply ends once it applied every change before it), and done. */
  let draining = false;
  let drained = false;

  const applyLoop = async () => {
    // The applier's pacing controller keeps its memory from one call to the next, as a shard's
    // copier does; histories from before it start the controller afresh at each call.
    const paced = patched('capture-paced');
    // Rows the apply could not write were recorded but never counted: status said none failed.
    // Guarded, so older histories replay.
    const counted = patched('capture-failures-counted');
    /** The drain's cut-off round, once its first call began one. */
    let drainRound: string | null = null;
    for (;;) {
      await condition(() => ctx.status.paused === null);
      const s = state();
      const afterBackfill = ctx.backfillDone();
      const result: ApplyChangesResult = await applyChanges({
        migrationId: ctx.migrationId,
        plan: ctx.planInForce(),
        cursor: s.cursor,
        rowsPerSecond: ctx.status.throttle.rowsPerSecond,
        prune: afterBackfill || draining,
        // The catch-up step waits for this call: it ends as soon as nothing is left to apply.
        returnWhenCaughtUp: afterBackfill && s.caughtUpAt === null && !draining,
        maxSeconds: APPLY_CALL_SECONDS,
        ...(paced ? { pacing: s.pacing ?? null } : {}),
        ...(draining ? { drain: { round: drainRound } } : {}),
      });
      if (draining && result.drain) {
        drainRound = result.drain.round;
        drained = result.drain.done;
      }
      s.cursor = result.cursor;
      s.lag = result.lag;
      s.keysApplied += result.keysApplied;
      s.rowsWritten += result.rowsWritten;
      s.rowsDeleted += result.rowsDeleted;
      if (counted && result.rowsFailed) ctx.countFailures(result.rowsFailed, result.failures ?? []);
      s.throttleReason = result.throttleReason;
      if (paced) s.pacing = result.pacing ?? null;
      if (afterBackfill && s.caughtUpAt === null && isCaughtUp(result.lag, ctx.plan)) s.caughtUpAt = ctx.now();
      if (drained) return;
    }
  };

  /**
   * Logical capture: the reader moves the slot's changes into the change log, also while the
   * apply is paused (the slot would hold the WAL meanwhile); the apply and the backfill's chunks
   * wait for it.
   */
  const readLoop = async () => {
    for (;;) await readLogicalChanges({ migrationId: ctx.migrationId, plan: ctx.plan, maxSeconds: READ_CALL_SECONDS });
  };

  const start = () => {
    if (loop) return;
    scope = new CancellationScope();
    const stopped = (error: unknown) => {
      if (isCancellation(error)) return;
      failure ??= error;
      state().stoppedBecause ??= rootMessage(error);
    };
    const apply = scope.run(applyLoop).catch(stopped);
    const read = logical ? scope.run(readLoop).catch(stopped) : Promise.resolve();
    loop = Promise.all([apply, read]).then(() => undefined);
  };

  const stop = async () => {
    if (!loop) return;
    scope!.cancel();
    await loop;
    loop = null;
    scope = null;
  };

  return {
    async install() {
      const s = state();
      if (s.installedAt === null) {
        const installed = await (logical ? installLogicalCapture : installCapture)({ migrationId: ctx.migrationId, plan: ctx.plan });
        s.installedAt = ctx.now();
        // Absent from results recorded by older workers.
        if (installed.functionName) s.functionName = installed.functionName;
      }
      start();
    },
    resume() {
      const s = ctx.status.capture;
      if (s && s.installedAt !== null && s.removedAt === null) start();
    },
    async caughtUp() {
      await condition(() => ctx.status.capture?.caughtUpAt != null || failure !== null);
      if (failure !== null) throw ApplicationFailure.nonRetryable(`the change apply failed: ${rootMessage(failure)}`, 'CaptureApplyFailed');
    },
    failed: () => failure,
    async drain() {
      if (!loop) return;
      draining = true;
      await condition(() => drained || failure !== null);
    },
    stop,
    async remove() {
      await stop();
      const s = ctx.status.capture;
      if (!s || s.removedAt !== null) return;
      // Not cancellable: an abort must not leave the trigger, or a slot holding WAL, behind.
      await CancellationScope.nonCancellable(() => (logical ? removeLogicalCapture : removeCapture)({ migrationId: ctx.migrationId, plan: ctx.plan }));
      s.removedAt = ctx.now();
    },
  };
}
