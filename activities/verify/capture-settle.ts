/**
 * The in-flight re-read under change capture: a row can still differ after the delay only
 * because the change apply has not applied the source's latest change to it yet. Such rows are
 * waited for until the applier has applied every change the re-read could see, and read again.
 */
import { ApplicationFailure, sleep } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { capturesChanges, capturesLogically } from '../../lib/capture';
import type { Plan } from '../../lib/plan';
import { currentSnapshot } from '../capture/applier';
import { LOCK_POLL_MS, withApplyLock } from '../capture/apply-keys';
import { snapshotReadThrough } from '../capture/logical-reader';
import { keysWithChangesSql } from '../capture/statements';
import { sql, type Sql } from '../sql';
import type { Mismatch } from '../state/ferry-schema';

/**
 * How long a re-read waits, at most, for the change apply, for plans recorded before
 * verify.captureWaitSeconds. A row whose change is not applied by then is a difference: a verdict
 * never waits long on an applier that is paused, failing or far behind.
 */
const CAPTURE_WAIT_SECONDS = 30;
const POLL_MS = 200;
/**
 * Waits a row goes through before a change still waiting makes it in flight: a row the
 * application writes many times a second would otherwise keep the re-read waiting all its time.
 */
const MAX_ROUNDS = 5;

/**
 * A look leaves the apply lock to the apply afterwards for as long as it held it, within these
 * bounds, before any look of the same migration takes it, from this worker process or another:
 * the change apply only tries the lock (every LOCK_POLL_MS), and looks taken back to back kept it
 * out. Under load, with looks of a second and more, the apply fell ever further behind a live
 * writer, so more rows differed and the looks grew longer, and verification never came out clean.
 * The turn's end is kept on the target (ferry.apply_turns), read and written holding the apply
 * lock, by the database's clock: a turn kept by each process alone left the gap after one
 * process's look to another's.
 */
const MIN_TURN_MS = 3 * LOCK_POLL_MS;
const MAX_TURN_MS = 1000;

/** Where the apply's turn after the last look stands, as a look holding the apply lock finds it. */
interface ApplyTurn {
  /** How long the turn still runs, in ms (0 when over). */
  leftMs: number;
  /** This settle took the last look, and another's look has waited since. */
  giveWay: boolean;
}

/**
 * Holding the apply lock: the apply's turn after the last look. A look that finds it running,
 * not being the one that took the last look, says that it waits.
 */
async function applyTurn(targetPool: pg.Pool, migrationId: string, me: string): Promise<ApplyTurn> {
  const { rows } = await targetPool.query<{ ms: number; mine: boolean; others_waiting: boolean }>(
    sql`UPDATE ferry.apply_turns SET others_waiting = others_waiting OR (looked_by <> ${me} AND apply_until > clock_timestamp())
         WHERE migration_id = ${migrationId}
         RETURNING greatest(0, extract(epoch FROM apply_until - clock_timestamp()) * 1000)::float8 AS ms, looked_by = ${me} AS mine, others_waiting`,
  );
  const row = rows[0];
  return { leftMs: Math.ceil(row?.ms ?? 0), giveWay: !!row && row.mine && row.others_waiting };
}

/** Holding the apply lock: the apply's turn, after a look by `me` that held the lock `heldMs`. */
async function leaveApplyTurn(targetPool: pg.Pool, migrationId: string, me: string, heldMs: number): Promise<void> {
  const turnMs = Math.min(MAX_TURN_MS, Math.max(MIN_TURN_MS, heldMs));
  await targetPool.query(
    sql`INSERT INTO ferry.apply_turns AS t (migration_id, apply_until, looked_by, others_waiting)
        VALUES (${migrationId}, clock_timestamp() + make_interval(secs => ${turnMs / 1000}), ${me}, false)
        ON CONFLICT (migration_id) DO UPDATE SET apply_until = EXCLUDED.apply_until, looked_by = EXCLUDED.looked_by, others_waiting = false`,
  );
}

/** The migration's turn goes when the migration ends: only its looks and its apply read it. */
export function forgetApplyTurnSql(migrationId: string): Sql {
  return sql`DELETE FROM ferry.apply_turns WHERE migration_id = ${migrationId}`;
}

/** Reads the rows of some differences again; returns those that still differ. */
export type Reread = (differences: Mismatch[]) => Promise<Mismatch[]>;

/**
 * Rows read again holding the apply lock, and the log looked at right after: `changed` holds the
 * log keys of those with a change waiting in `snapshot`; null when the log could not be looked at
 * (the reader not there in time, or its slot gone).
 */
interface Look {
  still: Mismatch[];
  snapshot: string | null;
  changed: Set<string> | null;
}

/** A settle's rows waiting for the next look, and how long that settle may still wait. */
interface LookRequest {
  open: Mismatch[];
  reread: Reread;
  timeLeft: () => number;
  resolve: (look: Look) => void;
  reject: (error: unknown) => void;
}

/** The longest any of some looks' settles may still wait. */
function longestWait(requests: LookRequest[]): number {
  return Math.max(...requests.map((request) => request.timeLeft()));
}

/** The keys that read some differing rows again: with a lineage column, their groups' source keys. */
export function keysToReadAgain(differences: Mismatch[], lineage: boolean): string[] {
  return [...new Set(lineage ? differences.flatMap((d) => (d.sourceKey == null ? [] : [d.sourceKey])) : differences.map((d) => d.key))];
}

/**
 * Differences that remain once the change apply has caught up with them; without capture, they
 * are returned as they are. The wait ends when the applier has pruned the rows' changes from the
 * log, which it does only after the backfill: before it, or with the applier stopped, the wait
 * runs out and the rows differ.
 *
 * A row is a difference when it differs at a re-read and a look at the log right after finds no
 * change of it waiting, both made holding the migration's apply lock (see withApplyLock): no
 * change can be applied between the two, so a change the applier applied and pruned after the
 * re-read is never taken for none. When the time or the rounds are up, a row with a change
 * waiting is in flight only if this wait saw the applier apply an earlier change of it and it was
 * read again after: the applier is at work on it, and what still differs is a later change.
 */
export function captureSettle(sourcePool: pg.Pool, targetPool: pg.Pool, plan: Plan, migrationId: string, lineage: boolean) {
  const logKey = (d: Mismatch) => (lineage ? (d.sourceKey ?? '') : d.key);
  /**
   * A snapshot whose every visible change is in the log (for logical capture, once the reader got
   * there); null if not in time, or when the slot is gone (the capture was removed: nothing to wait for).
   */
  const logComplete = async (maxMs: number): Promise<string | null> => {
    if (!capturesLogically(plan)) return currentSnapshot(sourcePool);
    try {
      return await snapshotReadThrough(sourcePool, migrationId, maxMs);
    } catch (error) {
      if (error instanceof ApplicationFailure && error.type === 'LogicalCaptureSlotMissing') return null;
      throw error;
    }
  };
  const waiting = async (keys: string[], snapshot: string) =>
    keys.length === 0 ? new Set<string>() : new Set((await sourcePool.query<{ key: string }>(keysWithChangesSql(migrationId, keys, snapshot))).rows.map((r) => r.key));

  /**
   * Looks asked for while another is under way, gathered for the next: one hold of the apply lock,
   * one wait for the reader and one look at the log serve every chunk of the pass whose rows are
   * settling. With one hold each, taken one after another, a pass over a target differing in
   * every chunk took twice as long under logical capture (scripts/bench/verify-damaged.ts).
   */
  let queued: LookRequest[] = [];
  let looking = false;
  /** This settle, among the looks of every process (ferry.apply_turns.looked_by). */
  const me = randomUUID();
  const lookForQueued = async (): Promise<void> => {
    looking = true;
    try {
      while (queued.length > 0) {
        let batch: LookRequest[] = [];
        try {
          // The reader, waited for without the lock (so that the wait under it is only for the WAL
          // written since): looks asked for meanwhile join this one.
          if (capturesLogically(plan)) await logComplete(longestWait(queued));
          let gaveWay = false;
          for (;;) {
            const outcome = await withApplyLock(targetPool, migrationId, async (): Promise<{ looks: Look[] } | { waitMs: number }> => {
              // The apply's turn after the last look, whichever process took it: waited out without
              // the lock. Once it is over, the settle that took the last look gives way, once, to
              // another's look that waited meanwhile: ready at once, it would take look after look.
              const turn = await applyTurn(targetPool, migrationId, me);
              if (turn.leftMs > 0) return { waitMs: turn.leftMs };
              if (turn.giveWay && !gaveWay) {
                gaveWay = true;
                return { waitMs: 2 * LOCK_POLL_MS };
              }
              batch = queued;
              queued = [];
              const heldFrom = Date.now();
              try {
                // Read again even though the callers have just read them: only a read made holding the
                // lock can be held against the log. The callers' read, without it, lets rows that are
                // equal by then skip the lock.
                const stills = await Promise.all(batch.map((request) => request.reread(request.open)));
                if (stills.every((still) => still.length === 0)) return { looks: stills.map((still): Look => ({ still, snapshot: null, changed: new Set() })) };
                // The longest wait any of them may still make: the reader is waited for once, for all.
                const snapshot = await logComplete(longestWait(batch));
                const changed = snapshot === null ? null : await waiting([...new Set(stills.flat().map(logKey))], snapshot);
                return { looks: stills.map((still): Look => ({ still, snapshot, changed: changed && new Set(still.map(logKey).filter((key) => changed.has(key))) })) };
              } finally {
                await leaveApplyTurn(targetPool, migrationId, me, Date.now() - heldFrom);
              }
            });
            if ('looks' in outcome) {
              batch.forEach((request, i) => request.resolve(outcome.looks[i]!));
              break;
            }
            await sleep(outcome.waitMs);
          }
        } catch (error) {
          if (batch.length === 0) [batch, queued] = [queued, []];
          for (const request of batch) request.reject(error);
        }
      }
    } finally {
      looking = false;
    }
  };
  /** `open` read again and held against the log, in the next look. */
  const look = (open: Mismatch[], reread: Reread, timeLeft: () => number): Promise<Look> =>
    new Promise((resolve, reject) => {
      queued.push({ open, reread, timeLeft, resolve, reject });
      if (!looking) void lookForQueued();
    });

  return async function settle(differences: Mismatch[], reread: Reread): Promise<Mismatch[]> {
    if (!capturesChanges(plan)) return differences;
    const deadline = Date.now() + (plan.verify.captureWaitSeconds ?? CAPTURE_WAIT_SECONDS) * 1000;
    const timeLeft = () => Math.max(0, deadline - Date.now());
    /** Rows found differing with no change of theirs waiting: differences, whatever comes after. */
    const differing: Mismatch[] = [];
    let open = differences;
    /** Keys whose waiting changes this wait saw the applier apply. */
    const applied = new Set<string>();
    for (let round = 1; open.length > 0; round += 1) {
      const found = await look(open, reread, timeLeft);
      const { changed } = found;
      // The reader did not get there in time, or the slot is gone: they differ.
      if (changed === null) return [...differing, ...found.still];
      differing.push(...found.still.filter((d) => !changed.has(logKey(d))));
      open = found.still.filter((d) => changed.has(logKey(d)));
      if (open.length === 0) break;
      if (timeLeft() === 0 || round > MAX_ROUNDS) return [...differing, ...open.filter((d) => !applied.has(logKey(d)))];
      // Wait until the applier has applied (and pruned) every change to them the snapshot sees.
      for (let still = changed; still.size > 0; ) {
        if (timeLeft() === 0) return [...differing, ...open];
        await sleep(Math.min(POLL_MS, timeLeft()));
        still = await waiting([...still], found.snapshot!);
      }
      for (const key of changed) applied.add(key);
    }
    return differing;
  };
}
