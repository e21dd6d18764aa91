/**
 * The table swap in the migration workflow: its activity retried with a backoff while the lock
 * is not had, its record in the status, and the old table's drop at the cleanup gate when the
 * plan asks for it (otherwise it stays aside, and the status says so).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../../activities';
import { captureOf } from '../../lib/capture';
import type { MigrationRun } from './run';

/** A lock not had within the activity's 2 s lock timeout is tried again: 1 s, 2 s, 4 s ... 15 s apart, for as long as it takes. */
const { swapTables: swapActivity, dropOldTable } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '15 seconds',
    nonRetryableErrorTypes: ['MissingConnection', 'SwapNotPossible'],
  },
});

export async function swapTables(run: MigrationRun): Promise<void> {
  const result = await swapActivity({ migrationId: run.workflowId, plan: run.plan });
  const capture = run.status.capture!;
  capture.swap = {
    swappedAt: run.now(),
    oldTableAside: result.oldTableAside,
    newName: result.newName,
    keysDrained: result.keysDrained,
    attempts: result.attempts,
    snapshot: result.snapshot,
    oldTableDroppedAt: null,
  };
  // The swap removed the trigger, its function and the log entries in its transaction.
  capture.removedAt = run.now();
  run.record(
    'swap',
    { by: 'ferry' },
    `tables swapped after ${result.attempts} attempt(s): the new table is ${result.newName}; ${result.keysDrained} changed keys applied under the lock; the old table kept as ${result.oldTableAside}`,
  );
}

export async function dropOldTableAside(run: MigrationRun): Promise<void> {
  const swap = run.status.capture!.swap!;
  if (swap.oldTableAside === null) return;
  if (!captureOf(run.plan).dropOldTable) {
    run.record('swap', { by: 'ferry' }, `the old table ${swap.oldTableAside} is kept; drop it by hand when no longer needed (or set capture.dropOldTable)`);
    return;
  }
  await dropOldTable({ migrationId: run.workflowId, plan: run.plan });
  swap.oldTableDroppedAt = run.now();
  run.record('swap', { by: 'ferry' }, `the old table ${swap.oldTableAside} was dropped (capture.dropOldTable)`);
  swap.oldTableAside = null;
}
