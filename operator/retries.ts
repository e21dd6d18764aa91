/**
 * Retries under way: an activity the migration waits on that has failed and is being tried
 * again (a flag change during a database outage, say), read from the run's pending activities,
 * so `ferry status` says why the migration is not moving without the workflow recording it.
 */
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { redactMessage } from '../lib/errors';
import { shardWorkflowId } from '../lib/ids';
import type { MigrationStatus, Phase } from '../lib/status';

export interface ActivityRetry {
  /** The activity, as Temporal names it (setFlags, releaseTarget, ...). */
  activity: string;
  /** What it does, in the operator's words. */
  doing: string;
  /** The attempt running or waiting to run: 2 is the first retry. */
  attempt: number;
  /** Why the last attempt failed, with values redacted. */
  lastFailure: string | null;
  /** When the next attempt starts, while it waits for it. */
  nextAttemptAt: string | null;
}

function whatItDoes(activity: string, phase: Phase | null): string {
  if (activity === 'setFlags') return phase === 'aborting' ? 'rolling back flags' : 'changing flags';
  if (activity === 'awaitFlagAcks') return 'waiting for applications to follow the flags';
  if (activity === 'releaseTarget') return "recording the migration's end on the target";
  return activity;
}

const timestampOf = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null =>
  t?.seconds == null ? null : new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString();

/** The run's activities that failed at least once and are being retried. */
export function activityRetries(description: WorkflowExecutionDescription, phase: Phase | null): ActivityRetry[] {
  return (description.raw.pendingActivities ?? [])
    .filter((pending) => (pending.attempt ?? 1) > 1 || pending.lastFailure)
    .map((pending) => {
      const activity = pending.activityType?.name ?? 'unknown';
      return {
        activity,
        doing: whatItDoes(activity, phase),
        attempt: pending.attempt ?? 1,
        lastFailure: pending.lastFailure?.message ? redactMessage(pending.lastFailure.message) : null,
        nextAttemptAt: timestampOf(pending.nextAttemptScheduleTime),
      };
    });
}

/**
 * The copy calls of running shards that failed at least once and are being retried, by shard (a
 * copy call is retried for as long as it takes, so only its attempts say it is stuck).
 */
export async function shardCopyRetries(client: Client, status: MigrationStatus): Promise<{ shard: number; retry: ActivityRetry }[]> {
  const found = await Promise.all(
    status.shards
      .filter((shard) => shard.state === 'running')
      .map(async (shard) => {
        // A shard that ended between the status and the describe has nothing retrying.
        const description = await client.workflow.getHandle(shardWorkflowId(status.migrationId, shard.index)).describe().catch(() => null);
        return description ? activityRetries(description, status.phase).map((retry) => ({ shard: shard.index, retry })) : [];
      }),
  );
  return found.flat();
}
