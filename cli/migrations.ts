/**
 * Operator actions on migrations through Temporal: start, look up, wait. The CLI and the
 * demo both go through here, so they behave the same.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateStage, type Client, type WorkflowHandle } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { CopyProgress } from '../activities/copy/copier';
import { innermostMessage, rootMessage } from '../lib/errors';
import { activityRetries, type ActivityRetry } from './retries';
import type { Plan } from '../lib/plan';
import { ferrySearchAttributes, phaseKey, planNameKey, targetTableKey } from '../lib/search-attributes';
import type { TemporalSettings } from '../lib/settings';
import { recountRows, type AbortRecord, type MigrationStatus, type RetryOutcome, type VerificationSummary } from '../lib/status';
import { throttleChangeProblems, type Throttle, type ThrottleChange } from '../lib/throttle';
import type { AbortRequest, GateApproval, GateRejection } from '../lib/messages-input';
import type { MismatchReport } from '../activities/verify/verifier';
import {
  abortUpdate,
  approveUpdate,
  mismatchesUpdate,
  verifyUpdate,
  type VerifyRequest,
  pauseSignal,
  rejectUpdate,
  resumeSignal,
  retryFailuresUpdate,
  setThrottleUpdate,
  type ApprovalOutcome,
  type OperatorNote,
} from '../workflows/messages';
import type { migrationWorkflow } from '../workflows/migration';
import { liveStatus, requireLiveWorker, statusIfWorker } from './temporal-health';
import { newMigrationId, shardWorkflowId, tableKey } from '../lib/ids';

export class UnknownMigrationError extends Error {
  constructor(readonly migrationId: string) {
    super(`no migration with id "${migrationId}"; \`ferry list\` shows the migrations Temporal knows`);
    this.name = 'UnknownMigrationError';
  }
}

export interface StartOptions {
  execute: boolean;
  showSampleValues?: boolean;
  migrationId?: string;
  /** Migrate into a target that already holds a finished migration. */
  rerun?: boolean;
  /** Go ahead with dual writes that no application follows (`--no-apps`). */
  noApps?: boolean;
  /** The identity starting it, recorded in its status and checked by four-eyes gates. */
  startedBy?: string;
}

export async function startMigration(
  client: Client,
  temporal: TemporalSettings,
  plan: Plan,
  options: StartOptions,
): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const workflowId = options.migrationId ?? newMigrationId(plan.name, new Date());
  const start = (searchable: boolean) =>
    client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
      taskQueue: temporal.taskQueue,
      workflowId,
      args: [
        {
          plan,
          execute: options.execute,
          showSampleValues: options.showSampleValues ?? false,
          rerun: options.rerun ?? false,
          ...(options.noApps ? { noApps: true } : {}),
          ...(options.startedBy ? { startedBy: options.startedBy } : {}),
        },
      ],
      ...(searchable
        ? {
            typedSearchAttributes: [
              { key: planNameKey, value: plan.name },
              { key: phaseKey, value: 'inspecting' },
              { key: targetTableKey, value: tableKey(plan.target) },
            ],
          }
        : {}),
    });
  try {
    return await start(true);
  } catch (error) {
    // A server that does not know Ferry's search attributes refuses them: start without.
    if (!/search attribute/i.test(rootMessage(error))) throw error;
    process.emitWarning(
      `Temporal at ${temporal.address} does not know Ferry's search attributes, so this migration cannot be listed by plan, phase or target; ` +
        `run \`ferry setup\` once for namespace ${temporal.namespace} (or: ` +
        Object.entries(ferrySearchAttributes).map(([name, type]) => `temporal operator search-attribute create --name ${name} --type ${type}`).join('; ') +
        ')',
    );
    return start(false);
  }
}

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
          const child = await client.workflow.getHandle(shardWorkflowId(status.migrationId, shard.index)).describe();
          const payload = child.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
          if (!payload) return;
          // Raw payloads are as stored: decoded (decrypted) by the client's codecs first.
          const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
          let decoded = [payload];
          for (const codec of [...payloadCodecs].reverse()) decoded = await codec.decode(decoded);
          const progress = payloadConverter.fromPayload<CopyProgress>(decoded[0]!);
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

/** The migration's handle and description; an id Temporal does not know is an UnknownMigrationError. */
async function describeMigration(client: Client, migrationId: string) {
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

/** An operator's request the migration refused, with its reason; nothing changed. */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

/**
 * An update was sent (a worker polled just before) but none took it in time. Temporal keeps it:
 * it is applied when a worker runs the migration again, so this is not "nothing changed".
 */
export class NoWorkerError extends Error {
  constructor(migrationId: string, seconds: number) {
    super(
      `the change was sent to ${migrationId}, but no Ferry worker applied it within ${seconds} s: Temporal keeps it, and it takes ` +
        `effect when a worker runs the migration again; \`ferry status ${migrationId}\` shows when it has`,
    );
    this.name = 'NoWorkerError';
  }
}

const UPDATE_TIMEOUT_SECONDS = 30;

/** The handle of a migration that is still running; refuses ones that ended or never were. */
async function runningMigration(client: Client, migrationId: string): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const { handle, description } = await describeMigration(client, migrationId);
  if (description.status.name !== 'RUNNING') {
    throw new RefusedError(`migration ${migrationId} is ${RUN_STATES[description.status.name] ?? description.status.name}; it takes no more changes`);
  }
  return handle;
}

/**
 * Runs an update; refused ones become RefusedError. A worker must take it within
 * `timeoutSeconds` (null: wait as long as it takes); once taken, its answer is awaited however
 * long it takes (an abort answers once its rollback is done, through any database outage).
 */
async function update<Ret, Arg>(
  client: Client,
  migrationId: string,
  definition: UpdateDefinition<Ret, [Arg]>,
  arg: Arg,
  timeoutSeconds: number | null = UPDATE_TIMEOUT_SECONDS,
): Promise<Ret> {
  const handle = await runningMigration(client, migrationId);
  await requireLiveWorker(client, handle);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    if (timeoutSeconds !== null) timer = setTimeout(() => reject(new NoWorkerError(migrationId, timeoutSeconds)), timeoutSeconds * 1000);
  });
  try {
    const accepted = await Promise.race([handle.startUpdate(definition, { args: [arg], waitForStage: WorkflowUpdateStage.ACCEPTED }), timeout]);
    clearTimeout(timer);
    return await accepted.result();
  } catch (error) {
    // A refusal is the validator's own text (workflow code, no row values): shown as written.
    if (error instanceof WorkflowUpdateFailedError) throw new RefusedError(`refused: ${innermostMessage(error)}`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Changes the throttle; refused (and nothing changes) when a value is out of bounds. */
export async function changeThrottle(client: Client, migrationId: string, change: ThrottleChange): Promise<Throttle> {
  const problems = throttleChangeProblems(change);
  if (problems.length > 0) throw new RefusedError(`refused: ${problems.join('; ')}`);
  return update(client, migrationId, setThrottleUpdate, change);
}

export async function retryFailures(client: Client, migrationId: string, note: OperatorNote): Promise<RetryOutcome> {
  return update(client, migrationId, retryFailuresUpdate, note);
}

/** Pause and resume are signals: the migration takes them even while no worker runs. */
export async function pauseMigration(client: Client, migrationId: string, note: OperatorNote): Promise<void> {
  await (await runningMigration(client, migrationId)).signal(pauseSignal, note);
}

/** Refused when a worker says the migration is not paused; with no worker it is sent unchecked (false). */
export async function resumeMigration(client: Client, migrationId: string, note: OperatorNote): Promise<boolean> {
  const handle = await runningMigration(client, migrationId);
  const status = await statusIfWorker(client, handle);
  if (status && !status.paused) throw new RefusedError(`refused: migration ${migrationId} is not paused (phase ${status.phase}); nothing was sent`);
  await handle.signal(resumeSignal, note);
  return status !== null;
}

export async function approveGate(client: Client, migrationId: string, approval: GateApproval): Promise<ApprovalOutcome> {
  return update(client, migrationId, approveUpdate, approval);
}

export async function rejectGate(client: Client, migrationId: string, rejection: GateRejection): Promise<void> {
  await update(client, migrationId, rejectUpdate, rejection);
}

/** Aborts and answers once the flags are back in a safe state. */
export async function abortMigration(client: Client, migrationId: string, request: AbortRequest): Promise<AbortRecord | null> {
  return update(client, migrationId, abortUpdate, request);
}

/** Verifies (and repairs) again; answers with the outcome once done. Runs as long as it takes. */
export async function verifyMigration(client: Client, migrationId: string, request: VerifyRequest): Promise<VerificationSummary> {
  return update(client, migrationId, verifyUpdate, request, null);
}

export async function mismatches(client: Client, migrationId: string, options: { showValues: boolean; limit: number }): Promise<MismatchReport> {
  return update(client, migrationId, mismatchesUpdate, options);
}
