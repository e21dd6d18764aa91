/**
 * Starting a migration from a plan, and waiting until it has passed its inspection: "started" is
 * said only of a run that got past its inspection and holds its target, and a run no worker took
 * is withdrawn rather than left to start whenever one comes.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { rootMessage } from '../lib/errors';
import { migrationIdProblem, newMigrationId, tableKey } from '../lib/ids';
import type { Plan } from '../lib/plan';
import { ferrySearchAttributes, phaseKey, planNameKey, targetTableKey } from '../lib/search-attributes';
import type { TemporalSettings } from '../lib/settings';
import type { migrationWorkflow } from '../workflows/migration';
import { InspectionNotPassedError, MigrationAbortedError, NoLiveWorkerError, RefusedError, StartedWithoutWorkerError } from './errors';
import { lastPolledSecondsAgo } from './live-worker';
import { migrationReport, type MigrationReport } from './status';

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
  if (options.migrationId !== undefined) refuseBadMigrationId(options.migrationId);
  const workflowId = options.migrationId ?? newMigrationId(plan.name, new Date());
  // An id names one migration: reused after a run that did not fail, two runs' records and
  // audits would mix. A failed start (a target missing, a claim refused) may be tried again, and
  // so may an id whose last run was a dry run that completed: it wrote nothing, and the dry run is
  // what a careful operator starts first with the id they mean to use.
  const reusable = options.migrationId !== undefined && (await lastRunWasEndedDryRun(client, workflowId));
  const start = (searchable: boolean) =>
    client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
      taskQueue: temporal.taskQueue,
      workflowId,
      workflowIdReusePolicy: reusable ? 'ALLOW_DUPLICATE' : 'ALLOW_DUPLICATE_FAILED_ONLY',
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
    return await start(true).catch(refuseTakenId(workflowId));
  } catch (error) {
    if (error instanceof RefusedError) throw error;
    // A server that does not know Ferry's search attributes refuses them: start without.
    if (!/search attribute/i.test(rootMessage(error))) throw error;
    process.emitWarning(
      `Temporal at ${temporal.address} does not know Ferry's search attributes, so this migration cannot be listed by plan, phase or target; ` +
        `run \`ferry setup\` once for namespace ${temporal.namespace} (or: ` +
        Object.entries(ferrySearchAttributes).map(([name, type]) => `temporal operator search-attribute create --name ${name} --type ${type}`).join('; ') +
        ')',
    );
    return start(false).catch(refuseTakenId(workflowId));
  }
}

/**
 * Whether the latest run Temporal holds by this id is a dry run that completed: its phase search
 * attribute says so (on a server without Ferry's search attributes nothing does, and the id stays
 * taken). Search attributes, unlike a memo, pass no payload codec: a client without the payload
 * key reads them too. A dry run still running holds the id (Temporal refuses the start).
 */
async function lastRunWasEndedDryRun(client: Client, workflowId: string): Promise<boolean> {
  try {
    const run = await client.workflow.getHandle(workflowId).describe();
    return run.status.name === 'COMPLETED' && run.typedSearchAttributes.get(phaseKey) === 'dry-run';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

/** Refuses (RefusedError) a migration id an operator chose that Ferry could not read back as one. */
export function refuseBadMigrationId(migrationId: string): void {
  const problem = migrationIdProblem(migrationId);
  if (problem) throw new RefusedError(`--id ${JSON.stringify(migrationId)} ${problem}; nothing was started`);
}

function refuseTakenId(workflowId: string) {
  return (error: unknown): never => {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    throw new RefusedError(
      `migration id ${workflowId} is taken: Temporal holds a run by that id that is running, or ended without failing and was not a dry run (\`ferry status ${workflowId}\`); nothing was started. Start with another --id`,
    );
  };
}

/**
 * Before a start: a worker must poll the task queue, or the migration would wait there and begin
 * whenever one comes, long after the command gave up. Nothing is started when none does.
 */
export async function requireWorkerOnQueue(client: Client, taskQueue: string, migrationId: string): Promise<void> {
  const { workflow } = await lastPolledSecondsAgo(client, taskQueue);
  if (workflow === null) {
    throw new NoLiveWorkerError(
      { migrationId, taskQueue, startedAt: new Date().toISOString(), phase: null },
      `no Ferry worker polls task queue "${taskQueue}" (Temporal has seen none lately; is FERRY_TASK_QUEUE or --task-queue right?), so no migration was started`,
    );
  }
}

/**
 * When no worker answers a migration just started: withdrawn (terminated) if no worker has taken
 * any task of it, or it is a dry run (which writes nothing); otherwise the truth that it runs and
 * waits for a worker. Throws in every case.
 */
export async function withdrawUnserved(client: Client, migrationId: string, dryRun: boolean, noWorker: NoLiveWorkerError): Promise<never> {
  const handle = client.workflow.getHandle(migrationId);
  const description = await handle.describe();
  const { taskQueue } = description;
  if (description.status.name !== 'RUNNING') throw noWorker;
  const pending = description.raw.pendingWorkflowTask;
  const untouched = description.historyLength <= 2 && pending?.state !== proto.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED;
  if (dryRun || untouched) {
    await handle.terminate(`ferry start: no Ferry worker took it on task queue "${taskQueue}"`);
    throw new NoLiveWorkerError(
      noWorker.known,
      `${noWorker.why}, so ${dryRun ? `the dry run ${migrationId} was withdrawn (terminated; a dry run writes nothing)` : `migration ${migrationId} was withdrawn (terminated) before anything of it ran`}`,
    );
  }
  throw new StartedWithoutWorkerError(migrationId, taskQueue, noWorker.why);
}

/** How long `awaitInspection` waits for the inspection and the target's claim. (Default: 5 minutes) */
export const INSPECTION_WAIT_MS = 5 * 60_000;

/**
 * Waits until a migration has passed its inspection and claimed its target (its phase moves on),
 * or fails (InspectionNotPassedError) with the run's own reason when it ended there instead.
 */
export async function awaitInspection(client: Client, migrationId: string, waitMs = INSPECTION_WAIT_MS, dryRun = false): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const report = await migrationReport(client, migrationId).catch((error: unknown) => {
      if (error instanceof NoLiveWorkerError) return withdrawUnserved(client, migrationId, dryRun, error);
      throw error;
    });
    const outcome = inspectionOutcome(report);
    if (outcome === 'passed') return;
    if (outcome !== 'waiting') throw 'aborted' in outcome ? new MigrationAbortedError(outcome.reason) : new InspectionNotPassedError(outcome.reason);
    if (Date.now() > deadline) throw new InspectionNotPassedError(`migration ${migrationId} is still inspecting after ${waitMs / 60_000} minutes; follow it with ferry status`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * What one report says of the inspection and the claim: passed, not yet known, or not passed
 * (with the run's own reason).
 */
export function inspectionOutcome(report: MigrationReport): 'passed' | 'waiting' | { reason: string; aborted?: true } {
  const { migrationId, runState, status } = report;
  if (runState !== 'running') {
    // An abort ends the run as completed: it did not pass, and its record says where it stopped.
    if (status?.abort) {
      const { by, reason, phaseReached } = status.abort;
      return { reason: `migration ${migrationId} was aborted in phase ${phaseReached} by ${by}: ${reason}`, aborted: true };
    }
    if (runState === 'completed' || runState === 'continued') return 'passed';
    return { reason: `migration ${migrationId} ${runState} before it started copying: ${report.failure ?? status?.phase ?? 'no reason given'}` };
  }
  // A run that fails (its claim refused: the target is busy, or holds a finished migration) says
  // "failed" in its status a moment before Temporal closes it: a report taken in between is not
  // a start. The next one gives the run's own reason.
  // Nor is an abort under way, or one that says "aborted" before Temporal closes the run: its end gives the reason.
  if (!status || ['inspecting', 'failed', 'aborting', 'aborted'].includes(status.phase)) return 'waiting';
  return 'passed';
}
