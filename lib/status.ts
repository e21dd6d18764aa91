/** The status of a migration as its workflow reports it: what `ferry status` shows. */
import type { CaptureStatus } from './capture';
import type { Flags } from './flags';
import type { Inspection } from './inspection';
import type { KeyRange } from './key-range';
import { holdingSignalOf, type PacingSignal } from './pacing-controller';
import type { ShardCounts } from './progress';
import type { Throttle } from './throttle';

export type Phase =
  | 'inspecting'
  | 'dry-run'
  | 'dual-write'
  | 'capture-on'
  | 'backfilling'
  | 'catching-up'
  | 'verifying'
  | 'awaiting-approval'
  | 'reads-on-new'
  | 'old-writes-off'
  | 'cleanup'
  | 'swapping'
  | 'capture-off'
  | 'aborting'
  | 'completed'
  | 'aborted'
  | 'failed';

/** When each step of the lifecycle ran. */
export interface PhaseRecord {
  name: string;
  startedAt: string;
  endedAt: string | null;
}

/** The gate a migration waits at, and what the approver should look at. */
export interface GateStatus {
  name: string;
  description: string;
  waitingSince: string;
  /** When the migration aborts if nobody decides; null: it waits for ever. */
  expiresAt: string | null;
  reminders: number;
  /** The command that approves it. */
  approveCommand: string;
  /** Dual-read results and the source's health, as of `figures.at` (refreshed with each reminder). */
  figures: GateFigures | null;
}

export interface GateFigures {
  at: string;
  /**
   * Reads the applications compared between old and new, and how many differed: each process's
   * count since it started, summed over the processes that reported within the last hour.
   */
  readsCompared: number;
  readsMismatched: number;
  replicaLagSeconds: number;
  longestQuerySeconds: number;
  /**
   * Standbys streaming from the source (logical consumers left out): a lag of 0 over none means
   * no standby to lag, or one that is down. Absent from figures taken before it was counted.
   */
  standbysStreaming?: number;
  /** Replication slots on the source that nothing reads (a standby or consumer down), and the most WAL one of them holds, in bytes. */
  inactiveSlots?: number;
  inactiveSlotWalBytes?: number;
}

/** What verification found, as far as gates care. */
export interface VerificationSummary {
  clean: boolean;
  passes: number;
  rowsChecked: number;
  missing: number;
  extra: number;
  value: number;
  repaired: number;
  /** Rows that differed at first and matched when checked again: live writes, not reported. */
  inFlight: number;
  /** Verification found differences, and a person approved the gate regardless. */
  forcedBy: string | null;
  /** The verdict that person forced past, as the migration knew it then (absent in older records). */
  forcedPast?: Verdict | null;
  /** The verification run (1, 2, ...) these figures come from; `passes` counts within it. Absent in older records. */
  run?: number;
  /** The run compared this percentage of keys; null or absent: every row. */
  samplePercent?: number | null;
  /** The pass under which ferry.mismatches records the run's last pass. Absent in older records: `passes`. */
  lastPassId?: number;
  /** Rows repaired over every run; `repaired` counts this run's. */
  repairedTotal?: number;
}

/**
 * A verdict as the workflow knew it when a person decided on it: the pass that gave it and what
 * it found. A forced approval records the one it forced past, so the record says which.
 */
export interface Verdict {
  /** The pass's number among all the migration's passes (what `ferry status` names and `--verdict` takes). */
  pass: number;
  /** The verification run it belongs to, and its pass within that run; run is null in older records. */
  run: number | null;
  passInRun: number;
  clean: boolean;
  rowsChecked: number;
  missing: number;
  extra: number;
  value: number;
  /** The run compared this percentage of keys; null: every row. */
  samplePercent: number | null;
  /** Rows with unresolved failed records, which verification leaves out. */
  rowsLeftOut: number;
}

export interface AbortRecord {
  at: string;
  by: string;
  reason: string;
  /** The phase the migration had reached. */
  phaseReached: Phase;
  /** What the flags were set back to, and why. */
  flagsNote: string;
  /** Shards that had not confirmed they stopped copying when the abort gave up waiting for them (absent: every shard stopped). */
  shardsNotStopped?: number[];
}

/** What an abort must say of shards that had not confirmed they stopped; null when all had. */
export function unstoppedShardsNote(abort: Pick<AbortRecord, 'shardsNotStopped'>): string | null {
  const shards = abort.shardsNotStopped ?? [];
  if (shards.length === 0) return null;
  const which = shards.length === 1 ? `shard ${shards[0]} had` : `shards ${shards.join(', ')} had`;
  return (
    `${which} not confirmed it stopped copying when the abort stopped waiting for it: its copier may still write rows to the target ` +
    `until its worker finds its workflow ended (the status shows it running as last heard)`
  );
}

/** A shard as the migration knows it: where it is and how far it has copied (ShardCounts). */
export interface ShardStatus extends ShardCounts {
  index: number;
  range: KeyRange;
  partitionValue: string | null;
  state: 'pending' | 'running' | 'done' | 'failed' | 'cancelled';
  /** The batch size the copier has adapted to. */
  batchSize: number;
  /** Why this shard is slowed or holding, if it is. */
  throttleReason: string | null;
  /** Why the shard failed, when it did. */
  error: string | null;
}

/** A row that could not be copied; the message carries no row values. */
export interface FailedRow {
  key: string;
  code: string | null;
  error: string;
}

export interface RetryOutcome {
  retried: number;
  fixed: number;
  stillFailing: number;
}

/** Something a person (or Ferry on their behalf) decided during the run, for the record. */
export interface MigrationEvent {
  at: string;
  /** `refused`: a signal whose payload could not be read was ignored; the detail says why. */
  kind: 'throttle' | 'pause' | 'resume' | 'auto-pause' | 'retry' | 'flags' | 'approve' | 'reject' | 'abort' | 'gate-expired' | 'apps' | 'verify' | 'refused' | 'swap';
  by: string | null;
  detail: string;
}

export interface PauseState {
  since: string;
  by: string | null;
  reason: string;
}

export interface MigrationStatus {
  migrationId: string;
  planName: string;
  phase: Phase;
  execute: boolean;
  /** The identity that started the migration (the CLI's FERRY_OPERATOR or user@host); null when unknown. */
  startedBy?: string | null;
  /** ISO timestamps (workflow time). */
  startedAt: string;
  finishedAt: string | null;
  inspection: Inspection | null;
  phases: PhaseRecord[];
  /** The flags as last set for the applications; null while the migration has not touched them. */
  flags: Flags | null;
  gate: GateStatus | null;
  verification: VerificationSummary | null;
  abort: AbortRecord | null;
  throttle: Throttle;
  paused: PauseState | null;
  shards: ShardStatus[];
  /** Ferry's own capture of the changes (plan capture: trigger); absent otherwise. */
  capture?: CaptureStatus | null;
  /** Rows read from the source and rows inserted into the target, over all shards. */
  rowsRead: number;
  rowsWritten: number;
  /** Rows that failed and were recorded in ferry.failed_records; unresolved ones block the end. */
  rowsFailed: number;
  unresolvedFailures: number;
  /** Failed rows that `ferry retry` copied after a fix. */
  failuresFixed: number;
  recentFailures: FailedRow[];
  events: MigrationEvent[];
  /** How many events are written to ferry.audit on the target (counted from the first, dropped ones included). */
  eventsAudited?: number;
  /**
   * The oldest events, already in ferry.audit, that the status no longer carries: a flood of
   * messages must not grow it past what continue-as-new can carry. `events` starts after them.
   */
  eventsDropped?: number;
  /** Progress over time, for charts: at most MAX_SAMPLES, thinned evenly as the run grows. */
  samples: ProgressSample[];
  /**
   * Added by the operator API from Temporal's visibility (never set by the workflow): the shards of the
   * verification pass under way that are verified so far.
   */
  verifyPass?: VerifyPassProgress | null;
  /** Set by the status query (never carried) while a verification runs, at a gate too. */
  verificationRunning?: boolean;
  /** Set by the status query (never carried): the pass whose shards run now, which `verifyPass` counts. */
  verifyPassUnderWay?: VerifyPassUnderWay | null;
}

/** A verification pass as its shards' workflow ids name it (lib/ids.ts verifyPassPrefix). */
export interface VerifyPassUnderWay {
  /** The pass's number among all the migration's passes, not within its run. */
  id: number;
  sampled: boolean;
}

export interface VerifyPassProgress {
  pass: number;
  shardsVerified: number;
  shardsRunning: number;
  shards: number;
}

export interface ProgressSample {
  at: string;
  rowsRead: number;
  /** The mean batch size of the running shards. */
  batchSize: number;
}

export const MAX_SAMPLES = 400;

/** Adds a sample; past MAX_SAMPLES, every other one goes, so the whole run stays in view. */
export function addSample(samples: ProgressSample[], sample: ProgressSample): ProgressSample[] {
  const next = [...samples, sample];
  return next.length <= MAX_SAMPLES ? next : next.filter((_, i) => i % 2 === 0 || i === next.length - 1);
}

/** A migration's status before anything has happened. */
export function newMigrationStatus(fields: Pick<MigrationStatus, 'migrationId' | 'planName' | 'execute' | 'startedAt' | 'throttle'>): MigrationStatus {
  return {
    ...fields,
    phase: 'inspecting',
    finishedAt: null,
    inspection: null,
    phases: [],
    flags: null,
    gate: null,
    verification: null,
    abort: null,
    paused: null,
    shards: [],
    rowsRead: 0,
    rowsWritten: 0,
    rowsFailed: 0,
    unresolvedFailures: 0,
    failuresFixed: 0,
    recentFailures: [],
    events: [],
    samples: [],
  };
}

/** Rows a batch found already present in the target (written by the application, or by an earlier run). */
export function rowsSkipped(status: Pick<MigrationStatus, 'rowsRead' | 'rowsWritten' | 'rowsFailed'>): number {
  return Math.max(0, status.rowsRead - status.rowsWritten - status.rowsFailed);
}

/** Sets the migration's totals from its shards. */
export function recountRows(status: MigrationStatus): void {
  status.rowsRead = status.shards.reduce((sum, s) => sum + s.rowsRead, 0);
  status.rowsWritten = status.shards.reduce((sum, s) => sum + s.rowsWritten, 0);
}

/** The signals the pacing controller holds running shards back by, each with its shards. */
export function holdingSignals(status: Pick<MigrationStatus, 'shards'>): { signal: PacingSignal; shards: number[] }[] {
  const held = new Map<PacingSignal, number[]>();
  for (const shard of status.shards) {
    const signal = shard.state === 'running' ? holdingSignalOf(shard.throttleReason) : null;
    if (signal) held.set(signal, [...(held.get(signal) ?? []), shard.index]);
  }
  return [...held].map(([signal, shards]) => ({ signal, shards }));
}
