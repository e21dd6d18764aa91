/**
 * The metrics the change apply emits, declared next to it; workers/metrics.ts registers them in
 * the registry a worker serves. `migration` is the plan name, as for the copy's metrics.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { CaptureLag } from '../../lib/capture';

/**
 * A migration's capture gauges on a worker that has run no call of its change apply for this
 * long are taken away: a call lasts seconds, so another worker holds the current figures, or the
 * capture has ended. Kept, a worker's last figures stood for ever beside the current ones.
 */
export const CAPTURE_GAUGE_TTL_MS = 60_000;

export function createCaptureMetrics(registry: Registry = new Registry(), now: () => number = Date.now) {
  const byMigration = ['migration'] as const;
  const lastSet = new Map<string, number>();
  const gauges: Gauge<'migration'>[] = [];
  // Run at every scrape, before a gauge's series are read.
  const forgetStale = () => {
    const cutoff = now() - CAPTURE_GAUGE_TTL_MS;
    for (const [migration, at] of lastSet) {
      if (at >= cutoff) continue;
      lastSet.delete(migration);
      for (const gauge of gauges) gauge.remove({ migration });
    }
  };
  const gauge = (name: string, help: string) => {
    const created = new Gauge({ name, help, labelNames: byMigration, registers: [registry], collect: forgetStale });
    gauges.push(created);
    return created;
  };
  const captureChangesWaiting = gauge('ferry_capture_changes_waiting', 'Captured changes logged and not yet applied, at the last call of the change apply.');
  const captureOldestSeconds = gauge('ferry_capture_oldest_change_seconds', 'Age of the oldest captured change not yet applied; 0 when none waits.');
  const captureWalBytesHeld = gauge(
    'ferry_capture_wal_held_bytes',
    'Logical capture: bytes of WAL the replication slot holds on the source, at the last call of the change apply.',
  );
  return {
    captureChangesWaiting,
    captureOldestSeconds,
    captureWalBytesHeld,
    captureKeysApplied: new Counter({
      name: 'ferry_capture_keys_applied_total',
      help: 'Changed keys the change apply wrote to the target (re-read from the source).',
      labelNames: byMigration,
      registers: [registry],
    }),
    /** The lag a call of the change apply ended with; the WAL held only under logical capture. */
    recordCaptureLag(migration: string, lag: Pick<CaptureLag, 'changesWaiting' | 'oldestSeconds' | 'walBytesHeld'>, logical: boolean): void {
      if (logical) captureWalBytesHeld.set({ migration }, lag.walBytesHeld ?? 0);
      captureChangesWaiting.set({ migration }, lag.changesWaiting);
      captureOldestSeconds.set({ migration }, lag.oldestSeconds);
      lastSet.set(migration, now());
    },
  };
}

export type CaptureMetrics = ReturnType<typeof createCaptureMetrics>;
