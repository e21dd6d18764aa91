/** Plain-text views of inspections and statuses, for the CLI and the demo. */
import { describeCapture, formatBytes } from '../lib/capture';
import { holdingSignalOf, type PacingSignal } from '../lib/pacing-controller';
import type { Inspection } from '../lib/inspection';
import { describeRange } from '../lib/key-range';
import type { MismatchReport } from '../activities/verify/verifier';
import { holdingSignals, rowsSkipped, unstoppedShardsNote, type GateFigures, type MigrationStatus, type ShardStatus, type VerificationSummary } from '../lib/status';
import { concurrencyOverrun, type Throttle } from '../lib/throttle';
import type { LaterCheck, MigrationReport } from '../operator';
import { outcomeOf, rowsLeftText } from './outcome';
import { decisionDetail, forcedPastText, gateStory, leftOutText, pauseStory, phaseStory } from './phase-story';
import { printable } from './printable';
import { differenceCounts, scopeOf, uncleanReason, type VerificationRun } from '../lib/verification-runs';
import { formatRetries } from './retries';

const number = new Intl.NumberFormat('en-US');

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? 'unknown' : number.format(value);
}

function table(header: string[], rows: (string | null)[][]): string[] {
  const cells = [header, ...rows.map((row) => row.map((value) => (value === null ? 'NULL' : value)))];
  const widths = header.map((_, i) => Math.min(40, Math.max(...cells.map((row) => (row[i] ?? '').length))));
  const line = (row: string[]) =>
    row.map((value, i) => (value.length > widths[i]! ? `${value.slice(0, widths[i]! - 1)}…` : value.padEnd(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)];
}

/** Over how many standbys the replica lag was read: a lag of 0 over none is no standby, or one that is down. */
function standbysText(figures: GateFigures): string {
  const streaming = figures.standbysStreaming;
  if (streaming === undefined) return '';
  return streaming === 0 ? ' (no standby streaming)' : ` (${streaming} standby${streaming === 1 ? '' : 's'} streaming)`;
}

function inactiveSlotsText(figures: GateFigures): string {
  const slots = figures.inactiveSlots ?? 0;
  if (slots === 0) return '';
  return `; ${slots} replication slot${slots === 1 ? '' : 's'} nothing reads, holding up to ${formatBytes(figures.inactiveSlotWalBytes ?? 0)} of WAL (a standby or consumer down?)`;
}

export function formatInspection(inspection: Inspection): string {
  const { source, target } = inspection;
  const lines = [
    `source  ${source.name}: ${source.exists ? `${formatCount(source.estimatedRows)} rows${source.subset ? ' in the subset' : ''} (estimated), key type ${source.keyType ?? '?'}` : 'missing'}`,
    `target  ${target.name}: ${target.exists ? `${formatCount(target.estimatedRows)} rows (estimated)` : 'missing'}`,
    `copy    ${inspection.sameDatabase ? 'inside one database (INSERT ... SELECT per batch)' : 'between two databases (COPY per batch)'}`,
  ];
  if (inspection.sample) {
    lines.push('', `transform applied to ${inspection.sample.rows.length} source rows${inspection.sample.redacted ? ' (values redacted; --show-values reveals them)' : ''}:`);
    lines.push(...table(['source key', ...inspection.sample.columns.slice(1)], inspection.sample.rows).map((l) => `  ${l}`));
  }
  for (const warning of inspection.warnings) lines.push(`warning: ${warning}`);
  for (const problem of inspection.problems) lines.push(`problem: ${problem}`);
  return lines.join('\n');
}

export function progressLine(status: MigrationStatus): string {
  const estimated = status.inspection?.source.estimatedRows ?? null;
  const percent = estimated ? ` (${Math.min(100, (100 * status.rowsRead) / Math.max(estimated, 1)).toFixed(1)}%)` : '';
  return `${status.phase}: ${formatCount(status.rowsRead)} of ~${formatCount(estimated)} rows read${percent}, ${formatCount(status.rowsWritten)} written`;
}

/** The throttle in force; `shardsRunning` says what a concurrency below the shards running means. */
export function formatThrottle(throttle: Throttle, shardsRunning = 0): string {
  const rate = throttle.rowsPerSecond === null ? 'no rows/s limit' : `${formatCount(throttle.rowsPerSecond)} rows/s`;
  const overrun = concurrencyOverrun(throttle, shardsRunning);
  const shape =
    `${rate}, batches up to ${formatCount(throttle.batchSize)} rows, ${throttle.concurrency} shard${throttle.concurrency === 1 ? '' : 's'} at once` +
    (overrun ? ` (${overrun})` : '');
  const changed: string[] = [];
  const { backoff, budget } = throttle;
  if (budget === null) changed.push('pacing off');
  else if (budget !== undefined) {
    const waits = `${budget.maxLockWaits} lock wait${budget.maxLockWaits === 1 ? '' : 's'}`;
    const active = budget.maxActiveBackends === undefined ? '' : `, ${budget.maxActiveBackends} active sessions`;
    changed.push(`pacing within ${budget.p99Factor}x of the p99 before the copy, ${waits}${active}`);
  }
  if (backoff) {
    const slot = backoff.maxUnreadSlotWalMb === null ? 'no unread-slot limit' : `unread slots ${backoff.maxUnreadSlotWalMb} MB`;
    changed.push(`holds: queries ${backoff.maxQuerySeconds} s, replica lag ${backoff.maxReplicaLagSeconds} s, ${slot}`);
  }
  return changed.length ? `${shape}; changed from the plan's: ${changed.join('; ')}` : shape;
}

/** The `ferry throttle` flag that gives a pacing signal more room; null where only --pacing off does. */
const LOOSENED_BY: Record<PacingSignal, string | null> = {
  latency: '--p99-factor X',
  'lock-waits': '--max-lock-waits N',
  'active-backends': '--max-active-backends N',
  checkpoints: null,
  wal: null,
  'replica-lag': null,
  ceiling: '--rows-per-second N',
};

function shardLine(shard: ShardStatus): string {
  const where = shard.partitionValue !== null ? `partition ${shard.partitionValue}` : describeRange(shard.range);
  const details = [`${formatCount(shard.rowsRead)} rows read`, `cursor ${shard.cursor ?? '-'}`];
  if (shard.state === 'running') details.push(`batch ${formatCount(shard.batchSize)}`);
  if (shard.rowsFailed) details.push(`${formatCount(shard.rowsFailed)} failed`);
  if (shard.throttleReason) details.push(shard.throttleReason);
  if (shard.error) details.push(`error: ${shard.error}`);
  return `shard ${shard.index} ${where}: ${shard.state}, ${details.join(', ')}`;
}

/** "(run 2, a sample of 10% of keys)" for what is not the first run over every row; empty otherwise. */
function runScope(run: number | undefined, samplePercent: number | null | undefined): string {
  const parts = [run !== undefined && run > 1 ? `run ${run}` : null, samplePercent !== null && samplePercent !== undefined ? scopeOf(samplePercent) : null].filter(Boolean);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** A verification's verdict; with the migration's status, also the rows it left out for their failed records. */
export function formatVerification(v: VerificationSummary, status?: Pick<MigrationStatus, 'unresolvedFailures' | 'migrationId'>): string {
  const found = v.missing + v.extra + v.value;
  return (
    `verification ${v.clean ? 'clean' : 'NOT clean'} after ${v.passes} pass${v.passes === 1 ? '' : 'es'}${runScope(v.run, v.samplePercent)}: ${formatCount(v.rowsChecked)} rows checked, ` +
    `${v.missing} missing, ${v.extra} extra, ${v.value} differing, ${v.repaired} repaired, ${v.inFlight} in flight` +
    (!v.clean && found === 0 && v.samplePercent != null ? `; ${uncleanReason(v)}` : '') +
    (v.forcedBy ? `; ${forcedPastText(v, printable(v.forcedBy))}` : '') +
    leftOutText(status)
  );
}

/** A check of a migration that had ended: what this run compared and found, and what it did about it. */
export function formatVerificationRun(run: VerificationRun): string {
  const found = run.missing + run.extra + run.value;
  const lines = [
    `check ${run.run} of ${run.migrationId} by ${printable(run.by ?? 'unknown')} (${scopeOf(run.samplePercent)}, ${run.repair ? 'repairing' : 'report only'}): ` +
      `${run.problem ? 'could not finish' : run.clean ? 'clean' : 'NOT clean'} after ${run.passes} pass${run.passes === 1 ? '' : 'es'}: ` +
      `${formatCount(run.rowsChecked)} rows checked, ${differenceCounts(run)}` +
      (run.carried ? ` (${run.carried} left unresolved by an earlier check)` : '') +
      `, ${run.repaired} repaired, ${run.inFlight} in flight`,
  ];
  if (run.problem) lines.push(`problem: ${run.problem}`);
  if (run.samplePercent !== null && run.clean) lines.push(`a sample: rows outside it were not compared; \`ferry verify ${run.migrationId}\` compares every row`);
  if (run.samplePercent !== null && !run.clean && !run.problem && found === 0) lines.push(uncleanReason(run));
  if (found > 0) {
    lines.push(`\`ferry mismatches ${run.migrationId}\` lists them`);
    if (!run.repair) lines.push(`nothing was repaired; \`ferry verify ${run.migrationId} --repair\` repairs them from the source`);
  }
  return lines.join('\n');
}

/** One check run after the migration ended, on one line, for `ferry status`. */
export function formatLaterCheck(check: LaterCheck): string {
  const r = check.run;
  if (!r) return `${check.checkId}: ${check.state === 'running' ? 'running' : `failed: ${check.failure ?? 'unknown'}`}`;
  const result = r.problem ? `could not finish: ${r.problem}` : `${r.clean ? 'clean' : 'NOT clean'}, ${formatCount(r.rowsChecked)} rows checked, ${differenceCounts(r)}`;
  return `${check.checkId} (run ${r.run}) by ${printable(r.by ?? 'unknown')} at ${r.startedAt}, ${scopeOf(r.samplePercent)}, ${r.repair ? `repairing (${r.repaired} repaired)` : 'report only'}: ${result}`;
}

export function formatMismatches(report: MismatchReport): string {
  if (report.pass === null) return 'no mismatches recorded';
  const { counts, unresolved } = report;
  const pass = report.run !== undefined && report.runPass !== undefined ? `run ${report.run}, pass ${report.runPass}` : `pass ${report.pass}`;
  const lines = [
    `${pass}: ${counts.missing} missing, ${counts.extra} extra, ${counts.value} differing; unresolved ${unresolved.missing} missing, ${unresolved.extra} extra, ${unresolved.value} differing`,
  ];
  for (const example of report.examples) {
    const values = example.values ? (example.valuesAsFound === false ? '; values read now, not kept when found' : '; values as found') : '';
    lines.push(`  key ${example.key}: ${example.category}${example.columns.length ? ` (${example.columns.join(', ')})` : ''}${example.resolved ? ', resolved' : ''}${values}`);
    for (const [column, values] of Object.entries(example.values ?? {})) {
      lines.push(`      ${column}: source ${values.source ?? 'NULL'} | target ${values.target ?? 'NULL'}`);
    }
  }
  if (report.examples.length && !report.examples.some((e) => e.values)) lines.push('(values redacted; --show-values reveals them)');
  return lines.join('\n');
}

export function formatFailures(status: MigrationStatus): string {
  const lines = [
    `${formatCount(status.rowsFailed)} row${status.rowsFailed === 1 ? '' : 's'} failed, ${formatCount(status.unresolvedFailures)} unresolved, ${formatCount(status.failuresFixed)} fixed by retry`,
  ];
  if (status.recentFailures.length) {
    lines.push(`latest ${status.recentFailures.length} (the full list is in ferry.failed_records on the target):`);
    for (const failure of status.recentFailures) lines.push(`  key ${failure.key}: ${failure.code ? `[${failure.code}] ` : ''}${failure.error}`);
  }
  return lines.join('\n');
}

/** `ferry status` shows the latest decisions; the report has every one. */
const DECISIONS_SHOWN = 10;

/**
 * What a person approving a gate should look at. The dual-read counts are each process's total
 * since it started (ferry.read_comparisons keeps one running count per process), of the
 * processes that reported within the last hour: said so, not called the last hour's.
 */
export function gateFiguresText(figures: GateFigures): string {
  const rate = figures.readsCompared ? ` (${((100 * figures.readsMismatched) / figures.readsCompared).toFixed(2)}%)` : '';
  return (
    `${formatCount(figures.readsCompared)} dual reads compared, ${formatCount(figures.readsMismatched)} differed${rate} ` +
    '(since each application process started, of those that reported in the last hour); ' +
    `source replica lag ${figures.replicaLagSeconds.toFixed(1)} s${standbysText(figures)}, longest query ${figures.longestQuerySeconds.toFixed(0)} s${inactiveSlotsText(figures)} (as of ${figures.at})`
  );
}

export function formatStatus(report: MigrationReport): string {
  const lines = [`migration ${report.migrationId}: ${outcomeOf(report)}`];
  if (report.failure) lines.push(`failure: ${report.failure}`);
  const status = report.status;
  if (!status) return lines.join('\n');
  lines.push(
    `plan      ${status.planName}${status.execute ? '' : ' (dry run)'}`,
    `phase     ${status.phase}${status.paused ? ` (${pauseStory(status)})` : ''}`,
    `started   ${status.startedAt}${status.finishedAt ? `, finished ${status.finishedAt}` : ''}`,
    `rows      ${formatCount(status.rowsRead)} read, ${formatCount(status.rowsWritten)} written, ${formatCount(rowsSkipped(status))} already present, ${formatCount(status.rowsFailed)} failed`,
    `throttle  ${formatThrottle(status.throttle, status.shards.filter((s) => s.state === 'running').length)}`,
  );
  const holding = holdingSignals(status);
  const held = holding.map((h) => `${h.signal} (shard${h.shards.length === 1 ? '' : 's'} ${h.shards.join(', ')})`);
  const applyHeldBy = status.capture && status.capture.removedAt === null ? holdingSignalOf(status.capture.throttleReason) : null;
  if (applyHeldBy) held.push(`${applyHeldBy} (change apply)`);
  if (held.length) lines.push(`held by   ${held.join(', ')}`);
  const signals = [...new Set([...holding.map((h) => h.signal), ...(applyHeldBy ? [applyHeldBy] : [])])];
  if (signals.length) {
    const flags = [...new Set(signals.map((signal) => LOOSENED_BY[signal]).filter((flag) => flag !== null))].join(' ');
    // The controller off frees a copy held by any signal but the rows/s ceiling.
    const off = signals.some((signal) => signal !== 'ceiling') ? (flags ? ' (or --pacing off)' : ' --pacing off') : '';
    lines.push(`loosen    ferry throttle ${status.migrationId}${flags ? ` ${flags}` : ''}${off}`);
  }
  if (status.flags) {
    const f = status.flags;
    lines.push(`flags     v${f.version}: write old ${f.writeOld ? 'on' : 'off'}, write new ${f.writeNew ? 'on' : 'off'}, reads from ${f.readFrom}, compare ${f.comparePercent}%`);
  }
  if (status.capture) lines.push(`capture   ${describeCapture(status.capture)}`);
  const story = report.runState === 'running' && !status.paused ? phaseStory(status) : null;
  if (story && status.phase !== 'awaiting-approval') lines.push(`now       ${story}`);
  if (status.verification) lines.push(`verify    ${formatVerification(status.verification, status).replace(/^verification /, '')}`);
  const gate = gateStory(status);
  gate.forEach((line, i) => lines.push(`${i === 0 ? 'GATE' : '    '}      ${line}`));
  if (status.gate?.figures) {
    lines.push(`          look at: ${gateFiguresText(status.gate.figures)}`);
  }
  if (status.abort) {
    lines.push(
      `ABORTED   by ${printable(status.abort.by)} in ${status.abort.phaseReached}: ${printable(status.abort.reason)}; ${status.abort.flagsNote}`,
      `          ${rowsLeftText(status)} remain in the target; \`ferry report ${status.migrationId}\` says what to do about them`,
    );
    const unstopped = unstoppedShardsNote(status.abort);
    if (unstopped) lines.push(`          ${unstopped}`);
  }
  lines.push(...formatRetries(report.retrying ?? []));
  for (const shard of status.shards) lines.push(shardLine(shard));
  if (status.rowsFailed) lines.push(formatFailures(status));
  if (status.events.length) {
    const shown = status.events.slice(-DECISIONS_SHOWN);
    const total = (status.eventsDropped ?? 0) + status.events.length;
    lines.push(
      shown.length < total
        ? `decisions (the last ${shown.length} of ${total}; \`ferry report ${status.migrationId}${status.eventsDropped ? ' --from-audit --connection TARGET_DB' : ''}\` has them all):`
        : 'decisions:',
    );
    // Who and why are anyone's text: one event, one line, whatever they hold.
    for (const event of shown) lines.push(`  ${event.at} ${event.kind}${event.by ? ` by ${printable(event.by)}` : ''}: ${printable(decisionDetail(event))}`);
  }
  if (status.inspection && status.phase === 'dry-run') lines.push('', formatInspection(status.inspection));
  return lines.join('\n');
}
