/**
 * `--foreground`: what a copy costs the application. pgbench's TPC-B script (and a light,
 * rate-limited -R load of the same script) runs alone and during a Ferry copy at the plan's
 * default throttle, interleaved round after round; tps and p99 are quoted as ratios of the quiet
 * run next to them, and Ferry's rate during the window as a share of its unthrottled rate.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { migrationWorkflow } from '../../workflows/migration';
import { statusQuery } from '../../workflows/messages';
import { addLiveProgress } from '../../operator/live-progress';
import { holdingSignals } from '../../lib/status';
import { countRows, resetTarget, TARGET_TABLE } from './dataset';
import { INSERT_SELECT_RANGE } from './limits';
import { basePlan, terminateAll, SOURCE_ENV, type Bench } from './ferry-run';
import { runPgbench, type PgbenchLoad, type PgbenchRun } from './pgbench';
import { formatSpread, formatTimes, jsonSpread, spreadOf } from './stats';

export const TPCB: PgbenchLoad = { label: 'TPC-B, 4 clients', clients: 4, rate: null };
export const LIGHT: PgbenchLoad = { label: 'light TPC-B, -R 100', clients: 2, rate: 100 };

/** Ferry's copy during one window: rows/s while the window lasted (or until the copy ended). */
interface CopyWindow {
  rowsPerSec: number;
  /** The pacing signals that held a shard back, and in how many of the window's status samples. */
  heldBy?: Record<string, number>;
  samples?: number;
  /** The copy finished inside the window, so part of the window was quiet. */
  endedEarlyAfterS: number | null;
}

/** A copy must last this share of its window for the window to count as "during a copy". */
const COVERED_SHARE = 0.8;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The plan a user gets with no throttle section: the default throttle, default shards. */
function defaultPlan(): PlanInput {
  const { throttle: _opened, shards: _shards, ...defaults } = basePlan('bench-fg-default', SOURCE_ENV);
  return defaults;
}

/** Waits until no Ferry connection runs a statement, so the next quiet run is quiet; ends stragglers. */
export async function waitFerryIdle(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'ferry-bench' });
  await client.connect();
  try {
    const busy = `SELECT pid FROM pg_stat_activity WHERE application_name = 'ferry' AND state <> 'idle' AND pid <> pg_backend_pid()`;
    for (let waited = 0; waited < 30_000; waited += 200) {
      if ((await client.query(busy)).rowCount === 0) return;
      await sleep(200);
    }
    await client.query(`SELECT pg_terminate_backend(pid) FROM (${busy}) AS b`);
  } finally {
    await client.end();
  }
}

/**
 * What `ferry status` says holds the copy back, sampled once a second while a window lasts: each
 * pacing signal, and in how many samples it held at least one shard.
 */
function watchHolding(bench: Bench, handle: WorkflowHandle<typeof migrationWorkflow>): { stop(): void; done: Promise<{ heldBy: Record<string, number>; samples: number }> } {
  let stopped = false;
  const heldBy: Record<string, number> = {};
  const done = (async () => {
    let samples = 0;
    while (!stopped) {
      await sleep(1000);
      try {
        const status = await handle.query(statusQuery);
        await addLiveProgress(bench.client, status);
        samples += 1;
        for (const { signal } of holdingSignals(status)) heldBy[signal] = (heldBy[signal] ?? 0) + 1;
      } catch {
        // The migration ended: the window's last samples are the ones taken.
      }
    }
    return { heldBy, samples };
  })();
  return { stop: () => (stopped = true), done };
}

/**
 * Starts a same-database copy with `plan`, waits until rows arrive, runs `during` (which lasts
 * the window), and measures the rows that arrived meanwhile. The copy is then stopped and the
 * target emptied, so each window costs a window, not a whole copy.
 */
async function copyDuring<T>(bench: Bench, plan: PlanInput, during: () => Promise<T>): Promise<{ result: T; copy: CopyWindow }> {
  const url = bench.sourceUrl;
  await resetTarget(url);
  const handle: WorkflowHandle<typeof migrationWorkflow> = await startMigration(bench.client, bench.temporal, validatePlan(plan, plan.name), {
    execute: true,
    rerun: true,
  });
  let endedAt: number | null = null;
  const outcome = handle.result().then(
    () => (endedAt = performance.now()),
    (error: unknown) => {
      endedAt = performance.now();
      throw error;
    },
  );
  outcome.catch(() => {});
  try {
    for (let waited = 0; (await countRows(url, TARGET_TABLE)) === 0; waited += 100) {
      if (endedAt !== null) await outcome;
      if (waited > 120_000) throw new Error('the copy wrote no row in 120 s');
      await sleep(100);
    }
    const rows0 = await countRows(url, TARGET_TABLE);
    const started = performance.now();
    const holding = watchHolding(bench, handle);
    const result = await during().finally(() => holding.stop());
    const ended = performance.now();
    const { heldBy, samples } = await holding.done;
    const rows1 = await countRows(url, TARGET_TABLE);
    const until = endedAt !== null && endedAt < ended ? endedAt : ended;
    return {
      result,
      copy: { rowsPerSec: (rows1 - rows0) / ((until - started) / 1000), endedEarlyAfterS: until < ended ? (until - started) / 1000 : null, heldBy, samples },
    };
  } finally {
    await terminateAll(bench, handle.workflowId, 'bench: foreground window over');
    await waitFerryIdle(bench.adminUrl);
    await resetTarget(url);
  }
}

/** The share of Ferry's unthrottled rate the machine's own bound is measured at: the target's. */
const BOUND_SHARE = 0.5;

/**
 * The copy's limit tool held to `rowsPerSec` during `during`: INSERT ... SELECT of the transform
 * over the next keys, a tenth of a second of rows at a time, each followed by the wait that keeps
 * the rate, starting over on an emptied target when the keys run out, so it lasts the window.
 * What this costs the foreground, no copier can avoid on this machine at this rate.
 */
async function pacedLimitDuring<T>(url: string, rows: number, rowsPerSec: number, during: () => Promise<T>): Promise<{ result: T; copy: CopyWindow }> {
  await resetTarget(url);
  const client = new pg.Client({ connectionString: url, application_name: 'ferry-bench-bound' });
  await client.connect();
  const batch = Math.max(1000, Math.round(rowsPerSec / 10));
  let stop = false;
  let copied = 0;
  const started = performance.now();
  const copying = (async () => {
    for (let after = 0; !stop; after += batch) {
      // Out of keys before the window ends: empty the target (pgbench never touches it) and go on.
      if (after >= rows) {
        await client.query(`TRUNCATE ${TARGET_TABLE}`);
        after = 0;
      }
      copied += (await client.query(INSERT_SELECT_RANGE, [after, Math.min(rows, after + batch)])).rowCount ?? 0;
      const due = started + (copied / rowsPerSec) * 1000;
      if (due > performance.now()) await sleep(due - performance.now());
    }
  })();
  try {
    const result = await during();
    const ended = performance.now();
    stop = true;
    const rowsInWindow = copied;
    await copying;
    return { result, copy: { rowsPerSec: rowsInWindow / ((ended - started) / 1000), endedEarlyAfterS: null } };
  } finally {
    stop = true;
    await copying.catch(() => {});
    await client.end();
    await resetTarget(url);
  }
}

interface Round {
  quiet: Record<string, PgbenchRun>;
  copying: Record<string, PgbenchRun>;
  copyRate: Record<string, CopyWindow>;
  unthrottled: CopyWindow;
  tpcbUnthrottled: { run: PgbenchRun; copy: CopyWindow };
  /** TPC-B while the limit tool copies at BOUND_SHARE of Ferry's unthrottled rate. */
  tpcbBound: { run: PgbenchRun; copy: CopyWindow };
  /** TPC-B while the limit tool copies at the rate Ferry's default controller kept under TPC-B in this round. */
  tpcbAtFerrysRate: { run: PgbenchRun; copy: CopyWindow };
}

export interface ForegroundOptions {
  pgbench: string;
  /** Rows in the source table. */
  rows: number;
  seconds: number;
  rounds: number;
  out: (line: string) => void;
}

/** ", held by latency 9/14, active-backends 2/14": the signals of a window's status samples. */
function heldByText(copy: CopyWindow): string {
  const held = Object.entries(copy.heldBy ?? {}).sort((a, b) => b[1] - a[1]);
  return held.length && copy.samples ? `, held by ${held.map(([signal, n]) => `${signal} ${n}/${copy.samples}`).join(', ')}` : '';
}

export async function runForeground(bench: Bench, options: ForegroundOptions): Promise<Record<string, unknown>> {
  const { pgbench, seconds, out } = options;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-pgbench-'));
  const pgbenchRun = (load: PgbenchLoad) => runPgbench(pgbench, bench.sourceUrl, load, seconds, dir);
  const show = (label: string, run: PgbenchRun, copy?: CopyWindow) =>
    out(
      `    ${label.padEnd(50)} ${fmt(run.tps).padStart(6)} tps  p99 ${fmt(run.p99Ms, 1).padStart(6)} ms  (${fmt(run.transactions)} transactions` +
        (run.failed ? `, ${run.failed} failed or skipped` : '') +
        ')' +
        (copy ? `  Ferry ${fmt(copy.rowsPerSec)} rows/s${copy.endedEarlyAfterS === null ? '' : ` (copy ended after ${fmt(copy.endedEarlyAfterS, 1)} s)`}${heldByText(copy)}` : ''),
    );
  const rounds: Round[] = [];
  try {
    for (let r = 1; r <= options.rounds; r += 1) {
      out(`  round ${r} of ${options.rounds}:`);
      const round: Round = { quiet: {}, copying: {}, copyRate: {} } as Round;
      for (const load of [TPCB, LIGHT]) {
        round.quiet[load.label] = await pgbenchRun(load);
        show(`${load.label}, quiet`, round.quiet[load.label]!);
        const { result, copy } = await copyDuring(bench, defaultPlan(), () => pgbenchRun(load));
        round.copying[load.label] = result;
        round.copyRate[load.label] = copy;
        show(`${load.label}, Ferry at its default throttle`, result, copy);
      }
      const tpcb = await copyDuring(bench, basePlan('bench-fg-open', SOURCE_ENV), () => pgbenchRun(TPCB));
      round.tpcbUnthrottled = { run: tpcb.result, copy: tpcb.copy };
      show(`${TPCB.label}, Ferry unthrottled`, tpcb.result, tpcb.copy);
      round.unthrottled = (await copyDuring(bench, basePlan('bench-fg-alone', SOURCE_ENV), () => sleep(seconds * 1000))).copy;
      out(
        `    ${'Ferry unthrottled, no foreground'.padEnd(50)} Ferry ${fmt(round.unthrottled.rowsPerSec)} rows/s` +
          (round.unthrottled.endedEarlyAfterS === null ? '' : ` (copy ended after ${fmt(round.unthrottled.endedEarlyAfterS, 1)} s)`),
      );
      const bound = await pacedLimitDuring(bench.sourceUrl, options.rows, BOUND_SHARE * round.unthrottled.rowsPerSec, () => pgbenchRun(TPCB));
      round.tpcbBound = { run: bound.result, copy: bound.copy };
      show(`${TPCB.label}, INSERT ... SELECT at ${fmt(BOUND_SHARE * 100)}% of Ferry's rate`, bound.result, bound.copy);
      // The same tool at the rate Ferry kept: is what TPC-B lost the copying itself, or how Ferry copies?
      const ferrysRate = round.copyRate[TPCB.label]!.rowsPerSec;
      const same = await pacedLimitDuring(bench.sourceUrl, options.rows, ferrysRate, () => pgbenchRun(TPCB));
      round.tpcbAtFerrysRate = { run: same.result, copy: same.copy };
      show(`${TPCB.label}, INSERT ... SELECT at Ferry's paced rate`, same.result, same.copy);
      rounds.push(round);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const ratios = (pick: (round: Round) => number) => spreadOf(rounds.map(pick));
  // A window the copy left early was partly quiet: its foreground ratios would flatter Ferry.
  const covered = (copy: CopyWindow) => copy.endedEarlyAfterS === null || copy.endedEarlyAfterS >= COVERED_SHARE * seconds;
  const during = (copy: CopyWindow, ratio: number) => (covered(copy) ? ratio : Number.NaN);
  const uncovered = rounds.flatMap((x) => [...Object.values(x.copyRate), x.tpcbUnthrottled.copy, x.tpcbBound.copy, x.tpcbAtFerrysRate.copy]).filter((c) => !covered(c)).length;
  const summary: Record<string, unknown> = {};
  out(`\nForeground summary (median (min..max) of ${rounds.length} rounds; each ratio against the quiet run of its own round):`);
  for (const load of [TPCB, LIGHT]) {
    const tps = ratios((x) => during(x.copyRate[load.label]!, x.copying[load.label]!.tps / x.quiet[load.label]!.tps));
    const p99 = ratios((x) => during(x.copyRate[load.label]!, x.copying[load.label]!.p99Ms / x.quiet[load.label]!.p99Ms));
    const share = ratios((x) => x.copyRate[load.label]!.rowsPerSec / x.unthrottled.rowsPerSec);
    const quietP99 = spreadOf(rounds.map((x) => x.quiet[load.label]!.p99Ms));
    const quietTps = spreadOf(rounds.map((x) => x.quiet[load.label]!.tps));
    out(
      `  ${load.label.padEnd(22)} at Ferry's default throttle: tps ${formatSpread(tps, 2)} of quiet, p99 ${formatTimes(p99, 2)} quiet; ` +
        `Ferry at ${formatSpread(share, 2)} of its unthrottled rate (quiet: ${formatSpread(quietTps)} tps, p99 ${formatSpread(quietP99, 1)} ms)`,
    );
    summary[load === TPCB ? 'tpcb' : 'light'] = {
      quietTps: jsonSpread(quietTps),
      quietP99Ms: jsonSpread(quietP99, 2),
      tpsRatio: jsonSpread(tps, 3),
      p99Ratio: jsonSpread(p99, 3),
      ferryShareOfUnthrottled: jsonSpread(share, 3),
    };
  }
  const openTps = ratios((x) => during(x.tpcbUnthrottled.copy, x.tpcbUnthrottled.run.tps / x.quiet[TPCB.label]!.tps));
  const openP99 = ratios((x) => during(x.tpcbUnthrottled.copy, x.tpcbUnthrottled.run.p99Ms / x.quiet[TPCB.label]!.p99Ms));
  out(`  ${TPCB.label.padEnd(22)} with Ferry unthrottled:      tps ${formatSpread(openTps, 2)} of quiet, p99 ${formatTimes(openP99, 2)} quiet`);
  const boundTps = ratios((x) => during(x.tpcbBound.copy, x.tpcbBound.run.tps / x.quiet[TPCB.label]!.tps));
  const boundP99 = ratios((x) => during(x.tpcbBound.copy, x.tpcbBound.run.p99Ms / x.quiet[TPCB.label]!.p99Ms));
  out(
    `  ${TPCB.label.padEnd(22)} with INSERT ... SELECT paced at ${fmt(BOUND_SHARE * 100)}% of Ferry's unthrottled rate (no Ferry): ` +
      `tps ${formatSpread(boundTps, 2)} of quiet, p99 ${formatTimes(boundP99, 2)} quiet: what copying at that rate costs on this machine, whoever copies`,
  );
  const sameTps = ratios((x) => during(x.tpcbAtFerrysRate.copy, x.tpcbAtFerrysRate.run.tps / x.quiet[TPCB.label]!.tps));
  const sameP99 = ratios((x) => during(x.tpcbAtFerrysRate.copy, x.tpcbAtFerrysRate.run.p99Ms / x.quiet[TPCB.label]!.p99Ms));
  out(
    `  ${TPCB.label.padEnd(22)} with INSERT ... SELECT paced at the rate Ferry kept (no Ferry): ` +
      `tps ${formatSpread(sameTps, 2)} of quiet, p99 ${formatTimes(sameP99, 2)} quiet: what copying at Ferry's paced rate costs, whoever copies`,
  );
  const unthrottled = spreadOf(rounds.map((x) => x.unthrottled.rowsPerSec));
  out(`  Ferry unthrottled, alone: ${formatSpread(unthrottled)} rows/s`);
  if (uncovered > 0) {
    out(
      `  note: ${uncovered} cop${uncovered === 1 ? 'y' : 'ies'} ended before ${fmt(COVERED_SHARE * 100)}% of its window: those windows were partly quiet ` +
        'and are left out of the ratios above (a larger --rows or a shorter --seconds keeps the copy busy all window).',
    );
  }
  summary.windowsLeftOut = uncovered;
  summary.tpcbUnthrottled = { tpsRatio: jsonSpread(openTps, 3), p99Ratio: jsonSpread(openP99, 3) };
  summary.tpcbWithPacedLimit = { shareOfUnthrottled: BOUND_SHARE, tpsRatio: jsonSpread(boundTps, 3), p99Ratio: jsonSpread(boundP99, 3) };
  summary.tpcbWithLimitAtFerrysRate = { tpsRatio: jsonSpread(sameTps, 3), p99Ratio: jsonSpread(sameP99, 3) };
  summary.ferryUnthrottledRowsPerSec = jsonSpread(unthrottled);
  return summary;
}
