/**
 * The pacing signals of a worker process: one sampler per database and set of tables, shared by
 * every shard copying them, so the database is sampled once per interval however many shards
 * run, and shards that start later take the baseline measured before the first one copied.
 * Only a cache: a new worker measures again, and the controller's state lives in the workflow.
 */
import { log } from '@temporalio/activity';
import type pg from 'pg';
import type { PacingBaseline, PacingSample } from '../../lib/pacing-controller';
import { openPacingSampler, type PacingSampler, type TableName } from './pacing-sampler';

/** How long the foreground is watched before a copy starts. */
export const BASELINE_MS = 1500;
/**
 * Before a look with the copy idle, the time the copy's last batch needs to leave the database
 * (its WAL flushed, its sessions idle) so the look sees the application alone.
 */
const SETTLE_MS = 1000;
/** A sampler nobody asked for in this long closes its connection. */
const IDLE_MS = 60_000;

type Felt = Omit<PacingSample, 'copiedRowsPerSecond'>;

export interface PacingSignals {
  /** The foreground before the copy, measured once for these tables in this process. */
  baseline(): Promise<PacingBaseline>;
  /** The latest sample, taken anew when the last is `intervalMs` old; numbered so a caller sees each once. */
  latest(intervalMs: number): Promise<{ number: number; sample: Felt }>;
  sampleNumber(): number;
  /**
   * The foreground measured anew while the copies of this process wait (they wait out `looking()`
   * before each batch); null when the database did not answer. One look for every caller at once.
   */
  idleLook(): Promise<PacingBaseline | null>;
  /** The look in progress, for a copy to wait out before its next batch; null when there is none. */
  looking(): Promise<unknown> | null;
}

export interface WatchedDatabase {
  pool: pg.Pool;
  /** Tables of this database whose lock waits count. */
  tables: TableName[];
}

interface Entry {
  signals: PacingSignals;
  lastUsed: number;
}

const entries = new Map<string, Entry>();
const poolIds = new WeakMap<pg.Pool, number>();
let nextPoolId = 1;

function keyOf(databases: WatchedDatabase[]): string {
  return JSON.stringify(
    databases.map((d) => {
      if (!poolIds.has(d.pool)) poolIds.set(d.pool, nextPoolId++);
      return [poolIds.get(d.pool), d.tables.map((t) => [t.schema, t.table])];
    }),
  );
}

export function sharedPacingSignals(databases: WatchedDatabase[]): PacingSignals {
  const key = keyOf(databases);
  const found = entries.get(key);
  if (found) {
    found.lastUsed = Date.now();
    return found.signals;
  }
  const entry: Entry = { signals: createSignals(databases, () => closeIfIdle(key)), lastUsed: Date.now() };
  entries.set(key, entry);
  return entry.signals;
}

function closeIfIdle(key: string): boolean {
  const entry = entries.get(key);
  if (!entry || Date.now() - entry.lastUsed < IDLE_MS) return false;
  entries.delete(key);
  return true;
}

function createSignals(databases: WatchedDatabase[], idle: () => boolean): PacingSignals {
  let samplers: Promise<PacingSampler[]> | null = null;
  let baseline: Promise<PacingBaseline> | null = null;
  let latest: { number: number; at: number; sample: Felt } | null = null;
  let sampling: Promise<void> | null = null;
  let looking: Promise<PacingBaseline | null> | null = null;

  const open = () => {
    samplers ??= Promise.all(databases.map((d) => openPacingSampler(d.pool.options, d.tables, { writes: d.tables })));
    return samplers;
  };
  const closeWhenIdle = setInterval(() => {
    if (!idle()) return;
    clearInterval(closeWhenIdle);
    void samplers?.then((all) => Promise.all(all.map((s) => s.close()))).catch(() => {});
  }, IDLE_MS / 4);
  closeWhenIdle.unref();

  return {
    baseline() {
      baseline ??= open()
        .then(async (all) => mergeBaselines(await Promise.all(all.map((s) => s.baseline(BASELINE_MS)))))
        .catch((error: unknown) => {
          // Without a baseline the latency signal stays silent; the others still count.
          log.warn(`pacing: no baseline of the foreground (${String(error)}); latency is not watched`);
          return { latencyMs: null, canaryMs: null, activeBackends: 0 };
        });
      return baseline;
    },
    async latest(intervalMs) {
      if (!latest || Date.now() - latest.at >= intervalMs) {
        sampling ??= (async () => {
          try {
            const all = await open();
            const sample = mergeSamples(await Promise.all(all.map((s) => s.sample(0))));
            latest = { number: (latest?.number ?? 0) + 1, at: Date.now(), sample };
          } catch (error) {
            // A failed sample leaves the rate where it is: pacing must never fail a copy.
            log.warn(`pacing: sampling the database failed (${String(error)})`);
            // Closed, not dropped: a sampler's canaries commit until it is closed.
            void samplers?.then((all) => Promise.all(all.map((s) => s.close()))).catch(() => {});
            samplers = null;
          } finally {
            sampling = null;
          }
        })();
        await sampling;
      }
      return latest ?? { number: 0, sample: QUIET };
    },
    sampleNumber: () => latest?.number ?? 0,
    idleLook() {
      looking ??= (async () => {
        try {
          await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
          const all = await open();
          return mergeBaselines(await Promise.all(all.map((s) => s.baseline(BASELINE_MS))));
        } catch (error) {
          log.warn(`pacing: no look at the foreground with the copy idle (${String(error)})`);
          return null;
        } finally {
          looking = null;
        }
      })();
      return looking;
    },
    looking: () => looking,
  };
}

const QUIET: Felt = {
  latencyMs: null,
  latencySource: 'canary',
  canaryMs: null,
  transactionsPerSecond: null,
  lockWaits: 0,
  activeBackends: 0,
  walBytesPerSecond: 0,
  checkpointsRequested: 0,
  replicaLagSeconds: 0,
};

/** Several databases as one: the worst latency and lag, the sum of the rest. */
function mergeSamples(samples: PacingSample[]): Felt {
  const sum = (pick: (s: PacingSample) => number) => samples.reduce((total, s) => total + pick(s), 0);
  return {
    latencyMs: worst(samples.map((s) => s.latencyMs)),
    latencySource: samples.some((s) => s.latencySource === 'statements') ? 'statements' : 'canary',
    canaryMs: worst(samples.map((s) => s.canaryMs)),
    transactionsPerSecond: samples.every((s) => s.transactionsPerSecond === null) ? null : sum((s) => s.transactionsPerSecond ?? 0),
    lockWaits: sum((s) => s.lockWaits),
    activeBackends: sum((s) => s.activeBackends),
    walBytesPerSecond: sum((s) => s.walBytesPerSecond),
    checkpointsRequested: sum((s) => s.checkpointsRequested),
    replicaLagSeconds: Math.max(0, ...samples.map((s) => s.replicaLagSeconds)),
  };
}

function mergeBaselines(baselines: PacingBaseline[]): PacingBaseline {
  return {
    latencyMs: worst(baselines.map((b) => b.latencyMs)),
    canaryMs: worst(baselines.map((b) => b.canaryMs ?? null)),
    activeBackends: baselines.reduce((n, b) => n + b.activeBackends, 0),
  };
}

/** The largest of the readings there are; null when there is none. */
function worst(readings: (number | null)[]): number | null {
  const found = readings.filter((v): v is number => v !== null);
  return found.length ? Math.max(...found) : null;
}
