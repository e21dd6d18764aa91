/**
 * Ferry's client library, for applications (the `ferry-client` package, or `ferry/client`):
 * follow a migration's flags, dual-write, and compare a share of reads between the old and new
 * stores. It needs pg (a peer dependency) and, for metrics, prom-client; never Temporal.
 */
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { createReadComparer, type CompareOptions, type Mismatch, type ReadComparer } from './compare-reads';
import { createReadTally } from './read-tally';
import { createDualWriter, type DualWriter } from './dual-write';
import { createFlagReader, type FlagReader } from './flags';
import type { KillSwitchOptions } from './kill-switch';
import { consoleLogger, type ClientLogger } from './logger';
import { clientMetrics, defaultClientMetrics } from './metrics';
import type { RetryAllowanceOptions } from './retry-allowance';

export { initialFlags, type Flags } from '../lib/flags';
/** The `schema.table` key delete() takes: the same one the migration's tombstones use. */
export { tableKey, type TableRef } from '../lib/ids';
export {
  compareRows,
  createReadComparer,
  ReadMismatchError,
  type CompareOptions,
  type ComparisonResult,
  type Mismatch,
  type MismatchCategory,
  type ReadComparer,
  type ReadComparerOptions,
  type ReadOperations,
  type RowOf,
  type Side,
} from './compare-reads';
export {
  createDualWriter,
  type DeleteOperations,
  type DualWriter,
  type DualWriterOptions,
  type WriteOperations,
  type WriteResult,
} from './dual-write';
export { createFlagReader, defaultClientId, FLAGS_CHANNEL, type FlagReader, type FlagReaderOptions, type FlagSource } from './flags';
export { KillSwitch, type KillSwitchOptions, type KillSwitchState } from './kill-switch';
export { consoleLogger, type ClientLogger } from './logger';
export { clientMetrics, defaultClientMetrics, type ClientMetrics } from './metrics';
export { RetryAllowance, type RetryAllowanceOptions } from './retry-allowance';

export interface FerryClientOptions {
  /** The database that holds Ferry's schema and the new store (the migration's target). */
  pool: pg.Pool;
  /** The migration's plan name. */
  migration: string;
  /** Where metrics go. (Default: prom-client's global registry when prom-client is installed; otherwise no metrics) */
  registry?: Registry;
  /**
   * A name for this application in ferry.flag_acks and ferry.read_comparisons; each process adds its
   * pid and a random suffix, so that replicas given the same name keep rows of their own.
   * (Default: the hostname)
   */
  clientId?: string;
  /** How long flags are cached between reads. (Default: 1000) */
  cacheMs?: number;
  /** Hear flag changes at once over LISTEN. (Default: true) */
  listen?: boolean;
  /** How often this process renews its row in ferry.flag_acks, to be counted as live while idle: 1 to 60000. (Default: 30000) */
  ackEveryMs?: number;
  /** Kill switches of dual writes and dual reads. (Default: 5 errors in 60 s, 5 min cool-down) */
  killSwitch?: KillSwitchOptions;
  /** Defaults of every compareReads call. */
  compare?: CompareOptions & { retries?: RetryAllowanceOptions; retryDelayMs?: number; onMismatch?: (mismatch: Mismatch) => void };
  /** How often this process's dual-read counts are written for the migration's gates. (Default: 10000) */
  readTallyEveryMs?: number;
  logger?: ClientLogger;
}

export interface FerryClient {
  flags: FlagReader;
  dualWriter: DualWriter;
  readComparer: ReadComparer;
  /** dualWriter.write */
  write: DualWriter['write'];
  /** dualWriter.delete */
  delete: DualWriter['delete'];
  /** readComparer.compareReads */
  compareReads: ReadComparer['compareReads'];
  /** Stops listening and timers. Does not end the pool. */
  close(): Promise<void>;
}

export function createFerryClient(options: FerryClientOptions): FerryClient {
  const { pool, migration, registry, logger = consoleLogger, killSwitch } = options;
  const metrics = registry ? clientMetrics(registry) : defaultClientMetrics();
  const flags = createFlagReader({ pool, migration, clientId: options.clientId, cacheMs: options.cacheMs, listen: options.listen, ackEveryMs: options.ackEveryMs, logger, metrics });
  const dualWriter = createDualWriter({ flags, pool, metrics, killSwitch, logger, migration });
  const tally = createReadTally({ pool, migration, clientId: flags.clientId, flushEveryMs: options.readTallyEveryMs });
  const readComparer = createReadComparer({ ...options.compare, flags, metrics, killSwitch, logger, migration, onCompared: tally.record });
  return {
    flags,
    dualWriter,
    readComparer,
    write: (name, operations) => dualWriter.write(name, operations),
    delete: (name, operations) => dualWriter.delete(name, operations),
    compareReads: (name, operations) => readComparer.compareReads(name, operations),
    async close() {
      dualWriter.close();
      await readComparer.close();
      await tally.close();
      await flags.close();
    },
  };
}
