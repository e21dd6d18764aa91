/**
 * Operator actions on migrations through Temporal: start, look up, wait. The CLI and the
 * demo both go through here, so they behave the same.
 */
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { CopyProgress } from '../activities/copier';
import type { Plan } from '../lib/plan';
import type { TemporalSettings } from '../lib/settings';
import { recountRows, type MigrationStatus } from '../lib/status';
import { statusQuery } from '../workflows/messages';
import type { migrationWorkflow } from '../workflows/migration';

export class UnknownMigrationError extends Error {
  constructor(readonly migrationId: string) {
    super(`no migration with id "${migrationId}"; \`ferry list\` shows the migrations Temporal knows`);
    this.name = 'UnknownMigrationError';
  }
}

/** Ids read well in Temporal's UI and sort by start time: ferry/<plan name>/<UTC time>. */
export function newMigrationId(plan: Plan, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace('T', '-');
  return `ferry/${plan.name}/${stamp}`;
}

export interface StartOptions {
  execute: boolean;
  showSampleValues?: boolean;
  migrationId?: string;
}

export async function startMigration(
  client: Client,
  temporal: TemporalSettings,
  plan: Plan,
  options: StartOptions,
): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const workflowId = options.migrationId ?? newMigrationId(plan);
  return client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
    taskQueue: temporal.taskQueue,
    workflowId,
    args: [{ plan, execute: options.execute, showSampleValues: options.showSampleValues ?? false }],
  });
}

export type RunState = 'running' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'continued';

export interface MigrationReport {
  migrationId: string;
  runState: RunState;
  /** Null when the run failed before it could report (the failure says why). */
  status: MigrationStatus | null;
  failure: string | null;
}

const RUN_STATES: Record<string, RunState> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed-out',
  CONTINUED_AS_NEW: 'continued',
};

function failureMessage(error: unknown): string {
  let message = (error as Error).message;
  for (let cause = (error as { cause?: unknown }).cause; cause; cause = (cause as { cause?: unknown }).cause) {
    message = (cause as Error).message || message;
  }
  return message;
}

/**
 * A shard reports to its migration only between copy calls (every few seconds). In between,
 * the running copy call's last heartbeat says how far it got: add it, so status is live without
 * writing anything to the workflow histories.
 */
async function addLiveProgress(client: Client, status: MigrationStatus): Promise<void> {
  await Promise.all(
    status.shards
      .filter((shard) => shard.state === 'running')
      .map(async (shard) => {
        try {
          const child = await client.workflow.getHandle(`${status.migrationId}/shard-${shard.index}`).describe();
          const payload = child.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
          if (!payload) return;
          const progress = defaultPayloadConverter.fromPayload<CopyProgress>(payload);
          shard.cursor = progress.cursor ?? shard.cursor;
          shard.rowsRead += progress.rowsRead;
          shard.rowsWritten += progress.rowsWritten;
        } catch {
          // The shard finished between the query and the describe: its own report is current.
        }
      }),
  );
  recountRows(status);
}

export async function migrationReport(client: Client, migrationId: string): Promise<MigrationReport> {
  const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationId);
  let description;
  try {
    description = await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new UnknownMigrationError(migrationId);
    throw error;
  }
  const runState = RUN_STATES[description.status.name] ?? 'failed';
  if (runState === 'running') {
    const status = await handle.query(statusQuery);
    await addLiveProgress(client, status);
    return { migrationId, runState, status, failure: null };
  }
  try {
    return { migrationId, runState, status: await handle.result(), failure: null };
  } catch (error) {
    return { migrationId, runState, status: null, failure: failureMessage(error) };
  }
}
