/**
 * The fault lab: a Postgres cluster, a Temporal dev server and Ferry worker processes of its
 * own, so that it can kill, stop and restart them without disturbing anyone else; and the
 * faults it injects into them. Used by the fault tests and by `npm run reliability`.
 */
import { Client, Connection } from '@temporalio/client';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { temporalSettings, type TemporalSettings } from '../../lib/settings';
import { startWorkerProcess, type WorkerProcess } from '../../test/support/worker-process';
import { freePort } from '../services/ports';
import { startPostgres, type PostgresServer } from '../services/postgres';
import { startTemporal, type TemporalServer } from '../services/temporal';
import { ferryDataConverter } from '../../workers/payload-codec';

/** Ferry's statements in the lab are cancelled after this long (the statement-timeout fault). */
export const LAB_STATEMENT_TIMEOUT_MS = 2000;
/** While the slow switch is on, fault_delay() sleeps this long per row: any batch or chunk overruns the timeout. */
const SLOW_ROW_SECONDS = 0.3;

/** A seeded random number generator (mulberry32): the same seed injects the same faults. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs SQL with a short-lived connection of the lab's own (not Ferry's: application_name differs). */
export async function labSql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, application_name: 'fault-lab' });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface Lab {
  sourceUrl: string;
  targetUrl: string;
  temporal: TemporalSettings;
  client: Client;
  workers: WorkerProcess[];
  /** SIGKILLs worker `index` and starts a new one in its place. */
  killWorker(index: number): Promise<void>;
  /** Stops the Temporal server, waits `downMs`, and starts it again on the same file and port. */
  restartTemporal(downMs: number): Promise<void>;
  /** Stops and starts the cluster that holds both the source and the target database. */
  restartPostgres(): Promise<void>;
  /** Stops the cluster of source and target for `downMs`, runs `during` while it is down, and starts it again. */
  postgresOutage(downMs: number, during?: () => Promise<unknown>): Promise<void>;
  /** pg_terminate_backend on every session of Ferry's; returns how many were ended. */
  terminateFerryConnections(): Promise<number>;
  /** Makes every Ferry statement that reads source rows overrun the statement timeout, for `ms`. */
  slowStatements(ms: number): Promise<void>;
  /** The statements the Postgres log reports after each error line containing `text` (e.g. "due to statement timeout"). */
  postgresLogErrors(text: string): string[];
  /** The last lines of every worker's output, for a report of what went wrong. */
  workerLogs(): string;
  close(): Promise<void>;
}

export interface LabOptions {
  /** Worker processes sharing the task queue. (Default: 2) */
  workers?: number;
  log?: (line: string) => void;
}

export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-faults-'));
  const dbFile = path.join(dir, 'temporal.db');
  const port = await freePort();
  const [postgres, firstTemporal]: [PostgresServer, TemporalServer] = await Promise.all([
    startPostgres({ local: true }),
    startTemporal({ dbFile, port }),
  ]);
  let temporalServer = firstTemporal;
  const [sourceUrl, targetUrl] = await Promise.all([postgres.createDatabase('faults_source'), postgres.createDatabase('faults_target')]);
  // The slow switch: transforms pass a column through fault_delay(), which sleeps per row while
  // the switch is on, so a copy batch or a verification chunk runs into the statement timeout.
  await labSql(sourceUrl, `
    CREATE TABLE fault_switch (slow boolean NOT NULL);
    INSERT INTO fault_switch VALUES (false);
    CREATE FUNCTION fault_delay(value text) RETURNS text LANGUAGE plpgsql STABLE AS $$
    BEGIN
      IF (SELECT slow FROM fault_switch) THEN PERFORM pg_sleep(${SLOW_ROW_SECONDS}); END IF;
      RETURN value;
    END $$;`);

  const temporal = temporalSettings({}, { address: firstTemporal.address, taskQueue: 'ferry-faults' });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() });
  const workerEnv = { SRC: sourceUrl, TGT: targetUrl, FERRY_STATEMENT_TIMEOUT_MS: String(LAB_STATEMENT_TIMEOUT_MS) };
  const workers = await Promise.all(Array.from({ length: options.workers ?? 2 }, () => startWorkerProcess(temporal, workerEnv)));
  /** Output of workers already killed, kept for the evidence. */
  const pastOutput: string[] = [];

  return {
    sourceUrl,
    targetUrl,
    temporal,
    client,
    workers,
    async killWorker(index) {
      const worker = workers[index]!;
      await worker.kill();
      pastOutput.push(worker.output());
      log(`  killed worker ${index} (pid ${worker.process.pid}) with SIGKILL`);
      workers[index] = await startWorkerProcess(temporal, workerEnv);
    },
    async restartTemporal(downMs) {
      await temporalServer.stop();
      log(`  Temporal stopped; down for ${downMs} ms`);
      await sleep(downMs);
      temporalServer = await startTemporal({ dbFile, port });
      log('  Temporal started again on the same database file and port');
    },
    async restartPostgres() {
      await postgres.restart();
      log('  Postgres restarted');
    },
    async postgresOutage(downMs, during) {
      await postgres.outage(downMs, async () => {
        log(`  Postgres stopped for ${(downMs / 1000).toFixed(0)} s`);
        await during?.();
      });
      log('  Postgres started again');
    },
    async terminateFerryConnections() {
      const rows = await labSql<{ n: number }>(
        postgres.url(),
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'ferry'`,
      );
      log(`  terminated ${rows[0]!.n} Ferry connections`);
      return rows[0]!.n;
    },
    async slowStatements(ms) {
      await labSql(sourceUrl, 'UPDATE fault_switch SET slow = true');
      log(`  statements slow for ${ms} ms (statement_timeout ${LAB_STATEMENT_TIMEOUT_MS} ms)`);
      try {
        await sleep(ms);
      } finally {
        await labSql(sourceUrl, 'UPDATE fault_switch SET slow = false');
      }
    },
    postgresLogErrors(text) {
      if (!postgres.logFile) return [];
      const lines = readFileSync(postgres.logFile, 'utf8').split('\n');
      // A statement goes on over the following lines until the next line with a log prefix.
      const startsEntry = (line: string) => /^\d{4}-\d\d-\d\d /.test(line);
      return lines.flatMap((line, i) => {
        if (!line.includes(text)) return [];
        // The statement follows the error, after its CONTEXT lines.
        let at = i + 1;
        while (at < lines.length && at < i + 10 && !lines[at]!.includes('STATEMENT:')) at += 1;
        if (!lines[at]?.includes('STATEMENT:')) return [''];
        let end = at + 1;
        while (end < lines.length && !startsEntry(lines[end]!)) end += 1;
        return [lines.slice(at, end).join('\n')];
      });
    },
    workerLogs() {
      return [...pastOutput, ...workers.map((w) => w.output())].map((o) => o.slice(-4000)).join('\n----\n');
    },
    async close() {
      await Promise.all(workers.map((w) => w.kill().catch(() => {})));
      await connection.close().catch(() => {});
      await temporalServer.stop();
      await postgres.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
