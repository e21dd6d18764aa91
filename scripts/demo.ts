/**
 * The demo: a full migration on embedded defaults. Starts a throwaway Postgres and a local
 * Temporal dev server, fills users with 100,000 rows, splits full_name into first_name and
 * last_name in users_v2 through a dry run and a real run, checks every row, and stops.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { formatInspection, formatVerification, progressLine } from '../cli/render';
import { migrationRecord, recordMarkdown } from '../cli/report';
import { migrationReport, startMigration } from '../operator';
import { parsePlan } from '../lib/plan';
import { temporalSettings } from '../lib/settings';
import { createFerryWorker } from '../workers/worker';
import { startPostgres } from './services/postgres';
import { createSampleUsers } from './services/sample-users';
import { startTemporal } from './services/temporal';
import { ferryDataConverter } from '../workers/payload-codec';

const USERS = Number(process.env.DEMO_ROWS ?? 100_000);
const planFile = path.join(__dirname, '..', 'examples', 'split-full-name.yaml');

/** Ferry's own check is still to come (verification); the demo checks with plain SQL. */
async function compareTables(url: string): Promise<{ source: number; target: number; different: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ source: string; target: string; different: string }>(`
      SELECT (SELECT count(*) FROM users) AS source,
             (SELECT count(*) FROM users_v2) AS target,
             (SELECT count(*) FROM users u FULL JOIN users_v2 v USING (id)
               WHERE v.id IS NULL OR u.id IS NULL
                  OR u.full_name IS DISTINCT FROM concat_ws(' ', v.first_name, v.last_name)
                  OR u.email IS DISTINCT FROM v.email OR u.created_at IS DISTINCT FROM v.created_at) AS different`);
    const row = result.rows[0]!;
    return { source: Number(row.source), target: Number(row.target), different: Number(row.different) };
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  // The demo prints its own story; the SDK speaks up only for warnings.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  console.log('Starting a throwaway PostgreSQL and a local Temporal dev server ...');
  const postgres = await startPostgres();
  const temporalServer = process.env.TEMPORAL_ADDRESS ? null : await startTemporal();
  const temporal = temporalSettings(process.env, {
    address: temporalServer?.address,
    taskQueue: `ferry-demo-${process.pid}`,
  });
  let stopWorker = () => {};
  let workerDone: Promise<void> = Promise.resolve();
  try {
    const databaseUrl = await postgres.createDatabase('ferry_demo');
    console.log(`Creating users with ${USERS.toLocaleString('en-US')} rows ...`);
    await createSampleUsers(databaseUrl, USERS);

    // The worker resolves the plan's connection name from its environment; the URL never
    // enters Temporal.
    const worker = await createFerryWorker({ temporal, env: { DEMO_DATABASE_URL: databaseUrl } });
    stopWorker = () => worker.shutdown();
    workerDone = worker.run();

    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() });
    const plan = parsePlan(readFileSync(planFile, 'utf8'), planFile);

    console.log(`\nDry run of ${path.relative(process.cwd(), planFile)} (writes nothing):`);
    const dryRun = await startMigration(client, temporal, plan, { execute: false });
    const inspected = await dryRun.result();
    console.log(formatInspection(inspected.inspection!));
    if (inspected.inspection!.problems.length > 0) throw new Error('the dry run found problems');

    console.log('\nExecuting ...');
    const run = await startMigration(client, temporal, plan, { execute: true });
    console.log(`migration id: ${run.workflowId}`);
    const result = run.result();
    let finished = false;
    void result.finally(() => (finished = true)).catch(() => {});
    while (!finished) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const report = await migrationReport(client, run.workflowId);
      if (report.status) console.log(`  ${progressLine(report.status)}`);
    }
    const status = await result;
    await connection.close();

    const check = await compareTables(databaseUrl);
    const backfill = status.phases.find((p) => p.name === 'backfill')!;
    const seconds = (Date.parse(backfill.endedAt!) - Date.parse(backfill.startedAt)) / 1000;
    console.log(
      `\nCopied ${status.rowsWritten.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s ` +
        `(${Math.round(status.rowsRead / seconds).toLocaleString('en-US')} rows/s).`,
    );
    if (status.verification) console.log(`Ferry's own ${formatVerification(status.verification)}.`);
    console.log(
      `Independent check: users ${check.source.toLocaleString('en-US')} rows, users_v2 ${check.target.toLocaleString('en-US')} rows, ` +
        `${check.different} rows differ.`,
    );
    const reportFile = path.join(os.tmpdir(), 'ferry-demo-report.md');
    writeFileSync(reportFile, recordMarkdown(migrationRecord(status)));
    console.log(`The migration's record (phases, decisions, rows, what is left to do): ${reportFile}`);
    if (check.source !== check.target || check.different !== 0) throw new Error('users_v2 does not match users');
    console.log(`Demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s: every row copied.`);
  } finally {
    stopWorker();
    await workerDone.catch(() => {});
    await temporalServer?.stop();
    await postgres.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
