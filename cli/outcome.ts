/**
 * What a migration's report amounts to, in one word and one exit code, the same for every
 * command: an aborted migration's workflow completes normally, but the migration did not.
 */
import type { MigrationStatus } from '../lib/status';
import { ExitCode } from './exit-codes';
import type { MigrationReport, RunState } from '../operator';

export type Outcome = RunState | 'aborted';

/** Temporal's run state, except that a run which ended in the `aborted` phase is aborted. */
export function outcomeOf(report: Pick<MigrationReport, 'runState' | 'status'>): Outcome {
  if (report.runState === 'completed' && report.status?.phase === 'aborted') return 'aborted';
  if (report.runState === 'completed' && report.status?.phase === 'failed') return 'failed';
  return report.runState;
}

/** `ferry status`'s exit code: 0 running or completed, 5 aborted, 1 failed, terminated or timed out. */
export function statusExitCode(report: Pick<MigrationReport, 'runState' | 'status'>): number {
  const outcome = outcomeOf(report);
  if (outcome === 'aborted') return ExitCode.aborted;
  if (outcome === 'failed' || outcome === 'terminated' || outcome === 'timed-out' || outcome === 'cancelled') return ExitCode.failed;
  return ExitCode.ok;
}

/**
 * The rows an aborted run left in the target, as far as the run knows: a batch in flight when the
 * abort stopped its shard may have committed after its last report, so this is a lower bound.
 */
export function rowsLeftText(status: Pick<MigrationStatus, 'rowsWritten'>): string {
  return `at least ${status.rowsWritten.toLocaleString('en-US')} rows copied by this run (a batch in flight at the abort may add to them; count the target to know)`;
}

