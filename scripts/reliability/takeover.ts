/**
 * Takeover time after a SIGKILL: from the kill until every activity the killed worker was
 * running (a copy, a verification) has been started again on another worker, read from the
 * server's record of each pending activity (its last worker and the start of its attempt).
 */
import type { Client } from '@temporalio/client';
import { sleep } from './lab';

const STARTED = 2;
const CANCEL_REQUESTED = 3;

/** An activity a worker process runs now: its workflow and activity ids. */
export interface RunningActivity {
  workflowId: string;
  activityId: string;
  activityType: string;
}

const ranBy = (identity: string | null | undefined, pid: number) => (identity ?? '').startsWith(`${pid}@`);
const millisOf = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t?.seconds == null ? null : Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);

async function runningWorkflowIds(client: Client): Promise<string[]> {
  const ids: string[] = [];
  for await (const run of client.workflow.list({ query: 'ExecutionStatus = "Running"' })) ids.push(run.workflowId);
  return ids;
}

/**
 * The activities each of the worker processes `pids` is running now (the default worker identity
 * is pid@host), from one look at the running workflows.
 */
export async function activitiesRunBy(client: Client, pids: readonly number[]): Promise<RunningActivity[][]> {
  const descriptions = await Promise.all(
    (await runningWorkflowIds(client)).map(async (workflowId) => ({ workflowId, description: await client.workflow.getHandle(workflowId).describe().catch(() => null) })),
  );
  return pids.map((pid) =>
    descriptions.flatMap(({ workflowId, description }) =>
      (description?.raw.pendingActivities ?? [])
        .filter((a) => (a.state === STARTED || a.state === CANCEL_REQUESTED) && ranBy(a.lastWorkerIdentity, pid))
        .map((a) => ({ workflowId, activityId: a.activityId ?? '', activityType: a.activityType?.name ?? '' })),
    ),
  );
}

/**
 * Seconds from `killedAt` until each of `held` runs again on a worker other than `pid` (or its
 * workflow has moved on past it); the slowest of them, or null when nothing was held. Gives up
 * after `timeoutMs` and returns null for a takeover that never came (the round then fails on
 * its own deadline anyway).
 */
export async function takeoverSeconds(client: Client, held: RunningActivity[], pid: number, killedAt: number, timeoutMs = 120_000): Promise<number | null> {
  if (held.length === 0) return null;
  const takenAt = new Map<string, number>();
  while (takenAt.size < held.length) {
    if (Date.now() - killedAt > timeoutMs) return null;
    await Promise.all(
      held
        .filter((h) => !takenAt.has(h.workflowId))
        .map(async (h) => {
          const description = await client.workflow.getHandle(h.workflowId).describe().catch(() => null);
          if (!description) return;
          if (description.status.name !== 'RUNNING') {
            takenAt.set(h.workflowId, Date.now());
            return;
          }
          for (const a of description.raw.pendingActivities ?? []) {
            // In any state: an attempt taken over may itself be on a worker that the next kill
            // ends, and then it waits for a retry; it was taken over all the same.
            const startedAt = millisOf(a.lastStartedTime);
            if (startedAt !== null && startedAt >= killedAt && !ranBy(a.lastWorkerIdentity, pid)) {
              takenAt.set(h.workflowId, Math.min(startedAt, takenAt.get(h.workflowId) ?? Infinity));
            }
          }
          // A new activity of the workflow, or none: the held one ended (it failed on its timeout
          // and the workflow scheduled the next call), so the workflow's copy goes on.
          const stillHeld = (description.raw.pendingActivities ?? []).some((a) => a.activityId === h.activityId);
          if (!stillHeld && !takenAt.has(h.workflowId)) takenAt.set(h.workflowId, Date.now());
        }),
    );
    if (takenAt.size < held.length) await sleep(250);
  }
  return Math.max(...[...takenAt.values()].map((at) => (at - killedAt) / 1000));
}

/** Min, median and max of the takeovers measured, in seconds to 0.1; null when none was. */
export function takeoverSummary(seconds: (number | null)[]): { min: number; median: number; max: number; measured: number } | null {
  const measured = seconds.filter((s): s is number => s !== null).sort((a, b) => a - b);
  if (measured.length === 0) return null;
  const middle = Math.floor(measured.length / 2);
  const median = measured.length % 2 ? measured[middle]! : (measured[middle - 1]! + measured[middle]!) / 2;
  const round = (n: number) => Number(n.toFixed(1));
  return { min: round(measured[0]!), median: round(median), max: round(measured.at(-1)!), measured: measured.length };
}
