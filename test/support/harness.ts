/** What integration tests share: fresh databases, a worker on its own task queue, a client. */
import { Client, Connection } from '@temporalio/client';
import { IllegalStateError } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { ConnectionEnv } from '../../activities/connections';
import { temporalSettings, type TemporalSettings } from '../../lib/settings';
import { createDatabaseOn } from '../../scripts/services/postgres';
import { freePort } from '../../scripts/services/ports';
import { ferryDataConverter } from '../../workers/payload-codec';
import { createFerryWorker, installWorkerRuntime } from '../../workers/worker';

/**
 * Quiet SDK logs: tests print what they check, not the worker's chatter. Test files share
 * processes, so the runtime an earlier file installed (or one the SDK made itself) is kept.
 */
export function installQuietRuntime(): void {
  try {
    installWorkerRuntime({ logger: new DefaultLogger('WARN') });
  } catch (error) {
    if (!(error instanceof IllegalStateError)) throw error;
  }
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`;
}

export function createTestDatabase(prefix: string): Promise<string> {
  return createDatabaseOn(inject('postgresUrl'), uniqueName(`ferry_${prefix}`));
}

/** Runs SQL on a database with a short-lived connection. */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<R>(text, values);
    return result.rows;
  } finally {
    await client.end();
  }
}

/** The single row a query returns. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function sqlRow<R extends pg.QueryResultRow = Record<string, any>>(url: string, text: string, values?: unknown[]): Promise<R> {
  const rows = await sql<R>(url, text, values);
  if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${text}`);
  return rows[0]!;
}

/**
 * The rows a query returns, as Postgres prints them: their count and the md5 of their text in
 * text order. The test's own truth about data, sharing no code with Ferry's verifier.
 */
export function rowsDigest(url: string, query: string): Promise<{ rows: number; md5: string }> {
  return sqlRow(url, `SELECT count(*)::int AS rows, md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) AS md5 FROM (${query}) AS r`);
}

export interface TestWorker {
  temporal: TemporalSettings;
  client: Client;
  /** Where the worker serves its metrics, when started with `metrics: true`. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

export interface StartWorkerOptions {
  /** Serve the worker's metrics on a free loopback port. (Default: false) */
  metrics?: boolean;
  /** The worker's transform directory; null for none. (Default: FERRY_TRANSFORM_DIR, which the test config sets) */
  transformDir?: string | null;
  /** Serve this task queue, another worker's, to take over from it. (Default: a task queue of its own) */
  taskQueue?: string;
  /** The workflows to run, such as a bundle with a fault of the test's own. (Default: the suite's bundle of Ferry's workflows) */
  workflowBundle?: { code: string } | { codePath: string };
}

/** A client, and a task queue of its own for workers the test starts itself. */
export async function connectClient(): Promise<TestWorker> {
  const temporal = temporalSettings({}, { address: inject('temporalAddress'), taskQueue: uniqueName('test') });
  const connection = await Connection.connect({ address: temporal.address });
  return { temporal, client: new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() }), stop: () => connection.close() };
}

/** A real Ferry worker on a task queue of its own, and a client for it. */
export async function startWorker(env: ConnectionEnv, options: StartWorkerOptions = {}): Promise<TestWorker> {
  installQuietRuntime();
  const temporal = temporalSettings({}, { address: inject('temporalAddress'), taskQueue: options.taskQueue ?? uniqueName('test') });
  const worker = await createFerryWorker({
    temporal,
    env,
    workflowBundle: options.workflowBundle ?? { codePath: inject('workflowBundlePath') },
    shutdownGraceSeconds: 1,
    ...(options.transformDir !== undefined ? { transformDir: options.transformDir } : {}),
    ...(options.metrics ? { metricsPort: await freePort(), metricsHost: '127.0.0.1', log: () => {} } : {}),
  });
  const running = worker.run();
  const connection = await Connection.connect({ address: temporal.address });
  let stopped: Promise<void> | null = null;
  return {
    temporal,
    client: new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() }),
    ...(worker.metricsUrl ? { metricsUrl: worker.metricsUrl } : {}),
    // Safe to call twice: a test that stops its worker midway leaves the call in afterAll harmless.
    stop() {
      stopped ??= (async () => {
        worker.shutdown();
        await running;
        await connection.close();
      })();
      return stopped;
    },
  };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
