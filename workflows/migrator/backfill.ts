/**
 * The backfill: the key space split into shards, and the sliding window that copies them
 * through shard children, at most `concurrency` at once, under the live throttle.
 */
import { condition, ParentClosePolicy, patched, startChild, workflowInfo } from '@temporalio/workflow';
import { shardWorkflowId } from '../../lib/ids';
import type { Plan } from '../../lib/plan';
import type { MigrationStatus, ShardStatus } from '../../lib/status';
import { shardWorkflow } from '../shard';
import { planShards } from './activity-proxies';
import type { MigrationRun, ShardPlanning } from './run';

/**
 * Starts planning the shards now, for a backfill that begins later. A failure waits for the
 * backfill that awaits it (if the run gets that far); until then it counts as handled.
 */
export function planShardsAhead(plan: Plan): ShardPlanning {
  const planning = planShards({ plan });
  planning.catch(() => {});
  return planning;
}

/** Splits the source's key space into shards, each pending. */
export async function planBackfill(run: MigrationRun): Promise<void> {
  const { status, plan } = run;
  const specs = await (run.shardPlanning ?? planShards({ plan }));
  status.shards = specs.map(
    (spec, index): ShardStatus => ({
      index,
      range: spec.range,
      partitionValue: spec.partitionValue,
      state: 'pending',
      cursor: null,
      rowsRead: 0,
      rowsWritten: 0,
      rowsFailed: 0,
      batchSize: status.throttle.batchSize,
      throttleReason: null,
      error: null,
    }),
  );
}

/** Starts a shard's child workflow, with the share of the throttle it has among the running ones. */
async function startShard(run: MigrationRun, shard: ShardStatus): Promise<void> {
  await startChild(shardWorkflow, {
    workflowId: shardWorkflowId(run.workflowId, shard.index),
    // Shards outlive a continue-as-new of this workflow; an abort cancels them explicitly.
    parentClosePolicy: ParentClosePolicy.ABANDON,
    args: [
      {
        migrationWorkflowId: run.workflowId,
        plan: run.planInForce(),
        index: shard.index,
        spec: { range: shard.range, partitionValue: shard.partitionValue },
        throttle: run.shardThrottle(),
        paused: false,
        cursor: shard.cursor,
        rowsRead: shard.rowsRead,
        rowsWritten: shard.rowsWritten,
        rowsFailed: shard.rowsFailed,
        batchSize: shard.batchSize,
      },
    ],
  });
}

/**
 * A pause or a throttle change that came while shards were being started was told to shards that
 * did not exist in Temporal yet (the signal finds nothing, and is dropped): they started with what
 * held before it, and would copy on under a migration that says paused. Told again now that they
 * exist. Guarded, so histories recorded before it replay as they ran.
 */
async function tellWhatChangedDuringStart(run: MigrationRun, told: Pick<MigrationStatus, 'paused' | 'throttle'>): Promise<void> {
  const { status } = run;
  const pauseChanged = status.paused !== told.paused;
  const throttleChanged = status.throttle !== told.throttle;
  if (!(pauseChanged || throttleChanged) || !patched('shards-told-after-start')) return;
  if (pauseChanged) await run.tellShards('pause');
  if (throttleChanged) {
    await run.tellShards('throttle');
    await run.tellShards('limits');
  }
}

/** The sliding window of shards; returns when the backfill is done, or why it stopped early. */
export async function backfillWindow(run: MigrationRun): Promise<'done' | 'abort' | 'continue-as-new'> {
  const { status } = run;
  // At most `concurrency` shards at once, the next starting as one ends. Shards report by
  // signal, so the window survives this workflow's own continue-as-new.
  for (;;) {
    await condition(
      () =>
        run.abortRequest !== null ||
        workflowInfo().continueAsNewSuggested ||
        status.shards.some((s) => s.state === 'failed') ||
        status.shards.every((s) => s.state === 'done') ||
        (!status.paused && run.running().length < status.throttle.concurrency && status.shards.some((s) => s.state === 'pending')),
    );
    if (run.abortRequest) return 'abort';
    if (status.shards.some((s) => s.state === 'failed')) return 'done';
    if (status.shards.every((s) => s.state === 'done')) break;
    if (workflowInfo().continueAsNewSuggested) return 'continue-as-new';
    // The window's shards start at once, and the running ones hear of their new share once (and
    // only when there is a rows/s limit to share): each start or signal waited for one by one
    // delays the copy and writes history.
    if (patched('start-shards-together')) {
      const alreadyRunning = run.running().length;
      const starting: ShardStatus[] = [];
      while (!status.paused && run.running().length < status.throttle.concurrency) {
        const shard = status.shards.find((s) => s.state === 'pending');
        if (!shard) break;
        shard.state = 'running';
        starting.push(shard);
      }
      // Every shard starts with its share among all that run now.
      const told = { paused: status.paused, throttle: status.throttle };
      await Promise.all(starting.map((shard) => startShard(run, shard)));
      await tellWhatChangedDuringStart(run, told);
      if (status.throttle.rowsPerSecond !== null && alreadyRunning > 0) await run.tellShards('throttle');
      continue;
    }
    while (!status.paused && run.running().length < status.throttle.concurrency) {
      const shard = status.shards.find((s) => s.state === 'pending');
      if (!shard) break;
      shard.state = 'running';
      await startShard(run, shard);
      // Rates are shares of the whole: a new shard slows the others.
      await run.tellShards('throttle');
    }
  }

  // Nothing is left behind silently: failed rows wait for a person to fix and retry them, or
  // to resume and finish without them.
  if (status.unresolvedFailures > 0) {
    await run.pause(
      { by: 'ferry' },
      'auto-pause',
      `${status.unresolvedFailures} row${status.unresolvedFailures === 1 ? '' : 's'} failed; fix the cause and run \`ferry retry\`, or \`ferry resume\` to finish without them`,
    );
    await condition(() => status.paused === null || status.unresolvedFailures === 0 || run.abortRequest !== null);
    if (run.abortRequest) return 'abort';
    if (status.paused) {
      run.record('resume', { by: 'ferry' }, 'every failed row was copied by a retry');
      status.paused = null;
    }
  }
  return 'done';
}
