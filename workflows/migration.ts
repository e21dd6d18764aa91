/**
 * The migration workflow runs one migration through its lifecycle: inspect; dual writes on;
 * backfill through shard children under a live throttle; then, behind gates a person approves,
 * reads to the new table, old writes off, cleanup. It decides; activities do. A run without
 * `execute` stops after inspection: the dry run. An abort at any point rolls the flags back to
 * the last state that loses no write.
 *
 * The lifecycle reads as a script: its state is a MigrationRun (workflows/migrator/run.ts), its
 * steps are objects with `run` and `rollback` (workflows/migrator/steps.ts), and operators'
 * messages are handled in workflows/migrator/handlers.ts.
 */
import { ApplicationFailure, isCancellation, patched, TemporalFailure, workflowInfo } from '@temporalio/workflow';
import { rootMessage } from '../lib/errors';
import type { MigrationStatus } from '../lib/status';
import { claimTarget, inspect, prepareTarget } from './migrator/activity-proxies';
import { planShardsAhead } from './migrator/backfill';
import { continueWithStatus } from './migrator/continue-as-new';
import { abort, complete, fail } from './migrator/endings';
import { setMigrationHandlers } from './migrator/handlers';
import { checkedInput, type MigrationInput } from './migrator/input';
import { MigrationRun } from './migrator/run';
import { lifecycleOf, type LifecycleStep, type StepOutcome } from './migrator/steps';

export type { MigrationInput };

export async function migrationWorkflow(input: MigrationInput): Promise<MigrationStatus> {
  // Both guarded, so that histories recorded before them replay as they ran.
  const checksInput = patched('validate-input');
  const auditing = patched('audit-decisions');
  // Anyone can start this workflow through Temporal: its input gets the CLI's checks (the same
  // plan schema, the same messages) before anything is touched. A continued run carries an
  // input its first run checked.
  if (checksInput && input?.carried && workflowInfo().continuedFromExecutionRunId === undefined) {
    // A status of the sender's own would skip the checks, the inspection and the claim, and
    // could copy while it says "dry run": only this workflow's own continue-as-new carries one.
    throw ApplicationFailure.nonRetryable(
      'invalid migration input: carried is the status a migration hands to its own next run (continue-as-new); a new migration starts without it',
      'InvalidInput',
    );
  }
  const plan = checksInput && !input?.carried ? checkedInput(input).plan : input.plan;
  const run = new MigrationRun(input, plan, auditing);
  setMigrationHandlers(run);

  if (!input.carried) {
    const outcome = await inspectAndClaim(run);
    if (outcome !== 'claimed') return outcome;
  }
  if (input.carried && run.status.execute) run.audit.open();

  // A continued run resumes where the last one stopped: steps with an ended record are done.
  const done = new Set(run.status.phases.filter((p) => p.endedAt !== null).map((p) => p.name));
  /** The steps begun, in this run or an earlier one: what an abort rolls back. */
  const ran: LifecycleStep[] = [];
  if (run.capturing) run.capture.resume();
  for (const step of lifecycleOf(run)) {
    if (done.has(step.name)) {
      ran.push(step);
      continue;
    }
    if (run.abortRequest) return abort(run, run.abortRequest, ran);
    ran.push(step);
    const outcome = await runStep(run, step);
    if (outcome === 'abort') return abort(run, run.abortRequest!, ran);
    if (outcome === 'continue-as-new') return continueWithStatus(run);
    if (outcome !== 'next') return fail(run, outcome.failed);
  }
  if (run.abortRequest) return abort(run, run.abortRequest, ran);
  return complete(run);
}

/**
 * Runs one step. An activity (or child) that failed for good ends the migration through fail(),
 * as a failure a step returns does: capture removed, target released, phase failed. Before this
 * it failed the workflow where it stood, leaving a trigger or a replication slot on the source.
 * Guarded where it changes what happens, so histories recorded before it replay as they ran.
 */
async function runStep(run: MigrationRun, step: LifecycleStep): Promise<StepOutcome> {
  try {
    return await step.run(run);
  } catch (error) {
    // A cancellation of the workflow, or a bug in workflow code (not a TemporalFailure: the task is retried), goes on up.
    if (!(error instanceof TemporalFailure) || isCancellation(error) || !patched('step-failure-ends-migration')) throw error;
    if (error instanceof ApplicationFailure) return { failed: error };
    return {
      failed: ApplicationFailure.create({
        message: `step ${step.name} failed: ${rootMessage(error)}`,
        type: 'StepFailed',
        nonRetryable: true,
        cause: error,
      }),
    };
  }
}

/**
 * Inspects both tables; a dry run ends there with its report. Otherwise, with no problem found,
 * prepares the target and claims it for this migration, after which its events are audited.
 */
async function inspectAndClaim(run: MigrationRun): Promise<'claimed' | MigrationStatus> {
  const { status, plan, input } = run;
  // Guarded, so that histories recorded before it replay as they ran: the claim also prepares the
  // target (one call, not two), and the shards are planned while the tables are inspected.
  const sooner = patched('start-copy-sooner');
  // Planning only reads the source. When the backfill is the first step it begins right after the
  // claim, so its shards are ready by then; it waits for them (and meets a planning failure)
  // where it always did. Before other steps (dual writes, capture) it plans as it always did.
  if (sooner && input.execute && run.steps[0] === 'backfill') run.shardPlanning = planShardsAhead(plan);
  status.inspection = await inspect({ plan, showSampleValues: input.showSampleValues ?? false, migrationId: run.workflowId });
  if (!input.execute) return run.finish('dry-run');
  if (status.inspection.problems.length > 0) {
    run.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `migration cannot start:\n${status.inspection.problems.map((p) => `  - ${p}`).join('\n')}`,
      'InspectionFailed',
      status.inspection.problems,
    );
  }
  if (!sooner) await prepareTarget({ plan });
  try {
    await claimTarget({ plan, migrationId: run.workflowId, rerun: input.rerun ?? false, ...(sooner ? { prepare: true } : {}) });
  } catch (error) {
    run.finish('failed');
    throw error;
  }
  run.audit.open();
  return 'claimed';
}
