/**
 * `--capture`: what trigger capture costs an unmodified application. pgbench's TPC-B script runs
 * quiet, then during a `capture: trigger` migration of pgbench_accounts at the default throttle
 * (the backfill), then while Ferry applies its changes at the cleanup gate after the catch-up,
 * round after round; tps and p99 are quoted as ratios of the quiet run of the same round, and
 * Ferry's change-apply rate against pgbench's rate of writes to the captured table.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrationReport, startMigration } from '../../cli/migrations';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { abortUpdate, approveUpdate } from '../../workflows/messages';
import type { migrationWorkflow } from '../../workflows/migration';
import { countRows } from './dataset';
import { terminateAll, SOURCE_ENV, type Bench } from './ferry-run';
import { TPCB, waitFerryIdle } from './foreground';
import { runPgbench, type PgbenchRun } from './pgbench';
import { formatSpread, jsonSpread, spreadOf } from './stats';

const SOURCE = 'pgbench_accounts';
const TARGET = 'pgbench_accounts_v2';
/** A backfill must last this share of its window for the window to count as "during the backfill". */
const COVERED_SHARE = 0.8;
/** How often the window samples the migration's status (the applier reports every ~5 s call). */
const SAMPLE_MS = 250;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The plan a user writes for this table: capture on, no throttle section (the default throttle). */
function capturePlan(): PlanInput {
  return {
    name: 'bench-capture',
    source: { connection: SOURCE_ENV, table: SOURCE, key: 'aid' },
    target: { connection: SOURCE_ENV, table: TARGET },
    transform: { sql: { aid: 'aid', bid: 'bid', abalance_cents: 'abalance::bigint * 100', filler: 'filler' } },
    capture: 'trigger',
    // The windows measure the copy and the change apply; verification is not what is timed here.
    verify: { enabled: false },
  };
}

async function onSource<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'ferry-bench' });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** Ferry's change apply during one window, from the applier's own counts in the status. */
interface ApplyWindow {
  /** Changed keys applied a second between the first and the last applier report inside the window; null with fewer than two. */
  keysPerSec: number | null;
  /** Changes waiting at the applier's last report in the window. */
  waitingAtEnd: number | null;
  /** The backfill ended inside the window after this many seconds (backfill windows only). */
  backfillEndedAfterS: number | null;
}

/** Runs pgbench for a window while sampling the migration's status: the applier's counts as it reported them. */
async function windowWithApply(bench: Bench, id: string, run: () => Promise<PgbenchRun>): Promise<{ run: PgbenchRun; apply: ApplyWindow }> {
  const reports = new Map<string, number>();
  let last: MigrationStatus | null = null;
  let sampling = true;
  const startedAt = new Date().toISOString();
  const sampler = (async () => {
    while (sampling) {
      const status = (await migrationReport(bench.client, id).catch(() => null))?.status ?? null;
      const lag = status?.capture?.lag;
      if (status && lag?.measuredAt && lag.measuredAt >= startedAt) reports.set(lag.measuredAt, status.capture!.keysApplied);
      if (status) last = status;
      await sleep(SAMPLE_MS);
    }
  })();
  const result = await run();
  const endedAt = new Date().toISOString();
  sampling = false;
  await sampler;
  const inside = [...reports.entries()].filter(([at]) => at <= endedAt).sort(([a], [b]) => a.localeCompare(b));
  const first = inside[0];
  const lastReport = inside.at(-1);
  const keysPerSec = first && lastReport && lastReport[0] > first[0] ? (lastReport[1] - first[1]) / ((Date.parse(lastReport[0]) - Date.parse(first[0])) / 1000) : null;
  const backfill = (last as MigrationStatus | null)?.phases.find((p) => p.name === 'backfill');
  const backfillEndedAfterS = backfill?.endedAt && backfill.endedAt < endedAt ? Math.max(0, (Date.parse(backfill.endedAt) - Date.parse(startedAt)) / 1000) : null;
  return { run: result, apply: { keysPerSec, waitingAtEnd: (last as MigrationStatus | null)?.capture?.lag?.changesWaiting ?? null, backfillEndedAfterS } };
}

interface Round {
  quiet: PgbenchRun;
  backfill: { run: PgbenchRun; apply: ApplyWindow };
  atGate: { run: PgbenchRun; apply: ApplyWindow };
}

export interface CaptureBenchOptions {
  pgbench: string;
  seconds: number;
  rounds: number;
  out: (line: string) => void;
}

/** Creates the reshaped target next to pgbench's tables (abalance in bigint cents). */
export async function createCaptureTarget(url: string): Promise<void> {
  await onSource(url, (client) => client.query(`CREATE TABLE IF NOT EXISTS ${TARGET} (aid int PRIMARY KEY, bid int, abalance_cents bigint NOT NULL, filler char(84))`));
}

/** One migration: pgbench during its backfill, then at the cleanup gate; then the gate is approved and the trigger goes. */
async function captureRound(bench: Bench, pgbenchRun: () => Promise<PgbenchRun>): Promise<Omit<Round, 'quiet'>> {
  const url = bench.sourceUrl;
  await onSource(url, (client) => client.query(`TRUNCATE ${TARGET}`));
  const handle: WorkflowHandle<typeof migrationWorkflow> = await startMigration(bench.client, bench.temporal, validatePlan(capturePlan(), 'bench-capture'), {
    execute: true,
    rerun: true,
  });
  const id = handle.workflowId;
  const statusOf = async () => (await migrationReport(bench.client, id).catch(() => null))?.status ?? null;
  let windows: Omit<Round, 'quiet'>;
  let triggersLeft: string[];
  try {
    for (let waited = 0; (await countRows(url, TARGET)) === 0; waited += 100) {
      if (waited > 120_000) throw new Error('the capture migration wrote no row in 120 s');
      await sleep(100);
    }
    const backfill = await windowWithApply(bench, id, pgbenchRun);
    for (let waited = 0; (await statusOf())?.gate?.name !== 'cleanup'; waited += 500) {
      if (waited > 30 * 60_000) throw new Error('the capture migration did not reach its cleanup gate in 30 minutes');
      await sleep(500);
    }
    const atGate = await windowWithApply(bench, id, pgbenchRun);
    await handle.executeUpdate(approveUpdate, { args: [{ gate: 'cleanup', by: 'bench', note: 'capture window over' }] });
    const result = await handle.result();
    if (result.phase !== 'completed') throw new Error(`the capture migration ended ${result.phase}`);
    windows = { backfill, atGate };
  } catch (error) {
    // An abort removes the trigger, so the next quiet run is quiet; terminating would leave it.
    await handle.executeUpdate(abortUpdate, { args: [{ by: 'bench', reason: 'bench: capture round failed' }] }).catch(() => {});
    await Promise.race([handle.result().catch(() => {}), sleep(60_000)]);
    throw error;
  } finally {
    await terminateAll(bench, id, 'bench: capture window over');
    await waitFerryIdle(bench.adminUrl);
    const left = await onSource(url, (client) => client.query<{ tgname: string }>(`SELECT tgname FROM pg_trigger WHERE tgrelid = '${SOURCE}'::regclass AND NOT tgisinternal`));
    triggersLeft = left.rows.map((r) => r.tgname);
    await onSource(url, (client) => client.query(`TRUNCATE ${TARGET}`));
  }
  if (triggersLeft.length) throw new Error(`the capture trigger was left on ${SOURCE} (${triggersLeft.join(', ')}): the quiet runs after it would not be quiet`);
  return windows;
}

export async function runCaptureBench(bench: Bench, options: CaptureBenchOptions): Promise<Record<string, unknown>> {
  const { pgbench, seconds, out } = options;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-capture-'));
  const pgbenchRun = () => runPgbench(pgbench, bench.sourceUrl, TPCB, seconds, dir);
  const show = (label: string, run: PgbenchRun, apply?: ApplyWindow) =>
    out(
      `    ${label.padEnd(44)} ${fmt(run.tps).padStart(6)} tps  p99 ${fmt(run.p99Ms, 1).padStart(6)} ms  (${fmt(run.transactions)} transactions` +
        (run.failed ? `, ${run.failed} failed or skipped` : '') +
        ')' +
        (apply
          ? `  Ferry applied ${apply.keysPerSec === null ? 'no figure (under two applier reports in the window)' : `${fmt(apply.keysPerSec)} keys/s`}` +
            `, ${apply.waitingAtEnd ?? '?'} waiting at the end` +
            (apply.backfillEndedAfterS === null ? '' : ` (backfill ended after ${fmt(apply.backfillEndedAfterS, 1)} s)`)
          : ''),
    );
  await createCaptureTarget(bench.sourceUrl);
  const rounds: Round[] = [];
  try {
    for (let r = 1; r <= options.rounds; r += 1) {
      out(`  round ${r} of ${options.rounds}:`);
      const quiet = await pgbenchRun();
      show(`${TPCB.label}, quiet`, quiet);
      const { backfill, atGate } = await captureRound(bench, pgbenchRun);
      show(`${TPCB.label}, during the backfill`, backfill.run, backfill.apply);
      show(`${TPCB.label}, at the gate after catch-up`, atGate.run, atGate.apply);
      rounds.push({ quiet, backfill, atGate });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // A window the backfill left early was partly catch-up: its ratios would not be the backfill's.
  const covered = (apply: ApplyWindow) => apply.backfillEndedAfterS === null || apply.backfillEndedAfterS >= COVERED_SHARE * seconds;
  const uncovered = rounds.filter((x) => !covered(x.backfill.apply)).length;
  const summary: Record<string, unknown> = {};
  out(`\nCapture summary (median (min..max) of ${rounds.length} rounds; each ratio against the quiet run of its own round):`);
  const quietTps = spreadOf(rounds.map((x) => x.quiet.tps));
  const quietP99 = spreadOf(rounds.map((x) => x.quiet.p99Ms));
  out(`  ${TPCB.label} quiet: ${formatSpread(quietTps)} tps, p99 ${formatSpread(quietP99, 1)} ms`);
  summary.quietTps = jsonSpread(quietTps);
  summary.quietP99Ms = jsonSpread(quietP99, 2);
  for (const [key, label, pick] of [
    ['backfill', 'during the backfill (default throttle)', (x: Round) => x.backfill],
    ['atGate', 'at the gate after catch-up        ', (x: Round) => x.atGate],
  ] as const) {
    const counted = (x: Round) => key === 'atGate' || covered(x.backfill.apply);
    const tps = spreadOf(rounds.map((x) => (counted(x) ? pick(x).run.tps / x.quiet.tps : Number.NaN)));
    const p99 = spreadOf(rounds.map((x) => (counted(x) ? pick(x).run.p99Ms / x.quiet.p99Ms : Number.NaN)));
    // Each TPC-B transaction updates one pgbench_accounts row: its tps is its rate of captured writes.
    const applyRate = spreadOf(rounds.map((x) => pick(x).apply.keysPerSec ?? Number.NaN));
    const applyShare = spreadOf(rounds.map((x) => (pick(x).apply.keysPerSec ?? Number.NaN) / pick(x).run.tps));
    out(
      `  ${label}: tps ${formatSpread(tps, 2)} of quiet, p99 ${formatSpread(p99, 2)}x quiet; ` +
        `change apply ${formatSpread(applyRate)} keys/s, ${formatSpread(applyShare, 2)} of pgbench's ${SOURCE} writes/s`,
    );
    summary[key] = { tpsRatio: jsonSpread(tps, 3), p99Ratio: jsonSpread(p99, 3), applyKeysPerSec: jsonSpread(applyRate), applyShareOfWrites: jsonSpread(applyShare, 3) };
  }
  if (uncovered > 0) {
    out(
      `  note: ${uncovered} backfill${uncovered === 1 ? '' : 's'} ended before ${fmt(COVERED_SHARE * 100)}% of the window: those windows are left out ` +
        'of the backfill ratios (a larger --scale keeps the backfill going all window).',
    );
  }
  summary.backfillWindowsLeftOut = uncovered;
  return summary;
}
