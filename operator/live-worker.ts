/**
 * Whether a Ferry worker serves a migration, asked of Temporal before a command waits on one:
 * queries and updates need a worker, and without one they would hang, or (updates) be applied
 * whenever a worker comes back, long after the command gave up.
 */
import type { Client, WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { MigrationStatus } from '../lib/status';
import { phaseKey } from '../lib/search-attributes';
import { statusQuery } from '../workflows/messages';
import { NoLiveWorkerError, type KnownWithoutWorker } from './errors';
import { verifyPassProgress } from './verify-progress';

/**
 * A worker's long poll lasts up to a minute, and Temporal records a poller when its poll
 * starts: a worker idle but alive was seen at most about a minute ago.
 */
export const POLLER_FRESH_SECONDS = 70;
/** A worker that polls answers a status query in milliseconds; this long without one is no worker. */
export const PROBE_SECONDS = 5;

/** The seconds since a worker last polled the queue for workflow and for activity tasks; null: never (or long ago). */
export async function lastPolledSecondsAgo(client: Client, taskQueue: string, now = Date.now()): Promise<{ workflow: number | null; activity: number | null }> {
  const { TaskQueueType, TaskQueueKind } = temporal.api.enums.v1;
  const ask = async (taskQueueType: temporal.api.enums.v1.TaskQueueType) => {
    const response = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
    });
    const ages = (response.pollers ?? []).map((poller) => {
      const seconds = Number(poller.lastAccessTime?.seconds ?? 0);
      return (now - seconds * 1000) / 1000;
    });
    return ages.length ? Math.max(0, Math.min(...ages)) : null;
  };
  const [workflow, activity] = await Promise.all([ask(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW), ask(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)]);
  return { workflow, activity };
}

/** True when a worker polled the queue for both kinds of task within POLLER_FRESH_SECONDS. */
export async function workerPolls(client: Client, taskQueue: string): Promise<boolean> {
  const seen = await lastPolledSecondsAgo(client, taskQueue);
  const fresh = (age: number | null) => age !== null && age <= POLLER_FRESH_SECONDS;
  return fresh(seen.workflow) && fresh(seen.activity);
}

export function knownWithoutWorker(migrationId: string, description: WorkflowExecutionDescription): KnownWithoutWorker {
  const phase = description.typedSearchAttributes.get(phaseKey);
  return {
    migrationId,
    taskQueue: description.taskQueue,
    startedAt: description.startTime.toISOString(),
    phase: typeof phase === 'string' ? phase : null,
  };
}

/** The running migration's status, from its worker: NoLiveWorkerError within seconds when there is none. */
export async function liveStatus(
  client: Client,
  handle: WorkflowHandle,
  description: WorkflowExecutionDescription,
): Promise<MigrationStatus> {
  const known = knownWithoutWorker(handle.workflowId, description);
  const { workflow: polledAgo } = await lastPolledSecondsAgo(client, known.taskQueue);
  if (polledAgo === null) {
    throw new NoLiveWorkerError(known, `no Ferry worker polls task queue "${known.taskQueue}" (Temporal has seen none lately)`);
  }
  // A live worker's last poll can look older than POLLER_FRESH_SECONDS on a loaded machine, so
  // a stale poll does not refuse by itself: only a status query that no worker answers does.
  // Queries and updates need a workflow poller only; the activity poller is idle while its slots are busy.
  try {
    const status = await client.withDeadline(Date.now() + PROBE_SECONDS * 1000, () => handle.query(statusQuery));
    status.verifyPass = await verifyPassProgress(client, status);
    return status;
  } catch (error) {
    if (deadlineExceeded(error)) {
      // A worker that polled lately and does not answer may have stopped, or be stopped (a frozen
      // process, a machine out of CPU): from here the two look alike, so neither is claimed.
      const polled =
        polledAgo <= POLLER_FRESH_SECONDS
          ? `a worker polled task queue "${known.taskQueue}" ${Math.round(polledAgo)} s ago, but none answered: it may have stopped, or be too busy to answer`
          : `none polled task queue "${known.taskQueue}" in the last ${POLLER_FRESH_SECONDS} s`;
      throw new NoLiveWorkerError(known, `no Ferry worker answered for ${handle.workflowId} within ${PROBE_SECONDS} s (${polled})`, polledAgo <= POLLER_FRESH_SECONDS);
    }
    throw error;
  }
}

/**
 * Before an update is sent: a worker must be there to take it now, or nothing is sent. An update
 * sent with no worker is kept by Temporal and applied when one comes back, whatever the command
 * said by then; asking first (pollers, then a status query) keeps "refused: no worker" true.
 */
export async function requireLiveWorker(client: Client, handle: WorkflowHandle): Promise<void> {
  const description = await handle.describe();
  await liveStatus(client, handle, description);
}

/** The probe's deadline passed: gRPC DEADLINE_EXCEEDED (4), or CANCELLED (1) as the client cuts the call, in the cause chain. */
function deadlineExceeded(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === 4 || e.code === 1) return true;
  }
  return false;
}

/** The status when a worker can give it within seconds; null when none can. */
export async function statusIfWorker(client: Client, handle: WorkflowHandle): Promise<MigrationStatus | null> {
  try {
    return await liveStatus(client, handle, await handle.describe());
  } catch (error) {
    if (error instanceof NoLiveWorkerError) return null;
    throw error;
  }
}
