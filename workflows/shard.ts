/**
 * A shard copies one key range of a migration. It keeps its cursor in workflow state, calls
 * the copier until the range is done, and continues-as-new before its history grows large.
 */
import { continueAsNew, getExternalWorkflowHandle, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { KeyRange } from '../lib/key-range';
import type { Plan } from '../lib/plan';
import type { Throttle } from '../lib/status';
import { shardProgressSignal } from './messages';

export interface ShardInput {
  /** The migration workflow to report progress to (its id survives its continue-as-new). */
  migrationWorkflowId: string;
  plan: Plan;
  index: number;
  range: KeyRange;
  throttle: Throttle;
  /** Carried across continue-as-new. */
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
}

export interface ShardResult {
  index: number;
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
}

const { copyBatches } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  // A live copier heartbeats after every batch; silence this long means its worker is gone.
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    nonRetryableErrorTypes: ['MissingConnection'],
  },
});

export async function shardWorkflow(input: ShardInput): Promise<ShardResult> {
  const state = { ...input };
  const migration = getExternalWorkflowHandle(input.migrationWorkflowId);

  for (;;) {
    const result = await copyBatches({
      plan: state.plan,
      range: state.range,
      cursor: state.cursor,
      batchSize: state.throttle.batchSize,
      rowsPerSecond: state.throttle.rowsPerSecond,
    });
    state.cursor = result.cursor;
    state.rowsRead += result.rowsRead;
    state.rowsWritten += result.rowsWritten;
    await migration.signal(shardProgressSignal, {
      index: state.index,
      cursor: state.cursor,
      rowsRead: state.rowsRead,
      rowsWritten: state.rowsWritten,
      done: result.done,
    });
    if (result.done) {
      return { index: state.index, cursor: state.cursor, rowsRead: state.rowsRead, rowsWritten: state.rowsWritten };
    }
    if (workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof shardWorkflow>(state);
    }
  }
}
