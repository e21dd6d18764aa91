/**
 * Ferry end to end through Temporal for the benchmark: a migration started as the CLI starts it,
 * followed to its end (or stopped when it is stuck), and its result checked by the bench's SQL.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { migrationReport, shardCopyRetries, startMigration } from '../../operator';
import { rootMessage } from '../../lib/errors';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { temporalSettings } from '../../lib/settings';
import { throttleDefaults } from '../../lib/throttle';
import type { MigrationStatus } from '../../lib/status';
import type { migrationWorkflow } from '../../workflows/migration';
import { sampleFerryActivity, type ActivityProfile } from './activity-sampler';
import { checkTarget, resetTarget, SOURCE_TABLE, TARGET_TABLE, transformSql } from './dataset';
import { historyCost, type HistoryCost } from './histories';
import type { LoadFigures, UpdateLoad } from './update-load';
import type { WorkerProcess } from './worker-process';

export const SHARDS = 2;
/** The plan's defaults, so the figures are those of the default path, only unthrottled. */
export const CONCURRENCY = throttleDefaults.concurrency;
export const BATCH_SIZE = throttleDefaults.batchSize;
/** A copy call failing this many times in a row ends its path: it will not heal by itself. */
const MAX_ATTEMPTS = 3;
/** A path whose row count does not move for this long is stuck. */
const STALL_MS = 90_000;
const POLL_MS = 3000;

export const SOURCE_ENV = 'BENCH_SOURCE_URL';
export const TARGET_ENV = 'BENCH_TARGET_URL';

export interface FerryRun {
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

export interface Bench {
  client: Client;
  temporal: ReturnType<typeof temporalSettings>;
  worker: WorkerProcess;
  adminUrl: string;
  sourceUrl: string;
  rows: number;
  load: UpdateLoad | null;
}

export async function terminateAll(bench: Bench, migrationId: string, reason: string): Promise<void> {
  for await (const execution of bench.client.workflow.list({ query: `WorkflowId STARTS_WITH '${migrationId}' AND ExecutionStatus = 'Running'` })) {
    await bench.client.workflow.getHandle(execution.workflowId).terminate(reason).catch(() => {});
  }
}

/**
 * Follows a migration to its end. Ends it early, with the copier's own error, when a copy call
 * keeps failing (the activity retries forever by design) or when no row moves for a while.
 */
export async function awaitMigration(bench: Bench, handle: WorkflowHandle<typeof migrationWorkflow>): Promise<MigrationStatus> {
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
    for (const { retry } of await shardCopyRetries(bench.client, report.status)) {
      if (retry.attempt >= MAX_ATTEMPTS) failure = `copy activity failed ${retry.attempt - 1} times: ${retry.lastFailure ?? 'no message'}`;
    }
    if (!failure && Date.now() - lastMove > STALL_MS) failure = `no progress for ${STALL_MS / 1000} s at ${lastRows} rows`;
    if (failure) {
      await terminateAll(bench, handle.workflowId, `bench: ${failure}`);
      throw new Error(failure);
    }
  }
}

export async function runFerry(bench: Bench, plan: PlanInput, targetUrl: string): Promise<FerryRun> {
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

export function basePlan(name: string, targetEnv: string): PlanInput {
  return {
    name,
    source: { connection: SOURCE_ENV, table: SOURCE_TABLE, key: 'id' },
    target: { connection: targetEnv, table: TARGET_TABLE },
    transform: { sql: transformSql },
    // Opened up: the speed figures are taken with no rows/s cap and no pacing controller; the
    // batch size, concurrency and checkpoint interval are the plan's defaults.
    throttle: { batchSize: BATCH_SIZE, concurrency: CONCURRENCY, rowsPerSecond: null, budget: false },
    shards: { count: SHARDS },
    // Copy paths are timed alone; verification has its own figure below.
    verify: { enabled: false },
  };
}

/** One Ferry run: its rate, or why there is none. */
export interface RunOutcome {
  run: FerryRun | null;
  rowsPerSec: number | null;
  error: string | null;
}

/** Runs one Ferry path; a failed or wrongly copied run gives no rate. */
export async function measureFerry(bench: Bench, plan: PlanInput, targetUrl: string): Promise<RunOutcome> {
  try {
    const run = await runFerry(bench, plan, targetUrl);
    return { run, rowsPerSec: run.problems.length ? null : run.status.rowsRead / (run.ms / 1000), error: null };
  } catch (error) {
    await resetTarget(targetUrl).catch(() => {});
    return { run: null, rowsPerSec: null, error: rootMessage(error) };
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const seconds = (ms: number) => `${fmt(ms / 1000, 1)} s`;
const percent = (share: number) => `${fmt(share * 100)}%`;

/** One Ferry run against the limit of the same round; details only with `detail`. */
export function printRun(label: string, limitRowsPerSec: number | null, outcome: RunOutcome, detail: boolean, out: (line: string) => void): void {
  const { run } = outcome;
  if (!run) {
    out(`    ${label.padEnd(30)} FAILED: ${outcome.error?.replace(/\n/g, '\n      ')}`);
    return;
  }
  const rate = run.status.rowsRead / (run.ms / 1000);
  out(
    `    ${label.padEnd(30)} ${seconds(run.ms).padStart(7)}  ${fmt(rate).padStart(9)} rows/s` +
      (limitRowsPerSec ? `  ${fmt(rate / limitRowsPerSec, 2)} of this round's limit` : ''),
  );
  for (const problem of run.problems) out(`      CHECK FAILED: ${problem}`);
  if (!detail) return;
  const h = run.history;
  out(
    `      backfill ${seconds(h.backfillMs)} of ${seconds(run.ms)} (wall ${seconds(run.wallMs)}); ` +
      `${h.activityCalls} copy calls of ${seconds(h.meanCallMs)} mean, ${fmt(h.meanGapMs)} ms between calls; ` +
      `${h.runs} workflow runs, ${fmt(h.events)} history events (migration ${fmt(h.migrationEvents)}, shards ${Object.values(h.shardEvents).join(', ')})` +
      (h.failedAttempts ? `; ${h.failedAttempts} failed attempts` : '') +
      `; worker peak RSS ${fmt(run.peakRssMb)} MB`,
  );
  const before = h.migrationActivities.map((a) => `${a.name} ${fmt(a.ms)} ms`).join(', ');
  const perBatch = h.batches ? (h.meanCallMs * h.activityCalls) / h.batches : NaN;
  out(
    `      start to first batch ${fmt(h.firstCopyMs)} ms (migration activities: ${before || 'none'}); ` +
      `${fmt(h.batches)} batches, ${fmt(perBatch)} ms each (${fmt(run.status.rowsRead / Math.max(1, h.batches))} rows) in a shard; ` +
      `last batch to end ${fmt(h.afterLastCopyMs)} ms`,
  );
  if (run.load) out(`      foreground UPDATEs during it: p50 ${fmt(run.load.p50Ms, 1)} ms, p99 ${fmt(run.load.p99Ms, 1)} ms (${fmt(run.load.updates)} updates)`);
  const p = run.profile;
  out(`      Postgres view (${p.samples} samples): no Ferry statement running in ${percent(p.noneActive)} of samples, ${fmt(p.meanActive, 2)} running on average`);
  for (const [step, share] of Object.entries(p.steps)) out(`        ${percent(share).padStart(4)}  ${step}`);
}
