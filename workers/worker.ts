/**
 * A Ferry worker: one process per machine, polling the shared task queue. It holds the
 * database connections, resolved from its own environment.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { connectWorkerConnection } from './temporal-connection';
import type { Logger } from '@temporalio/common';
import { Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createDatabases, type ConnectionEnv } from '../activities/connections';
import { transformDirFromEnv } from '../activities/transform/load';
import type { TemporalSettings } from '../lib/settings';
import { watchGates, type GateWatch } from './gate-metrics';
import { createFerryMetrics, DEFAULT_METRICS_HOST, serveMetrics, type FerryMetrics, type MetricsServer } from './metrics';
import { EncryptingPayloadCodec, payloadKeysFromEnv, type PayloadKey } from './payload-codec';
import { redactActivityErrors } from './redaction';
import { workerTracing, type WorkerTracing } from './tracing';

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
  /**
   * The only directory transform modules load from, checked after resolving links; a worker
   * without one refuses every module. (Default: FERRY_TRANSFORM_DIR, else none)
   */
  transformDir?: string | null;
  /**
   * Keys that encrypt the payloads this worker hands to Temporal (the first) and decrypt them
   * (any). (Default: FERRY_PAYLOAD_KEY; none: payloads in clear)
   */
  payloadKeys?: PayloadKey[];
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
  return installWorkerRuntime({ sdkMetrics: { port, host } })!;
}

export interface WorkerRuntimeOptions {
  /** Where the SDK's lines (and Ferry's own, through it) go. (Default: the SDK's console logger) */
  logger?: Logger;
  sdkMetrics?: { port: number; host?: string };
}

/** Installs the SDK's Runtime with Ferry's logger and metrics; returns the SDK metrics URL, if served. */
export function installWorkerRuntime(options: WorkerRuntimeOptions): string | null {
  const metrics = options.sdkMetrics;
  const bindAddress = metrics ? `${(metrics.host ?? DEFAULT_METRICS_HOST).includes(':') ? `[${metrics.host}]` : (metrics.host ?? DEFAULT_METRICS_HOST)}:${metrics.port}` : null;
  Runtime.install({
    ...(options.logger ? { logger: options.logger } : {}),
    ...(bindAddress
      ? {
          telemetryOptions: {
            metrics: {
              metricPrefix: 'temporal_',
              prometheus: { bindAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true },
            },
          },
        }
      : {}),
  });
  return bindAddress ? `http://${bindAddress}/metrics` : null;
}

export const workflowsPath = path.join(__dirname, '..', 'workflows', `index${path.extname(__filename)}`);

/** The workflow code `npm run build` bundles once, so that a worker starts without bundling. */
export const prebuiltWorkflowBundlePath = path.join(__dirname, '..', 'workflow-bundle.js');
/** The same with Temporal's OpenTelemetry workflow interceptors, for a worker that traces. */
export const prebuiltTracedWorkflowBundlePath = path.join(__dirname, '..', 'workflow-bundle-traced.js');

/** Where a worker gets its workflow code: given, prebuilt next to compiled code, or bundled now. */
function workflowCode(
  given: FerryWorkerOptions['workflowBundle'],
  tracing: WorkerTracing | null,
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions' | 'interceptors'> {
  if (given) return { workflowBundle: given };
  const prebuilt = tracing ? prebuiltTracedWorkflowBundlePath : prebuiltWorkflowBundlePath;
  if (path.extname(__filename) === '.js' && existsSync(prebuilt)) return { workflowBundle: { codePath: prebuilt } };
  return {
    workflowsPath,
    // Evaluated once per worker, not once per new workflow (workflows/shared-modules.ts); a
    // prebuilt bundle has them too (scripts/build.ts).
    bundlerOptions: { preloadModules: [path.join(path.dirname(workflowsPath), `shared-modules${path.extname(__filename)}`)] },
    ...(tracing ? { interceptors: { workflowModules: tracing.workflowModules } } : {}),
  };
}

export async function createFerryWorker(options: FerryWorkerOptions): Promise<FerryWorker> {
  const connection = await connectWorkerConnection(options.temporal);
  const statementTimeoutMs = options.statementTimeoutMs ?? statementTimeoutFromEnv();
  const databases = createDatabases({ env: options.env, ...(statementTimeoutMs ? { statementTimeoutMs } : {}) });
  const metrics = createFerryMetrics();
  const dataConverter = { payloadCodecs: [new EncryptingPayloadCodec(options.payloadKeys ?? payloadKeysFromEnv())] };
  const tracing = workerTracing();
  const code = workflowCode(options.workflowBundle, tracing);
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: options.temporal.taskQueue,
    activities: createActivities({ databases, metrics, transformDir: options.transformDir === undefined ? transformDirFromEnv() : options.transformDir }),
    ...code,
    // Tracing outside redaction: an activity's span records the error as Temporal will see it.
    interceptors: { ...code.interceptors, activity: [...(tracing ? [tracing.activity] : []), redactActivityErrors] },
    ...(tracing ? { sinks: tracing.sinks } : {}),
    dataConverter,
    shutdownGraceTime: `${options.shutdownGraceSeconds ?? 5}s`,
    // The copier heartbeats its cursor after every batch; sending one a second at most bounds
    // the work a crashed attempt repeats to about a second.
    maxHeartbeatThrottleInterval: '1 second',
  });
  let metricsServer: MetricsServer | null = null;
  let gateWatch: GateWatch | null = null;
  if (options.metricsPort) {
    metrics.collectProcessMetrics();
    gateWatch = await watchGates({ temporal: options.temporal, gauges: metrics.gates, dataConverter });
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
        await tracing?.shutdown();
      }
    },
    shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    },
  };
}
