/**
 * What a migration is doing: its run state and, while it runs, its live status from a worker
 * with each running shard's copy under way added. Reads only; needs no worker once it ended.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { rootMessage } from '../lib/errors';
import type { MigrationStatus } from '../lib/status';
import type { migrationWorkflow } from '../workflows/migration';
import { UnknownMigrationError } from './errors';
import { addLiveProgress } from './live-progress';
import { liveStatus } from './live-worker';
import { activityRetries, type ActivityRetry } from './retries';

export type RunState = 'running' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'continued';

export interface MigrationReport {
  migrationId: string;
  runState: RunState;
  /** Null when the run failed before it could report (the failure says why). */
  status: MigrationStatus | null;
  failure: string | null;
  /** Activities of the running migration that failed and are being tried again, and why. */
  retrying?: ActivityRetry[];
}

/** Temporal's execution status names, as the CLI words them. */
export const RUN_STATES: Record<string, RunState> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed-out',
  CONTINUED_AS_NEW: 'continued',
};

/** The migration's handle and description; an id Temporal does not know is an UnknownMigrationError. */
export async function describeMigration(client: Client, migrationId: string) {
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationId);
  try {
    return { handle, description: await handle.describe() };
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new UnknownMigrationError(migrationId);
    throw error;
  }
}

/** Whether a migration runs, and on which task queue; an id Temporal does not know is an UnknownMigrationError. */
export async function runStateOf(client: Client, migrationId: string): Promise<{ runState: RunState; taskQueue: string }> {
  const { description } = await describeMigration(client, migrationId);
  return { runState: RUN_STATES[description.status.name] ?? 'failed', taskQueue: description.taskQueue };
}

/** The migration's report: live from a worker while it runs (NoLiveWorkerError when none answers), its result once it ended. */
export async function migrationReport(client: Client, migrationId: string): Promise<MigrationReport> {
  const { handle, description } = await describeMigration(client, migrationId);
  const runState = RUN_STATES[description.status.name] ?? 'failed';
  if (runState === 'running') {
    const status = await liveStatus(client, handle, description);
    await addLiveProgress(client, status);
    // The description was taken before the query: a retry that began between them shows next time.
    const retrying = activityRetries(description, status.phase);
    return { migrationId, runState, status, failure: null, ...(retrying.length ? { retrying } : {}) };
  }
  try {
    return { migrationId, runState, status: await handle.result(), failure: null };
  } catch (error) {
    // A result this client cannot decrypt is not the migration's failure: say what to configure.
    if (error instanceof Error && error.name === 'PayloadKeyError') throw error;
    return { migrationId, runState, status: null, failure: rootMessage(error) };
  }
}
