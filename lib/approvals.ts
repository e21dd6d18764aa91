/**
 * Who may decide at a gate. The CLI sends its caller's identity (FERRY_OPERATOR, or user@host)
 * as `by`; a `--by` name that differs is kept with it, as "alice (as root@db1)", and the
 * identity is what the plan's lists are checked against. Pure: runs in workflows and the CLI.
 */

/** The name recorded for a request: the identity, or an override with the identity beside it. */
export function recordedName(identity: string, by?: string): string {
  const override = by?.trim();
  return !override || override === identity ? identity : `${override} (as ${identity})`;
}

/** The identity behind a recorded name: "alice (as root@db1)" acts as root@db1. */
export function actingIdentity(by: string): string {
  const match = /\(as ([^()]+)\)$/.exec(by.trim());
  return (match ? match[1]! : by).trim();
}

/** Whether `identity` is one of `names`: the whole identity, or its user part before the "@". */
export function isNamed(names: readonly string[], identity: string): boolean {
  const user = userPart(identity);
  return names.some((name) => name === identity || name === user);
}

/** The user part of an identity, before its "@host". */
function userPart(identity: string): string {
  return identity.split('@')[0]!;
}

/** The plan's rules for gate decisions (lifecycle.gates). */
export interface DeciderRules {
  approvers?: string[];
  forcers?: string[];
  fourEyes?: boolean;
}

/**
 * Problems with who decides: `by` as sent, whether the approval forces past unclean
 * verification, and the identity that started the migration (null when unknown).
 */
export function deciderProblems(
  decision: 'approve' | 'reject',
  by: string,
  force: boolean,
  rules: DeciderRules,
  startedBy: string | null,
): string[] {
  const identity = actingIdentity(by);
  const problems: string[] = [];
  if (rules.approvers && !isNamed(rules.approvers, identity)) {
    problems.push(`${identity} may not ${decision} gates of this migration; the plan's lifecycle.gates.approvers are: ${rules.approvers.join(', ')}`);
  }
  const forcers = rules.forcers ?? rules.approvers;
  if (decision === 'approve' && force && forcers && !isNamed(forcers, identity)) {
    problems.push(`${identity} may not approve with --force; the plan allows it to: ${forcers.join(', ')}`);
  }
  if (decision === 'approve' && rules.fourEyes) {
    if (startedBy === null) problems.push('the plan asks for four eyes (lifecycle.gates.fourEyes), but who started this migration is not known');
    else if (sameIdentity(actingIdentity(startedBy), identity)) {
      problems.push(`${identity} started this migration and may not approve it: the plan asks for four eyes (lifecycle.gates.fourEyes)`);
    }
  }
  return problems;
}

/**
 * One person behind two identities: the same user name, from whatever host each was sent
 * (alice@laptop and alice@desktop), as approvers named "alice" are matched. Four eyes errs toward
 * refusing: two people who share a user name on different hosts must use FERRY_OPERATOR.
 */
function sameIdentity(a: string, b: string): boolean {
  return userPart(a) === userPart(b);
}
