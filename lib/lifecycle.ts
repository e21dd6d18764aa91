/**
 * The lifecycle of a migration as pure rules: the gates a plan requires, and where the flags go
 * back to when a migration is aborted. The workflow follows them; tests check them directly.
 */
import type { Flags } from './flags';
import { capturesChanges, swapsTables, type Capture } from './capture';
import type { Plan } from './plan';

/** Gates wait for a person. Each guards a point of no return. */
export const gateNames = ['cutover-reads', 'stop-old-writes', 'swap', 'cleanup'] as const;
export type GateName = (typeof gateNames)[number];

export const gateDescriptions: Record<GateName, string> = {
  'cutover-reads': 'move application reads to the new table',
  'stop-old-writes': 'stop writing the old table (after this, only the new table is complete)',
  swap: 'swap the tables: the new table takes the old one\'s name, the old one is renamed aside (an abort is refused after it)',
  cleanup: 'finish: the old table and the dual-write code may be removed by hand',
};

/** The steps of a migration after inspection, in order; which ones run depends on the plan. */
export type Step =
  | 'dual-write'
  | 'capture-on'
  | 'backfill'
  | 'catch-up'
  | 'verify'
  | 'gate:cutover-reads'
  | 'reads-to-new'
  | 'gate:stop-old-writes'
  | 'old-writes-off'
  | 'gate:swap'
  | 'swap'
  | 'gate:cleanup'
  | 'capture-off';

export function lifecycleSteps(plan: Pick<Plan, 'lifecycle' | 'verify'> & { capture?: Capture }): Step[] {
  const steps: Step[] = [];
  if (plan.lifecycle.dualWrites) steps.push('dual-write');
  // Captured changes keep flowing after the backfill and its verification, until a person ends them at the cleanup gate.
  const capturing = capturesChanges(plan);
  if (capturing) steps.push('capture-on');
  steps.push('backfill');
  if (capturing) steps.push('catch-up');
  if (plan.verify.enabled) steps.push('verify');
  if (plan.lifecycle.cutover) steps.push('gate:cutover-reads', 'reads-to-new', 'gate:stop-old-writes', 'old-writes-off', 'gate:cleanup');
  // The swap is the cutover of an application that cannot change: behind its own gate, before the cleanup's.
  if (capturing && swapsTables(plan)) steps.push('gate:swap', 'swap');
  if (capturing) steps.push('gate:cleanup', 'capture-off');
  return steps;
}

export type FlagSettings = Omit<Flags, 'version'>;

/**
 * The flags an abort returns to, and why: never to a state that loses writes. While the old
 * table still receives every write, the application goes back to it alone. Once old writes
 * were off, the old table is missing writes: both are written again and reads stay on the new
 * table until a person repairs the old one.
 */
export function flagsAfterAbort(current: FlagSettings | null): { flags: FlagSettings | null; note: string } {
  if (current === null) return { flags: null, note: 'flags were never set; nothing to roll back' };
  if (current.writeOld) {
    return {
      flags: { writeOld: true, writeNew: false, readFrom: 'old', comparePercent: 0 },
      // Set, not yet followed: each application process takes the flags up as it hears of them.
      note: 'the old table received every write: the flags send the application back to it alone (each process follows as it hears of them)',
    };
  }
  return {
    flags: { writeOld: true, writeNew: true, readFrom: 'new', comparePercent: 0 },
    note:
      'old writes were off, so the old table misses writes made since then: both tables are written again, ' +
      'reads stay on the new table until the old one is repaired by hand',
  };
}

export interface GateApproval {
  gate: string;
  by: string;
  note?: string;
  /** Approve although verification is not clean; recorded. */
  force?: boolean;
  /** The verification pass whose verdict the approver looked at: refused if the current one is another's. */
  verdictPass?: number;
}

export interface GateRejection {
  gate: string;
  by: string;
  reason: string;
}

export interface AbortRequest {
  by: string;
  reason: string;
}

/** The verification an approval is judged against: its verdict, and the pass that gave it (absent: not known). */
export interface VerificationVerdict {
  clean: boolean;
  summary: string;
  pass?: number;
}

/**
 * Problems with an approval given the gate that waits (if any) and the verification state. An
 * approval naming the pass it looked at (`verdictPass`) is judged against that verdict only: a
 * verification that reported since is refused, so no approval passes a verdict its sender never saw.
 */
export function approvalProblems(approval: unknown, waiting: string | null, verification: VerificationVerdict | null): string[] {
  if (typeof approval !== 'object' || approval === null) return ['an approval must be an object { gate, by, note?, force?, verdictPass? }'];
  const { gate, by, force, verdictPass } = approval as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof by !== 'string' || by.trim() === '') problems.push('the approver is missing: say who approves (--by NAME)');
  if (typeof gate !== 'string' || gate === '') problems.push('the gate is missing (--gate NAME)');
  else if (waiting === null) problems.push(`no gate is waiting; "${gate}" cannot be approved now`);
  else if (gate !== waiting) problems.push(`gate "${gate}" is not the one waiting; the migration waits at "${waiting}"`);
  if (force !== undefined && typeof force !== 'boolean') problems.push('force must be true or false');
  if (verdictPass !== undefined) problems.push(...verdictProblems(verdictPass, verification));
  if (problems.length === 0 && (gate === 'cutover-reads' || gate === 'swap') && verification && !verification.clean && force !== true) {
    problems.push(`verification is not clean (${verification.summary}); repair it, or approve with --force (recorded)`);
  }
  return problems;
}

/** Problems with the pass an approval says its sender looked at, against the verification now. */
function verdictProblems(verdictPass: unknown, verification: VerificationVerdict | null): string[] {
  if (typeof verdictPass !== 'number' || !Number.isInteger(verdictPass) || verdictPass < 1) return ['verdictPass must be a pass number (1 or more), as `ferry status` shows it'];
  if (verification === null) return [`no verification has reported yet, so there is no pass ${verdictPass} to approve past; look again (ferry status)`];
  if (verification.pass === undefined || verification.pass === verdictPass) return [];
  const verdict = verification.clean ? 'clean' : `NOT clean: ${verification.summary}`;
  if (verdictPass > verification.pass) return [`no pass ${verdictPass} has reported: the last one is pass ${verification.pass}, which says ${verdict}; look again (ferry status)`];
  return [`the verification changed since you looked: pass ${verification.pass} now says ${verdict}; look again (ferry status)`];
}
