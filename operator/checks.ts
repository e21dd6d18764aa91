/**
 * Checks of migrations that have ended: verifying or listing the mismatches of a completed or
 * aborted migration starts a workflow of their own, fed with the plan and shards the migration
 * recorded in Temporal (the CLI holds no database connection; workers do).
 */
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter, TimeoutFailure } from '@temporalio/common';
import type { MismatchReport } from '../activities/verify/verifier';
import { rootMessage } from '../lib/errors';
import type { Plan } from '../lib/plan';
import type { MigrationStatus } from '../lib/status';
import type { VerificationRun } from '../lib/verification-runs';
import type { MigrationInput } from '../workflows/migration';
import { CheckRefusedError, NoWorkerError } from './errors';
import type { mismatchesWorkflow, verifyMigrationWorkflow } from '../workflows/verify-migration';
import { checkWorkflowId, mismatchesWorkflowId } from '../lib/ids';

/** A migration that has ended, with what a check of it needs. */
export interface EndedMigration {
  migrationId: string;
  taskQueue: string;
  plan: Plan;
  status: MigrationStatus;
}

/**
 * The plan and final status of a migration whose workflow has closed. The status is the
 * workflow's result; the plan is its (last run's) input. Neither needs a worker.
 */
export async function endedMigration(client: Client, migrationId: string, taskQueue: string, runState: string): Promise<EndedMigration> {
  const handle = client.workflow.getHandle(migrationId);
  let status: MigrationStatus;
  try {
    status = (await handle.result()) as MigrationStatus;
  } catch (error) {
    throw new CheckRefusedError(`migration ${migrationId} ${runState} without a final status (${rootMessage(error)}); there is no record of what it copied to check`);
  }
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  const input = payload ? defaultPayloadConverter.fromPayload<MigrationInput>(payload) : null;
  if (!input?.plan) throw new CheckRefusedError(`cannot read the plan of migration ${migrationId} from its history`);
  return { migrationId, taskQueue, plan: input.plan, status };
}

/** Problems that keep an ended migration from being checked; empty when it can be. */
export function checkProblems(migration: EndedMigration, options: { repair: boolean; force: boolean }): string[] {
  const { status } = migration;
  const problems: string[] = [];
  if (!status.execute) problems.push('it was a dry run and copied nothing to verify');
  else if (status.shards.length === 0) problems.push(`it was ${status.phase} before its backfill began; nothing was copied to verify`);
  if (options.repair && status.flags && !status.flags.writeOld && !options.force) {
    problems.push(
      'writes to the old table were turned off, so the source no longer holds the truth and repairing from it would undo writes the application made since; ' +
        'verify without --repair to see the differences, or add --force to repair from the source regardless',
    );
  }
  return problems;
}

/** A caveat for a check of a migration whose source stopped receiving writes; null when there is none. */
export function staleSourceNote(status: MigrationStatus): string | null {
  if (!status.flags || status.flags.writeOld) return null;
  return 'note: writes to the old table were turned off during this migration, so differences may be writes the application made since, not damage';
}

export interface CheckOptions {
  samplePercent: number | null;
  repair: boolean;
  force: boolean;
  by: string;
}

/** Runs a check of an ended migration as its own workflow and waits for what it found. */
export async function checkEndedMigration(client: Client, migration: EndedMigration, options: CheckOptions, onStart?: (checkId: string) => void): Promise<VerificationRun> {
  const problems = checkProblems(migration, options);
  if (problems.length > 0) throw new CheckRefusedError(`refused: migration ${migration.migrationId} cannot be checked: ${problems.join('; ')}`);
  const checks = await laterChecks(client, migration.migrationId);
  const running = checks.find((c) => c.state === 'running');
  if (running) throw new CheckRefusedError(`refused: check ${running.checkId} of ${migration.migrationId} is still running; wait for it`);
  const checkId = checkWorkflowId(migration.migrationId, checks.length + 1);
  const { status, plan } = migration;
  let handle;
  try {
    handle = await client.workflow.start<typeof verifyMigrationWorkflow>('verifyMigrationWorkflow', {
      taskQueue: migration.taskQueue,
      workflowId: checkId,
      args: [
        {
          migrationId: migration.migrationId,
          plan,
          shards: status.shards.map((s) => ({ range: s.range, partitionValue: s.partitionValue })),
          samplePercent: options.samplePercent,
          repair: options.repair,
          by: options.by,
          concurrency: Math.max(1, status.throttle.concurrency),
          afterPass: status.verification ? (status.verification.lastPassId ?? status.verification.passes) : 0,
        },
      ],
    });
  } catch (error) {
    if ((error as Error).name === 'WorkflowExecutionAlreadyStartedError') throw new CheckRefusedError(`refused: another check of ${migration.migrationId} started at the same moment (${checkId}); try again`);
    throw error;
  }
  onStart?.(checkId);
  try {
    return await handle.result();
  } catch (error) {
    if (failureTypes(error).includes('TargetTaken')) throw new CheckRefusedError(`refused: ${rootMessage(error)}`);
    throw new Error(`check ${checkId} failed: ${rootMessage(error)}`, { cause: error });
  }
}

/** The types of the application failures in an error's chain of causes. */
function failureTypes(error: unknown): string[] {
  const types: string[] = [];
  for (let e = error as { cause?: unknown; type?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.type === 'string') types.push(e.type);
  }
  return types;
}

export interface LaterCheck {
  checkId: string;
  state: 'running' | 'completed' | 'failed';
  run: VerificationRun | null;
  failure: string | null;
}

/** The checks run on a migration after it ended, oldest first (no worker needed). */
export async function laterChecks(client: Client, migrationId: string): Promise<LaterCheck[]> {
  const checks: LaterCheck[] = [];
  for (let n = 1; ; n += 1) {
    const checkId = checkWorkflowId(migrationId, n);
    const handle = client.workflow.getHandle<typeof verifyMigrationWorkflow>(checkId);
    let state: string;
    try {
      state = (await handle.describe()).status.name;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return checks;
      throw error;
    }
    if (state === 'RUNNING') {
      checks.push({ checkId, state: 'running', run: null, failure: null });
      continue;
    }
    try {
      checks.push({ checkId, state: 'completed', run: await handle.result(), failure: null });
    } catch (error) {
      checks.push({ checkId, state: 'failed', run: null, failure: rootMessage(error) });
    }
  }
}

/** How long a mismatches read may wait for a worker before it is given up. */
const READ_TIMEOUT_SECONDS = 120;

/** The mismatches of an ended migration, read by a worker in a short workflow. */
export async function endedMismatches(client: Client, migration: EndedMigration, options: { showValues: boolean; limit: number }): Promise<MismatchReport> {
  try {
    return await client.workflow.execute<typeof mismatchesWorkflow>('mismatchesWorkflow', {
      taskQueue: migration.taskQueue,
      workflowId: mismatchesWorkflowId(migration.migrationId, Date.now()),
      workflowExecutionTimeout: `${READ_TIMEOUT_SECONDS} seconds`,
      args: [{ migrationId: migration.migrationId, plan: migration.plan, showValues: options.showValues, limit: options.limit }],
    });
  } catch (error) {
    if (error instanceof WorkflowFailedError && error.cause instanceof TimeoutFailure) throw new NoWorkerError(migration.migrationId, READ_TIMEOUT_SECONDS);
    throw error;
  }
}
