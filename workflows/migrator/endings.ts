/**
 * How a migration ends: completed, aborted (everything stopped and the steps that ran rolled
 * back, so no write is lost), or failed. Each records its end and releases the target.
 */
import { allHandlersFinished, ApplicationFailure, condition, getExternalWorkflowHandle, patched } from '@temporalio/workflow';
import { captureLeftOnSource } from '../../lib/capture';
import { shardWorkflowId } from '../../lib/ids';
import { rootMessage } from '../../lib/errors';
import { flagsAfterAbort } from '../../lib/lifecycle';
import type { AbortRequest } from '../../lib/messages-input';
import type { MigrationStatus } from '../../lib/status';
import { releaseFailedTarget, releaseTarget } from './activity-proxies';
import type { MigrationRun } from './run';
import type { LifecycleStep, Rollback } from './steps';

/** How long an abort waits for running shards to stop copying. */
const SHARD_STOP_TIMEOUT = '2 minutes';

/** Past its last step: records the end and releases the target. */
export async function complete(run: MigrationRun): Promise<MigrationStatus> {
  run.releasing = true;
  await releaseTarget({ plan: run.plan, migrationId: run.workflowId, state: 'completed' });
  run.finish('completed');
  await run.audit.settle();
  await condition(allHandlersFinished);
  return run.status;
}

/**
 * Stops everything, runs the rollbacks of the steps that ran (`ran`, in the order they ran; the
 * last may have been cut short) newest first, and records why. The shards stop first whatever
 * step the migration is in: they run beside the lifecycle and could outlive it.
 */
export async function abort(run: MigrationRun, request: AbortRequest, ran: LifecycleStep[]): Promise<MigrationStatus> {
  const { status } = run;
  const phaseReached = status.phase;
  run.enter('aborting', 'abort');
  const notStopped = await stopShards(run);
  const rollbacks = new Set<Rollback>();
  for (const step of [...ran].reverse()) if (step.rollback) rollbacks.add(step.rollback);
  const notes: string[] = [];
  for (const rollback of rollbacks) notes.push(await rollbackOrWhatIsLeft(run, rollback, request));
  const flagsNote = notes.length > 0 ? notes.join('; ') : flagsAfterAbort(null).note;
  status.abort = { at: run.now(), by: request.by, reason: request.reason, phaseReached, flagsNote };
  // The abort answers after SHARD_STOP_TIMEOUT whatever the shards did: it says which had not stopped.
  // Guarded, so histories recorded before it replay as they ran.
  if (notStopped.length > 0 && patched('abort-names-unstopped-shards')) status.abort.shardsNotStopped = notStopped;
  await releaseTarget({ plan: run.plan, migrationId: run.workflowId, state: 'aborted' });
  run.finish('aborted');
  await run.audit.settle();
  await condition(allHandlersFinished);
  return status;
}

/**
 * Runs a rollback. One that failed for good (its activity gave up: retrying could not mend it,
 * as a worker that lacks the source's connection) leaves the rest of the abort to be done, and
 * says what it left and how to remove that by hand. Before, the abort failed where it stood: the
 * target stayed claimed, the phase "aborting", and the trigger or slot unnamed. Guarded, so
 * histories recorded before it replay as they ran.
 */
async function rollbackOrWhatIsLeft(run: MigrationRun, rollback: Rollback, request: AbortRequest): Promise<string> {
  try {
    return await rollback(run, request);
  } catch (error) {
    if (!patched('abort-past-failed-rollback')) throw error;
    return captureLeftNote(run, error) ?? `a rollback failed: ${rootMessage(error)}`;
  }
}

/** What a capture that could not be removed leaves on the source, and the SQL that removes it; null when none is left. */
function captureLeftNote(run: MigrationRun, removal: unknown): string | null {
  const capture = run.status.capture;
  if (!capture || capture.installedAt === null || capture.removedAt !== null) return null;
  return `the change capture could not be removed (${rootMessage(removal)}): ${captureLeftOnSource(capture, run.workflowId)}`;
}

/**
 * Cancels the running shards; each reports once its copier has stopped, so no row moves after an
 * abort answers. Answers the shards that had not reported within SHARD_STOP_TIMEOUT.
 */
async function stopShards(run: MigrationRun): Promise<number[]> {
  const stopping = run.running();
  await Promise.all(stopping.map((shard) => getExternalWorkflowHandle(shardWorkflowId(run.workflowId, shard.index)).cancel().catch(() => {})));
  await condition(() => stopping.every((shard) => shard.state !== 'running'), SHARD_STOP_TIMEOUT);
  return stopping.filter((shard) => shard.state === 'running').map((shard) => shard.index);
}

/**
 * Fails the migration: the capture is removed, the target released on a best-effort basis, the
 * flags stay where they are. A capture that could not be removed is named in the failure, with
 * the statements that remove it by hand: the failure is all a failed migration shows.
 */
export async function fail(run: MigrationRun, error: ApplicationFailure): Promise<never> {
  // A trigger must not outlive its migration: the source's writers would keep paying for it.
  let left: string | null = null;
  if (run.capturing) {
    await run.capture.remove().catch((removal: unknown) => {
      left = captureLeftNote(run, removal);
    });
  }
  run.finish('failed');
  await releaseFailedTarget({ plan: run.plan, migrationId: run.workflowId, state: 'failed' }).catch(() => {});
  await run.audit.settle();
  if (left === null) throw error;
  throw ApplicationFailure.create({ message: `${error.message}; ${left}`, type: error.type ?? 'MigrationFailed', nonRetryable: true, cause: error });
}
