/**
 * What each phase of a migration means to an operator, in words: copying has a rate and an ETA,
 * verifying has passes and differences, a gate has a wait and (only when it would be taken) the
 * command that approves it, a pause has who and why. Pure; the live view and `status` share it.
 */
import { describeLag } from '../lib/capture';
import { approvalProblems } from '../lib/lifecycle';
import { formatDuration } from '../lib/progress';
import { describeVerdict, verdictPassId } from '../lib/verification-runs';
import type { MigrationEvent, MigrationStatus, VerificationSummary } from '../lib/status';
import { printable } from './printable';

/** Whether rows are being copied now: only then do a rate and an ETA mean anything. */
export function copying(status: Pick<MigrationStatus, 'phase' | 'paused'>): boolean {
  return status.phase === 'backfilling' && status.paused === null;
}

const since = (iso: string, nowMs: number) => formatDuration(Math.max(0, (nowMs - Date.parse(iso)) / 1000));

/** "PAUSED for 2m 10s by alice: checking replica"; null when not paused. */
export function pauseStory(status: Pick<MigrationStatus, 'paused' | 'migrationId'>, nowMs = Date.now()): string | null {
  const paused = status.paused;
  if (!paused) return null;
  return `PAUSED for ${since(paused.since, nowMs)}${paused.by ? ` by ${printable(paused.by)}` : ''}: ${printable(paused.reason)} (since ${paused.since}; \`ferry resume ${status.migrationId}\` copies again)`;
}

function differences(v: NonNullable<MigrationStatus['verification']>): string {
  return `${v.missing} missing, ${v.extra} extra, ${v.value} differing`;
}

/** The last verification in one phrase: "clean after 1 pass, 12,000 rows checked". */
export function verificationPhrase(v: MigrationStatus['verification'], status?: Pick<MigrationStatus, 'unresolvedFailures' | 'migrationId'>): string {
  if (!v) return 'not verified yet';
  const passes = `${v.passes} pass${v.passes === 1 ? '' : 'es'}`;
  return `${v.clean ? 'clean' : 'NOT clean'} after ${passes}, ${v.rowsChecked.toLocaleString('en-US')} rows checked${v.clean ? '' : ` (${differences(v)})`}${leftOutText(status)}`;
}

/**
 * Verification leaves out the keys of unresolved failed records (their copy or a later change to
 * them failed), so a verdict says so while there are any: "; N rows ... left out", or empty.
 */
export function leftOutText(status?: Pick<MigrationStatus, 'unresolvedFailures' | 'migrationId'>): string {
  const failed = status?.unresolvedFailures ?? 0;
  if (failed === 0) return '';
  return `; ${failed.toLocaleString('en-US')} row${failed === 1 ? '' : 's'} with unresolved failed records left out (ferry failures ${status!.migrationId})`;
}

function passShardsText(live: NonNullable<MigrationStatus['verifyPass']>): string {
  return `${live.shardsVerified} of ${live.shards} shard${live.shards === 1 ? '' : 's'} verified${live.shardsRunning ? `, ${live.shardsRunning} checking` : ''}`;
}

/** While verifying: the pass under way and what the last one found. */
export function verifyingStory(status: Pick<MigrationStatus, 'verification' | 'phases' | 'verifyPass'>, nowMs = Date.now()): string {
  const v = status.verification;
  const step = status.phases.at(-1);
  const running = step && step.endedAt === null ? ` for ${since(step.startedAt, nowMs)}` : '';
  const shards = status.verifyPass ? passShardsText(status.verifyPass) : null;
  if (!v) return `verifying${running}: pass 1 ${shards ? `(${shards})` : 'under way'}; differences are counted as the pass ends`;
  return (
    `verifying${running}: pass ${v.passes + 1} ${shards ? `(${shards})` : 'under way'}; ` +
    `pass ${v.passes} found ${differences(v)} in ${v.rowsChecked.toLocaleString('en-US')} rows, ${v.repaired} repaired`
  );
}

/** The gate a migration waits at: how long, how verification stands, and how to move on. */
export function gateStory(status: Pick<MigrationStatus, 'gate' | 'verification' | 'migrationId' | 'verificationRunning' | 'verifyPass' | 'unresolvedFailures'>, nowMs = Date.now()): string[] {
  const gate = status.gate;
  if (!gate) return [];
  const lines = [
    `waiting at ${gate.name} for ${since(gate.waitingSince, nowMs)} (since ${gate.waitingSince}${gate.expiresAt ? `; aborts at ${gate.expiresAt} if nobody decides` : ''}): ${gate.description}`,
    `verification ${verificationPhrase(status.verification, status)}`,
  ];
  // The migration refuses an approval until the verification it runs has reported.
  if (status.verificationRunning) {
    const live = status.verifyPass ? ` (${passShardsText(status.verifyPass)})` : '';
    lines.push(`a verification is running at this gate${live}: approve once it has reported (ferry status shows it)`);
    return lines;
  }
  const verification = status.verification ? { clean: status.verification.clean, summary: differences(status.verification) } : null;
  // The same rule the migration applies to an approval: show the command only when it would be taken.
  const problems = approvalProblems({ gate: gate.name, by: 'operator' }, gate.name, verification);
  if (problems.length === 0) lines.push(`approve with: ${gate.approveCommand}`);
  else {
    lines.push(
      `approval would be refused: ${problems.join('; ')}`,
      `re-check with: ferry verify ${status.migrationId}   (or reject: ferry reject ${status.migrationId} --gate ${gate.name} --by NAME --reason "...")`,
    );
    // Forcing names the verdict looked at, so a verification that reports meanwhile is not passed over unseen.
    const v = status.verification;
    if (v && !v.clean) {
      const pass = verdictPassId(v);
      lines.push(`or force past this verdict (pass ${pass}), if the plan lets you: ferry approve ${status.migrationId} --gate ${gate.name} --force --verdict ${pass} --note "<why it may pass>"`);
    }
  }
  return lines;
}

/** What the migration is doing, in a line, for phases without a copy rate; null while copying. */
export function phaseStory(status: MigrationStatus, nowMs = Date.now()): string | null {
  if (status.paused) return pauseStory(status, nowMs);
  switch (status.phase) {
    case 'inspecting':
      return 'inspecting the tables and the transform; copying starts after';
    case 'dual-write': {
      const step = status.phases.at(-1);
      return `dual writes on${step && step.endedAt === null ? ` for ${since(step.startedAt, nowMs)}` : ''}: waiting for the applications to follow the flags before the copy starts`;
    }
    case 'verifying':
      return verifyingStory(status, nowMs);
    case 'awaiting-approval':
      return status.capture && status.capture.removedAt === null
        ? `at a gate: the copy is done; captured changes are applied while it waits (${describeLag(status.capture.lag)})`
        : `at a gate: nothing is copied while it waits`;
    case 'capture-on':
      return 'installing the capture trigger on the source table; copying starts after';
    case 'catching-up':
      return `applying the changes captured during the backfill: ${describeLag(status.capture?.lag ?? null)}; verification starts once the apply keeps up`;
    case 'swapping':
      return 'swapping the tables: draining the change log under a short lock, then the new table takes the old name (retried while the lock is not had)';
    case 'capture-off':
      return 'removing the capture trigger and its change log entries';
    case 'reads-on-new':
    case 'old-writes-off':
    case 'cleanup':
      return `${status.phase}: the copy is done; verification ${verificationPhrase(status.verification, status)}`;
    case 'aborting':
      return 'aborting: stopping the copy and rolling the flags back';
    case 'aborted':
      return `aborted${status.abort ? ` by ${printable(status.abort.by)}: ${printable(status.abort.reason)}` : ''}`;
    default:
      return null;
  }
}

/**
 * A decision's detail without its reason said twice: the workflow appends " (reason)" to a
 * detail that may already be that reason ("checking replica (checking replica)").
 */
export function decisionDetail(event: Pick<MigrationEvent, 'detail'>): string {
  const match = /^(.*) \(([^()]*)\)$/.exec(event.detail);
  if (!match) return event.detail;
  const [, before, reason] = match as unknown as [string, string, string];
  return before === reason || before.endsWith(`: ${reason}`) ? before : event.detail;
}

/**
 * Who forced a gate past a verification, and past which verdict: "a gate was approved past it
 * with --force by bob, at pass 2: ...". `name` is the forcer as the output shows names.
 */
export function forcedPastText(v: Pick<VerificationSummary, 'forcedPast' | 'passes' | 'lastPassId'>, name: string): string {
  const past = v.forcedPast;
  if (!past) return `a gate was approved past it with --force by ${name}`;
  if (past.pass === verdictPassId(v)) return `a gate was approved past it with --force by ${name}, at ${describeVerdict(past)}`;
  return `a gate was approved with --force by ${name} past an earlier verdict, ${describeVerdict(past)}`;
}

/** The same, as a sentence of a report. */
export function forcedPastSentence(v: Pick<VerificationSummary, 'forcedPast' | 'passes' | 'lastPassId'>, name: string): string {
  const text = forcedPastText(v, name);
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}
