/**
 * How far a migration has got: the one declaration of a shard's progress (heartbeated by the
 * copier, carried by the shard workflow, summed by the migration, read live by the operator API),
 * and the arithmetic for watching it: a smoothed rows/s rate, the time left, text progress bars.
 * Pure; no I/O, no clock.
 */

import type { CopyPacing } from './pacing-controller';

/** How far a shard has copied. Every side of the copy speaks in these four fields. */
export interface ShardCounts {
  /** Last key copied; null before the first batch. */
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
  rowsFailed: number;
}

/** What the copier heartbeats while a copy call runs, and returns at its end: the call's own counts from its starting cursor. */
export interface CopyProgress extends ShardCounts {
  batches: number;
  /** The batch size the copier has adapted to. */
  batchSize: number;
  /** Why the copier is slowed or holding right now, if it is. */
  throttleReason: string | null;
  /** The pacing controller's memory, for the next call; null with the controller off. */
  pacing?: CopyPacing | null;
}

/**
 * A copier's heartbeat as the operator reads it from Temporal; null when it is not one (an older
 * worker's, or none yet). Only the fields a live view adds are checked.
 */
export function copyProgressOf(details: unknown): (Pick<CopyProgress, 'cursor' | 'rowsRead' | 'rowsWritten'> & { throttleReason?: string | null }) | null {
  if (typeof details !== 'object' || details === null) return null;
  const { cursor, rowsRead, rowsWritten, throttleReason } = details as Record<string, unknown>;
  if (typeof rowsRead !== 'number' || typeof rowsWritten !== 'number') return null;
  return {
    cursor: typeof cursor === 'string' ? cursor : null,
    rowsRead,
    rowsWritten,
    // What holds the copy back now: a call runs for a minute, its shard reports at the end.
    ...(typeof throttleReason === 'string' || throttleReason === null ? { throttleReason } : {}),
  };
}

/**
 * A running shard's counts with its copy call's last heartbeat added: the shard reports only
 * between calls, the heartbeat says how far the call under way has got. Changes nothing recorded.
 */
export function addLiveCopy(shard: ShardCounts, live: Pick<CopyProgress, 'cursor' | 'rowsRead' | 'rowsWritten'>): void {
  shard.cursor = live.cursor ?? shard.cursor;
  shard.rowsRead += live.rowsRead;
  shard.rowsWritten += live.rowsWritten;
}

/** What the rate estimator keeps between samples. */
export interface RateState {
  /** When the last sample was taken (ms since the epoch). */
  atMs: number;
  /** The most rows read seen so far: live figures can dip for a moment, progress does not. */
  rows: number;
  /** Rows per second, smoothed; null until two samples are apart in time. */
  rowsPerSecond: number | null;
}

/** The shortest interval the first rate is measured over. */
export const FIRST_RATE_MIN_SECONDS = 1;

/** Half of a past rate's weight is gone after this long. (Default: 10 s) */
export const RATE_HALF_LIFE_SECONDS = 10;

/**
 * The rate after one more sample: an exponential moving average of the rate between samples,
 * weighted by the time between them, so irregular refreshes smooth the same. A sample with
 * fewer rows than seen before counts as no progress (a shard's live count can briefly lag).
 */
export function nextRate(state: RateState | null, sample: { atMs: number; rows: number }, halfLifeSeconds = RATE_HALF_LIFE_SECONDS): RateState {
  if (!state) return { atMs: sample.atMs, rows: sample.rows, rowsPerSecond: null };
  const seconds = (sample.atMs - state.atMs) / 1000;
  if (!(seconds > 0)) return { ...state, rows: Math.max(state.rows, sample.rows) };
  // The first rate is taken as it is, unsmoothed: over a blink between two refreshes (a slow one
  // then a fast one) it would be noise, so it waits for a second's worth of copying.
  if (state.rowsPerSecond === null && seconds < FIRST_RATE_MIN_SECONDS) return state;
  const instant = Math.max(0, sample.rows - state.rows) / seconds;
  const weight = 1 - Math.exp((-seconds * Math.LN2) / halfLifeSeconds);
  const rowsPerSecond = state.rowsPerSecond === null ? instant : state.rowsPerSecond + weight * (instant - state.rowsPerSecond);
  return { atMs: sample.atMs, rows: Math.max(state.rows, sample.rows), rowsPerSecond };
}

/** Rows still to read by the estimate; null when there is no estimate. Never negative. */
export function remainingRows(estimatedRows: number | null | undefined, rowsRead: number): number | null {
  if (estimatedRows === null || estimatedRows === undefined || !Number.isFinite(estimatedRows)) return null;
  return Math.max(0, estimatedRows - rowsRead);
}

/** Seconds until the remaining rows are read at this rate; null when either is unknown or the rate is 0. */
export function etaSeconds(remaining: number | null, rowsPerSecond: number | null): number | null {
  if (remaining === null || rowsPerSecond === null) return null;
  if (remaining === 0) return 0;
  if (!(rowsPerSecond > 0)) return null;
  return remaining / rowsPerSecond;
}

/** A fraction clamped to 0..1 (NaN counts as 0). */
export function clampFraction(fraction: number): number {
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : fraction === Infinity ? 1 : 0;
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/**
 * A bar `width` characters wide, filled to `fraction`: with `unicode`, in eighths of a cell
 * (█▉▊…░); otherwise with `#` and `-`, for terminals and logs that are plain ASCII.
 */
export function progressBar(fraction: number, width: number, unicode = true): string {
  const cells = Math.max(0, Math.floor(width));
  const filled = clampFraction(fraction) * cells;
  if (!unicode) {
    const whole = Math.floor(filled);
    return '#'.repeat(whole) + '-'.repeat(cells - whole);
  }
  const eighths = Math.floor(filled * 8);
  const whole = Math.floor(eighths / 8);
  const part = whole < cells ? EIGHTHS[eighths % 8]! : '';
  return '█'.repeat(whole) + part + '░'.repeat(cells - whole - (part ? 1 : 0));
}

/** A duration to read at a glance: 45s, 3m 05s, 2h 07m, 3d 04h. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return 'unknown';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor((s % 86_400) / 3600))}h`;
}
