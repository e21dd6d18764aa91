/**
 * `npm run bench`: how fast Ferry copies against what the machine can do. On a throwaway
 * Postgres (fsync on) and a local Temporal dev server it measures, round after round on the same
 * data, each limit with the best tool there is (one INSERT ... SELECT; psql's binary COPY piped
 * into psql; both sides' checksums at once) interleaved with Ferry end to end through Temporal,
 * and quotes each figure and ratio as the median with its spread: these machines are noisy, so
 * only ratios within one run mean anything. `--foreground` measures what a copy costs pgbench;
 * `--capture` what a trigger-capture migration costs it, and how fast the changes are applied.
 */
import { Client, Connection } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { rootMessage } from '../lib/errors';
import { validatePlan, type PlanInput } from '../lib/plan';
import { temporalSettings } from '../lib/settings';
import { checkTarget, createSource, createTarget, resetTarget, targetColumns } from './bench/dataset';
import { BATCH_SIZE, basePlan, CONCURRENCY, measureFerry, printRun, SHARDS, SOURCE_ENV, TARGET_ENV, type Bench, type RunOutcome } from './bench/ferry-run';
import { runCaptureBench } from './bench/capture';
import { runForeground } from './bench/foreground';
import { fasterOf, insertSelectLimit, psqlCopyLimit, type Limit } from './bench/limits';
import { findPgcopydb, PGCOPYDB_JOBS, pgcopydbCopy } from './bench/peers';
import { findPgroll, PgrollFigures, pgrollBackfill } from './bench/pgroll';
import { initPgbench } from './bench/pgbench';
import { ensurePgTool, toolVersion } from './bench/pg-tools';
import { formatSpread, formatTimes, jsonSpread, PathFigures, spreadOf } from './bench/stats';
import { growthOf, pointOf, smallRunHistory, type HistoryGrowth } from './bench/history-growth';
import { DUAL_WRITE_LAG_MS, DUAL_WRITES_PER_SECOND, startDualWriteLoad, startUpdateLoad, type LoadFigures } from './bench/update-load';
import { checksumLimit, ferryVerify, LIMIT_CHUNK, settleTarget, VERIFY_STREAMS } from './bench/verify';
import { startWorkerProcess, type WorkerProcess } from './bench/worker-process';
import { LOAD_BASELINE_MS, LOAD_PER_SECOND, parseOptions, UsageError } from './bench/options';
import { startPostgres } from './services/postgres';
import { startTemporal } from './services/temporal';
import { ferryDataConverter } from '../workers/payload-codec';

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;

const limitLine = (label: string, limit: { ms: number; rowsPerSec: number }) => `    ${label.padEnd(30)} ${seconds(limit.ms).padStart(7)}  ${fmt(limit.rowsPerSec).padStart(9)} rows/s`;
/** Both stream counts of a limit, the faster one marked: it is the one Ferry is quoted against. */
const limitLines = (label: string, limit: { best: Limit; all: Limit[] }) =>
  limit.all.map((l) => `${limitLine(`${label}, ${l.streams === 1 ? '1 stream' : `${l.streams} at once`}`, l)}${l === limit.best ? '  (the limit)' : ''}`).join('\n');

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const out = (line: string) => console.log(line);
  const started = Date.now();
  // Other work on the machine moves every figure: the load average says how busy it was.
  const loadAverage = () => os.loadavg().map((n) => Number(n.toFixed(2)));
  const loadAtStart = loadAverage();
  const size = options.capture ? `pgbench scale ${options.scale}` : `${fmt(options.rows)} rows`;
  out(`Ferry benchmark: ${size}, ${options.rounds} rounds, ${os.cpus().length} cores (load average ${loadAtStart.join(' ')}), Node ${process.version}, fsync on.`);
  const psql = ensurePgTool('psql');
  const pgbench = options.foreground || options.capture ? ensurePgTool('pgbench') : null;
  out(`Tools: ${toolVersion(psql)}${pgbench ? `; ${toolVersion(pgbench)}` : ''}.`);
  const pgcopydb = options.peers ? findPgcopydb() : null;
  const pgroll = options.peers ? findPgroll() : null;
  out('Starting PostgreSQL and a Temporal dev server ...');
  const [postgres, temporalServer] = await Promise.all([startPostgres({ fsync: true, local: true, ...(options.statements ? { preload: ['pg_stat_statements'] } : {}) }), startTemporal()]);
  const temporal = temporalSettings({}, { address: temporalServer.address, taskQueue: `ferry-bench-${process.pid}` });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-'));
  let worker: WorkerProcess | null = null;
  let connection: Connection | null = null;
  const bench: Partial<Bench> = {};
  try {
    const sourceUrl = await postgres.createDatabase('bench_source');
    const targetUrl = await postgres.createDatabase('bench_target');
    if (options.statements) {
      const admin = new pg.Client({ connectionString: sourceUrl });
      await admin.connect();
      await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements').finally(() => admin.end());
      out('pg_stat_statements is loaded: the pacing controller reads the latency of the application\'s own statements.');
    }
    // --capture migrates pgbench's own table: the bench's table is not needed.
    if (!options.capture) {
      const loadStarted = Date.now();
      const loaded = await createSource(sourceUrl, options.rows);
      await createTarget(targetUrl);
      out(
        `Source table: ${fmt(options.rows)} rows, ${fmt(loaded.tableMb)} MB with its index, jsonb ~${loaded.jsonbBytes} bytes a row ` +
          `(loaded in ${seconds(Date.now() - loadStarted)}).`,
      );
    }

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
    Object.assign(bench, { client, temporal, worker, adminUrl: postgres.url(), sourceUrl, rows: options.rows, load: null });
    const ready = bench as Bench;

    if (pgbench) {
      const initStarted = Date.now();
      await initPgbench(pgbench, sourceUrl, options.scale);
      out(`pgbench -i -s ${options.scale} in the source database (${seconds(Date.now() - initStarted)}); windows of ${options.seconds} s.`);
      const run = { pgbench, seconds: options.seconds, rounds: options.rounds, mode: options.captureMode, out };
      let summary: Record<string, unknown>;
      if (options.capture) {
        out(`\nCapture: pgbench quiet, during a capture: ${options.captureMode} migration's backfill, and at its gate after the catch-up, interleaved:`);
        summary = await runCaptureBench(ready, run);
      } else {
        out(`\nForeground: pgbench quiet and during a same-database Ferry copy, interleaved:`);
        summary = await runForeground(ready, { ...run, rows: options.rows });
      }
      const loadAtEnd = loadAverage();
      out(`Finished in ${seconds(Date.now() - started)} (load average ${loadAtEnd.join(' ')}).`);
      if (options.json) {
        const figures = options.capture ? { capture: summary } : { rows: options.rows, foreground: summary };
        console.log(JSON.stringify({ rounds: options.rounds, seconds: options.seconds, scale: options.scale, statements: options.statements, loadAverage: { start: loadAtStart, end: loadAtEnd }, ...figures }));
      }
      return 0;
    }

    let loadBaseline: LoadFigures | null = null;
    if (options.withLoad) {
      ready.load = startUpdateLoad(sourceUrl, options.rows, LOAD_PER_SECOND);
      // The first second opens the load's connections; its latencies are not the database's.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      ready.load.mark();
      await new Promise((resolve) => setTimeout(resolve, LOAD_BASELINE_MS));
      loadBaseline = ready.load.figures();
      out(
        `\nForeground load: ${LOAD_PER_SECOND} single-row UPDATEs/s on the source all along; without a backfill ` +
          `p50 ${fmt(loadBaseline.p50Ms, 1)} ms, p99 ${fmt(loadBaseline.p99Ms, 1)} ms.`,
      );
    }

    const peerUrl = pgcopydb && 'binary' in pgcopydb ? await postgres.createDatabase('bench_peer') : null;
    const jsPlan: PlanInput = {
      ...basePlan('bench-js-transform', TARGET_ENV),
      transform: { module: path.join(__dirname, 'bench-transform.ts'), columns: targetColumns.map((c) => c.name) },
    };
    const env = { [SOURCE_ENV]: sourceUrl, [TARGET_ENV]: targetUrl };
    const same = new PathFigures(`INSERT ... SELECT of the transform, the faster of one statement and ${SHARDS} over key ranges at once`);
    const cross = new PathFigures(
      `psql COPY (SELECT ...) TO STDOUT (FORMAT binary) | psql COPY ... FROM STDIN (FORMAT binary), the faster of one pipe and ${SHARDS} over key ranges at once`,
    );
    const js = new PathFigures('the same psql COPY pipes');
    const verifySql = new PathFigures(`per-chunk count + sum of md5 row hashes (${fmt(LIMIT_CHUNK)} keys), both databases at once, ${VERIFY_STREAMS} ranges at once; Ferry in the plan's default chunks`);
    const verifyJs = new PathFigures('the same checksum scan');
    /** Each round's pass under dual writes as a multiple of its quiet pass. */
    const verifyUnderWrites: number[] = [];
    const pgcopydbRates: number[] = [];
    const pgcopydbShares: number[] = [];
    const pgrollFigures = new PgrollFigures();
    const outcomes: RunOutcome[] = [];
    const failures: string[] = [];
    const sameDbEvents: number[] = [];
    const sameDbShardEvents: number[] = [];
    const ferry = async (label: string, plan: PlanInput, url: string, limit: Limit, figures: PathFigures, round: number) => {
      const outcome = await measureFerry(ready, plan, url);
      outcomes.push(outcome);
      if (figures === same && outcome.run) {
        const point = pointOf(options.rows, outcome.run.history);
        sameDbEvents.push(point.events);
        sameDbShardEvents.push(point.shardEvents);
      }
      if (outcome.rowsPerSec === null) failures.push(`${label}, round ${round}`);
      figures.add(limit.rowsPerSec, outcome.rowsPerSec);
      printRun(`Ferry ${label}`, limit.rowsPerSec, outcome, round === 1, out);
    };

    out(`\nRounds: each limit, then Ferry through Temporal (shards ${SHARDS}, concurrency ${CONCURRENCY}, batch ${fmt(BATCH_SIZE)}, no rate limit):`);
    for (let round = 1; round <= options.rounds; round += 1) {
      out(`  round ${round} of ${options.rounds}:`);
      const sameLimitRun = await fasterOf(SHARDS, round, (streams) => insertSelectLimit(sourceUrl, options.rows, streams));
      const sameLimit = sameLimitRun.best;
      out(limitLines('INSERT ... SELECT', sameLimitRun));
      // If the bench's own check fails on a limit, the check (not Ferry) is wrong.
      if (round === 1) for (const problem of await checkTarget(sourceUrl, sourceUrl, options.rows)) out(`    CHECK OF THE LIMIT FAILED: ${problem}`);
      await resetTarget(sourceUrl);
      await ferry('same database', basePlan('bench-same-db', SOURCE_ENV), sourceUrl, sameLimit, same, round);

      const crossLimitRun = await fasterOf(SHARDS, round, (streams) => psqlCopyLimit(psql, sourceUrl, targetUrl, options.rows, streams));
      const crossLimit = crossLimitRun.best;
      out(limitLines('psql COPY pipe', crossLimitRun));
      if (round === 1) for (const problem of await checkTarget(sourceUrl, targetUrl, options.rows)) out(`    CHECK OF THE LIMIT FAILED: ${problem}`);
      // Verification runs on the complete copy the pipe just made.
      await settleTarget(targetUrl);
      const checksum = await checksumLimit(sourceUrl, targetUrl, options.rows);
      out(limitLine(`checksum scan, ${VERIFY_STREAMS} at once`, checksum));
      for (const problem of checksum.problems) out(`    CHECK OF THE LIMIT FAILED: ${problem}`);
      let quietVerifyMs: number | null = null;
      for (const [label, plan, figures] of [
        ['verify, SQL transform', basePlan('bench-verify', TARGET_ENV), verifySql],
        ['verify, JS transform', jsPlan, verifyJs],
      ] as const) {
        try {
          const validated = validatePlan(plan);
          const run = await ferryVerify(validated, env, options.rows);
          if (figures === verifySql && !run.problems.length) quietVerifyMs = run.ms;
          figures.add(checksum.rowsPerSec, run.problems.length ? null : run.rowsPerSec);
          out(`    ${`Ferry ${label}`.padEnd(30)} ${seconds(run.ms).padStart(7)}  ${fmt(run.rowsPerSec).padStart(9)} rows/s  ${fmt(run.rowsPerSec / checksum.rowsPerSec, 2)} of this round's limit (${run.calls} calls, chunks of ${fmt(validated.verify.chunkSize)} keys)`);
          for (const problem of run.problems) out(`      CHECK FAILED: ${problem}`);
          if (run.problems.length) failures.push(`${label}, round ${round}`);
        } catch (error) {
          figures.add(checksum.rowsPerSec, null);
          failures.push(`${label}, round ${round}`);
          out(`    Ferry ${label} FAILED: ${rootMessage(error)}`);
        }
      }
      // The same pass while an application writes both sides: differing rows are read again
      // after the in-flight delay, and the pass should stay within a small multiple of the quiet one.
      const writes = startDualWriteLoad(sourceUrl, targetUrl, options.rows, DUAL_WRITES_PER_SECOND, DUAL_WRITE_LAG_MS);
      try {
        const run = await ferryVerify(validatePlan(basePlan('bench-verify', TARGET_ENV)), env, options.rows).finally(() => writes.stop());
        if (writes.failed() > 0) run.problems.push(`${writes.failed()} dual writes failed`);
        // The bench's own check that the writes left both sides equal, so a clean pass is true.
        run.problems.push(...(await checkTarget(sourceUrl, targetUrl, options.rows)));
        const ofQuiet = quietVerifyMs === null || run.problems.length ? null : run.ms / quietVerifyMs;
        if (ofQuiet !== null) verifyUnderWrites.push(ofQuiet);
        else failures.push(`verify under dual writes, round ${round}`);
        out(
          `    ${'Ferry verify under writes'.padEnd(30)} ${seconds(run.ms).padStart(7)}  ${fmt(run.rowsPerSec).padStart(9)} rows/s  ` +
            `${ofQuiet === null ? 'no figure' : `${fmt(ofQuiet, 2)}x the quiet pass`} (${fmt(writes.written())} rows written to both sides at ${DUAL_WRITES_PER_SECOND}/s, ${fmt(run.inFlight)} read again in flight)`,
        );
        for (const problem of run.problems) out(`      CHECK FAILED: ${problem}`);
      } catch (error) {
        failures.push(`verify under dual writes, round ${round}`);
        out(`    Ferry verify under writes FAILED: ${rootMessage(error)}`);
      }
      await resetTarget(targetUrl);
      await ferry('across databases', basePlan('bench-cross-db', TARGET_ENV), targetUrl, crossLimit, cross, round);
      await ferry('JavaScript transform', jsPlan, targetUrl, crossLimit, js, round);

      if (pgcopydb && 'binary' in pgcopydb && peerUrl) {
        try {
          const peer = await pgcopydbCopy(pgcopydb.binary, sourceUrl, peerUrl, options.rows);
          pgcopydbRates.push(peer.rowsPerSec);
          pgcopydbShares.push(peer.rowsPerSec / crossLimit.rowsPerSec);
          out(`${limitLine(`pgcopydb, ${PGCOPYDB_JOBS} jobs`, peer)}  ${fmt(peer.rowsPerSec / crossLimit.rowsPerSec, 2)} of the psql pipe (no transform)`);
        } catch (error) {
          out(`    pgcopydb FAILED: ${rootMessage(error)}`);
        }
      }
      if (pgroll && 'binary' in pgroll) {
        try {
          const run = await pgrollBackfill(pgroll.binary, await postgres.createDatabase('bench_pgroll'), options.rows);
          pgrollFigures.add(run, sameLimit.rowsPerSec);
          out(`${limitLine(`pgroll backfill, ${run.passes} passes`, run)}  ${fmt(run.rowsPerSec / sameLimit.rowsPerSec, 2)} of INSERT ... SELECT`);
          for (const problem of run.problems) out(`      CHECK FAILED: ${problem}`);
        } catch (error) {
          out(`    pgroll FAILED: ${rootMessage(error)}`);
        }
      }
    }
    // A fifth of the table once more: two sizes tell the fixed events from the slope.
    let growth: HistoryGrowth | null = null;
    const fullEvents = spreadOf(sameDbEvents);
    const fullShardEvents = spreadOf(sameDbShardEvents);
    if (fullEvents && fullShardEvents) {
      const part = Math.floor(options.rows / 5);
      try {
        const small = await smallRunHistory(ready, basePlan('bench-same-db', SOURCE_ENV), sourceUrl, part);
        const full = { rows: options.rows, events: fullEvents.median, migrationEvents: 0, shardEvents: fullShardEvents.median };
        growth = growthOf(pointOf(part, small.cost), full, SHARDS, small.problems);
        for (const problem of small.problems) failures.push(`history run over ${part} keys: ${problem}`);
      } catch (error) {
        failures.push(`history run over a fifth of the table: ${rootMessage(error)}`);
      }
    }
    const updateLoad = ready.load;
    ready.load = null;
    await updateLoad?.stop();

    const runs = outcomes.flatMap((o) => (o.run ? [o.run] : []));
    const peakWorkerRssMb = Math.round(worker.peakMb());
    const eventsPerMillion = runs.length ? Math.max(...runs.map((r) => (r.history.events / r.status.rowsRead) * 1e6)) : null;
    out(`\nSummary (median (min..max) of ${options.rounds} interleaved rounds; each ratio is Ferry over the limit of its own round):`);
    out(`  ${'path'.padEnd(22)} ${'limit rows/s'.padEnd(26)} ${'Ferry rows/s'.padEnd(26)} ratio`);
    const paths = { sameDb: same, crossDb: cross, jsTransform: js, verify: verifySql, verifyJsTransform: verifyJs };
    const labels: Record<keyof typeof paths, string> = {
      sameDb: 'same database',
      crossDb: 'across databases',
      jsTransform: 'JavaScript transform',
      verify: 'verify',
      verifyJsTransform: 'verify, JS transform',
    };
    for (const [key, figures] of Object.entries(paths) as [keyof typeof paths, PathFigures][]) {
      const { limit, ferry: rate, ratio } = figures.spreads();
      out(`  ${labels[key].padEnd(22)} ${formatSpread(limit).padEnd(26)} ${formatSpread(rate).padEnd(26)} ${formatSpread(ratio, 2)}`);
    }
    for (const [key, figures] of Object.entries(paths) as [keyof typeof paths, PathFigures][]) out(`  limit of ${labels[key]}: ${figures.limitTool}`);
    if (options.peers) {
      if (pgcopydb && 'missing' in pgcopydb) out(`  pgcopydb: skipped, it cannot be installed here: ${pgcopydb.missing}`);
      else out(`  pgcopydb (${pgcopydb?.version}), table data, ${PGCOPYDB_JOBS} jobs, no transform: ${formatSpread(spreadOf(pgcopydbRates))} rows/s, ${formatSpread(spreadOf(pgcopydbShares), 2)} of the psql pipe`);
      const pgrollSpreads = pgrollFigures.spreads();
      if (pgroll && 'missing' in pgroll) out(`  pgroll: skipped, it cannot be built here: ${pgroll.missing}`);
      else out(`  ${pgroll?.version}, backfill of the same transform in place: ${formatSpread(pgrollSpreads.rate)} rows/s, ${formatSpread(pgrollSpreads.share, 2)} of INSERT ... SELECT; ${pgrollFigures.shape()}`);
    }
    out(
      `  verify under writes    ${formatTimes(spreadOf(verifyUnderWrites), 2)} the quiet pass of its round ` +
        `(${DUAL_WRITES_PER_SECOND} rows/s written to both sides, the target ${DUAL_WRITE_LAG_MS} ms after the source)`,
    );
    out(`  worker peak RSS        ${peakWorkerRssMb} MB (VmHWM over the whole run)`);
    out(`  history events         ${eventsPerMillion === null ? 'no figure' : fmt(eventsPerMillion)} per million rows (the most of any run, fixed part included)`);
    if (growth) {
      out(
        `  history growth         same database: ${fmt(growth.small.events)} events at ${fmt(growth.small.rows)} rows, ${fmt(growth.full.events)} at ${fmt(growth.full.rows)}: ` +
          `${fmt(growth.fixedEvents)} fixed + ${fmt(growth.eventsPerMillion)} per additional million rows (a shard: ${fmt(growth.shardEventsPerMillion)} per million it copies)`,
      );
    }
    const loadP99 = spreadOf(runs.flatMap((r) => (r.load ? [r.load.p99Ms] : [])));
    if (loadBaseline) out(`  foreground UPDATE p99  ${fmt(loadBaseline.p99Ms, 1)} ms quiet, ${formatSpread(loadP99, 1)} ms during the Ferry runs (unthrottled)`);
    const loadAtEnd = loadAverage();
    out(`Finished in ${seconds(Date.now() - started)} (load average ${loadAtEnd.join(' ')}).`);

    if (failures.length) out(`\nBENCH FAILED: Ferry failed or copied wrong data in: ${failures.join('; ')} (see above).`);
    if (options.json) {
      console.log(
        JSON.stringify({
          rows: options.rows,
          rounds: options.rounds,
          loadAverage: { start: loadAtStart, end: loadAtEnd },
          ...Object.fromEntries(Object.entries(paths).map(([key, figures]) => [key, figures.json()])),
          ...(options.peers && {
            peers: {
              pgcopydb:
                pgcopydb && 'binary' in pgcopydb
                  ? { version: pgcopydb.version, jobs: PGCOPYDB_JOBS, rowsPerSec: jsonSpread(spreadOf(pgcopydbRates)), shareOfPsqlPipe: jsonSpread(spreadOf(pgcopydbShares), 3) }
                  : { skipped: pgcopydb?.missing ?? 'not looked for' },
              pgroll:
                pgroll && 'binary' in pgroll
                  ? { version: pgroll.version, rowsPerSec: jsonSpread(pgrollFigures.spreads().rate), shareOfInsertSelect: jsonSpread(pgrollFigures.spreads().share, 3), shape: pgrollFigures.shape() }
                  : { skipped: pgroll?.missing ?? 'not looked for' },
            },
          }),
          verifyUnderWrites: { ofQuietPass: jsonSpread(spreadOf(verifyUnderWrites), 3), writesPerSecond: DUAL_WRITES_PER_SECOND, lagMs: DUAL_WRITE_LAG_MS },
          peakWorkerRssMb,
          historyEventsPerMillionRows: eventsPerMillion === null ? null : Math.round(eventsPerMillion),
          historyGrowth: growth && {
            fixedEvents: Math.round(growth.fixedEvents),
            eventsPerMillionRows: Math.round(growth.eventsPerMillion),
            shardEventsPerMillionRows: Math.round(growth.shardEventsPerMillion),
            points: [growth.small, growth.full].map((p) => ({ rows: p.rows, events: p.events, shardEvents: Math.round(p.shardEvents) })),
          },
          ...(loadBaseline && { foregroundUpdateP99Ms: { quiet: Number(loadBaseline.p99Ms.toFixed(2)), duringFerryRuns: jsonSpread(loadP99, 2) } }),
        }),
      );
    }
    return failures.length ? 1 : 0;
  } finally {
    await bench.load?.stop();
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
