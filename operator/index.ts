/**
 * The operator API: what an operator does to migrations, as typed functions over a Temporal
 * client that return data and never print. The CLI, the scripts and the tests all act through it.
 */
export {
  CheckRefusedError,
  InspectionNotPassedError,
  MigrationAbortedError,
  NoLiveWorkerError,
  NoRecordError,
  NoWorkerError,
  OperatorError,
  RefusedError,
  StartedWithoutWorkerError,
  UnknownMigrationError,
} from './errors';
export type { KnownWithoutWorker } from './errors';
export { awaitInspection, INSPECTION_WAIT_MS, refuseBadMigrationId, requireWorkerOnQueue, startMigration, type StartOptions } from './start';
export { describeMigration, migrationReport, RUN_STATES, runStateOf, type MigrationReport, type RunState } from './status';
export { lastPolledSecondsAgo, liveStatus, POLLER_FRESH_SECONDS, PROBE_SECONDS, requireLiveWorker, statusIfWorker, workerPolls } from './live-worker';
export {
  abortMigration,
  approveGate,
  changeThrottle,
  mismatches,
  pauseMigration,
  rejectGate,
  requestAbort,
  resumeMigration,
  retryFailures,
  shardsRunning,
  verifyMigration,
} from './requests';
export { activityRetries, shardCopyRetries, type ActivityRetry } from './retries';
export { listMigrations, type ListFilter, type MigrationListing } from './list';
export {
  checkEndedMigration,
  checkProblems,
  endedMigration,
  endedMismatches,
  laterChecks,
  staleSourceNote,
  type CheckOptions,
  type EndedMigration,
  type LaterCheck,
} from './checks';
export { recordData, type RecordData } from './record';
export { verifyPassProgress } from './verify-progress';
export { registerSearchAttributes, SearchAttributeConflictError, type SetupOutcome } from './setup';
export { runDoctor } from './doctor';
export { describeSourceTable } from './describe-source';
