/**
 * An operator's requests to a running migration: throttle, pause, resume, approve, reject,
 * abort, verify, mismatches, retry. Updates are sent only when a worker can take them now, and
 * a refusal comes back as a RefusedError with the migration's own reason; nothing changed.
 */
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type Client, type WorkflowHandle } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { MismatchReport } from '../activities/verify/verifier';
import { innermostMessage } from '../lib/errors';
import { nameProblems, parseOperatorNote, type AbortRequest, type GateApproval, type GateRejection } from '../lib/messages-input';
import type { AbortRecord, RetryOutcome, VerificationSummary } from '../lib/status';
import { throttleChangeProblems, type Throttle, type ThrottleChange } from '../lib/throttle';
import {
  abortUpdate,
  approveUpdate,
  mismatchesUpdate,
  pauseSignal,
  rejectUpdate,
  resumeSignal,
  retryFailuresUpdate,
  setThrottleUpdate,
  statusQuery,
  verifyUpdate,
  type ApprovalOutcome,
  type OperatorNote,
  type VerifyRequest,
} from '../workflows/messages';
import type { migrationWorkflow } from '../workflows/migration';
import { NoWorkerError, RefusedError } from './errors';
import { PROBE_SECONDS, requireLiveWorker, statusIfWorker } from './live-worker';
import { describeMigration, RUN_STATES } from './status';

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
  return (await acceptedUpdate(client, migrationId, definition, arg, timeoutSeconds))();
}

/**
 * Sends an update and answers once the migration has accepted it, with a function that waits for
 * its answer; refused ones become RefusedError, here or from that function.
 */
async function acceptedUpdate<Ret, Arg>(
  client: Client,
  migrationId: string,
  definition: UpdateDefinition<Ret, [Arg]>,
  arg: Arg,
  timeoutSeconds: number | null,
): Promise<() => Promise<Ret>> {
  const handle = await runningMigration(client, migrationId);
  await requireLiveWorker(client, handle);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    if (timeoutSeconds !== null) timer = setTimeout(() => reject(new NoWorkerError(migrationId, timeoutSeconds)), timeoutSeconds * 1000);
  });
  try {
    const accepted = await Promise.race([handle.startUpdate(definition, { args: [arg], waitForStage: WorkflowUpdateStage.ACCEPTED }), timeout]);
    return () => accepted.result().catch(refusal);
  } catch (error) {
    return refusal(error);
  } finally {
    clearTimeout(timer);
  }
}

/** A refusal is the validator's own text (workflow code, no row values): shown as written. */
function refusal(error: unknown): never {
  if (error instanceof WorkflowUpdateFailedError) throw new RefusedError(`refused: ${innermostMessage(error)}`);
  throw error;
}

/** Changes the throttle; refused (and nothing changes) when a value is out of bounds. */
export async function changeThrottle(client: Client, migrationId: string, change: ThrottleChange): Promise<Throttle> {
  const problems = throttleChangeProblems(change);
  if (problems.length > 0) throw new RefusedError(`refused: ${problems.join('; ')}`);
  return update(client, migrationId, setThrottleUpdate, change);
}

/**
 * The shards copying now, as the migration counts them: after a lower concurrency, more may run
 * than it allows. Null when the migration does not answer within seconds. Never throws.
 */
export async function shardsRunning(client: Client, migrationId: string): Promise<number | null> {
  try {
    const handle = client.workflow.getHandle<typeof migrationWorkflow>(migrationId);
    const status = await client.withDeadline(Date.now() + PROBE_SECONDS * 1000, () => handle.query(statusQuery));
    return status.shards.filter((shard) => shard.state === 'running').length;
  } catch {
    return null;
  }
}

export async function retryFailures(client: Client, migrationId: string, note: OperatorNote): Promise<RetryOutcome> {
  return update(client, migrationId, retryFailuresUpdate, note);
}

/**
 * A signal's payload, checked as the migration will read it: a signal is not answered, so one
 * the migration would ignore (a reason too long, say) must be refused here, not reported sent.
 */
function checkedNote(note: OperatorNote): OperatorNote {
  const parsed = parseOperatorNote(note);
  const problems = parsed.ok ? nameProblems(parsed.value) : parsed.problems;
  if (problems.length > 0) throw new RefusedError(`refused: ${problems.join('; ')}; nothing was sent`);
  return note;
}

/** Pause and resume are signals: the migration takes them even while no worker runs. */
export async function pauseMigration(client: Client, migrationId: string, note: OperatorNote): Promise<void> {
  const checked = checkedNote(note);
  await (await runningMigration(client, migrationId)).signal(pauseSignal, checked);
}

/** Refused when a worker says the migration is not paused; with no worker it is sent unchecked (false). */
export async function resumeMigration(client: Client, migrationId: string, note: OperatorNote): Promise<boolean> {
  const checked = checkedNote(note);
  const handle = await runningMigration(client, migrationId);
  const status = await statusIfWorker(client, handle);
  if (status && !status.paused) throw new RefusedError(`refused: migration ${migrationId} is not paused (phase ${status.phase}); nothing was sent`);
  await handle.signal(resumeSignal, checked);
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

/**
 * Sends an abort and answers once the migration has taken it, without waiting for the rollback
 * (which waits out a database outage): `ferry status` follows it from there.
 */
export async function requestAbort(client: Client, migrationId: string, request: AbortRequest): Promise<void> {
  await acceptedUpdate(client, migrationId, abortUpdate, request, UPDATE_TIMEOUT_SECONDS);
}

/** Verifies (and repairs) again; answers with the outcome once done. Runs as long as it takes. */
export async function verifyMigration(client: Client, migrationId: string, request: VerifyRequest): Promise<VerificationSummary> {
  return update(client, migrationId, verifyUpdate, request, null);
}

export async function mismatches(client: Client, migrationId: string, options: { showValues: boolean; limit: number }): Promise<MismatchReport> {
  return update(client, migrationId, mismatchesUpdate, options);
}
