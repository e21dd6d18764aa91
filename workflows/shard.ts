/**
 * A shard copies one key range (or partition) of a migration. It keeps its cursor in workflow
 * state, calls the copier until the range is done, obeys its migration's throttle and pause,
 * and continues-as-new before its history grows large.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { ShardSpec } from '../lib/key-range';
import type { Plan } from '../lib/plan';
import { shardPauseSignal, shardProgressSignal, shardThrottleSignal, type ShardProgress, type ShardThrottle } from './messages';

export interface ShardInput {
  /** The migration workflow to report to (its id survives its continue-as-new). */
  migrationWorkflowId: string;
  plan: Plan;
  index: number;
  spec: ShardSpec;
  throttle: ShardThrottle;
  paused: boolean;
  /** Carried across continue-as-new. */
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
  rowsFailed: number;
  batchSize: number;
}

export interface ShardResult {
  index: number;
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
  rowsFailed: number;
}

const { copyBatches } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  // A live copier heartbeats after every batch; silence this long means its worker is gone.
  heartbeatTimeout: '30 seconds',
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
  setHandler(shardThrottleSignal, (throttle) => {
    state.throttle = throttle;
  });
  setHandler(shardPauseSignal, (paused) => {
    state.paused = paused;
  });

  const report = (progress: Omit<ShardProgress, 'index' | 'cursor' | 'rowsRead' | 'rowsWritten' | 'rowsFailed' | 'batchSize'>) =>
    migration.signal(shardProgressSignal, {
      index: state.index,
      cursor: state.cursor,
      rowsRead: state.rowsRead,
      rowsWritten: state.rowsWritten,
      rowsFailed: state.rowsFailed,
      batchSize: state.batchSize,
      ...progress,
    });

  for (;;) {
    if (state.paused) {
      await report({ throttleReason: 'paused', failures: [], done: false, error: null });
      await condition(() => !state.paused);
    }
    let result;
    try {
      result = await copyBatches({
        migrationId: input.migrationWorkflowId,
        plan: state.plan,
        shard: state.spec,
        cursor: state.cursor,
        batchSize: state.batchSize,
        maxBatchSize: state.throttle.batchSize,
        rowsPerSecond: state.throttle.rowsPerSecond,
        failureBudget: state.plan.failures.maxCount + 1,
        maxSeconds: state.plan.throttle.checkpointSeconds,
      });
    } catch (error) {
      // The migration learns of a failed shard from the shard itself: it may have
      // continued-as-new and no longer hold this child's handle.
      await report({ throttleReason: null, failures: [], done: false, error: rootMessage(error) });
      throw error;
    }
    state.cursor = result.cursor;
    state.rowsRead += result.rowsRead;
    state.rowsWritten += result.rowsWritten;
    state.rowsFailed += result.rowsFailed;
    state.batchSize = result.batchSize;
    await report({ throttleReason: result.throttleReason, failures: result.failures, done: result.done, error: null });
    if (result.done) {
      return { index: state.index, cursor: state.cursor, rowsRead: state.rowsRead, rowsWritten: state.rowsWritten, rowsFailed: state.rowsFailed };
    }
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof shardWorkflow>(state);
    }
  }
}

/** The innermost message of a failure chain (an activity failure wraps the real error). */
function rootMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  for (let cause = (error as { cause?: unknown }).cause; cause instanceof Error; cause = (cause as { cause?: unknown }).cause) {
    message = cause.message || message;
  }
  return message;
}
