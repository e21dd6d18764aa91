/**
 * The client library's Prometheus metrics, in a registry the application chooses. Labels stay
 * bounded: `name` is the application's own name for a query or write, never a value.
 */
import type * as PromClientModule from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

type PromClient = typeof PromClientModule;

/** prom-client is an optional peer of the client package: null when the application has none. */
function loadPromClient(): PromClient | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('prom-client') as PromClient;
  } catch {
    return null;
  }
}

/**
 * The metrics in prom-client's global registry, or none (undefined) when the application does
 * not have prom-client installed: the library then works without metrics.
 */
export function defaultClientMetrics(): ClientMetrics | undefined {
  return loadPromClient() ? clientMetrics() : undefined;
}

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
  /** Kill switches that keep this process off the new store, per path (read, write): 0 when none. */
  killSwitchTripped: Gauge<'migration' | 'path'>;
  /** The flag version this process follows. */
  flagsVersion: Gauge<'migration'>;
}

const byRegistry = new WeakMap<Registry, ClientMetrics>();

/**
 * The metrics in `registry` (Default: prom-client's global registry). Safe to call any number
 * of times: every client in a process shares one set per registry. Needs prom-client.
 */
export function clientMetrics(given?: Registry): ClientMetrics {
  const prom = loadPromClient();
  if (!prom) throw new Error('ferry client metrics need prom-client: install it (npm install prom-client), or leave `registry` out to run without metrics');
  const { Counter, Gauge, Histogram } = prom;
  const registry = given ?? prom.register;
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
      help: 'Kill switches tripped that keep this process off the new store (path: read or write); 0 when none',
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
