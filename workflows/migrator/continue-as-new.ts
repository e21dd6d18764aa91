/**
 * Continue-as-new for the migration: a long backfill or a gate that waits for months starts a
 * fresh history that carries the whole status; the next run resumes where this one stopped.
 */
import { allHandlersFinished, condition, continueAsNew, patched } from '@temporalio/workflow';
import type { MigrationStatus } from '../../lib/status';
import type { MigrationInput } from './input';
import type { MigrationRun } from './run';

/**
 * Waits until every handler has finished, so none is lost with this run; false when one asked
 * for something this run must do first (an abort, a gate decision, a verification), whose
 * handler may itself wait for it.
 */
export async function readyToContinueAsNew(run: MigrationRun): Promise<boolean> {
  await condition(() => allHandlersFinished() || run.somethingAsked());
  return !run.somethingAsked();
}

/** The next run of this migration, carrying everything it has done. */
export async function continueWithStatus(run: MigrationRun): Promise<never> {
  // What follows waits on activities; a decision taken meanwhile would be answered and then
  // lost with this run, so the validators refuse every request from here on.
  run.continuing = true;
  // The change apply stops with this run; the next run starts it again from the carried cursor.
  if (run.capturing) await run.capture.stop();
  // The next run carries the events: over their budget, the audit catches up first so the oldest can be dropped.
  if (run.eventsOverBudget() && patched('bounded-events')) {
    await run.audit.flush();
    run.trimEvents();
  }
  return continueAsNew<(input: MigrationInput) => Promise<MigrationStatus>>({ ...run.input, carried: run.status });
}
