/**
 * How fast changes arrive in the change log, per migration: the rate the change apply must keep
 * up with (see keepUpFloor). Counted from the log's seq, at most once a second and always before
 * a prune (entries pruned uncounted would read as a quiet application). The rate is the median
 * of the last few seconds: what the application sustains, not a one-off bulk write, which the
 * apply drains at the paced rate. Kept in the worker process, so each apply call starts with the
 * rate the last one measured; a migration not counted for FORGET_AFTER_MS is forgotten (it ended,
 * or its apply stopped, and a rate that old says nothing of now).
 */
import type pg from 'pg';
import { median } from '../copy/pacing-sampler';
import { lastLogSeqSql, logArrivalsSql } from './statements';

/** The shortest window a rate is measured over: shorter ones swing with a writer's bursts. */
export const ARRIVALS_WINDOW_MS = 1000;
/** The windows the median is taken over, and how many it needs. */
const WINDOWS_KEPT = 5;
const WINDOWS_NEEDED = 3;
/** A migration whose arrivals were not counted this long is forgotten, and measured afresh if its apply runs again. */
export const FORGET_AFTER_MS = 60_000;

interface Arrivals {
  /** The last entry counted, and when. */
  lastSeq: string;
  countedAt: number;
  /** When the current window began, and the entries counted in it so far. */
  windowFrom: number;
  counted: number;
  /** Entries per second in the last whole windows, oldest first. */
  windows: number[];
}

const byMigration = new Map<string, Arrivals>();

function forgetStale(now: number): void {
  for (const [migrationId, arrivals] of byMigration) if (now - arrivals.countedAt >= FORGET_AFTER_MS) byMigration.delete(migrationId);
}

/** Changes per second arriving for the migration: the median of the last windows; null while too few have ended. */
export function arrivalRate(migrationId: string): number | null {
  const windows = byMigration.get(migrationId)?.windows ?? [];
  return windows.length < WINDOWS_NEEDED ? null : median(windows);
}

/**
 * Counts the entries that arrived since the last count, when a window has passed or `beforePrune`.
 * An entry whose transaction commits after a later one was counted is missed (seq comes from the
 * insert, not the commit): the rate reads a little low, never high.
 */
export async function countArrivals(pool: pg.Pool, migrationId: string, beforePrune = false): Promise<void> {
  const now = Date.now();
  forgetStale(now);
  const known = byMigration.get(migrationId);
  if (!known) {
    const last = (await pool.query<{ last: string | null }>(lastLogSeqSql(migrationId))).rows[0]?.last ?? '0';
    byMigration.set(migrationId, { lastSeq: last, countedAt: now, windowFrom: now, counted: 0, windows: [] });
    return;
  }
  if (!beforePrune && now - known.windowFrom < ARRIVALS_WINDOW_MS) return;
  const row = (await pool.query<{ arrived: number; last: string | null }>(logArrivalsSql(migrationId, known.lastSeq))).rows[0];
  known.countedAt = now;
  known.counted += Number(row?.arrived ?? 0);
  known.lastSeq = row?.last ?? known.lastSeq;
  const elapsed = now - known.windowFrom;
  if (elapsed < ARRIVALS_WINDOW_MS) return;
  known.windows = [...known.windows, known.counted / (elapsed / 1000)].slice(-WINDOWS_KEPT);
  known.windowFrom = now;
  known.counted = 0;
}
