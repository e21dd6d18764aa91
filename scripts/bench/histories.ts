/**
 * What a migration cost Temporal: every workflow run it produced (the migration, its shards,
 * their continued-as-new runs), their history events, and how the copy activity calls were
 * spaced in time (the gaps between calls are time no row moves).
 */
import type { Client } from '@temporalio/client';

interface Timestamp {
  seconds?: { toString(): string } | number | null;
  nanos?: number | null;
}

function ms(ts: Timestamp | null | undefined): number {
  if (!ts) return NaN;
  return Number(String(ts.seconds ?? 0)) * 1000 + (ts.nanos ?? 0) / 1e6;
}

export interface HistoryCost {
  runs: number;
  events: number;
  /** copyBatches calls over all shard runs. */
  activityCalls: number;
  /** Mean time one call ran (started to completed), in ms. */
  meanCallMs: number;
  /** Mean time from one call's completion to the next call's start in the same run, in ms. */
  meanGapMs: number;
  /** From the first shard's start to the last shard's completion, in ms. */
  backfillMs: number;
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

export async function historyCost(client: Client, migrationId: string): Promise<HistoryCost> {
  const runs = await listRuns(client, migrationId);
  const cost: HistoryCost = { runs: runs.length, events: 0, activityCalls: 0, meanCallMs: 0, meanGapMs: 0, backfillMs: 0, failedAttempts: 0 };
  let callMs = 0;
  let gapMs = 0;
  let gaps = 0;
  let firstShardStart = Infinity;
  let lastShardEnd = -Infinity;
  for (const run of runs) {
    const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    const events = history.events ?? [];
    cost.events += events.length;
    if (run.workflowId === migrationId) continue;
    let started: number | null = null;
    let lastCompleted: number | null = null;
    for (const event of events) {
      const at = ms(event.eventTime);
      if (event.workflowExecutionStartedEventAttributes) firstShardStart = Math.min(firstShardStart, at);
      if (event.workflowExecutionCompletedEventAttributes) lastShardEnd = Math.max(lastShardEnd, at);
      if (event.activityTaskStartedEventAttributes) {
        started = at;
        cost.failedAttempts += Math.max(0, (event.activityTaskStartedEventAttributes.attempt ?? 1) - 1);
        if (lastCompleted !== null) {
          gapMs += at - lastCompleted;
          gaps += 1;
        }
      }
      if (event.activityTaskCompletedEventAttributes && started !== null) {
        cost.activityCalls += 1;
        callMs += at - started;
        lastCompleted = at;
      }
    }
  }
  cost.meanCallMs = cost.activityCalls ? callMs / cost.activityCalls : 0;
  cost.meanGapMs = gaps ? gapMs / gaps : 0;
  cost.backfillMs = Number.isFinite(lastShardEnd - firstShardStart) ? lastShardEnd - firstShardStart : NaN;
  return cost;
}
