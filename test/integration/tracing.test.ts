/**
 * Tracing with an OTLP endpoint configured: a worker process and the CLI send their spans over
 * OTLP/HTTP to a receiver started here. The CLI's start, the workflow and its activities arrive
 * in one trace, and no row value travels in any span.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, installQuietRuntime, sql, sqlRow, uniqueName } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import type { TemporalSettings } from '../../lib/settings';
import { createFerryWorker } from '../../workers/worker';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
  status?: { code?: number; message?: string };
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}

/** An OTLP/HTTP receiver of JSON trace exports, as a collector would be. */
async function startReceiver(): Promise<{ endpoint: string; spans: ReceivedSpan[]; bodies: string[]; refused: string[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const refused: string[] = [];
  const values = (attributes: OtlpAttribute[] = []) => Object.fromEntries(attributes.map((a) => [a.key, Object.values(a.value)[0]]));
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url !== '/v1/traces' || !String(request.headers['content-type']).startsWith('application/json')) {
        refused.push(`${request.method} ${request.url} ${request.headers['content-type']}`);
        response.writeHead(415).end();
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      const data = JSON.parse(body) as { resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: (Omit<ReceivedSpan, 'service' | 'attributes'> & { attributes: OtlpAttribute[] })[] }[] }[] };
      for (const resourceSpans of data.resourceSpans) {
        const service = String(values(resourceSpans.resource.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans) {
          for (const span of scope.spans) spans.push({ ...span, service, attributes: values(span.attributes) });
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, spans, bodies, refused, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('tracing to an OTLP endpoint', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: WorkerProcess | undefined;
  let url: string;
  const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tracing-'));

  beforeAll(async () => {
    installQuietRuntime();
    receiver = await startReceiver();
    url = await createTestDatabase('tracing');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'traced-owner-' || md5(i::text) FROM generate_series(1, 400) i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL);`);
  });
  afterAll(async () => {
    await worker?.stop();
    await receiver?.close();
  });

  it('links the CLI, the workflow and its activities in one trace, with no row value', async () => {
    const temporal: TemporalSettings = { address: inject('temporalAddress'), namespace: 'default', taskQueue: uniqueName('tracing') };
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    worker = await startWorkerProcess(temporal, { DB: url, ...otel });
    const plan = path.join(planDir, 'traced.yaml');
    writeFileSync(plan, `name: traced\nsource: { connection: DB, table: accounts, key: id }\ntarget: { connection: DB, table: accounts_v2 }\ntransform: { sql: { id: id, owner: owner } }\nverify: { enabled: true }\n`);
    const result = await ferry(['start', plan, '--execute', '--wait'], temporal, otel);
    expect(result.code, result.stderr).toBe(ExitCode.ok);
    expect(await sqlRow(url, `SELECT count(*)::int AS n FROM accounts a JOIN accounts_v2 b USING (id) WHERE md5(a::text) = md5(b::text)`)).toEqual({ n: 400 });

    const start = await eventually(async () => receiver.spans.find((s) => s.service === 'ferry-cli' && s.name.startsWith('StartWorkflow:')), 20_000, "the CLI's start span");
    const workflowId = String(start.attributes.temporalWorkflowId);
    expect(workflowId).not.toBe('undefined');
    const inTrace = () => receiver.spans.filter((s) => s.traceId === start.traceId);
    // The migration's first run, under the CLI's start span. Its shards' runs, in the same trace,
    // may reach the receiver before it does.
    const run = await eventually(
      async () => inTrace().find((s) => s.service === 'ferry-worker' && s.name === 'RunWorkflow:migrationWorkflow' && s.parentSpanId === start.spanId),
      20_000,
      "the workflow's span under the CLI's start span",
    );
    expect(inTrace().filter((s) => s.name.startsWith('RunWorkflow:')).every((s) => s.parentSpanId)).toBe(true);
    const activities = await eventually(async () => {
      const found = inTrace().filter((s) => s.service === 'ferry-worker' && s.name.startsWith('RunActivity:'));
      return found.length >= 3 ? found : undefined;
    }, 20_000, 'activity spans');
    expect(activities.map((s) => s.name)).toEqual(expect.arrayContaining([expect.stringMatching(/^RunActivity:\w+/)]));
    expect(receiver.refused).toEqual([]);

    // OTEL_SERVICE_NAME names the service instead.
    expect((await ferry(['status', workflowId], temporal, { ...otel, OTEL_SERVICE_NAME: 'ops-console' })).code).toBe(ExitCode.ok);
    await eventually(async () => receiver.spans.some((s) => s.service === 'ops-console' && s.attributes.temporalWorkflowId === workflowId), 20_000, 'a span of the renamed service');

    // A collector that never answers holds a command up for a moment only.
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const began = Date.now();
      const status = await ferry(['status', workflowId], temporal, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` });
      expect(status.code).toBe(ExitCode.ok);
      expect(Date.now() - began).toBeLessThan(8000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }

    // A transform that fails on a row's value: the error reaches the spans, the value does not.
    const failing = path.join(planDir, 'traced-failing.yaml');
    writeFileSync(failing, `name: traced-failing\nsource: { connection: DB, table: accounts, key: id }\ntarget: { connection: DB, table: accounts_v2 }\ntransform: { sql: { id: id, owner: '(owner::int)::text' } }\n`);
    const refused = await ferry(['start', failing, '--execute', '--wait'], temporal, otel);
    expect(refused.code).not.toBe(ExitCode.ok);
    const failed = await eventually(
      async () => receiver.spans.find((s) => s.service === 'ferry-worker' && String(s.attributes.workflowId).startsWith('ferry/traced-failing/') && s.status?.code === 2),
      20_000,
      'a failed span of the failing migration',
    );
    expect(failed.status?.message).toContain('<redacted>');

    // Nothing a span carries, attributes included, holds a row's value.
    const everything = receiver.bodies.join('\n');
    expect(everything).not.toMatch(/traced-owner-/);
    for (const span of receiver.spans) {
      expect(JSON.stringify(span.attributes)).not.toMatch(/traced-owner-|postgres:\/\//);
      expect(Object.keys(span.attributes)).not.toEqual(expect.arrayContaining([expect.stringMatching(/^(memo|lastResult|lastFailure|searchAttributes|typedSearchAttributes|unsafe)$/)]));
    }
    expect(run.attributes).toMatchObject({ workflowId, workflowType: 'migrationWorkflow' });
  }, 180_000);

  it('traces workflows of a worker that bundles its workflow code at start, as in development', async () => {
    const temporal: TemporalSettings = { address: inject('temporalAddress'), namespace: 'default', taskQueue: uniqueName('tracing_dev') };
    const saved = { ...process.env };
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: 'ferry-dev-worker' });
    let devWorker: Awaited<ReturnType<typeof createFerryWorker>>;
    try {
      // No workflowBundle: the worker bundles workflows/index.ts itself, with the interceptors.
      devWorker = await createFerryWorker({ temporal, env: { DB: url }, shutdownGraceSeconds: 1, log: () => {} });
    } finally {
      process.env = saved;
    }
    const running = devWorker.run();
    try {
      const plan = path.join(planDir, 'traced-dev.yaml');
      writeFileSync(plan, `name: traced-dev\nsource: { connection: DB, table: accounts, key: id }\ntarget: { connection: DB, table: accounts_v2 }\ntransform: { sql: { id: id, owner: owner } }\n`);
      const result = await ferry(['start', plan], temporal);
      expect(result.code, result.stderr).toBe(ExitCode.ok);
      await eventually(async () => receiver.spans.some((s) => s.service === 'ferry-dev-worker' && s.name === 'RunWorkflow:migrationWorkflow'), 20_000, 'the dev worker\'s workflow span');
    } finally {
      devWorker.shutdown();
      await running;
    }
  }, 180_000);
});
