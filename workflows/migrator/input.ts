/** What a migration workflow is started with, and the checks its input gets before anything is touched. */
import { ApplicationFailure } from '@temporalio/workflow';
import { parseMigrationInput } from '../../lib/messages-input';
import type { Plan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';

export interface MigrationInput {
  plan: Plan;
  /** Without it the run is a dry run: inspect, report, write nothing. */
  execute: boolean;
  /** Show real values in the dry run's transform sample (they then live in the workflow history). */
  showSampleValues?: boolean;
  /** Migrate into a target that already holds a finished migration. */
  rerun?: boolean;
  /** `ferry start --no-apps`: as lifecycle.noApps, given on the command line. */
  noApps?: boolean;
  /** The identity that started it (the CLI's FERRY_OPERATOR or user@host), for the record and four-eyes gates. */
  startedBy?: string;
  /** Set by the migration itself when it continues-as-new. */
  carried?: MigrationStatus;
}

/** The input, checked; otherwise the run fails at once, before it touches anything, with the CLI's messages. */
export function checkedInput(input: unknown): MigrationInput {
  const parsed = parseMigrationInput(input);
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.problems.join('\n'), 'InvalidInput', parsed.problems);
  return { ...(input as MigrationInput), ...parsed.value };
}
