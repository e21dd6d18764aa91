/**
 * Change capture as plans and workflows see it: how live writes reach the new table, the
 * applier's cursor, and the lag a status shows. Pure: workflows and activities both import it.
 */
import { z } from 'zod';
import { logicalCaptureName } from './ids';
import type { CopyPacing } from './pacing-controller';
import { identifier, safeSql } from './plan-fields';

/**
 * application: the application writes the new table itself (dual writes through the client
 * library, lifecycle.dualWrites) or nothing does and verification repairs.
 * trigger: Ferry installs a trigger on the source table that records each changed key in a
 * change log on the source database, and applies the changes to the target itself.
 * logical: Ferry reads the table's changes from a logical replication slot (pgoutput) and
 * records their keys in the same change log; nothing runs in the writers' transactions.
 */
export const captureModes = ['application', 'trigger', 'logical'] as const;
export type CaptureMode = (typeof captureModes)[number];

const captureModeSchema = z.enum(captureModes, {
  error: () => `must be one of ${captureModes.join(', ')}`,
});

const captureObjectSchema = z.strictObject({
  /** How live writes reach the new table. (Default: application) */
  mode: captureModeSchema.default('application'),
  /** Changed keys the applier writes per transaction. (Default: 500) */
  applyBatchSize: z.number().int().min(1).max(10_000).default(500),
  /**
   * After the catch-up and its gate, drain the change log under a short lock and give the new
   * table the old one's name, the old table renamed aside: the cutover for an application that
   * cannot change (trigger capture, one database). (Default: false)
   */
  swap: z.boolean().default(false),
  /** At the cleanup gate after a swap, drop the old table kept aside; otherwise it stays. (Default: false) */
  dropOldTable: z.boolean().default(false),
  /**
   * With swap: a view, created in the swap's transaction, that keeps the old shape readable for
   * readers not moved yet: each of its columns a SQL expression over the new table's row.
   * It stays after the migration; drop it when no reader needs it. (Default: none)
   */
  oldShapeView: z
    .strictObject({
      /** The view's name, in the source table's schema (the old table's name is the new table's now). */
      name: identifier,
      columns: z
        .record(identifier, safeSql('must be a SQL expression over the new table\'s row'))
        .refine((columns) => Object.keys(columns).length > 0, { message: 'must name at least one column' }),
    })
    .optional(),
});

/**
 * `capture: trigger` is short for `capture: { mode: trigger }`. Missing in plans recorded before
 * capture existed: read it through captureOf.
 */
export const captureSchema = z.union([
  captureModeSchema.transform((mode) => captureObjectSchema.parse({ mode })),
  captureObjectSchema,
]);

export type Capture = z.output<typeof captureObjectSchema>;

export const defaultCapture: Capture = { mode: 'application', applyBatchSize: 500, swap: false, dropOldTable: false };

/** A plan's capture settings, for plans recorded before the setting existed too. */
export function captureOf(plan: { capture?: Capture }): Capture {
  return plan.capture ?? defaultCapture;
}

export function capturesWithTrigger(plan: { capture?: Capture }): boolean {
  return captureOf(plan).mode === 'trigger';
}

export function capturesLogically(plan: { capture?: Capture }): boolean {
  return captureOf(plan).mode === 'logical';
}

/** Ferry captures the changes itself (trigger or logical): both fill the same change log, applied the same way. */
export function capturesChanges(plan: { capture?: Capture }): boolean {
  return capturesWithTrigger(plan) || capturesLogically(plan);
}

/** The plan swaps the tables at its cutover (plans recorded before the setting never do). */
export function swapsTables(plan: { capture?: Capture }): boolean {
  return capturesWithTrigger(plan) && captureOf(plan).swap === true;
}

/** What a swap did, as recorded in the status. */
export interface SwapRecord {
  swappedAt: string;
  /** The old table, renamed aside (schema.table); null once dropped at the cleanup gate. */
  oldTableAside: string | null;
  /** The name the new table took (schema.table). */
  newName: string;
  /** Changed keys applied under the lock. */
  keysDrained: number;
  /** Attempts the swap took (a lock not had within the timeout is tried again). */
  attempts: number;
  /**
   * A snapshot (pg_snapshot as text) taken once the swap held its locks: the writers'
   * transactions visible in it wrote the old table, all later ones the new table.
   */
  snapshot: string | null;
  /** When the old table was dropped at the cleanup gate; null while it is kept. */
  oldTableDroppedAt: string | null;
}

/**
 * Where the applier stands. Every change whose transaction is visible in `appliedThrough` (a
 * pg_snapshot as text) has been applied; the current round applies those visible in `round`
 * and not in `appliedThrough`, key by key from `afterKey` on. Snapshots rather than a sequence
 * number, because log entries commit in another order than they were numbered.
 */
export interface ApplyCursor {
  appliedThrough: string | null;
  round: string | null;
  afterKey: string | null;
}

export const startOfCapture: ApplyCursor = { appliedThrough: null, round: null, afterKey: null };

/** Changes recorded but not yet applied. */
export interface CaptureLag {
  /** Log entries committed and not yet applied. */
  changesWaiting: number;
  /** Seconds since the oldest of them was written; 0 when none waits. */
  oldestSeconds: number;
  /** When the worker measured it (absent in older records). */
  measuredAt?: string;
  /**
   * Logical capture: bytes of WAL the slot holds on the source (from its confirmed position to
   * the current WAL position), changes not yet read into the change log among them. Absent otherwise.
   */
  walBytesHeld?: number | null;
}

export interface ApplyChangesResult {
  cursor: ApplyCursor;
  /** Keys re-applied in this call (a key changed several times counts once per round). */
  keysApplied: number;
  rowsWritten: number;
  rowsDeleted: number;
  /** Keys the transform or the target refused that were no unresolved failure before (absent from older workers). */
  rowsFailed?: number;
  /** The first of them, their errors without row values (status.ts's FailedRow). */
  failures?: { key: string; code: string | null; error: string }[];
  lag: CaptureLag;
  /** Why the applier is slowed or holding, if it is. */
  throttleReason: string | null;
  /** The pacing controller's memory, for the next call; null when the plan's budget is off. */
  pacing?: CopyPacing | null;
  /** A drain's call (ApplyChangesInput.drain): its cut-off round, and whether every change before it is applied. */
  drain?: { round: string | null; done: boolean };
}

/** What `ferry status` shows of a migration's capture. */
export interface CaptureStatus {
  /** Absent or 'trigger' in records from before logical capture. */
  mode: 'trigger' | 'logical';
  installedAt: string | null;
  /** When the trigger and the migration's log entries were removed (after the cleanup gate, an abort or a failure). */
  removedAt: string | null;
  cursor: ApplyCursor;
  /** As of the last call of the applier; null before the first. */
  lag: CaptureLag | null;
  keysApplied: number;
  rowsWritten: number;
  rowsDeleted: number;
  throttleReason: string | null;
  /** The pacing controller's memory, carried from one call of the applier to the next (absent in older records). */
  pacing?: CopyPacing | null;
  /** When the applier first had the target up to date after the backfill; null until then. */
  caughtUpAt: string | null;
  /** The swap of the tables, once done (plans with capture.swap); absent before. */
  swap?: SwapRecord;
  /**
   * Why the capture stopped for good (its slot gone, its trigger dropped or disabled by hand, its
   * apply failed); absent while it runs. Carried by continue-as-new: the migration cannot complete on it.
   */
  stoppedBecause?: string;
  /** The function the capture's triggers run, in schema ferry, as its install named it (absent in older records). */
  functionName?: string;
}

export function newCaptureStatus(mode: CaptureStatus['mode'] = 'trigger'): CaptureStatus {
  return {
    mode,
    installedAt: null,
    removedAt: null,
    cursor: startOfCapture,
    lag: null,
    keysApplied: 0,
    rowsWritten: 0,
    rowsDeleted: 0,
    throttleReason: null,
    caughtUpAt: null,
  };
}

/** The change apply keeps up when no change waits longer than this. */
export const CAUGHT_UP_SECONDS = 5;

/**
 * The lag of a call made after the backfill that counts as caught up: one apply batch or less
 * waits, or none has waited longer than CAUGHT_UP_SECONDS (writers that never pause still leave
 * a round's worth of changes waiting at any moment).
 */
export function isCaughtUp(lag: CaptureLag, plan: { capture?: Capture }): boolean {
  return lag.changesWaiting <= captureOf(plan).applyBatchSize || lag.oldestSeconds <= CAUGHT_UP_SECONDS;
}

/**
 * What a capture that could not be removed leaves on the source, and the statements that remove
 * it by hand (run on the source): a trigger logs every write and refuses a TRUNCATE, a slot holds
 * WAL for ever. The TRUNCATE guard, and a trigger, go with their function (CASCADE).
 */
export function captureLeftOnSource(capture: CaptureStatus, migrationId: string): string {
  const fn = capture.functionName ? `ferry.${capture.functionName}` : 'ferry.ferry_capture_<migration>_<digest> (the function of the trigger named so on the table)';
  const byHand = `DROP FUNCTION IF EXISTS ${fn}() CASCADE; DELETE FROM ferry.change_log WHERE migration_id = '${migrationId.replace(/'/g, "''")}'`;
  if (capture.mode !== 'logical') {
    return `its trigger still logs every write to the source table and refuses a TRUNCATE of it; remove it by hand on the source: ${byHand}`;
  }
  const name = logicalCaptureName(migrationId);
  return (
    `its replication slot ${name} holds the source's WAL for ever; remove it by hand on the source: ` +
    `SELECT pg_drop_replication_slot('${name}'); DROP PUBLICATION IF EXISTS ${name}; ${byHand}`
  );
}

/** What `ferry status` and the report say of a migration's capture, in one line. */
export function describeCapture(capture: CaptureStatus): string {
  const applied = `${capture.keysApplied} changed keys applied (${capture.rowsWritten} rows written, ${capture.rowsDeleted} deleted)`;
  if (capture.swap) {
    const { swap } = capture;
    const old = swap.oldTableAside ? `the old table kept as ${swap.oldTableAside}` : `the old table dropped at ${swap.oldTableDroppedAt}`;
    return `tables swapped at ${swap.swappedAt} (${swap.attempts} attempt${swap.attempts === 1 ? '' : 's'}): ${swap.newName} is the new table, ${old}; ${applied}`;
  }
  const what = capture.mode === 'logical' ? 'replication slot and publication' : 'trigger';
  if (capture.removedAt !== null) return `${what} removed at ${capture.removedAt}; ${applied}`;
  if (capture.installedAt === null) return `${what} not installed yet`;
  const throttled = capture.throttleReason ? `; ${capture.throttleReason}` : '';
  return `${what} since ${capture.installedAt}: ${describeLag(capture.lag)}; ${applied}${throttled}`;
}

/** One line for a person: how far the change apply is behind. */
export function describeLag(lag: CaptureLag | null): string {
  if (lag === null) return 'not measured yet';
  const wal = lag.walBytesHeld == null ? '' : `; the slot holds ${formatBytes(lag.walBytesHeld)} of WAL`;
  if (lag.changesWaiting === 0) return `up to date${wal}`;
  return `${lag.changesWaiting} change${lag.changesWaiting === 1 ? '' : 's'} waiting, oldest ${lag.oldestSeconds.toFixed(1)} s${wal}`;
}

/** Bytes as B, kB or MB (1024-based). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/**
 * Why an abort (or a rejection) is refused once the swap began: the application writes the new
 * table under the old name, and nothing keeps the old table in step any more, so going back
 * would lose writes. Null before the swap.
 */
export function refusalAfterSwap(phase: string, capture: CaptureStatus | null | undefined): string | null {
  const swap = capture?.swap;
  if (phase !== 'swapping' && !swap) return null;
  const aside = swap?.oldTableAside ? ` (the old table is kept as ${swap.oldTableAside})` : '';
  return (
    `the tables ${swap ? 'were swapped' : 'are being swapped'}: the application now writes the new table, and the old one is no longer kept in step${aside}; ` +
    'an abort cannot go back. Approve the cleanup gate to finish'
  );
}
