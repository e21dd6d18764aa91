/**
 * Metrics are Ferry's own Prometheus metrics: one registry per worker (never prom-client's
 * global one, so two workers in one process do not mix), served on one `/metrics` endpoint.
 *
 * To add a metric: declare it next to the code that records it (e.g. activities/copy/metrics.ts;
 * the name carries its base unit, counters end in _total) and register it in createFerryMetrics.
 * Labels must stay bounded: `migration` is the plan name and `shard` the shard index (at most 1024).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createCopyMetrics } from '../activities/copy/metrics';
import { createCaptureMetrics } from '../activities/capture/metrics';
import { redactErrorText } from '../lib/errors';
import { registerGateMetrics } from './gate-metrics';

export { shardIndexOf, THROTTLE_KINDS, type BatchRecord, type ShardMetrics, type SourceHealth, type ThrottleKind } from '../activities/copy/metrics';

/** Every metric a worker serves: each domain's own (declared next to the code that records it), in one registry. */
export function createFerryMetrics() {
  const registry = new Registry();
  return {
    registry,
    /** The copy's rows, batches and throttling (activities/copy/metrics.ts). */
    ...createCopyMetrics(registry),
    /** The change apply's lag and progress (activities/capture/metrics.ts). */
    ...createCaptureMetrics(registry),
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
  };
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
