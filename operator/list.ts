/**
 * Listing migrations from Temporal's visibility store (plan, target, phase, age need no
 * worker), with progress added from each migration's own status where a worker answers in time.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { phaseKey, planNameKey, targetTableKey } from '../lib/search-attributes';
import type { MigrationStatus } from '../lib/status';
import { statusQuery } from '../workflows/messages';
import { PROBE_SECONDS, workerPolls } from './live-worker';
import { RUN_STATES, type RunState } from './status';

/** Which migrations to list; plan, phase and target through Ferry's search attributes. */
export interface ListFilter {
  all: boolean;
  limit: number;
  plan?: string;
  phase?: string;
  target?: string;
}

export interface MigrationListing {
  migrationId: string;
  runState: RunState;
  startedAt: string;
  plan: string | null;
  target: string | null;
  /** The migration's own phase when it could say; else the FerryPhase search attribute. */
  phase: string | null;
  paused: boolean;
  rowsRead: number | null;
  estimatedRows: number | null;
  /** Where progress came from: the migration's status, or nowhere (no worker for a running one). */
  progressKnown: boolean;
}

/** Runs `work` over `items`, at most `lanes` at once. */
async function eachLimited<T>(items: readonly T[], lanes: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.min(lanes, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  }));
}

function visibilityQuery(filter: ListFilter): string {
  const literal = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return [
    `WorkflowType = 'migrationWorkflow'`,
    filter.all ? null : `ExecutionStatus = 'Running'`,
    filter.plan ? `${planNameKey.name} = ${literal(filter.plan)}` : null,
    filter.phase ? `${phaseKey.name} = ${literal(filter.phase)}` : null,
    filter.target ? `${targetTableKey.name} = ${literal(filter.target)}` : null,
  ]
    .filter(Boolean)
    .join(' AND ');
}

function keyword(run: WorkflowExecutionInfo, key: typeof phaseKey): string | null {
  const value = run.typedSearchAttributes.get(key);
  return typeof value === 'string' ? value : null;
}

/** The status of one run within PROBE_SECONDS: the query when running, the result once ended; null when neither answers. */
async function statusOf(client: Client, run: WorkflowExecutionInfo, runState: RunState): Promise<MigrationStatus | null> {
  const handle = client.workflow.getHandle(run.workflowId, run.runId);
  try {
    return await client.withDeadline(Date.now() + PROBE_SECONDS * 1000, () =>
      runState === 'running' ? handle.query(statusQuery) : (handle.result() as Promise<MigrationStatus>),
    );
  } catch {
    // A failed run has no result, and a query can go unanswered: listed without progress.
    return null;
  }
}

/** The migrations the filter selects, newest first, with progress where a worker answers within seconds. */
export async function listMigrations(client: Client, filter: ListFilter): Promise<MigrationListing[]> {
  const runs: { run: WorkflowExecutionInfo; listing: MigrationListing }[] = [];
  for await (const run of client.workflow.list({ query: visibilityQuery(filter), pageSize: Math.min(1000, filter.limit + 10) })) {
    const runState = RUN_STATES[run.status.name] ?? 'failed';
    if (runState === 'continued') continue;
    if (runs.length >= filter.limit) break;
    runs.push({
      run,
      listing: {
        migrationId: run.workflowId,
        runState,
        startedAt: run.startTime.toISOString(),
        plan: keyword(run, planNameKey),
        target: keyword(run, targetTableKey),
        phase: keyword(run, phaseKey),
        paused: false,
        rowsRead: null,
        estimatedRows: null,
        progressKnown: false,
      },
    });
  }
  // One poller check per task queue: with no worker, no query is sent to wait on.
  const queues = [...new Set(runs.filter((r) => r.listing.runState === 'running').map((r) => r.run.taskQueue))];
  const served = new Map(await Promise.all(queues.map(async (queue) => [queue, await workerPolls(client, queue)] as const)));
  const answerable = runs.filter((r) => (r.listing.runState === 'running' ? served.get(r.run.taskQueue) : r.listing.runState === 'completed'));
  await eachLimited(answerable, 8, async ({ run, listing }) => {
    const status = await statusOf(client, run, listing.runState);
    if (!status) return;
    Object.assign(listing, {
      phase: status.phase,
      paused: status.paused !== null,
      rowsRead: status.rowsRead,
      estimatedRows: status.inspection?.source.estimatedRows ?? null,
      progressKnown: true,
    });
  });
  return runs.map((r) => r.listing);
}
