/**
 * The migration workflow runs one migration from inspection to the end of the backfill. It
 * decides; activities do. A run without `execute` stops after inspection: the dry run.
 */
import {
  ApplicationFailure,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import { wholeKeySpace } from '../lib/key-range';
import type { Plan } from '../lib/plan';
import { recountRows, type MigrationStatus, type ShardStatus } from '../lib/status';
import { shardProgressSignal, statusQuery } from './messages';
import { shardWorkflow, type ShardResult } from './shard';

export interface MigrationInput {
  plan: Plan;
  /** Without it the run is a dry run: inspect, report, write nothing. */
  execute: boolean;
  /** Show real values in the dry run's transform sample (they then live in the workflow history). */
  showSampleValues?: boolean;
}

const { inspect } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

/** Shards running at once. */
const CONCURRENCY = 1;

export async function migrationWorkflow(input: MigrationInput): Promise<MigrationStatus> {
  const info = workflowInfo();
  const status: MigrationStatus = {
    migrationId: info.workflowId,
    planName: input.plan.name,
    phase: 'inspecting',
    execute: input.execute,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    inspection: null,
    throttle: { batchSize: input.plan.throttle.batchSize, rowsPerSecond: input.plan.throttle.rowsPerSecond ?? 0 },
    shards: [],
    rowsRead: 0,
    rowsWritten: 0,
  };
  setHandler(statusQuery, () => status);
  setHandler(shardProgressSignal, (progress) => {
    const shard = status.shards[progress.index];
    if (!shard) return;
    shard.cursor = progress.cursor;
    shard.rowsRead = progress.rowsRead;
    shard.rowsWritten = progress.rowsWritten;
    if (progress.done) shard.state = 'done';
    recountRows(status);
  });

  const inspection = await inspect({ plan: input.plan, showSampleValues: input.showSampleValues ?? false });
  status.inspection = inspection;
  if (!input.execute) {
    return finish(status, 'dry-run');
  }
  if (inspection.problems.length > 0) {
    finish(status, 'failed');
    throw ApplicationFailure.nonRetryable(
      `migration cannot start:\n${inspection.problems.map((p) => `  - ${p}`).join('\n')}`,
      'InspectionFailed',
      inspection.problems,
    );
  }

  status.phase = 'backfilling';
  status.shards = [wholeKeySpace].map((range, index): ShardStatus => ({
    index,
    range,
    state: 'pending',
    cursor: null,
    rowsRead: 0,
    rowsWritten: 0,
  }));
  await runShards(input.plan, status);
  return finish(status, 'completed');
}

function finish(status: MigrationStatus, phase: MigrationStatus['phase']): MigrationStatus {
  status.phase = phase;
  status.finishedAt = new Date().toISOString();
  return status;
}

/** A sliding window: at most CONCURRENCY shards at once, the next one starting as one ends. */
async function runShards(plan: Plan, status: MigrationStatus): Promise<void> {
  const waiting = status.shards.filter((s) => s.state !== 'done');
  const running = new Map<number, Promise<ShardResult>>();
  const { workflowId } = workflowInfo();

  while (waiting.length > 0 || running.size > 0) {
    while (running.size < CONCURRENCY && waiting.length > 0) {
      const shard = waiting.shift()!;
      shard.state = 'running';
      const child = await startChild(shardWorkflow, {
        workflowId: `${workflowId}/shard-${shard.index}`,
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        args: [
          {
            migrationWorkflowId: workflowId,
            plan,
            index: shard.index,
            range: shard.range,
            throttle: status.throttle,
            cursor: shard.cursor,
            rowsRead: shard.rowsRead,
            rowsWritten: shard.rowsWritten,
          },
        ],
      });
      running.set(shard.index, child.result());
    }
    const finished = await Promise.race(running.values());
    running.delete(finished.index);
    const shard = status.shards[finished.index]!;
    Object.assign(shard, { state: 'done', cursor: finished.cursor, rowsRead: finished.rowsRead, rowsWritten: finished.rowsWritten });
    recountRows(status);
  }
}
