/**
 * Read tally: this process's dual-read comparisons, counted and written to Ferry's schema every
 * few seconds, so the person approving a gate sees how often old and new reads differ.
 */
import type pg from 'pg';
import type { ComparisonResult } from './compare-reads';

export interface ReadTally {
  record(outcome: ComparisonResult): void;
  /** Writes the counts now (done every few seconds anyway). Never throws. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createReadTally(options: { pool: pg.Pool; migration: string; clientId: string; flushEveryMs?: number }): ReadTally {
  let compared = 0;
  let mismatched = 0;
  let written = { compared: 0, mismatched: 0 };
  // The row is this process's alone (its client id carries its pid and a random suffix) and its
  // counts only grow: a flush that lands after a later one (the timer's and close()'s, on two
  // connections) must not lower them.
  const flush = async () => {
    if (compared === written.compared && mismatched === written.mismatched) return;
    const counts = { compared, mismatched };
    try {
      await options.pool.query(
        `INSERT INTO ferry.read_comparisons (migration, client_id, compared, mismatched) VALUES ($1, $2, $3, $4)
         ON CONFLICT (migration, client_id) DO UPDATE
           SET compared = greatest(ferry.read_comparisons.compared, EXCLUDED.compared),
               mismatched = greatest(ferry.read_comparisons.mismatched, EXCLUDED.mismatched), updated_at = now()`,
        [options.migration, options.clientId, counts.compared, counts.mismatched],
      );
      written = counts;
    } catch {
      // No Ferry schema yet, or the database is away: the counts go with the next flush.
    }
  };
  const timer = setInterval(() => void flush(), options.flushEveryMs ?? 10_000);
  timer.unref();
  return {
    record(outcome) {
      // A failing new read counts against cutover as much as a differing one; so does a
      // difference past the retry allowance (unverified), or a burst would hide all but a few.
      if (outcome.result === 'match') compared += 1;
      else if (outcome.result === 'mismatch' || outcome.result === 'unverified' || (outcome.result === 'error' && outcome.reason === 'new-error')) {
        compared += 1;
        mismatched += 1;
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
