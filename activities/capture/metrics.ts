/**
 * The metrics the change apply emits, declared next to it; workers/metrics.ts registers them in
 * the registry a worker serves. `migration` is the plan name, as for the copy's metrics.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export function createCaptureMetrics(registry: Registry = new Registry()) {
  const byMigration = ['migration'] as const;
  return {
    captureChangesWaiting: new Gauge({
      name: 'ferry_capture_changes_waiting',
      help: 'Captured changes logged and not yet applied, at the last call of the change apply.',
      labelNames: byMigration,
      registers: [registry],
    }),
    captureOldestSeconds: new Gauge({
      name: 'ferry_capture_oldest_change_seconds',
      help: 'Age of the oldest captured change not yet applied; 0 when none waits.',
      labelNames: byMigration,
      registers: [registry],
    }),
    captureWalBytesHeld: new Gauge({
      name: 'ferry_capture_wal_held_bytes',
      help: 'Logical capture: bytes of WAL the replication slot holds on the source, at the last call of the change apply.',
      labelNames: byMigration,
      registers: [registry],
    }),
    captureKeysApplied: new Counter({
      name: 'ferry_capture_keys_applied_total',
      help: 'Changed keys the change apply wrote to the target (re-read from the source).',
      labelNames: byMigration,
      registers: [registry],
    }),
  };
}

export type CaptureMetrics = ReturnType<typeof createCaptureMetrics>;
