/**
 * A light foreground load, as the application would put on the source during a backfill:
 * single-row UPDATEs at a steady rate from a pool of its own, with their latencies recorded.
 * Each update rewrites a row to its own values (a real write: new row version, WAL, commit)
 * so the copy's correctness check still holds.
 */
import pg from 'pg';
import { SOURCE_TABLE, TARGET_TABLE } from './dataset';

const TICK_MS = 10;

export interface LoadFigures {
  updates: number;
  p50Ms: number;
  p99Ms: number;
}

export interface UpdateLoad {
  /** Starts recording a fresh set of latencies. */
  mark(): void;
  /** Latencies since the last mark. */
  figures(): LoadFigures;
  stop(): Promise<void>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Calls `write` with a random key `perSecond` times a second, without waiting for earlier calls;
 * `stop` ends the calls and waits for those still running.
 */
function atRate(rows: number, perSecond: number, write: (id: number) => Promise<unknown>): { stop(): Promise<void> } {
  let owed = 0;
  let inFlight = 0;
  const timer = setInterval(() => {
    owed += (perSecond * TICK_MS) / 1000;
    for (; owed >= 1; owed -= 1) {
      inFlight += 1;
      write(1 + Math.floor(Math.random() * rows)).finally(() => (inFlight -= 1));
    }
  }, TICK_MS);
  return {
    async stop() {
      clearInterval(timer);
      while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    },
  };
}

export function startUpdateLoad(url: string, rows: number, perSecond: number): UpdateLoad {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'ferry-bench-load' });
  pool.on('error', () => {});
  let latencies: number[] = [];
  const updates = atRate(rows, perSecond, (id) => {
    const sent = performance.now();
    return pool
      .query(`UPDATE ${SOURCE_TABLE} SET name = name WHERE id = $1`, [id])
      .then(() => latencies.push(performance.now() - sent))
      .catch(() => {});
  });
  return {
    mark() {
      latencies = [];
    },
    figures() {
      const sorted = [...latencies].sort((a, b) => a - b);
      return { updates: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
    },
    async stop() {
      await updates.stop();
      await pool.end();
    },
  };
}

/** Dual writes a second while verification runs, and how far the target's write trails the source's. */
export const DUAL_WRITES_PER_SECOND = 500;
export const DUAL_WRITE_LAG_MS = 20;

export interface DualWriteLoad {
  /** Rows written to both sides so far. */
  written(): number;
  /** Writes that failed on either side (the sides may then differ for good). */
  failed(): number;
  /** Stops, once every write in flight has reached both sides. */
  stop(): Promise<void>;
}

/**
 * An application that writes both stores, as during a migration with dual writes: each write
 * changes a random row's amount on the source, then, `lagMs` later, the same row's cents on the
 * target. Between the two the sides differ, as they do for a verifier reading a live table; once
 * both landed the target is again the transform of the source.
 */
export function startDualWriteLoad(sourceUrl: string, targetUrl: string, rows: number, perSecond: number, lagMs: number): DualWriteLoad {
  const source = new pg.Pool({ connectionString: sourceUrl, max: 4, application_name: 'ferry-bench-dual-writes' });
  const target = new pg.Pool({ connectionString: targetUrl, max: 4, application_name: 'ferry-bench-dual-writes' });
  source.on('error', () => {});
  target.on('error', () => {});
  let written = 0;
  let failed = 0;
  const writes = atRate(rows, perSecond, async (id) => {
    try {
      await source.query(`UPDATE ${SOURCE_TABLE} SET amount = amount + 0.01 WHERE id = $1`, [id]);
      await new Promise((resolve) => setTimeout(resolve, lagMs));
      await target.query(`UPDATE ${TARGET_TABLE} SET amount_cents = amount_cents + 1 WHERE id = $1`, [id]);
      written += 1;
    } catch {
      failed += 1;
    }
  });
  return {
    written: () => written,
    failed: () => failed,
    async stop() {
      await writes.stop();
      await Promise.all([source.end(), target.end()]);
    },
  };
}
