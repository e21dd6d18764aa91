/**
 * What a migration cost Temporal: every workflow run it produced (the migration, its shards,
 * their continued-as-new runs), their history events, how the copy activity calls were spaced
 * in time (the gaps between calls are time no row moves), and where the time before the first
 * batch and after the last one went.
 */
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';

interface Timestamp {
  seconds?: { toString(): string } | number | null;
  nanos?: number | null;
}

/** An event's time in epoch ms. */
export function ms(ts: Timestamp | null | undefined): number {
  if (!ts) return NaN;
  return Number(String(ts.seconds ?? 0)) * 1000 + (ts.nanos ?? 0) / 1e6;
}

export interface HistoryCost {
  runs: number;
  events: number;
  /** Events of the migration's own runs (not its shards'). */
  migrationEvents: number;
  /** Events of each shard, over its runs, by shard workflow id. */
  shardEvents: Record<string, number>;
  /** copyBatches calls over all shard runs. */
  activityCalls: number;
  /** Batches over all copy calls (from the calls' results; 0 when they cannot be read). */
  batches: number;
  /** Mean time one call ran (started to completed), in ms. */
  meanCallMs: number;
  /** Mean time from one call's completion to the next call's start in the same run, in ms. */
  meanGapMs: number;
  /** From the first shard's start to the last shard's completion, in ms. */
  backfillMs: number;
  /** From the migration's start to the first copy call's start, in ms. */
  firstCopyMs: number;
  /** From the last copy call's completion to the migration's completion, in ms. */
  afterLastCopyMs: number;
  /** The migration's own activities before the backfill, each with its scheduled-to-completed time (ms). */
  migrationActivities: { name: string; ms: number }[];
  /** Calls that failed and were retried. */
  failedAttempts: number;
}

const LIST_ATTEMPTS = 20;

/** Runs whose workflow id starts with `migrationId`, once visibility lists them all as closed. */
async function listRuns(client: Client, migrationId: string): Promise<{ workflowId: string; runId: string }[]> {
  let runs: { workflowId: string; runId: string; closed: boolean }[] = [];
  for (let attempt = 0; attempt < LIST_ATTEMPTS; attempt++) {
    runs = [];
    for await (const execution of client.workflow.list({ query: `WorkflowId STARTS_WITH '${migrationId.replace(/'/g, "\\'")}'` })) {
      runs.push({ workflowId: execution.workflowId, runId: execution.runId, closed: execution.status.name !== 'RUNNING' });
    }
    // Visibility is eventually consistent: wait until the migration and every run are listed as closed.
    if (runs.some((r) => r.workflowId === migrationId) && runs.every((r) => r.closed)) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return runs;
}

/** The `batches` of a copy call's result, when the payload is plain JSON (no payload key set). */
function batchesOf(result: { payloads?: unknown[] | null } | null | undefined): number {
  try {
    const payload = result?.payloads?.[0];
    const value = payload ? defaultPayloadConverter.fromPayload<{ batches?: number }>(payload as never) : null;
    return typeof value?.batches === 'number' ? value.batches : 0;
  } catch {
    return 0;
  }
}

export async function historyCost(client: Client, migrationId: string): Promise<HistoryCost> {
  const runs = await listRuns(client, migrationId);
  const cost: HistoryCost = {
    runs: runs.length,
    events: 0,
    migrationEvents: 0,
    shardEvents: {},
    activityCalls: 0,
    batches: 0,
    meanCallMs: 0,
    meanGapMs: 0,
    backfillMs: 0,
    firstCopyMs: NaN,
    afterLastCopyMs: NaN,
    migrationActivities: [],
    failedAttempts: 0,
  };
  let callMs = 0;
  let gapMs = 0;
  let gaps = 0;
  let firstShardStart = Infinity;
  let lastShardEnd = -Infinity;
  let migrationStart = Infinity;
  let migrationEnd = -Infinity;
  let firstCopyStart = Infinity;
  let lastCopyEnd = -Infinity;
  for (const run of runs) {
    const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    const events = history.events ?? [];
    cost.events += events.length;
    if (run.workflowId === migrationId) {
      cost.migrationEvents += events.length;
      const scheduled = new Map<string, { name: string; at: number }>();
      for (const event of events) {
        const at = ms(event.eventTime);
        if (event.workflowExecutionStartedEventAttributes) migrationStart = Math.min(migrationStart, at);
        if (event.workflowExecutionCompletedEventAttributes) migrationEnd = Math.max(migrationEnd, at);
        const attrs = event.activityTaskScheduledEventAttributes;
        if (attrs) scheduled.set(String(event.eventId), { name: attrs.activityType?.name ?? '?', at });
        const done = event.activityTaskCompletedEventAttributes;
        const call = done ? scheduled.get(String(done.scheduledEventId)) : undefined;
        if (call) cost.migrationActivities.push({ name: call.name, ms: at - call.at });
      }
      continue;
    }
    cost.shardEvents[run.workflowId] = (cost.shardEvents[run.workflowId] ?? 0) + events.length;
    let started: number | null = null;
    let lastCompleted: number | null = null;
    for (const event of events) {
      const at = ms(event.eventTime);
      if (event.workflowExecutionStartedEventAttributes) firstShardStart = Math.min(firstShardStart, at);
      if (event.workflowExecutionCompletedEventAttributes) lastShardEnd = Math.max(lastShardEnd, at);
      if (event.activityTaskStartedEventAttributes) {
        started = at;
        firstCopyStart = Math.min(firstCopyStart, at);
        cost.failedAttempts += Math.max(0, (event.activityTaskStartedEventAttributes.attempt ?? 1) - 1);
        if (lastCompleted !== null) {
          gapMs += at - lastCompleted;
          gaps += 1;
        }
      }
      if (event.activityTaskCompletedEventAttributes && started !== null) {
        cost.activityCalls += 1;
        cost.batches += batchesOf(event.activityTaskCompletedEventAttributes.result);
        callMs += at - started;
        lastCompleted = at;
        lastCopyEnd = Math.max(lastCopyEnd, at);
      }
    }
  }
  cost.meanCallMs = cost.activityCalls ? callMs / cost.activityCalls : 0;
  cost.meanGapMs = gaps ? gapMs / gaps : 0;
  cost.backfillMs = Number.isFinite(lastShardEnd - firstShardStart) ? lastShardEnd - firstShardStart : NaN;
  cost.firstCopyMs = firstCopyStart - migrationStart;
  cost.afterLastCopyMs = migrationEnd - lastCopyEnd;
  return cost;
}
