/**
 * The migration workflow runs one migration: inspect, then backfill through shard children
 * under a live throttle, pausing for a person when rows fail. It decides; activities do. A run
 * without `execute` stops after inspection: the dry run.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { Plan } from '../lib/plan';
import { recountRows, type MigrationEvent, type MigrationStatus, type ShardStatus } from '../lib/status';
import { applyThrottleChange, shardRate, throttleChangeProblems } from '../lib/throttle';
import {
  pauseSignal,
  resumeSignal,
  retryFailuresUpdate,
  setThrottleUpdate,
  shardPauseSignal,
  shardProgressSignal,
  shardThrottleSignal,
  statusQuery,
  type OperatorNote,
} from './messages';
import { shardWorkflow } from './shard';

export interface MigrationInput {
  plan: Plan;
  /** Without it the run is a dry run: inspect, report, write nothing. */
  execute: boolean;
  /** Show real values in the dry run's transform sample (they then live in the workflow history). */
  showSampleValues?: boolean;
  /** Set by the migration itself when it continues-as-new. */
  carried?: MigrationStatus;
}

const { inspect, planShards, prepareTarget } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const { retryFailedRecords } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['MissingConnection'] },
});

const RECENT_FAILURES_KEPT = 50;
/** Under this many rows read, a failure rate says little; only the count limit applies. */
const MIN_ROWS_FOR_FAILURE_RATE = 1000;

export async function migrationWorkflow(input: MigrationInput): Promise<MigrationStatus> {
  const { plan } = input;
  const { workflowId } = workflowInfo();
  const now = () => new Date().toISOString();
  const status: MigrationStatus = input.carried ?? {
    migrationId: workflowId,
    planName: plan.name,
    phase: 'inspecting',
    execute: input.execute,
    startedAt: now(),
    finishedAt: null,
    inspection: null,
    throttle: { rowsPerSecond: plan.throttle.rowsPerSecond, batchSize: plan.throttle.batchSize, concurrency: plan.throttle.concurrency },
    paused: null,
    shards: [],
    rowsRead: 0,
    rowsWritten: 0,
    rowsFailed: 0,
    unresolvedFailures: 0,
    failuresFixed: 0,
    recentFailures: [],
    events: [],
  };
  const record = (kind: MigrationEvent['kind'], note: OperatorNote, detail: string) =>
    status.events.push({ at: now(), kind, by: note.by ?? null, detail: note.reason ? `${detail} (${note.reason})` : detail });

  const running = () => status.shards.filter((s) => s.state === 'running');
  const shardThrottle = () => ({
    rowsPerSecond: shardRate(status.throttle, Math.max(1, Math.min(running().length, status.throttle.concurrency))),
    batchSize: status.throttle.batchSize,
  });
  /** Tells running shards of a change; a shard that just ended no longer listens, which is fine. */
  const tellShards = async (signal: 'throttle' | 'pause') => {
    await Promise.all(
      running().map((shard) => {
        const handle = getExternalWorkflowHandle(shardWorkflowId(workflowId, shard.index));
        const sent =
          signal === 'throttle' ? handle.signal(shardThrottleSignal, shardThrottle()) : handle.signal(shardPauseSignal, status.paused !== null);
        return sent.catch(() => {});
      }),
    );
  };
  const pause = async (note: OperatorNote, kind: 'pause' | 'auto-pause', reason: string) => {
    if (status.paused) return;
    status.paused = { since: now(), by: note.by ?? null, reason };
    record(kind, note, reason);
    await tellShards('pause');
  };

  setHandler(statusQuery, () => status);
  setHandler(
    setThrottleUpdate,
    async (change) => {
      const before = status.throttle;
      status.throttle = applyThrottleChange(before, change);
      const changes = (['rowsPerSecond', 'batchSize', 'concurrency'] as const)
        .filter((k) => before[k] !== status.throttle[k])
        .map((k) => `${k} ${before[k] ?? 'unlimited'} -> ${status.throttle[k] ?? 'unlimited'}`);
      record('throttle', change, changes.length ? changes.join(', ') : 'no change');
      await tellShards('throttle');
      return status.throttle;
    },
    {
      validator: (change) => {
        if (status.phase === 'completed' || status.phase === 'failed' || status.phase === 'dry-run') {
          throw new Error(`the migration is ${status.phase}; there is nothing to throttle`);
        }
        const problems = throttleChangeProblems(change);
        if (problems.length > 0) throw new Error(problems.join('; '));
      },
    },
  );
  setHandler(pauseSignal, async (note) => pause(note, 'pause', note.reason ?? 'paused by an operator'));
  setHandler(resumeSignal, async (note) => {
    if (!status.paused) return;
    record('resume', note, `resumed after: ${status.paused.reason}`);
    status.paused = null;
    await tellShards('pause');
  });
  setHandler(
    retryFailuresUpdate,
    async (note) => {
      const outcome = await retryFailedRecords({ migrationId: workflowId, plan });
      status.unresolvedFailures = outcome.stillFailing;
      status.failuresFixed += outcome.fixed;
      record('retry', note, `retried ${outcome.retried} failed rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      return outcome;
    },
    {
      validator: (_note) => {
        if (!status.execute) throw new Error('a dry run copies nothing, so it has no failed rows');
      },
    },
  );
  setHandler(shardProgressSignal, (progress) => {
    const shard = status.shards[progress.index];
    if (!shard) return;
    const newFailures = progress.rowsFailed - shard.rowsFailed;
    Object.assign(shard, {
      cursor: progress.cursor,
      rowsRead: progress.rowsRead,
      rowsWritten: progress.rowsWritten,
      rowsFailed: progress.rowsFailed,
      batchSize: progress.batchSize,
      throttleReason: progress.throttleReason,
    });
    if (progress.done) shard.state = 'done';
    if (progress.error) Object.assign(shard, { state: 'failed', error: progress.error });
    recountRows(status);
    if (newFailures > 0) {
      status.rowsFailed += newFailures;
      status.unresolvedFailures += newFailures;
      status.recentFailures = [...status.recentFailures, ...progress.failures].slice(-RECENT_FAILURES_KEPT);
      const reason = failureLimitReached(plan, status);
      if (reason) void pause({ by: 'ferry' }, 'auto-pause', reason);
    }
  });

  if (!input.carried) {
    status.inspection = await inspect({ plan, showSampleValues: input.showSampleValues ?? false });
    if (!input.execute) return finish(status, 'dry-run');
    if (status.inspection.problems.length > 0) {
      finish(status, 'failed');
      throw ApplicationFailure.nonRetryable(
        `migration cannot start:\n${status.inspection.problems.map((p) => `  - ${p}`).join('\n')}`,
        'InspectionFailed',
        status.inspection.problems,
      );
    }
    await prepareTarget({ plan });
    const specs = await planShards({ plan });
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
    status.phase = 'backfilling';
  }

  // The sliding window: at most `concurrency` shards at once, the next starting as one ends.
  // Shards report by signal, so the window survives this workflow's own continue-as-new.
  for (;;) {
    await condition(
      () =>
        workflowInfo().continueAsNewSuggested ||
        status.shards.some((s) => s.state === 'failed') ||
        status.shards.every((s) => s.state === 'done') ||
        (!status.paused && running().length < status.throttle.concurrency && status.shards.some((s) => s.state === 'pending')),
    );
    const failed = status.shards.find((s) => s.state === 'failed');
    if (failed) {
      finish(status, 'failed');
      throw ApplicationFailure.nonRetryable(`shard ${failed.index} failed: ${failed.error}`, 'ShardFailed');
    }
    if (status.shards.every((s) => s.state === 'done')) break;
    if (workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof migrationWorkflow>({ ...input, carried: status });
    }
    while (!status.paused && running().length < status.throttle.concurrency) {
      const shard = status.shards.find((s) => s.state === 'pending');
      if (!shard) break;
      shard.state = 'running';
      await startChild(shardWorkflow, {
        workflowId: shardWorkflowId(workflowId, shard.index),
        // Shards outlive a continue-as-new of this workflow; an abort cancels them explicitly.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [
          {
            migrationWorkflowId: workflowId,
            plan,
            index: shard.index,
            spec: { range: shard.range, partitionValue: shard.partitionValue },
            throttle: shardThrottle(),
            paused: false,
            cursor: shard.cursor,
            rowsRead: shard.rowsRead,
            rowsWritten: shard.rowsWritten,
            rowsFailed: shard.rowsFailed,
            batchSize: shard.batchSize,
          },
        ],
      });
      // Rates are shares of the whole: a new shard slows the others.
      await tellShards('throttle');
    }
  }

  // Nothing is left behind silently: failed rows wait for a person to fix and retry them, or
  // to resume and finish without them.
  if (status.unresolvedFailures > 0) {
    await pause(
      { by: 'ferry' },
      'auto-pause',
      `${status.unresolvedFailures} rows failed; fix the cause and run \`ferry retry\`, or \`ferry resume\` to finish without them`,
    );
    await condition(() => status.paused === null || status.unresolvedFailures === 0);
    if (status.paused) {
      record('resume', { by: 'ferry' }, 'every failed row was copied by a retry');
      status.paused = null;
    }
  }
  await condition(allHandlersFinished);
  return finish(status, 'completed');
}

export function shardWorkflowId(migrationId: string, index: number): string {
  return `${migrationId}/shard-${index}`;
}

/** The reason to pause for a person, once failed rows pass the plan's limits. */
function failureLimitReached(plan: Plan, status: MigrationStatus): string | null {
  if (status.paused) return null;
  const { maxCount, maxRate } = plan.failures;
  if (status.unresolvedFailures > maxCount) {
    return `${status.unresolvedFailures} rows failed, over failures.maxCount (${maxCount}); see \`ferry failures\``;
  }
  if (status.rowsRead >= MIN_ROWS_FOR_FAILURE_RATE && status.rowsFailed / status.rowsRead > maxRate) {
    return `${((100 * status.rowsFailed) / status.rowsRead).toFixed(2)}% of rows failed, over failures.maxRate (${maxRate * 100}%); see \`ferry failures\``;
  }
  return null;
}

function finish(status: MigrationStatus, phase: MigrationStatus['phase']): MigrationStatus {
  status.phase = phase;
  status.finishedAt = new Date().toISOString();
  return status;
}
