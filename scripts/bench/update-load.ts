/**
 * A light foreground load, as the application would put on the source during a backfill:
 * single-row UPDATEs at a steady rate from a pool of its own, with their latencies recorded.
 * Each update rewrites a row to its own values (a real write: new row version, WAL, commit)
 * so the copy's correctness check still holds.
 */
import pg from 'pg';
import { SOURCE_TABLE } from './dataset';

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

export function startUpdateLoad(url: string, rows: number, perSecond: number): UpdateLoad {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'ferry-bench-load' });
  pool.on('error', () => {});
  let latencies: number[] = [];
  let owed = 0;
  let inFlight = 0;
  const timer = setInterval(() => {
    owed += (perSecond * TICK_MS) / 1000;
    for (; owed >= 1; owed -= 1) {
      const id = 1 + Math.floor(Math.random() * rows);
      const sent = performance.now();
      inFlight += 1;
      pool
        .query(`UPDATE ${SOURCE_TABLE} SET name = name WHERE id = $1`, [id])
        .then(() => latencies.push(performance.now() - sent))
        .catch(() => {})
        .finally(() => (inFlight -= 1));
    }
  }, TICK_MS);

  return {
    mark() {
      latencies = [];
    },
    figures() {
      const sorted = [...latencies].sort((a, b) => a - b);
      return { updates: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
    },
    async stop() {
      clearInterval(timer);
      while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await pool.end();
    },
  };
}
