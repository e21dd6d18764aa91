/**
 * The client library's Prometheus metrics, in a registry the application chooses. Labels stay
 * bounded: `name` is the application's own name for a query or write, never a value.
 */
import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';

export interface ClientMetrics {
  /** Comparisons by result (match, mismatch, unverified, error, skipped) and reason. */
  readComparisons: Counter<'name' | 'result' | 'reason'>;
  /** Read durations per name and side (old, new). */
  readDuration: Histogram<'name' | 'side'>;
  /** Dual writes whose old and new sides touched different numbers of rows. */
  writeMismatches: Counter<'name'>;
  /** Failed writes per side. */
  writeErrors: Counter<'name' | 'side'>;
  /** New-side writes not made because the kill switch was tripped. */
  writesSkipped: Counter<'name'>;
  /** 1 while the kill switch keeps this process off the new store, per path (read, write). */
  killSwitchTripped: Gauge<'migration' | 'path'>;
  /** The flag version this process follows. */
  flagsVersion: Gauge<'migration'>;
}

const byRegistry = new WeakMap<Registry, ClientMetrics>();

/**
 * The metrics in `registry` (Default: prom-client's global registry). Safe to call any number
 * of times: every client in a process shares one set per registry.
 */
export function clientMetrics(registry: Registry = globalRegistry): ClientMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const metrics: ClientMetrics = {
    readComparisons: new Counter({
      name: 'ferry_client_read_comparisons_total',
      help: 'Reads compared between the old and new stores, by result and reason',
      labelNames: ['name', 'result', 'reason'],
      registers,
    }),
    readDuration: new Histogram({
      name: 'ferry_client_read_duration_seconds',
      help: 'Time a read took, per store (side: old or new)',
      labelNames: ['name', 'side'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    writeMismatches: new Counter({
      name: 'ferry_client_dual_write_mismatches_total',
      help: 'Dual writes whose old and new sides touched different numbers of rows',
      labelNames: ['name'],
      registers,
    }),
    writeErrors: new Counter({
      name: 'ferry_client_dual_write_errors_total',
      help: 'Writes that failed, per store (side: old or new)',
      labelNames: ['name', 'side'],
      registers,
    }),
    writesSkipped: new Counter({
      name: 'ferry_client_dual_write_skipped_total',
      help: 'New-store writes not made because the kill switch was tripped (the new store misses them)',
      labelNames: ['name'],
      registers,
    }),
    killSwitchTripped: new Gauge({
      name: 'ferry_client_kill_switch_tripped',
      help: '1 while the kill switch keeps this process off the new store (path: read or write)',
      labelNames: ['migration', 'path'],
      registers,
    }),
    flagsVersion: new Gauge({
      name: 'ferry_client_flags_version',
      help: 'The flag version this process follows (0: no flags set)',
      labelNames: ['migration'],
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
