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
import { ExitCode } from './exit-codes';
import { verifyPassProgress } from './verify-progress';

/**
 * A worker's long poll lasts up to a minute, and Temporal records a poller when its poll
 * starts: a worker idle but alive was seen at most about a minute ago.
 */
export const POLLER_FRESH_SECONDS = 70;
/** A worker that polls answers a status query in milliseconds; this long without one is no worker. */
export const PROBE_SECONDS = 5;

/** What Temporal itself records of a running migration, true with no worker up. */
export interface KnownWithoutWorker {
  migrationId: string;
  taskQueue: string;
  startedAt: string;
  /** The FerryPhase search attribute, as the workflow last set it; null when not searchable. */
  phase: string | null;
}

/** No worker polls the migration's task queue, or none answered: nothing was sent. */
export class NoLiveWorkerError extends Error {
  readonly exitCode = ExitCode.unreachable;
  constructor(
    readonly known: KnownWithoutWorker,
    why: string,
  ) {
    super(
      `${why}; nothing was sent. Start one on task queue "${known.taskQueue}" ` +
        `(FERRY_TASK_QUEUE=${known.taskQueue} ferry worker, with the plan's connection variables set) and try again`,
    );
    this.name = 'NoLiveWorkerError';
  }
}

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
  if (!(await workerPolls(client, known.taskQueue))) {
    throw new NoLiveWorkerError(known, `no Ferry worker polls task queue "${known.taskQueue}" (none seen in the last ${POLLER_FRESH_SECONDS} s)`);
  }
  try {
    const status = await client.withDeadline(Date.now() + PROBE_SECONDS * 1000, () => handle.query(statusQuery));
    status.verifyPass = await verifyPassProgress(client, status);
    return status;
  } catch (error) {
    if (deadlineExceeded(error)) {
      throw new NoLiveWorkerError(known, `no Ferry worker answered for ${handle.workflowId} within ${PROBE_SECONDS} s (one polled task queue "${known.taskQueue}" lately, but seems gone)`);
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

/** One line for `ferry status` when no worker can say more: what Temporal records, marked as such. */
export function formatKnownWithoutWorker(known: KnownWithoutWorker): string {
  return [
    `migration ${known.migrationId}: running (from Temporal's record; live figures need a worker)`,
    `phase     ${known.phase ?? 'unknown'} (as the workflow last recorded it)`,
    `started   ${known.startedAt}`,
    `queue     ${known.taskQueue}: no worker`,
  ].join('\n');
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

/** gRPC status codes the CLI tells apart in an SDK error's cause chain. */
function grpcCode(error: unknown): number | null {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'number') return e.code;
  }
  return null;
}

/**
 * An SDK error as one line with its root cause, and the exit code it means: the SDK's own
 * wrappers ("Failed to list workflows", "Workflow Update failed") say nothing an operator can act on.
 */
export function sdkErrorLine(error: unknown): { message: string; exitCode: number; redact: boolean } | null {
  if (error instanceof Error && error.name === 'NamespaceNotFoundError') {
    // The name is the operator's own (--namespace / TEMPORAL_NAMESPACE), not a value to hide.
    const namespace = (error as { namespace?: unknown }).namespace;
    return { message: `no Temporal namespace "${String(namespace)}"; pass --namespace / set TEMPORAL_NAMESPACE`, exitCode: ExitCode.badInput, redact: false };
  }
  if (!(error instanceof Error) || !/^(Failed to |Workflow Update failed|Workflow execution failed|Unexpected error)/.test(error.message)) return null;
  let root = error.message;
  for (let cause = (error as { cause?: unknown }).cause; cause instanceof Error; cause = (cause as { cause?: unknown }).cause) root = cause.message || root;
  const what = error.message.replace(/^Failed to /, 'could not ').replace(/\.$/, '');
  const message = `${what}: ${root.replace(/^\d+ [A-Z_]+: /, '').split('\n')[0]}`;
  const code = grpcCode(error);
  if (code === 14 || code === 4) return { message: `${message}; is Temporal up at the address given (--address / TEMPORAL_ADDRESS)?`, exitCode: ExitCode.unreachable, redact: true };
  if (code === 5 && /namespace/i.test(root)) return { message: `${message}; pass --namespace / set TEMPORAL_NAMESPACE`, exitCode: ExitCode.badInput, redact: true };
  return { message, exitCode: ExitCode.failed, redact: true };
}
