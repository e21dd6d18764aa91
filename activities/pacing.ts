/**
 * Pacing of the copy loop: how big the next batch is and how long to wait before it. Pure
 * arithmetic, so it is tested without a database.
 */

/** The smallest batch the copier adapts down to. */
export const MIN_BATCH_SIZE = 10;

/**
 * The next batch size: toward the size that would take `targetMs`, changing at most 2x per
 * batch so one slow batch (a checkpoint, a lock) does not collapse it. A batch cut short by the
 * end of the range says nothing about speed and keeps the size.
 */
export function nextBatchSize(options: {
  current: number;
  rows: number;
  elapsedMs: number;
  targetMs: number;
  max: number;
}): number {
  const { current, rows, elapsedMs, targetMs, max } = options;
  if (targetMs <= 0) return max;
  if (rows < current) return Math.min(current, max);
  const ideal = (rows * targetMs) / Math.max(elapsedMs, 1);
  const bounded = Math.min(current * 2, Math.max(current / 2, ideal));
  return Math.max(MIN_BATCH_SIZE, Math.min(max, Math.round(bounded)));
}

/** Milliseconds to wait so that `rows` copied in `elapsedMs` stay within `rowsPerSecond`. */
export function rateDelayMs(rows: number, elapsedMs: number, rowsPerSecond: number | null): number {
  if (rowsPerSecond === null || rowsPerSecond <= 0) return 0;
  return Math.max(0, (rows / rowsPerSecond) * 1000 - elapsedMs);
}

/** Errors that belong to a row (bad value, constraint), not to the database or the plan. */
export function isRowError(sqlstate: string | undefined): boolean {
  if (!sqlstate) return false;
  return sqlstate.startsWith('22') || sqlstate.startsWith('23') || sqlstate === 'P0001';
}
