/**
 * The metrics a copy emits (rows, batches, throttling, source health), declared next to the
 * copier that records them; workers/metrics.ts registers them in the registry a worker serves.
 * Labels stay bounded: `migration` is the plan name and `shard` the shard index (at most 1024).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Why a copy is slowed or holding, as a bounded label value. */
export const THROTTLE_KINDS = ['rate', 'pacing', 'replica-lag', 'long-query', 'unread-slot', 'probe', 'paused'] as const;
export type ThrottleKind = (typeof THROTTLE_KINDS)[number];

/** What the throttler saw on the source at its last health check. */
export interface SourceHealth {
  replicaLagSeconds: number;
  longestQuerySeconds: number;
  /** The session running the longest query, to find it in pg_stat_activity (null when none runs). */
  longestQueryPid: number | null;
  /** The replication slot nothing reads that holds the most WAL (Ferry's own aside), and how many there are; null when none. */
  unreadSlot: { name: string; walBytes: number; count: number } | null;
}

/** One batch the copier finished. */
export interface BatchRecord {
  /** Rows read from the source: written + already present + failed. */
  rows: number;
  written: number;
  failed: number;
  seconds: number;
  /** The batch size the copier adapted to for its next batch. */
  nextBatchSize: number;
  /** This shard's share of the rows/s limit; null for none. */
  rowsPerSecond: number | null;
}

/** What a copy of one shard records, while it runs on this worker. */
export interface ShardMetrics {
  batch(batch: BatchRecord): void;
  /** The current reason to slow down or hold, or null when copying at full speed. */
  throttle(kind: ThrottleKind | null): void;
  sourceHealth(health: SourceHealth): void;
  /** The copy call returned (once a view; later calls do nothing): see createCopyMetrics' shard(). */
  end(): void;
}

const BATCH_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The copy's metrics, registered in `registry` (never prom-client's global one, so two workers in
 * one process do not mix). The name carries its base unit, and counters end in _total.
 */
export function createCopyMetrics(registry: Registry = new Registry()) {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
    new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });

  const byShard = ['migration', 'shard'] as const;
  const byMigration = ['migration'] as const;
  const metrics = {
    rowsCopied: counter('ferry_rows_copied_total', 'Rows the copier inserted into the target.', byShard),
    rowsSkipped: counter('ferry_rows_skipped_total', 'Rows the copier read that the target already had (kept under the conflict policy).', byShard),
    rowsFailed: counter('ferry_rows_failed_total', 'Rows that could not be copied and went to ferry.failed_records.', byShard),
    batchDuration: histogram('ferry_batch_duration_seconds', 'Time to copy one batch, failed rows isolated included.', byMigration, BATCH_SECONDS_BUCKETS),
    batchSize: gauge('ferry_batch_size_rows', 'The batch size a running copy has adapted to.', byShard),
    rowsPerSecondLimit: gauge('ferry_rows_per_second_limit', "A running copy's share of the rows/s limit; absent when there is none.", byShard),
    throttled: gauge(
      'ferry_throttled',
      `1 while a running copy is slowed or holding for this reason, else 0 (reason: ${THROTTLE_KINDS.join(', ')}).`,
      [...byShard, 'reason'] as const,
    ),
    replicaLag: gauge('ferry_source_replica_lag_seconds', "The longest replay lag of the source's replicas at the last health check.", byMigration),
    longestQuery: gauge('ferry_source_longest_query_seconds', 'The longest-running query on the source (not Ferry\'s) at the last health check.', byMigration),
    unreadSlotWal: gauge(
      'ferry_source_unread_slot_wal_bytes',
      "The most WAL a replication slot nothing reads holds on the source's server (Ferry's own aside) at the last health check.",
      byMigration,
    ),
    copiesRunning: gauge('ferry_copies_running', 'Shard copies running on this worker.', byMigration),
  };

  /** Open views by shard (two attempts of one shard can overlap on a worker) and by migration. */
  const openByShard = new Map<string, number>();
  const openByMigration = new Map<string, number>();
  const opened = (counts: Map<string, number>, key: string, by: number): number => {
    const open = (counts.get(key) ?? 0) + by;
    if (open > 0) counts.set(key, open);
    else counts.delete(key);
    return open;
  };

  return {
    ...metrics,
    /**
     * A view a copy of one shard records through until its end(); the copy counts as running here
     * meanwhile. The shard's gauges go when its last view ends, and the migration's source-health
     * gauges when its last view on this worker ends: the next call may run on another worker,
     * and a gauge left here would keep saying what this worker saw last.
     */
    shard(migration: string, shardIndex: number | null): ShardMetrics {
      const labels = { migration, shard: shardIndex === null ? 'none' : String(shardIndex) };
      const key = `${labels.migration}\u0000${labels.shard}`;
      metrics.copiesRunning.inc({ migration });
      opened(openByMigration, migration, 1);
      const setThrottle = (kind: ThrottleKind | null) => {
        for (const reason of THROTTLE_KINDS) metrics.throttled.set({ ...labels, reason }, reason === kind ? 1 : 0);
      };
      if (opened(openByShard, key, 1) === 1) setThrottle(null);
      let ended = false;
      const live = () => !ended;
      return {
        batch(batch) {
          metrics.rowsCopied.inc(labels, batch.written);
          metrics.rowsSkipped.inc(labels, Math.max(0, batch.rows - batch.written - batch.failed));
          metrics.rowsFailed.inc(labels, batch.failed);
          metrics.batchDuration.observe({ migration }, batch.seconds);
          if (!live()) return;
          metrics.batchSize.set(labels, batch.nextBatchSize);
          if (batch.rowsPerSecond === null) metrics.rowsPerSecondLimit.remove(labels);
          else metrics.rowsPerSecondLimit.set(labels, batch.rowsPerSecond);
        },
        throttle(kind) {
          if (live()) setThrottle(kind);
        },
        sourceHealth(health) {
          if (!live()) return;
          metrics.replicaLag.set({ migration }, health.replicaLagSeconds);
          metrics.longestQuery.set({ migration }, health.longestQuerySeconds);
          metrics.unreadSlotWal.set({ migration }, health.unreadSlot?.walBytes ?? 0);
        },
        end() {
          if (ended) return;
          ended = true;
          metrics.copiesRunning.dec({ migration });
          if (opened(openByShard, key, -1) === 0) {
            metrics.batchSize.remove(labels);
            metrics.rowsPerSecondLimit.remove(labels);
            for (const reason of THROTTLE_KINDS) metrics.throttled.remove({ ...labels, reason });
          }
          if (opened(openByMigration, migration, -1) === 0) {
            metrics.replicaLag.remove({ migration });
            metrics.longestQuery.remove({ migration });
            metrics.unreadSlotWal.remove({ migration });
          }
        },
      };
    },
  };
}

export type CopyMetrics = ReturnType<typeof createCopyMetrics>;

/** The shard a copy belongs to, read from its workflow id (lib/ids.ts builds it). */
export { shardIndexOf } from '../../lib/ids';
