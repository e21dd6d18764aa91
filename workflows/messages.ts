/**
 * Every message a Ferry workflow accepts, in one place: names are the ones operators see in
 * Temporal's CLI and UI, payloads are plain JSON. The types say what Ferry sends; handlers read
 * every payload through lib/messages-input.ts, since anyone can send anything.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AbortRequest, GateApproval, GateRejection, MismatchesRequest, OperatorNote, VerifyRequest } from '../lib/messages-input';
import type { MismatchReport } from '../activities/verify/report';
import type { AbortRecord, FailedRow, MigrationStatus, RetryOutcome, Verdict, VerificationSummary } from '../lib/status';
import type { ShardCounts } from '../lib/progress';
import type { PlanLimits, Throttle, ThrottleChange } from '../lib/throttle';
import { SHARD_CONTROL_QUERY } from '../lib/ids';

// Operators (the ferry CLI, or Temporal's own CLI and UI) to a migration.

export const statusQuery = defineQuery<MigrationStatus>('status');

/** Absolute values, so a repeated update changes nothing more. Refused with a reason when invalid. */
export const setThrottleUpdate = defineUpdate<Throttle, [ThrottleChange]>('setThrottle');

export type { OperatorNote, VerifyRequest };

/** Signals, not updates: a pause must be accepted even while no worker is running. */
export const pauseSignal = defineSignal<[OperatorNote]>('pause');
export const resumeSignal = defineSignal<[OperatorNote]>('resume');

/** Copies the recorded failed rows again, after a fix. */
export const retryFailuresUpdate = defineUpdate<RetryOutcome, [OperatorNote]>('retryFailures');

export interface ApprovalOutcome {
  gate: string;
  /** Approved past unclean verification. */
  forced: boolean;
  /** The verdict forced past, as the migration knew it when it took the approval (absent from older workers). */
  verdict?: Verdict;
}

/** Refused (with the reason) when the gate is not the one waiting, the approver is missing, or verification is not clean without force. */
export const approveUpdate = defineUpdate<ApprovalOutcome, [GateApproval]>('approve');
/** Rejecting a gate aborts the migration. */
export const rejectUpdate = defineUpdate<void, [GateRejection]>('reject');
/** Stops the migration and rolls the flags back to the last state that loses no write; answers once that is done. */
export const abortUpdate = defineUpdate<AbortRecord | null, [AbortRequest]>('abort');

/** Verifies (and repairs) again on demand; answers with the outcome. */
export const verifyUpdate = defineUpdate<VerificationSummary, [VerifyRequest]>('verify');

/** Mismatches of the latest verification pass: counts and examples, values only when asked. */
export const mismatchesUpdate = defineUpdate<MismatchReport, [MismatchesRequest]>('mismatches');

// A migration and its shards.

export interface ShardProgress extends ShardCounts {
  index: number;
  batchSize: number;
  throttleReason: string | null;
  failures: FailedRow[];
  done: boolean;
  /** Set when the shard failed for good. */
  error: string | null;
  /** Set when the database refuses the copy until a person acts: the migration pauses. */
  blocked?: string;
}

/** A shard reports to its migration after every copy call. */
export const shardProgressSignal = defineSignal<[ShardProgress]>('shardProgress');

export interface ShardThrottle {
  /** The shard's share of the migration's rows/s; null for no limit. */
  rowsPerSecond: number | null;
  batchSize: number;
}

export const shardThrottleSignal = defineSignal<[ShardThrottle]>('shardThrottle');
export const shardPauseSignal = defineSignal<[boolean]>('shardPause');
/** The backoff limits and pacing budget in force, after an operator changed them (`ferry throttle --max-query-seconds`, `--p99-factor`, ...). */
export const shardLimitsSignal = defineSignal<[PlanLimits]>('shardLimits');

/** What a running copy call asks its shard (a query: nothing enters any history), to return early when any of it changes. */
export interface ShardControl {
  throttle: ShardThrottle;
  paused: boolean;
  limits: PlanLimits;
}

export const shardControlQuery = defineQuery<ShardControl>(SHARD_CONTROL_QUERY);
