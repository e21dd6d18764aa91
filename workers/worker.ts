/**
 * A Ferry worker: one process per machine, polling the shared task queue. It holds the
 * database connections, resolved from its own environment.
 */
import path from 'node:path';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createDatabases, type ConnectionEnv } from '../activities/connections';
import type { TemporalSettings } from '../lib/settings';
import { watchGates, type GateWatch } from './gate-metrics';
import { createFerryMetrics, DEFAULT_METRICS_HOST, serveMetrics, type FerryMetrics, type MetricsServer } from './metrics';

export interface FerryWorkerOptions {
  temporal: TemporalSettings;
  /** Where connection environment variables are looked up. (Default: process.env) */
  env?: ConnectionEnv;
  /** A prebuilt workflow bundle (tests build one for all workers); otherwise bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Seconds to let running activities finish on shutdown. (Default: 5) */
  shutdownGraceSeconds?: number;
  /** Serve Ferry's metrics on this port at /metrics; 0 or absent: not served. (Default: off) */
  metricsPort?: number;
  /** The interface the metrics endpoint listens on. (Default: 127.0.0.1) */
  metricsHost?: string;
  /** Log lines of the worker itself (the metrics address). (Default: console.log) */
  log?: (line: string) => void;
  /**
   * The longest a Ferry statement may run before Postgres cancels it; Ferry's sessions set it
   * themselves, so a database's own statement_timeout does not reach them.
   * (Default: FERRY_STATEMENT_TIMEOUT_MS, or 300000)
   */
  statementTimeoutMs?: number;
}

/** FERRY_STATEMENT_TIMEOUT_MS, when set: a whole number of milliseconds, at least 1. */
export function statementTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.FERRY_STATEMENT_TIMEOUT_MS;
  if (text === undefined || text.trim() === '') return undefined;
  const ms = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(ms) || ms < 1) {
    throw new Error(`FERRY_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds (at least 1), not "${text}"`);
  }
  return ms;
}

export interface FerryWorker {
  worker: Worker;
  /** What the worker's activities record; served when metricsPort was given. */
  metrics: FerryMetrics;
  /** Where the metrics are served, or null when they are not. */
  metricsUrl: string | null;
  /** Runs until shutdown() or a fatal error, then closes connections. */
  run(): Promise<void>;
  shutdown(): void;
}

/**
 * Exposes the Temporal SDK's own worker metrics (task slots, polls, activity latencies), named
 * temporal_*, at http://host:port/metrics. Once per process, before any worker or connection
 * exists: the SDK's Runtime is created with the first of them and cannot change afterwards.
 */
export function installSdkMetrics(port: number, host = DEFAULT_METRICS_HOST): string {
  const bindAddress = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  Runtime.install({
    telemetryOptions: {
      metrics: {
        metricPrefix: 'temporal_',
        prometheus: { bindAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true },
      },
    },
  });
  return `http://${bindAddress}/metrics`;
}

export const workflowsPath = path.join(__dirname, '..', 'workflows', 'index.ts');

export async function createFerryWorker(options: FerryWorkerOptions): Promise<FerryWorker> {
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const statementTimeoutMs = options.statementTimeoutMs ?? statementTimeoutFromEnv();
  const databases = createDatabases({ env: options.env, ...(statementTimeoutMs ? { statementTimeoutMs } : {}) });
  const metrics = createFerryMetrics();
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: options.temporal.taskQueue,
    activities: createActivities({ databases, metrics }),
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
    shutdownGraceTime: `${options.shutdownGraceSeconds ?? 5}s`,
    // The copier heartbeats its cursor after every batch; sending one a second at most bounds
    // the work a crashed attempt repeats to about a second.
    maxHeartbeatThrottleInterval: '1 second',
  });
  let metricsServer: MetricsServer | null = null;
  let gateWatch: GateWatch | null = null;
  if (options.metricsPort) {
    metrics.collectProcessMetrics();
    gateWatch = await watchGates({ temporal: options.temporal, gauges: metrics.gates });
    const watch = gateWatch;
    const readiness = () =>
      worker.getState() !== 'RUNNING' ? `the worker is ${worker.getState().toLowerCase()}` : watch.connected() ? null : `Temporal at ${options.temporal.address} did not answer`;
    metricsServer = await serveMetrics(metrics.registry, options.metricsPort, options.metricsHost, readiness).catch(async (error: unknown) => {
      await watch.stop();
      throw error;
    });
    (options.log ?? console.log)(`ferry metrics at ${metricsServer.url}`);
  }
  return {
    worker,
    metrics,
    metricsUrl: metricsServer?.url ?? null,
    async run() {
      try {
        await worker.run();
      } finally {
        await gateWatch?.stop();
        await metricsServer?.close();
        await databases.close();
        await connection.close();
      }
    },
    shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    },
  };
}
