/**
 * `npm run bench`: how fast Ferry copies against what the machine can do. On a throwaway
 * Postgres (fsync on) and a local Temporal dev server it measures, on the same data in the same
 * run, the raw limits (one INSERT ... SELECT; one binary COPY pipe between databases) and Ferry
 * end to end through Temporal, and quotes Ferry as a ratio of its limit (verification too,
 * against checksums computed in both databases at once): these machines are
 * noisy, so only ratios within one run mean anything. The worker is a child process so that its
 * peak memory is its own.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { migrationReport, startMigration } from '../cli/migrations';
import { redactMessage, rootMessage } from '../lib/errors';
import { validatePlan, type PlanInput } from '../lib/plan';
import { temporalSettings } from '../lib/settings';
import type { MigrationStatus } from '../lib/status';
import type { migrationWorkflow } from '../workflows/migration';
import { sampleFerryActivity, type ActivityProfile } from './bench/activity-sampler';
import {
  checkTarget,
  createSource,
  createTarget,
  resetTarget,
  SOURCE_TABLE,
  TARGET_TABLE,
  targetColumnList,
  targetColumns,
  transformSelect,
  transformSql,
} from './bench/dataset';
import { historyCost, type HistoryCost } from './bench/histories';
import { startUpdateLoad, type LoadFigures, type UpdateLoad } from './bench/update-load';
import { VERIFY_CHUNK, verifyFigures } from './bench/verify';
import { startWorkerProcess, type WorkerProcess } from './bench/worker-process';
import { startPostgres } from './services/postgres';
import { startTemporal } from './services/temporal';
import { ferryDataConverter } from '../workers/payload-codec';

const SHARDS = 2;
const CONCURRENCY = 2;
const BATCH_SIZE = 10_000;
/** A copy call failing this many times in a row ends its path: it will not heal by itself. */
const MAX_ATTEMPTS = 3;
/** A path whose row count does not move for this long is stuck. */
const STALL_MS = 90_000;
const POLL_MS = 3000;

/** Foreground updates a second with --with-load, and how long the quiet baseline lasts. */
const LOAD_PER_SECOND = 300;
const LOAD_BASELINE_MS = 10_000;

const USAGE = `usage: npm run bench -- [--rows N] [--json] [--with-load]

  --rows N       rows in the source table (Default: 1000000)
  --json         also print the figures as one JSON object on the last line
  --with-load    run ${LOAD_PER_SECOND} single-row UPDATEs a second on the source and compare their
                 latency without and during each backfill (the load slows Ferry down a little)`;

const SOURCE_ENV = 'BENCH_SOURCE_URL';
const TARGET_ENV = 'BENCH_TARGET_URL';

interface Options {
  rows: number;
  json: boolean;
  withLoad: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      json: { type: 'boolean', default: false },
      'with-load': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const rows = values.rows === undefined ? 1_000_000 : Number(values.rows.replace(/_/g, ''));
  if (!Number.isInteger(rows) || rows < 10_000 || rows > 100_000_000) {
    throw new UsageError(`--rows must be a whole number from 10000 to 100000000, not ${values.rows}`);
  }
  return { rows, json: values.json, withLoad: values['with-load'] };
}

class UsageError extends Error {}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;
const percent = (share: number) => `${fmt(share * 100)}%`;

interface Limit {
  rowsPerSec: number;
  ms: number;
}

/** The same-database limit: the whole transform as one INSERT ... SELECT. */
async function insertSelectLimit(url: string, rows: number): Promise<Limit> {
  await resetTarget(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    const result = await client.query(`INSERT INTO ${TARGET_TABLE} (${targetColumnList()}) SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s`);
    const ms = performance.now() - started;
    if (result.rowCount !== rows) throw new Error(`INSERT ... SELECT wrote ${result.rowCount} rows, expected ${rows}`);
    return { rowsPerSec: rows / (ms / 1000), ms };
  } finally {
    await client.end();
  }
}

/** The cross-database limit: the transformed rows through one binary COPY pipe. */
async function binaryCopyLimit(sourceUrl: string, targetUrl: string, rows: number): Promise<Limit> {
  await resetTarget(targetUrl);
  const source = new pg.Client({ connectionString: sourceUrl });
  const target = new pg.Client({ connectionString: targetUrl });
  await Promise.all([source.connect(), target.connect()]);
  try {
    const started = performance.now();
    const into = target.query(copyFrom(`COPY ${TARGET_TABLE} (${targetColumnList()}) FROM STDIN (FORMAT binary)`));
    await pipeline(source.query(copyTo(`COPY (SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s) TO STDOUT (FORMAT binary)`)), into);
    const ms = performance.now() - started;
    if (into.rowCount !== rows) throw new Error(`the COPY pipe wrote ${into.rowCount} rows, expected ${rows}`);
    return { rowsPerSec: rows / (ms / 1000), ms };
  } finally {
    await Promise.all([source.end(), target.end()]);
  }
}

interface FerryRun {
  status: MigrationStatus;
  /** Workflow time from the migration's start (inspection included) to its end. */
  ms: number;
  wallMs: number;
  history: HistoryCost;
  profile: ActivityProfile;
  peakRssMb: number;
  /** Foreground update latencies during the migration, with --with-load. */
  load: LoadFigures | null;
  problems: string[];
}

interface Bench {
  client: Client;
  temporal: ReturnType<typeof temporalSettings>;
  worker: WorkerProcess;
  adminUrl: string;
  sourceUrl: string;
  rows: number;
  load: UpdateLoad | null;
}

async function terminateAll(bench: Bench, migrationId: string, reason: string): Promise<void> {
  for await (const execution of bench.client.workflow.list({ query: `WorkflowId STARTS_WITH '${migrationId}' AND ExecutionStatus = 'Running'` })) {
    await bench.client.workflow.getHandle(execution.workflowId).terminate(reason).catch(() => {});
  }
}

/**
 * Follows a migration to its end. Ends it early, with the copier's own error, when a copy call
 * keeps failing (the activity retries forever by design) or when no row moves for a while.
 */
async function awaitMigration(bench: Bench, handle: WorkflowHandle<typeof migrationWorkflow>): Promise<MigrationStatus> {
  const outcome = handle.result().then(
    (status) => ({ status }),
    (error: unknown) => ({ error }),
  );
  let lastRows = -1;
  let lastMove = Date.now();
  for (;;) {
    const done = await Promise.race([outcome, new Promise<null>((resolve) => setTimeout(() => resolve(null), POLL_MS))]);
    if (done && 'status' in done) return done.status;
    if (done) throw done.error;
    const report = await migrationReport(bench.client, handle.workflowId).catch(() => null);
    if (!report?.status) continue;
    if (report.status.rowsRead !== lastRows) {
      lastRows = report.status.rowsRead;
      lastMove = Date.now();
    }
    let failure: string | null = null;
    for (const shard of report.status.shards.filter((s) => s.state === 'running')) {
      const description = await bench.client.workflow.getHandle(`${handle.workflowId}/shard-${shard.index}`).describe().catch(() => null);
      const pending = description?.raw.pendingActivities?.[0];
      if (pending && (pending.attempt ?? 1) >= MAX_ATTEMPTS) {
        failure = `copy activity failed ${pending.attempt! - 1} times: ${pending.lastFailure?.message ? redactMessage(pending.lastFailure.message) : 'no message'}`;
      }
    }
    if (!failure && Date.now() - lastMove > STALL_MS) failure = `no progress for ${STALL_MS / 1000} s at ${lastRows} rows`;
    if (failure) {
      await terminateAll(bench, handle.workflowId, `bench: ${failure}`);
      throw new Error(failure);
    }
  }
}

async function runFerry(bench: Bench, plan: PlanInput, targetUrl: string): Promise<FerryRun> {
  await resetTarget(targetUrl);
  bench.worker.startPhase();
  const sampler = await sampleFerryActivity(bench.adminUrl);
  bench.load?.mark();
  const wallStarted = performance.now();
  let status: MigrationStatus;
  let migrationId: string;
  let profile: ActivityProfile;
  let load: LoadFigures | null;
  try {
    // Every path copies into the same (emptied) target table: each run is a re-run.
    const handle = await startMigration(bench.client, bench.temporal, validatePlan(plan, plan.name), { execute: true, rerun: true });
    migrationId = handle.workflowId;
    status = await awaitMigration(bench, handle);
  } finally {
    load = bench.load?.figures() ?? null;
    profile = await sampler.stop();
  }
  const wallMs = performance.now() - wallStarted;
  const peakRssMb = bench.worker.phasePeakMb();
  const [problems, history] = await Promise.all([checkTarget(bench.sourceUrl, targetUrl, bench.rows), historyCost(bench.client, migrationId)]);
  if (status.rowsRead !== bench.rows) problems.push(`Ferry reports ${status.rowsRead} rows read, the source has ${bench.rows}`);
  await resetTarget(targetUrl);
  return { status, ms: Date.parse(status.finishedAt!) - Date.parse(status.startedAt), wallMs, history, profile, peakRssMb, load, problems };
}

function basePlan(name: string, targetEnv: string): PlanInput {
  return {
    name,
    source: { connection: SOURCE_ENV, table: SOURCE_TABLE, key: 'id' },
    target: { connection: targetEnv, table: TARGET_TABLE },
    transform: { sql: transformSql },
    // Opened up: the speed figures are taken with no rows/s cap.
    throttle: { batchSize: BATCH_SIZE, concurrency: CONCURRENCY, rowsPerSecond: null },
    shards: { count: SHARDS },
    // Copy paths are timed alone; verification has its own figure below.
    verify: { enabled: false },
  };
}

interface PathFigures {
  limitRowsPerSec: number | null;
  ferryRowsPerSec: number | null;
  ratio: number | null;
}

interface PathResult {
  figures: PathFigures;
  run: FerryRun | null;
  error: string | null;
}

function printRun(label: string, limit: Limit, result: PathResult, out: (line: string) => void): void {
  out('');
  const { run, figures } = result;
  if (!run) {
    out(`  ${label.padEnd(22)} FAILED: ${result.error?.replace(/\n/g, '\n      ')}`);
    return;
  }
  out(
    `  ${label.padEnd(22)} ${fmt(run.status.rowsRead).padStart(11)} rows in ${seconds(run.ms).padStart(7)}  ` +
      `${fmt(run.status.rowsRead / (run.ms / 1000)).padStart(9)} rows/s  ${fmt(figures.ratio ?? 0, 2)} of its limit (${fmt(limit.rowsPerSec)} rows/s)`,
  );
  const h = run.history;
  out(
    `      backfill ${seconds(h.backfillMs)} of ${seconds(run.ms)} (wall ${seconds(run.wallMs)}); ` +
      `${h.activityCalls} copy calls of ${seconds(h.meanCallMs)} mean, ${fmt(h.meanGapMs)} ms between calls; ` +
      `${h.runs} workflow runs, ${fmt(h.events)} history events` +
      (h.failedAttempts ? `; ${h.failedAttempts} failed attempts` : ''),
  );
  out(`      worker peak RSS ${fmt(run.peakRssMb)} MB`);
  if (run.load) {
    out(`      foreground UPDATEs during it: p50 ${fmt(run.load.p50Ms, 1)} ms, p99 ${fmt(run.load.p99Ms, 1)} ms (${fmt(run.load.updates)} updates)`);
  }
  const p = run.profile;
  out(
    `      Postgres view (${p.samples} samples, 50 ms apart): no Ferry statement running in ${percent(p.noneActive)} of samples, ` +
      `${fmt(p.meanActive, 2)} running on average`,
  );
  for (const [step, share] of Object.entries(p.steps)) out(`        ${percent(share).padStart(4)}  ${step}`);
  if (run.problems.length === 0) out(`      check: row count and ${'sampled rows'} match the source exactly`);
  else for (const problem of run.problems) out(`      CHECK FAILED: ${problem}`);
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const out = (line: string) => console.log(line);
  const started = Date.now();
  out(`Ferry benchmark: ${fmt(options.rows)} rows, ${os.cpus().length} cores, Node ${process.version}, fsync on.`);
  out('Starting PostgreSQL and a Temporal dev server ...');
  const [postgres, temporalServer] = await Promise.all([startPostgres({ fsync: true, local: true }), startTemporal()]);
  const temporal = temporalSettings({}, { address: temporalServer.address, taskQueue: `ferry-bench-${process.pid}` });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-'));
  let worker: WorkerProcess | null = null;
  let connection: Connection | null = null;
  let load: UpdateLoad | null = null;
  let loadBaseline: LoadFigures | null = null;
  try {
    const sourceUrl = await postgres.createDatabase('bench_source');
    const targetUrl = await postgres.createDatabase('bench_target');
    const loadStarted = Date.now();
    const loaded = await createSource(sourceUrl, options.rows);
    await createTarget(targetUrl);
    out(
      `Source table: ${fmt(options.rows)} rows, ${fmt(loaded.tableMb)} MB with its index, jsonb ~${loaded.jsonbBytes} bytes a row ` +
        `(loaded in ${seconds(Date.now() - loadStarted)}).`,
    );

    worker = startWorkerProcess(
      {
        TEMPORAL_ADDRESS: temporal.address,
        TEMPORAL_NAMESPACE: temporal.namespace,
        FERRY_TASK_QUEUE: temporal.taskQueue,
        [SOURCE_ENV]: sourceUrl,
        [TARGET_ENV]: targetUrl,
        // The bench's transform module lives next to this script.
        FERRY_TRANSFORM_DIR: __dirname,
      },
      path.join(workDir, 'worker.log'),
    );
    connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() });
    await worker.ready(client, temporal.namespace);
    out(`Worker ${worker.pid} is polling, ${fmt(worker.rssMb())} MB resident when idle (log: ${worker.logFile}).`);
    const bench: Bench = { client, temporal, worker, adminUrl: postgres.url(), sourceUrl, rows: options.rows, load: null };

    out('\nRaw limits (one statement each, no Temporal, same data):');
    const sameLimit = await insertSelectLimit(sourceUrl, options.rows);
    const sameLimitProblems = await checkTarget(sourceUrl, sourceUrl, options.rows);
    out(`  same database    INSERT ... SELECT     ${seconds(sameLimit.ms).padStart(7)}  ${fmt(sameLimit.rowsPerSec).padStart(9)} rows/s`);
    const crossLimit = await binaryCopyLimit(sourceUrl, targetUrl, options.rows);
    const crossLimitProblems = await checkTarget(sourceUrl, targetUrl, options.rows);
    out(`  across databases binary COPY pipe      ${seconds(crossLimit.ms).padStart(7)}  ${fmt(crossLimit.rowsPerSec).padStart(9)} rows/s`);
    // If the bench's own check fails on the limits, the check (not Ferry) is wrong.
    for (const problem of [...sameLimitProblems, ...crossLimitProblems]) out(`  CHECK OF THE LIMIT FAILED (the bench's check is wrong): ${problem}`);
    await Promise.all([resetTarget(sourceUrl), resetTarget(targetUrl)]);

    const measure = async (plan: PlanInput, url: string, limit: Limit): Promise<PathResult> => {
      try {
        const run = await runFerry(bench, plan, url);
        const ferryRowsPerSec = run.status.rowsRead / (run.ms / 1000);
        const figures = run.problems.length
          ? { limitRowsPerSec: limit.rowsPerSec, ferryRowsPerSec: null, ratio: null }
          : { limitRowsPerSec: limit.rowsPerSec, ferryRowsPerSec, ratio: ferryRowsPerSec / limit.rowsPerSec };
        return { figures, run, error: null };
      } catch (error) {
        await resetTarget(url).catch(() => {});
        return { figures: { limitRowsPerSec: limit.rowsPerSec, ferryRowsPerSec: null, ratio: null }, run: null, error: rootMessage(error) };
      }
    };

    if (options.withLoad) {
      bench.load = startUpdateLoad(sourceUrl, options.rows, LOAD_PER_SECOND);
      // The first second opens the load's connections; its latencies are not the database's.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      bench.load.mark();
      await new Promise((resolve) => setTimeout(resolve, LOAD_BASELINE_MS));
      const quiet = bench.load.figures();
      out(
        `\nForeground load: ${LOAD_PER_SECOND} single-row UPDATEs/s on the source; without a backfill ` +
          `p50 ${fmt(quiet.p50Ms, 1)} ms, p99 ${fmt(quiet.p99Ms, 1)} ms (${fmt(quiet.updates)} updates in ${seconds(LOAD_BASELINE_MS)}).`,
      );
      load = bench.load;
      loadBaseline = quiet;
    }

    out(`\nFerry through Temporal (shards ${SHARDS}, concurrency ${CONCURRENCY}, batch ${fmt(BATCH_SIZE)}, no rate limit):`);
    const sameDb = await measure(basePlan('bench-same-db', SOURCE_ENV), sourceUrl, sameLimit);
    printRun('same database', sameLimit, sameDb, out);
    const crossDb = await measure(basePlan('bench-cross-db', TARGET_ENV), targetUrl, crossLimit);
    printRun('across databases', crossLimit, crossDb, out);

    // Production stays healthy: the foreground load's p99 under the plan's default throttle.
    let defaultThrottle: PathResult | null = null;
    if (loadBaseline) {
      const { throttle: _opened, shards: _shards, ...defaults } = basePlan('bench-default-throttle', SOURCE_ENV);
      out('\nThe same database with the default throttle (what a plan without a throttle section gets):');
      defaultThrottle = await measure(defaults, sourceUrl, sameLimit);
      printRun('default throttle', sameLimit, defaultThrottle, out);
    }

    // Verification of a complete copy across databases (filled by the COPY pipe, untimed).
    out(`\nVerification across databases (chunks of ${fmt(VERIFY_CHUNK)} keys; two shards at once, verifyShard called in this process, no Temporal):`);
    let verify: PathFigures = { limitRowsPerSec: null, ferryRowsPerSec: null, ratio: null };
    let verifyJsTransform: PathFigures = { limitRowsPerSec: null, ferryRowsPerSec: null, ratio: null };
    let verifyFailed = false;
    const jsPlan: PlanInput = {
      ...basePlan('bench-js-transform', TARGET_ENV),
      transform: { module: path.join(__dirname, 'bench-transform.ts'), columns: targetColumns.map((c) => c.name) },
    };
    try {
      await binaryCopyLimit(sourceUrl, targetUrl, options.rows);
      /** One verification path against the checksum limit; its figures, or null when a check failed. */
      const verifyPath = async (label: string, plan: PlanInput): Promise<PathFigures | null> => {
        const figures = await verifyFigures(validatePlan(plan), { [SOURCE_ENV]: sourceUrl, [TARGET_ENV]: targetUrl }, options.rows);
        out(`  ${'limit: count + sum of md5 row hashes, both sides at once'.padEnd(58)} ${seconds(figures.limitMs).padStart(7)}  ${fmt(figures.limitRowsPerSec).padStart(9)} rows/s`);
        out(
          `  ${`${label} (${figures.calls} call${figures.calls === 1 ? '' : 's'})`.padEnd(58)} ${seconds(figures.ferryMs).padStart(7)}  ` +
            `${fmt(figures.ferryRowsPerSec).padStart(9)} rows/s  ${fmt(figures.ferryRowsPerSec / figures.limitRowsPerSec, 2)} of its limit`,
        );
        for (const problem of figures.problems) out(`      CHECK FAILED: ${problem}`);
        if (figures.problems.length > 0) return null;
        return { limitRowsPerSec: figures.limitRowsPerSec, ferryRowsPerSec: figures.ferryRowsPerSec, ratio: figures.ferryRowsPerSec / figures.limitRowsPerSec };
      };
      const sqlFigures = await verifyPath('Ferry verifyShard, SQL transform', basePlan('bench-verify', TARGET_ENV));
      const jsFigures = await verifyPath('Ferry verifyShard, JavaScript transform', jsPlan);
      verifyFailed = sqlFigures === null || jsFigures === null;
      if (sqlFigures) verify = sqlFigures;
      if (jsFigures) verifyJsTransform = jsFigures;
    } catch (error) {
      verifyFailed = true;
      out(`  verification FAILED: ${rootMessage(error)}`);
    } finally {
      await resetTarget(targetUrl).catch(() => {});
    }
    const jsTransform = await measure(jsPlan, targetUrl, crossLimit);
    printRun('JavaScript transform', crossLimit, jsTransform, out);

    await load?.stop();
    load = null;

    const runs = [sameDb, crossDb, jsTransform].map((r) => r.run).filter((r): r is FerryRun => r !== null);
    const peakWorkerRssMb = Math.round(worker.peakMb());
    const eventsPerMillion = runs.length ? Math.max(...runs.map((r) => (r.history.events / r.status.rowsRead) * 1e6)) : null;
    out('\nSummary:');
    const line = (label: string, r: PathResult) =>
      out(`  ${label.padEnd(22)} ${r.figures.ratio === null ? 'no figure' : `${fmt(r.figures.ratio, 2)} of its limit`}`);
    line('same database', sameDb);
    line('across databases', crossDb);
    line('JavaScript transform', jsTransform);
    line('verify', { figures: verify, run: null, error: null });
    line('verify, JS transform', { figures: verifyJsTransform, run: null, error: null });
    out(`  worker peak RSS        ${peakWorkerRssMb} MB (VmHWM over the whole run)`);
    out(`  history events         ${eventsPerMillion === null ? 'no figure' : fmt(eventsPerMillion)} per million rows (the most of any path)`);
    if (loadBaseline) {
      const p99 = (r: PathResult) => (r.run?.load ? `${fmt(r.run.load.p99Ms, 1)} ms` : 'no figure');
      out(`  foreground p99         ${fmt(loadBaseline.p99Ms, 1)} ms quiet, ${p99(sameDb)} during same database, ${p99(crossDb)} during across databases (no rate limit)`);
      if (defaultThrottle?.run?.load) {
        out(`  foreground p99         ${p99(defaultThrottle)} with the default throttle: ${fmt(defaultThrottle.run.load.p99Ms / loadBaseline.p99Ms, 2)}x the quiet p99`);
      }
    }
    out(`Finished in ${seconds(Date.now() - started)}.`);

    const failed = [sameDb, crossDb].some((r) => r.run === null) || runs.some((r) => r.problems.length > 0) || verifyFailed;
    if (failed) out('\nBENCH FAILED: a Ferry path failed or copied wrong data (see above).');
    if (options.json) {
      const round = (f: PathFigures) => ({
        limitRowsPerSec: f.limitRowsPerSec === null ? null : Math.round(f.limitRowsPerSec),
        ferryRowsPerSec: f.ferryRowsPerSec === null ? null : Math.round(f.ferryRowsPerSec),
        ratio: f.ratio === null ? null : Number(f.ratio.toFixed(3)),
      });
      console.log(
        JSON.stringify({
          sameDb: round(sameDb.figures),
          crossDb: round(crossDb.figures),
          jsTransform: round(jsTransform.figures),
          verify: round(verify),
          verifyJsTransform: round(verifyJsTransform),
          peakWorkerRssMb,
          historyEventsPerMillionRows: eventsPerMillion === null ? null : Math.round(eventsPerMillion),
          ...(loadBaseline && {
            foregroundUpdateP99Ms: {
              quiet: Number(loadBaseline.p99Ms.toFixed(2)),
              sameDb: sameDb.run?.load ? Number(sameDb.run.load.p99Ms.toFixed(2)) : null,
              crossDb: crossDb.run?.load ? Number(crossDb.run.load.p99Ms.toFixed(2)) : null,
              defaultThrottle: defaultThrottle?.run?.load ? Number(defaultThrottle.run.load.p99Ms.toFixed(2)) : null,
              defaultThrottleRatio: defaultThrottle?.run?.load ? Number((defaultThrottle.run.load.p99Ms / loadBaseline.p99Ms).toFixed(2)) : null,
            },
          }),
        }),
      );
    }
    return failed ? 1 : 0;
  } finally {
    await load?.stop();
    await worker?.stop();
    await connection?.close();
    await temporalServer.stop();
    await postgres.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench failed: ${rootMessage(error)}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
