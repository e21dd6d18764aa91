/**
 * A shard copies one key range (or partition) of a migration. It keeps its cursor in workflow
 * state, calls the copier until the range is done, obeys its migration's throttle and pause,
 * and continues-as-new before its history grows large.
 */
import {
  ActivityCancellationType,
  allHandlersFinished,
  CancellationScope,
  isCancellation,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { CopyPacing } from '../lib/pacing-controller';
import { rootMessage } from '../lib/errors';
import type { ShardSpec } from '../lib/key-range';
import { parseShardLimits, parseShardPause, parseShardThrottle } from '../lib/messages-input';
import { plannedLimits, withLimits } from '../lib/throttle';
import type { Plan } from '../lib/plan';
import type { ShardCounts } from '../lib/progress';
import { shardControlQuery, shardLimitsSignal, shardPauseSignal, shardProgressSignal, shardThrottleSignal, type ShardProgress, type ShardThrottle } from './messages';

/** What a shard reports when an abort cancelled it (after its copier stopped). */
export const CANCELLED = 'cancelled';

export interface ShardInput extends ShardCounts {
  /** The migration workflow to report to (its id survives its continue-as-new). */
  migrationWorkflowId: string;
  plan: Plan;
  index: number;
  spec: ShardSpec;
  throttle: ShardThrottle;
  paused: boolean;
  /** Carried across continue-as-new, as are the counts. */
  batchSize: number;
  /** The pacing controller's memory (baseline and rate), carried between copy calls. */
  pacing?: CopyPacing | null;
}

export interface ShardResult extends ShardCounts {
  index: number;
}

const { copyBatches } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  // On abort, the shard ends only once its copier has really stopped.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  // A live copier heartbeats every 2 s from a timer, whatever it is doing; silence this long
  // means its worker is gone, and another worker takes the copy over from its last checkpoint.
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    nonRetryableErrorTypes: ['MissingConnection', 'InvalidTransform'],
  },
});

export async function shardWorkflow(input: ShardInput): Promise<ShardResult> {
  const state = { ...input };
  const migration = getExternalWorkflowHandle(input.migrationWorkflowId);
  // Only the migration sends these, but anyone can: a payload that does not read changes nothing.
  setHandler(shardThrottleSignal, (payload) => {
    const parsed = parseShardThrottle(payload);
    if (parsed.ok) state.throttle = parsed.value;
    else log.warn(`shard ${input.index} of ${input.migrationWorkflowId} ignored signal shardThrottle: ${parsed.problems.join('; ')}`);
  });
  // The next copy call holds and paces by the new limits; the running one returns within a second to make way.
  setHandler(shardLimitsSignal, (payload) => {
    const parsed = parseShardLimits(payload);
    if (parsed.ok) state.plan = withLimits(state.plan, parsed.value);
    else log.warn(`shard ${input.index} of ${input.migrationWorkflowId} ignored signal shardLimits: ${parsed.problems.join('; ')}`);
  });
  // A running copy call asks this once a second, to return as soon as the throttle, the pause or the limits change.
  setHandler(shardControlQuery, () => ({ throttle: state.throttle, paused: state.paused, limits: plannedLimits(state.plan) }));
  setHandler(shardPauseSignal, (payload) => {
    const parsed = parseShardPause(payload);
    if (parsed.ok) state.paused = parsed.value;
    else log.warn(`shard ${input.index} of ${input.migrationWorkflowId} ignored signal shardPause: ${parsed.problems.join('; ')}`);
  });

  // Signalling a running workflow does not fail; when it does, the migration has ended (it was
  // terminated, say) and a shard has no one left to copy for.
  let migrationGone = false;
  const report = async (progress: Omit<ShardProgress, 'index' | 'cursor' | 'rowsRead' | 'rowsWritten' | 'rowsFailed' | 'batchSize'>) => {
    try {
      await migration.signal(shardProgressSignal, {
        index: state.index,
        cursor: state.cursor,
        rowsRead: state.rowsRead,
        rowsWritten: state.rowsWritten,
        rowsFailed: state.rowsFailed,
        batchSize: state.batchSize,
        ...progress,
      });
    } catch (error) {
      if (isCancellation(error)) throw error;
      migrationGone = true;
    }
  };
  const result = (): ShardResult => ({
    index: state.index,
    cursor: state.cursor,
    rowsRead: state.rowsRead,
    rowsWritten: state.rowsWritten,
    rowsFailed: state.rowsFailed,
  });

  try {
    return await copyUntilDone();
  } catch (error) {
    // An abort cancels the shard: say so once the copier has stopped (the activity is waited
    // for), so the migration knows no more rows move.
    if (isCancellation(error)) {
      await CancellationScope.nonCancellable(() => report({ throttleReason: null, failures: [], done: false, error: CANCELLED }));
    }
    throw error;
  }

  async function copyUntilDone(): Promise<ShardResult> {
    // The controller's rate and baseline go from one copy call to the next; histories from
    // before it carry none, and their copy calls start the controller afresh each time.
    const paced = patched('adaptive-pacing');
    // Copy calls watch the shard's throttle and pause themselves, so they may run for the whole
    // checkpoint interval (and write history by it) without delaying a change.
    const following = patched('copy-calls-follow-shard');
    for (;;) {
      if (state.paused) {
        await report({ throttleReason: 'paused', failures: [], done: false, error: null });
        if (migrationGone) return result();
        await condition(() => !state.paused);
      }
      let copied;
      try {
        copied = await copyBatches({
          migrationId: input.migrationWorkflowId,
          plan: state.plan,
          shard: state.spec,
          cursor: state.cursor,
          batchSize: state.batchSize,
          maxBatchSize: state.throttle.batchSize,
          rowsPerSecond: state.throttle.rowsPerSecond,
          failureBudget: state.plan.failures.maxCount + 1,
          maxSeconds: state.plan.throttle.checkpointSeconds,
          ...(paced ? { pacing: state.pacing ?? null } : {}),
          ...(following ? { followShard: true } : {}),
        });
      } catch (error) {
        // The migration learns of a failed shard from the shard itself: it may have
        // continued-as-new and no longer hold this child's handle.
        if (!isCancellation(error)) await report({ throttleReason: null, failures: [], done: false, error: rootMessage(error) });
        throw error;
      }
      state.cursor = copied.cursor;
      state.rowsRead += copied.rowsRead;
      state.rowsWritten += copied.rowsWritten;
      state.rowsFailed += copied.rowsFailed;
      state.batchSize = copied.batchSize;
      if (paced) state.pacing = copied.pacing ?? null;
      await report({ throttleReason: copied.throttleReason, failures: copied.failures, done: copied.done, error: null, blocked: copied.blocked });
      if (copied.blocked) {
        // Give the migration a moment to pause this shard before trying again.
        await condition(() => state.paused, '10 seconds');
      }
      if (copied.done || migrationGone) return result();
      if (workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof shardWorkflow>(state);
      }
    }
  }
}

