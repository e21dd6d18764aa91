/**
 * Metrics are Ferry's own Prometheus metrics: one registry per worker (never prom-client's
 * global one, so two workers in one process do not mix), served on one `/metrics` endpoint.
 *
 * To add a metric: declare it in createFerryMetrics with the typed helpers below (the name
 * carries its base unit, counters end in _total), and record it where the work happens. Labels
 * must stay bounded: `migration` is the plan name and `shard` the shard index (at most 1024).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCaptureMetrics } from '../activities/capture/metrics';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { redactErrorText } from '../lib/errors';
import { registerGateMetrics } from './gate-metrics';

/** Why a copy is slowed or holding, as a bounded label value. */
export const THROTTLE_KINDS = ['rate', 'replica-lag', 'long-query', 'probe', 'paused'] as const;
export type ThrottleKind = (typeof THROTTLE_KINDS)[number];

/** What the throttler saw on the source at its last health check. */
export interface SourceHealth {
  replicaLagSeconds: number;
  longestQuerySeconds: number;
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
  /** The copy call returned: its shard's gauges go, as the next call may run on another worker. */
  end(): void;
}

const BATCH_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createFerryMetrics() {
  const registry = new Registry();
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
    copiesRunning: gauge('ferry_copies_running', 'Shard copies running on this worker.', byMigration),
    /** The change apply's lag and progress (activities/capture/metrics.ts). */
    ...createCaptureMetrics(registry),
  };

  const views = new Map<string, ShardMetrics>();

  return {
    registry,
    ...metrics,
    /** The gates migrations wait at, as the worker last saw them (workers/gate-metrics.ts). */
    gates: registerGateMetrics(registry),
    /** Node.js process metrics (memory, CPU, event loop) in the same registry. Call once. */
    collectProcessMetrics(): void {
      collectDefaultMetrics({ register: registry });
      // Gauges misnamed as counters (promtool refuses them); nodejs_active_* keep the same figures.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        registry.removeSingleMetric(name);
      }
    },
    /**
     * The view a copy of one shard records through: the same one until end(), and the shard's
     * copy counts as running here meanwhile.
     */
    shard(migration: string, shardIndex: number | null): ShardMetrics {
      const labels = { migration, shard: shardIndex === null ? 'none' : String(shardIndex) };
      const key = `${labels.migration}\u0000${labels.shard}`;
      const open = views.get(key);
      if (open) return open;
      metrics.copiesRunning.inc({ migration });
      const setThrottle = (kind: ThrottleKind | null) => {
        for (const reason of THROTTLE_KINDS) metrics.throttled.set({ ...labels, reason }, reason === kind ? 1 : 0);
      };
      setThrottle(null);
      const view: ShardMetrics = {
        batch(batch) {
          metrics.rowsCopied.inc(labels, batch.written);
          metrics.rowsSkipped.inc(labels, Math.max(0, batch.rows - batch.written - batch.failed));
          metrics.rowsFailed.inc(labels, batch.failed);
          metrics.batchDuration.observe({ migration }, batch.seconds);
          metrics.batchSize.set(labels, batch.nextBatchSize);
          if (batch.rowsPerSecond === null) metrics.rowsPerSecondLimit.remove(labels);
          else metrics.rowsPerSecondLimit.set(labels, batch.rowsPerSecond);
        },
        throttle: setThrottle,
        sourceHealth(health) {
          metrics.replicaLag.set({ migration }, health.replicaLagSeconds);
          metrics.longestQuery.set({ migration }, health.longestQuerySeconds);
        },
        end() {
          if (views.get(key) !== view) return;
          views.delete(key);
          metrics.copiesRunning.dec({ migration });
          metrics.batchSize.remove(labels);
          metrics.rowsPerSecondLimit.remove(labels);
          for (const reason of THROTTLE_KINDS) metrics.throttled.remove({ ...labels, reason });
        },
      };
      views.set(key, view);
      return view;
    },
  };
}

/** The shard index in a shard workflow's id (`<migration id>/shard-<n>`); null for another id. */
export function shardIndexOf(workflowId: string | undefined): number | null {
  const match = /\/shard-(\d+)$/.exec(workflowId ?? '');
  return match ? Number(match[1]) : null;
}

export type FerryMetrics = ReturnType<typeof createFerryMetrics>;

export interface MetricsServer {
  /** e.g. http://0.0.0.0:9464/metrics */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Metrics are served on the loopback interface unless told otherwise (--metrics-host). */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** Null when the worker is ready for work, else why not. */
export type Readiness = () => string | null;

/**
 * Serves a registry on GET /metrics, `/healthz` (200 while the process serves) and `/readyz`
 * (200 when `readiness` says the worker runs and reaches Temporal, else 503 with why);
 * everything else is 404. Resolves once listening.
 */
export function serveMetrics(registry: Registry, port: number, host = DEFAULT_METRICS_HOST, readiness: Readiness = () => null): Promise<MetricsServer> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const text = (code: number, body: string) => response.writeHead(code, { 'content-type': 'text/plain' }).end(request.method === 'HEAD' ? undefined : `${body}\n`);
    if (request.method !== 'GET' && request.method !== 'HEAD') return text(404, 'not found: metrics are at /metrics');
    if (path === '/healthz') return text(200, 'ok');
    if (path === '/readyz') {
      const problem = readiness();
      return problem === null ? text(200, 'ready') : text(503, `not ready: ${problem}`);
    }
    if (path !== '/metrics') return text(404, 'not found: metrics are at /metrics, health at /healthz and /readyz');
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${redactErrorText(error)}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`cannot serve metrics on ${host}:${port} (${error.code ?? error.message}); pick another --metrics-port`)),
    );
    server.listen(port, host, () => {
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        url: `http://${shown}:${address.port}/metrics`,
        port: address.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

/** A metrics port from an option or environment variable: a whole number 0 to 65535, 0 for off. */
export function parseMetricsPort(text: string | undefined, source: string): number {
  if (text === undefined || text.trim() === '') return 0;
  if (!/^\s*\d+\s*$/.test(text) || Number(text) > 65535) throw new Error(`${source} must be a port number (0 to 65535, 0 for off), not "${text}"`);
  return Number(text);
}
