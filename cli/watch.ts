/**
 * Watch follows a migration until it ends: a live view redrawn in place on a terminal, one
 * plain line per refresh elsewhere, or one JSON object per line for scripts. The frames are
 * pure functions of a sample; only watchMigration talks to Temporal and the terminal.
 */
import { describeCapture } from '../lib/capture';
import type { Client } from '@temporalio/client';
import { redactErrorText } from '../lib/errors';
import { etaSeconds, formatDuration, nextRate, progressBar, remainingRows, type RateState } from '../lib/progress';
import { rowsSkipped, type MigrationStatus, type ShardStatus } from '../lib/status';
import { migrationReport, UnknownMigrationError, type MigrationReport } from '../operator';
import { outcomeOf, statusExitCode } from './outcome';
import { colourOn, highlight } from './output';
import { copying, gateStory, pauseStory, phaseStory } from './phase-story';
import { formatCount, formatThrottle } from './render';
import { formatRetries } from './retries';

export type WatchMode = 'tty' | 'plain' | 'json';

/** One refresh: the report, and the rate and time left observed so far. */
export interface WatchSample {
  report: MigrationReport;
  rowsPerSecond: number | null;
  etaSeconds: number | null;
}

/** Fraction of the estimated rows read; null without an estimate. */
function overallFraction(status: MigrationStatus): number | null {
  if (status.phase === 'completed') return 1;
  const estimated = status.inspection?.source.estimatedRows ?? null;
  return estimated ? status.rowsRead / Math.max(estimated, 1) : null;
}

/** A shard's share of the estimate read: even shares, so approximate; exact once done. */
function shardFraction(status: MigrationStatus, shard: ShardStatus): number | null {
  if (shard.state === 'done') return 1;
  const estimated = status.inspection?.source.estimatedRows ?? null;
  if (!estimated || status.shards.length === 0) return null;
  return Math.min(0.99, shard.rowsRead / Math.max(1, estimated / status.shards.length));
}

const percent = (fraction: number | null) => (fraction === null ? '  ?  ' : `${(Math.min(1, fraction) * 100).toFixed(1).padStart(5)}%`);

/** Why running shards are slowed or holding: their distinct reasons (a pause is told apart, as PAUSED). */
function throttleReasons(status: MigrationStatus): string[] {
  if (!copying(status)) return [];
  const reasons = new Map<string, number[]>();
  for (const shard of status.shards) {
    if (shard.state !== 'running' || !shard.throttleReason) continue;
    reasons.set(shard.throttleReason, [...(reasons.get(shard.throttleReason) ?? []), shard.index]);
  }
  return [...reasons].map(([reason, shards]) => `${reason} (shard${shards.length === 1 ? '' : 's'} ${shards.join(', ')})`);
}

/** Rate and ETA while copying; what the phase is doing otherwise (a rate would only decay). */
function rateText(sample: WatchSample, nowMs = Date.now()): string {
  const status = sample.report.status;
  if (sample.report.runState !== 'running' || !status) return '-';
  if (!copying(status)) return phaseStory(status, nowMs) ?? '-';
  const rate = sample.rowsPerSecond === null ? 'measuring' : `${formatCount(Math.round(sample.rowsPerSecond))} rows/s`;
  return `${rate}, ETA ${formatDuration(sample.etaSeconds)}`;
}

export interface FrameSize {
  /** Terminal columns: lines are cut to fit, so each takes exactly one row. */
  columns: number;
  /** Terminal rows: the shard list is cut to fit. */
  rows: number;
}

/** The live view's lines for a terminal of this size (no escape codes; the caller places them). */
export function watchFrame(sample: WatchSample, size: FrameSize, unicode = true): string[] {
  const { report } = sample;
  const lines = [`migration ${report.migrationId}: ${outcomeOf(report)}`];
  if (report.failure) lines.push(`failure: ${report.failure}`);
  const status = report.status;
  if (status) {
    const running = report.runState === 'running';
    const estimated = status.inspection?.source.estimatedRows ?? null;
    const barWidth = Math.max(10, Math.min(50, size.columns - 50));
    const fraction = overallFraction(status);
    lines.push(
      `phase     ${status.phase}${status.execute ? '' : ' (dry run)'}`,
      `progress  ${progressBar(fraction ?? 0, barWidth, unicode)} ${percent(fraction)}  ${formatCount(status.rowsRead)} of ~${formatCount(estimated)} rows read`,
      running && status.paused ? `PAUSED    ${pauseStory(status)!.replace(/^PAUSED /, '')}` : `${copying(status) ? 'rate' : 'now '}      ${rateText(sample)}`,
      `rows      ${formatCount(status.rowsWritten)} written, ${formatCount(rowsSkipped(status))} already present, ${formatCount(status.rowsFailed)} failed`,
      `throttle  ${formatThrottle(status.throttle, status.shards.filter((s) => s.state === 'running').length)}`,
    );
    for (const reason of throttleReasons(status)) lines.push(`  slowed  ${reason}`);
    if (status.capture) lines.push(`capture   ${describeCapture(status.capture)}`);
    lines.push(...formatRetries(report.retrying ?? []));
    gateStory(status).forEach((line, i) => lines.push(`${i === 0 ? 'gate' : '    '}      ${line}`));
    if (status.unresolvedFailures > 0) {
      lines.push(`failures  ${formatCount(status.unresolvedFailures)} unresolved: see \`ferry failures ${status.migrationId}\`, then \`ferry retry ${status.migrationId}\` or \`ferry resume ${status.migrationId}\``);
    }
    if (status.shards.length > 0) {
      const count = (state: ShardStatus['state']) => status.shards.filter((s) => s.state === state).length;
      lines.push(`shards    ${count('running')} running, ${count('done')} done, ${count('pending')} pending, ${count('failed')} failed`);
      // Running and failed shards first: they are the ones to look at.
      const order = { failed: 0, running: 1, pending: 2, cancelled: 3, done: 4 } as const;
      const shards = [...status.shards].sort((a, b) => order[a.state] - order[b.state] || a.index - b.index);
      const room = Math.max(1, size.rows - lines.length - 2);
      const shown = shards.length > room ? shards.slice(0, room - 1) : shards;
      const indexWidth = String(Math.max(...status.shards.map((s) => s.index))).length;
      for (const shard of shown) {
        const share = shardFraction(status, shard);
        const details = [`${formatCount(shard.rowsRead)} rows`];
        if (shard.state === 'running') details.push(`batch ${formatCount(shard.batchSize)}`);
        if (shard.rowsFailed) details.push(`${formatCount(shard.rowsFailed)} failed`);
        if (shard.error) details.push(`error: ${shard.error}`);
        lines.push(
          `  ${String(shard.index).padStart(indexWidth)} ${progressBar(share ?? 0, 20, unicode)} ${percent(share)} ${shard.state.padEnd(7)} ${details.join(', ')}`,
        );
      }
      if (shown.length < shards.length) lines.push(`  ... ${shards.length - shown.length} more shards`);
    }
  }
  return lines.map((line) => (line.length > size.columns - 1 ? `${line.slice(0, Math.max(1, size.columns - 2))}…` : line));
}

/** One line a refresh, for logs and pipes: no escape codes. */
export function watchLine(sample: WatchSample, at = new Date()): string {
  const { report } = sample;
  const time = at.toISOString().slice(11, 19);
  const status = report.status;
  if (!status) return `${time} ${report.runState}${report.failure ? `: ${report.failure}` : ''}`;
  const estimated = status.inspection?.source.estimatedRows ?? null;
  const fraction = overallFraction(status);
  const parts = [
    `${time} ${status.phase}${status.paused ? ' PAUSED' : ''}: ${formatCount(status.rowsRead)} of ~${formatCount(estimated)} rows read${fraction === null ? '' : ` (${percent(fraction).trim()})`}`,
    `${formatCount(status.rowsWritten)} written`,
    rateText(sample, at.getTime()),
  ];
  if (status.rowsFailed) parts.push(`${formatCount(status.rowsFailed)} failed (${formatCount(status.unresolvedFailures)} unresolved)`);
  const reasons = throttleReasons(status);
  if (reasons.length) parts.push(`slowed: ${reasons.join('; ')}`);
  const gate = gateStory(status, at.getTime());
  if (gate.length) parts.push(...gate);
  return parts.join(', ');
}

/** One JSON object a refresh: the report as `ferry status --json` has it, plus the rate and ETA. */
export function watchJson(sample: WatchSample): string {
  return JSON.stringify({ ...sample.report, rowsPerSecond: sample.rowsPerSecond, etaSeconds: sample.etaSeconds });
}

/** Adds one report to the rate so far and says how long is left. */
export function sampleOf(report: MigrationReport, rate: RateState | null, atMs: number): { sample: WatchSample; rate: RateState | null } {
  const status = report.status;
  if (!status) return { sample: { report, rowsPerSecond: rate?.rowsPerSecond ?? null, etaSeconds: null }, rate: rate ?? { atMs, rows: 0, rowsPerSecond: null } };
  // Rate and ETA are measured while copying only: elsewhere (verifying, a gate, a pause, dual
  // writes soaking) no rows move, so a rate would decay and an ETA mislead. Measuring starts
  // afresh when copying does, so a pause does not drag the rate down after it.
  if (report.runState === 'running' && !copying(status)) {
    return { sample: { report, rowsPerSecond: null, etaSeconds: null }, rate: null };
  }
  const next = nextRate(rate, { atMs, rows: status.rowsRead });
  const left = report.runState === 'running' ? remainingRows(status.inspection?.source.estimatedRows, status.rowsRead) : 0;
  // An ended run has nothing left, whatever its rate was.
  const eta = report.runState === 'running' ? etaSeconds(left, next.rowsPerSecond) : 0;
  return { sample: { report, rowsPerSecond: next.rowsPerSecond, etaSeconds: eta }, rate: next };
}

export interface WatchOptions {
  mode: WatchMode;
  out?: NodeJS.WriteStream;
  /** Between refreshes. (Default: 1000) */
  intervalMs?: number;
}

const ESC = '\x1b[';
const HIDE_CURSOR = `${ESC}?25l`;
const SHOW_CURSOR = `${ESC}?25h`;
/** Give up after this many refreshes in a row that could not reach Temporal. */
const MAX_FAILED_REFRESHES = 30;

/**
 * Refreshes until the migration ends and returns its last report. On a terminal the view is
 * redrawn in place with the cursor hidden; the cursor comes back on exit, error or Ctrl-C.
 */
export async function watchMigration(client: Client, migrationId: string, options: WatchOptions): Promise<MigrationReport> {
  const out = options.out ?? process.stdout;
  const intervalMs = options.intervalMs ?? 1000;
  const tty = options.mode === 'tty';
  const colour = tty && colourOn(out);
  let drawn = 0;
  let rate: RateState | null = null;
  let failedRefreshes = 0;
  let lastError: string | null = null;

  const restore = () => {
    if (tty) out.write(SHOW_CURSOR);
  };
  const onSigint = () => {
    restore();
    out.write('\n');
    process.exit(130);
  };
  if (tty) {
    out.write(HIDE_CURSOR);
    process.once('exit', restore);
    process.once('SIGINT', onSigint);
  }
  const draw = (lines: string[]) => {
    // Back to the frame's first line, then overwrite line by line and clear what is left below.
    const up = drawn > 0 ? `${ESC}${drawn}F` : '';
    out.write(`${up}${lines.map((line) => `${highlight(line, colour)}${ESC}K\n`).join('')}${ESC}J`);
    drawn = lines.length;
  };

  try {
    for (;;) {
      const started = Date.now();
      let report: MigrationReport | null = null;
      try {
        report = await migrationReport(client, migrationId);
        failedRefreshes = 0;
      } catch (error) {
        if (error instanceof UnknownMigrationError) throw error;
        failedRefreshes += 1;
        lastError = redactErrorText(error);
        if (failedRefreshes >= MAX_FAILED_REFRESHES) throw error;
      }
      if (report) {
        const next = sampleOf(report, rate, Date.now());
        rate = next.rate;
        if (options.mode === 'json') out.write(`${watchJson(next.sample)}\n`);
        else if (options.mode === 'plain') out.write(`${watchLine(next.sample)}\n`);
        else draw(watchFrame(next.sample, { columns: out.columns || 100, rows: out.rows || 40 }));
        if (report.runState !== 'running') return report;
      } else if (options.mode === 'plain') {
        out.write(`cannot refresh (${lastError}); trying again\n`);
      } else if (tty && drawn > 0) {
        out.write(`${ESC}1F${ESC}K(cannot refresh: ${lastError}; trying again)\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - started))));
    }
  } finally {
    if (tty) {
      restore();
      process.removeListener('exit', restore);
      process.removeListener('SIGINT', onSigint);
    }
  }
}

/** Whether `ferry status` exits non-zero for a report: failed, aborted, terminated or timed out. */
export function endedBadly(report: MigrationReport): boolean {
  return statusExitCode(report) !== 0;
}
