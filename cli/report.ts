/** The record of a migration run, as Markdown for people and JSON for tools: `ferry report`. */
import { describeCapture } from '../lib/capture';
import { rowsSkipped, unstoppedShardsNote, type MigrationStatus, type VerificationSummary } from '../lib/status';
import { differenceCounts, scopeOf, uncleanReason } from '../lib/verification-runs';
import type { LaterCheck } from '../operator';
import { rowsLeftText } from './outcome';
import { decisionDetail, forcedPastSentence } from './phase-story';
import { printable } from './printable';
import { formatCount } from './render';

export interface MigrationRecord {
  migrationId: string;
  plan: string;
  outcome: MigrationStatus['phase'];
  startedAt: string;
  finishedAt: string | null;
  durationSeconds: number | null;
  phases: { name: string; startedAt: string; endedAt: string | null; seconds: number | null }[];
  rows: { estimated: number | null; read: number; copied: number; alreadyPresent: number; failed: number; unresolvedFailures: number; fixedByRetry: number; repaired: number };
  backfillRowsPerSecond: number | null;
  /** How good an early guess of the backfill's end was: the ETA `ferry status` showed at 10%. */
  earlyEta: EarlyEta | null;
  verification: MigrationStatus['verification'];
  flags: MigrationStatus['flags'];
  decisions: MigrationStatus['events'];
  /** The oldest decisions, no longer carried by the migration: ferry.audit on the target has them. */
  decisionsOnlyInAudit?: number;
  abort: MigrationStatus['abort'];
  /** Ferry's own capture of the changes (plan capture: trigger); null otherwise. */
  capture: NonNullable<MigrationStatus['capture']> | null;
  leftToDo: string[];
  /** Progress over time (rows read, batch size), for charts. */
  samples: MigrationStatus['samples'];
  /** Checks run after the migration ended (`ferry verify` on a completed or aborted migration), oldest first. */
  laterChecks: LaterCheck[];
}

export interface EarlyEta {
  /** When the backfill had read 10% of the estimated rows. */
  at: string;
  /** The end an ETA from the average rate so far predicted then. */
  predictedEnd: string;
  actualEnd: string;
  /** Positive: the real end came later than predicted. */
  errorSeconds: number;
  /** The error as a share of the whole backfill's duration. */
  errorShare: number;
}

/** The ETA from the first sample at 10% of the estimate, against the backfill's real end. */
export function earlyEtaOf(status: Pick<MigrationStatus, 'samples' | 'phases' | 'inspection'>): EarlyEta | null {
  const backfill = status.phases.find((p) => p.name === 'backfill');
  const estimated = status.inspection?.source.estimatedRows ?? null;
  if (!backfill?.endedAt || !estimated) return null;
  const start = Date.parse(backfill.startedAt);
  const end = Date.parse(backfill.endedAt);
  const sample = status.samples.find((s) => s.rowsRead >= estimated * 0.1 && Date.parse(s.at) > start && Date.parse(s.at) <= end);
  if (!sample) return null;
  const at = Date.parse(sample.at);
  const rate = sample.rowsRead / ((at - start) / 1000);
  const predicted = at + (Math.max(0, estimated - sample.rowsRead) / rate) * 1000;
  return {
    at: sample.at,
    predictedEnd: new Date(predicted).toISOString(),
    actualEnd: backfill.endedAt,
    errorSeconds: (end - predicted) / 1000,
    errorShare: (end - predicted) / Math.max(1, end - start),
  };
}

const seconds = (from: string, to: string | null) => (to ? (Date.parse(to) - Date.parse(from)) / 1000 : null);

/** What a person still has to do by hand: Ferry never takes a destructive step itself. */
function leftToDo(status: MigrationStatus): string[] {
  const source = status.inspection?.source.name ?? 'the old table';
  const target = status.inspection?.target.name ?? 'the new table';
  const todo: string[] = [];
  if (status.unresolvedFailures > 0) {
    todo.push(
      `${status.unresolvedFailures === 1 ? '1 row failed and was' : `${status.unresolvedFailures} rows failed and were`} left out of verification (never copied, or a later change to them not applied): see \`ferry failures ${status.migrationId}\` and ferry.failed_records on the target`,
    );
  }
  if (status.abort) {
    todo.push(`the migration was aborted (${status.abort.reason}): ${status.abort.flagsNote}`);
    todo.push(
      `${rowsLeftText(status)} remain in ${target}: run the migration again to finish the copy (rows already there are kept under the conflict policy, ` +
        `then verified against the source), or, if nothing else writes ${target} yet, empty it (\`TRUNCATE ${target}\`) before starting over`,
    );
    if (status.flags && status.flags.writeNew && status.flags.readFrom === 'new') {
      todo.push(`repair ${source} from ${target} before moving reads back to it; then turn dual writes off`);
    }
    return todo;
  }
  if (status.phase !== 'completed') {
    todo.push(`the migration is ${status.phase}; this record is not final`);
    return todo;
  }
  const flags = status.flags;
  if (flags && !flags.writeOld && flags.readFrom === 'new') {
    todo.push(`remove the dual-write and dual-read code (Ferry's client calls) from the application; it uses ${target} only`);
    todo.push(`drop or archive ${source} once nothing reads it (Ferry does not drop tables)`);
    const name = status.planName.replaceAll("'", "''");
    todo.push(
      `keep the flags row while any process runs Ferry's client for this migration: without it a process that starts (a rolled-back deploy, a new replica) ` +
        `cannot know where to write (Ferry's client refuses to). None runs once SELECT client_id FROM ferry.flag_acks WHERE migration = '${name}' AND seen_at > now() - interval '2 minutes' ` +
        `returns no row (each process renews its row every 30 s); then DELETE FROM ferry.flags WHERE migration = '${name}'; DELETE FROM ferry.flag_acks WHERE migration = '${name}'`,
    );
  } else if (flags && flags.writeNew) {
    todo.push(`dual writes are still on (the plan has no cutover): the application writes ${source} and ${target}`);
  } else {
    todo.push(`${target} holds the backfill; point the application at it when ready`);
  }
  return todo;
}

export function migrationRecord(status: MigrationStatus, laterChecks: LaterCheck[] = []): MigrationRecord {
  const backfill = status.phases.find((p) => p.name === 'backfill');
  const backfillSeconds = backfill ? seconds(backfill.startedAt, backfill.endedAt) : null;
  return {
    migrationId: status.migrationId,
    plan: status.planName,
    outcome: status.phase,
    startedAt: status.startedAt,
    finishedAt: status.finishedAt,
    durationSeconds: seconds(status.startedAt, status.finishedAt),
    phases: status.phases.map((p) => ({ ...p, seconds: seconds(p.startedAt, p.endedAt) })),
    rows: {
      estimated: status.inspection?.source.estimatedRows ?? null,
      read: status.rowsRead,
      copied: status.rowsWritten,
      alreadyPresent: rowsSkipped(status),
      failed: status.rowsFailed,
      unresolvedFailures: status.unresolvedFailures,
      fixedByRetry: status.failuresFixed,
      repaired: status.verification?.repairedTotal ?? status.verification?.repaired ?? 0,
    },
    backfillRowsPerSecond: backfillSeconds ? Math.round(status.rowsRead / Math.max(backfillSeconds, 0.001)) : null,
    // An aborted backfill's end says nothing about how good its ETA was.
    earlyEta: status.abort || status.phase === 'aborted' ? null : earlyEtaOf(status),
    verification: status.verification,
    flags: status.flags,
    decisions: status.events,
    ...(status.eventsDropped ? { decisionsOnlyInAudit: status.eventsDropped } : {}),
    abort: status.abort,
    capture: status.capture ?? null,
    leftToDo: leftToDo(status),
    samples: status.samples ?? [],
    laterChecks,
  };
}

/** "Run 2, over a sample of 10% of keys: " before a verification's outcome (empty for older records). */
export function verificationScope(v: VerificationSummary): string {
  if (v.run !== undefined) return `Run ${v.run}, over ${scopeOf(v.samplePercent)}: `;
  return v.samplePercent != null ? `Over ${scopeOf(v.samplePercent)}: ` : '';
}

/** Why a sample that found nothing still leaves a migration not clean; empty otherwise. */
export function verificationCaveat(v: VerificationSummary): string {
  return !v.clean && v.missing + v.extra + v.value === 0 && v.samplePercent != null ? ` ${uncleanReason(v)}.` : '';
}

export const LATER_CHECKS_NOTE = 'Checks run after the migration ended (`ferry verify`), recorded in ferry.verification_runs on the target.';
export const LATER_CHECK_COLUMNS = ['check', 'started', 'finished', 'by', 'compared', 'repair', 'passes', 'result'];

/** One later check as table cells, in LATER_CHECK_COLUMNS order. */
export function laterCheckCells(check: LaterCheck): string[] {
  const r = check.run;
  if (!r) return [check.checkId, '', '', '', '', '', '', check.state === 'running' ? 'running' : `failed: ${check.failure ?? ''}`];
  const result = r.problem
    ? `could not finish: ${r.problem}`
    : `${r.clean ? 'clean' : 'NOT clean'}: ${formatCount(r.rowsChecked)} rows checked, ${differenceCounts(r)}${r.repaired ? `, ${r.repaired} repaired` : ''}`;
  return [`run ${r.run} (${check.checkId})`, r.startedAt, r.finishedAt ?? '', r.by ?? '', scopeOf(r.samplePercent), r.repair ? 'yes' : 'no', String(r.passes), result];
}

/** A table cell on one line: control characters shown escaped, pipes too. */
const cell = (text: string) => printable(text).replace(/\|/g, '\\|');

export function recordMarkdown(record: MigrationRecord): string {
  const lines = [
    `# Migration ${record.migrationId}`,
    '',
    `- plan: \`${record.plan}\``,
    `- outcome: **${record.outcome}**`,
    `- started ${record.startedAt}${record.finishedAt ? `, finished ${record.finishedAt} (${record.durationSeconds?.toFixed(1)} s)` : ''}`,
    '',
    '## Phases',
    '',
    '| phase | started | ended | seconds |',
    '| --- | --- | --- | --- |',
    ...record.phases.map((p) => `| ${p.name} | ${p.startedAt} | ${p.endedAt ?? '(running)'} | ${p.seconds?.toFixed(1) ?? ''} |`),
    '',
    '## Rows',
    '',
    `| read | copied | already present | failed | unresolved | fixed by retry | repaired |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
    `| ${[record.rows.read, record.rows.copied, record.rows.alreadyPresent, record.rows.failed, record.rows.unresolvedFailures, record.rows.fixedByRetry, record.rows.repaired].map(formatCount).join(' | ')} |`,
    '',
    `Backfill throughput: ${record.backfillRowsPerSecond === null ? 'n/a' : `${formatCount(record.backfillRowsPerSecond)} rows/s`}.`,
    ...(record.earlyEta
      ? [
          '',
          `The ETA at 10% of the rows (${record.earlyEta.at}) predicted the backfill's end at ${record.earlyEta.predictedEnd}; ` +
            `it ended ${Math.abs(record.earlyEta.errorSeconds).toFixed(1)} s ${record.earlyEta.errorSeconds >= 0 ? 'later' : 'earlier'} ` +
            `(${(Math.abs(record.earlyEta.errorShare) * 100).toFixed(0)}% of its duration).`,
        ]
      : []),
  ];
  if (record.capture) lines.push('', '## Captured changes', '', `${describeCapture(record.capture)}.`);
  if (record.verification) {
    const v = record.verification;
    lines.push(
      '',
      '## Verification',
      '',
      `${verificationScope(v)}${v.clean ? 'clean' : 'NOT clean'} after ${v.passes} pass(es): ${formatCount(v.rowsChecked)} rows checked, ${v.missing} missing, ${v.extra} extra, ${v.value} differing, ${v.repaired} repaired.` +
        verificationCaveat(v) +
        (v.forcedBy ? ` ${forcedPastSentence(v, printable(v.forcedBy))}` : ''),
    );
  }
  if (record.laterChecks.length) {
    lines.push('', '## Later checks', '', LATER_CHECKS_NOTE, '');
    lines.push(`| ${LATER_CHECK_COLUMNS.join(' | ')} |`, `| ${LATER_CHECK_COLUMNS.map(() => '---').join(' | ')} |`);
    for (const check of record.laterChecks) lines.push(`| ${laterCheckCells(check).map(cell).join(' | ')} |`);
  }
  lines.push('', '## Decisions', '');
  if (record.decisionsOnlyInAudit) {
    lines.push(`The first ${record.decisionsOnlyInAudit} are in ferry.audit on the target only (\`ferry report ${record.migrationId} --from-audit --connection TARGET_DB\`).`, '');
  }
  if (record.decisions.length === 0) lines.push('None.');
  else {
    lines.push('| when | what | by | detail |', '| --- | --- | --- | --- |');
    for (const e of record.decisions) lines.push(`| ${e.at} | ${e.kind} | ${cell(e.by ?? '')} | ${cell(decisionDetail(e))} |`);
  }
  if (record.abort) {
    lines.push('', '## Abort', '', `Aborted by ${printable(record.abort.by)} at ${record.abort.at} in phase ${record.abort.phaseReached}: ${printable(record.abort.reason)}.`, '', record.abort.flagsNote + '.');
    const unstopped = unstoppedShardsNote(record.abort);
    if (unstopped) lines.push('', `${unstopped}.`);
  }
  if (record.flags) {
    const f = record.flags;
    lines.push('', '## Flags', '', `Version ${f.version}: write old ${f.writeOld ? 'on' : 'off'}, write new ${f.writeNew ? 'on' : 'off'}, reads from ${f.readFrom}, compare ${f.comparePercent}%.`);
  }
  lines.push('', '## Left to do by hand', '', ...record.leftToDo.map((t) => `- ${printable(t)}`), '');
  return lines.join('\n');
}
