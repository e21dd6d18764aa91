/**
 * `--capture`: what change capture costs an unmodified application. pgbench's TPC-B script runs
 * quiet, then during a `capture: trigger` (or `logical`) migration of pgbench_accounts at the default throttle
 * (the backfill), then while Ferry applies its changes at the cleanup gate after the catch-up,
 * round after round; tps and p99 are quoted as ratios of the quiet run of the same round, and
 * Ferry's change-apply rate against pgbench's rate of writes to the captured table.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { abortUpdate, approveUpdate } from '../../workflows/messages';
import type { migrationWorkflow } from '../../workflows/migration';
import { countRows } from './dataset';
import { terminateAll, SOURCE_ENV, type Bench } from './ferry-run';
import { TPCB, waitFerryIdle } from './foreground';
import { runPgbench, type PgbenchRun } from './pgbench';
import { formatSpread, formatTimes, jsonSpread, spreadOf } from './stats';

const SOURCE = 'pgbench_accounts';
const TARGET = 'pgbench_accounts_v2';
/** A backfill must last this share of its window for the window to count as "during the backfill". */
const COVERED_SHARE = 0.8;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The plan a user writes for this table: capture on, no throttle section (the default throttle). */
function capturePlan(mode: 'trigger' | 'logical'): PlanInput {
  return {
    name: 'bench-capture',
    source: { connection: SOURCE_ENV, table: SOURCE, key: 'aid' },
    target: { connection: SOURCE_ENV, table: TARGET },
    transform: { sql: { aid: 'aid', bid: 'bid', abalance_cents: 'abalance::bigint * 100', filler: 'filler' } },
    capture: mode,
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
  /** Changed keys applied a second between the applier's reports around the window; null without two. */
  keysPerSec: number | null;
  /** Seconds between those two reports. */
  spanS: number | null;
  /**
   * pgbench's writes to the captured table a second over the same span: one pgbench_accounts
   * UPDATE a TPC-B transaction, all of them inside the window.
   */
  writesPerSec: number | null;
  /** Changes waiting at the applier's first report after the window. */
  waitingAfter: number | null;
  /** The backfill ended inside the window after this many seconds (backfill windows only). */
  backfillEndedAfterS: number | null;
}

/** One report of the applier: its running count of keys applied, and when it measured. */
interface ApplyReport {
  at: number;
  keysApplied: number;
}

/** The applier's last report; before its first, the trigger's installation stands for one of 0 keys. */
function reportOf(status: MigrationStatus | null): ApplyReport | null {
  const capture = status?.capture;
  if (capture?.lag?.measuredAt) return { at: Date.parse(capture.lag.measuredAt), keysApplied: capture.keysApplied };
  return capture?.installedAt ? { at: Date.parse(capture.installedAt), keysApplied: 0 } : null;
}

/**
 * Runs pgbench for a window and takes the change-apply rate from the applier's own reports (one
 * at the end of each call, about every 5 s): the last before the window and the first after it,
 * so the span covers the whole window and the changes it left waiting.
 */
async function windowWithApply(bench: Bench, id: string, run: () => Promise<PgbenchRun>, duringBackfill: boolean): Promise<{ run: PgbenchRun; apply: ApplyWindow }> {
  const statusOf = async () => (await migrationReport(bench.client, id).catch(() => null))?.status ?? null;
  const before = reportOf(await statusOf());
  const startedAt = Date.now();
  const result = await run();
  const endedAt = Date.now();
  let last = await statusOf();
  for (let waited = 0; (reportOf(last)?.at ?? 0) < endedAt && waited < 20_000; waited += 250) {
    await sleep(250);
    last = (await statusOf()) ?? last;
  }
  const after = reportOf(last);
  const keysPerSec = before && after && after.at > before.at ? (after.keysApplied - before.keysApplied) / ((after.at - before.at) / 1000) : null;
  const backfill = last?.phases.find((p) => p.name === 'backfill');
  const backfillEnd = backfill?.endedAt ? Date.parse(backfill.endedAt) : null;
  const backfillEndedAfterS = duringBackfill && backfillEnd !== null && backfillEnd < endedAt ? Math.max(0, (backfillEnd - startedAt) / 1000) : null;
  return {
    run: result,
    apply: {
      keysPerSec,
      spanS: keysPerSec === null ? null : (after!.at - before!.at) / 1000,
      writesPerSec: keysPerSec === null ? null : result.transactions / ((after!.at - before!.at) / 1000),
      waitingAfter: last?.capture?.lag?.changesWaiting ?? null,
      backfillEndedAfterS,
    },
  };
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
  mode: 'trigger' | 'logical';
  out: (line: string) => void;
}

/** Creates the reshaped target next to pgbench's tables (abalance in bigint cents). */
export async function createCaptureTarget(url: string): Promise<void> {
  await onSource(url, (client) => client.query(`CREATE TABLE IF NOT EXISTS ${TARGET} (aid int PRIMARY KEY, bid int, abalance_cents bigint NOT NULL, filler char(84))`));
}

/** One migration: pgbench during its backfill, then at the cleanup gate; then the gate is approved and the trigger goes. */
async function captureRound(bench: Bench, pgbenchRun: () => Promise<PgbenchRun>, mode: 'trigger' | 'logical'): Promise<Omit<Round, 'quiet'>> {
  const url = bench.sourceUrl;
  await onSource(url, (client) => client.query(`TRUNCATE ${TARGET}`));
  const handle: WorkflowHandle<typeof migrationWorkflow> = await startMigration(bench.client, bench.temporal, validatePlan(capturePlan(mode), 'bench-capture'), {
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
    const backfill = await windowWithApply(bench, id, pgbenchRun, true);
    for (let waited = 0, status = await statusOf(); status?.gate?.name !== 'cleanup'; waited += 500, status = await statusOf()) {
      if (status && ['failed', 'aborted', 'completed'].includes(status.phase)) throw new Error(`the capture migration ended ${status.phase} before its cleanup gate`);
      if (waited > 30 * 60_000) throw new Error('the capture migration did not reach its cleanup gate in 30 minutes');
      await sleep(500);
    }
    const atGate = await windowWithApply(bench, id, pgbenchRun, false);
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
          ? `  Ferry applied ${apply.keysPerSec === null ? 'no figure (no applier report before the window)' : `${fmt(apply.keysPerSec)} keys/s against pgbench's ${fmt(apply.writesPerSec ?? 0)} writes/s over ${fmt(apply.spanS ?? 0, 1)} s`}` +
            `, ${apply.waitingAfter ?? '?'} waiting after` +
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
      const { backfill, atGate } = await captureRound(bench, pgbenchRun, options.mode);
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
    // Both rates over the span between the applier's reports around the window: near 1 when the apply keeps up.
    const applyRate = spreadOf(rounds.map((x) => pick(x).apply.keysPerSec ?? Number.NaN));
    const writeRate = spreadOf(rounds.map((x) => pick(x).apply.writesPerSec ?? Number.NaN));
    const applyShare = spreadOf(rounds.map((x) => (pick(x).apply.keysPerSec ?? Number.NaN) / (pick(x).apply.writesPerSec ?? Number.NaN)));
    out(
      `  ${label}: tps ${formatSpread(tps, 2)} of quiet, p99 ${formatTimes(p99, 2)} quiet; ` +
        `change apply ${formatSpread(applyRate)} keys/s against pgbench's ${formatSpread(writeRate)} ${SOURCE} writes/s, ${formatSpread(applyShare, 2)} of them`,
    );
    summary[key] = {
      tpsRatio: jsonSpread(tps, 3),
      p99Ratio: jsonSpread(p99, 3),
      applyKeysPerSec: jsonSpread(applyRate),
      writesPerSec: jsonSpread(writeRate),
      applyShareOfWrites: jsonSpread(applyShare, 3),
    };
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
