/**
 * Who runs the CLI: FERRY_OPERATOR, or the OS user@host. Sent as the Temporal client identity
 * and as `by` in every request, so a decision names the account that made it.
 */
import os from 'node:os';
import { recordedName } from '../lib/approvals';

export function operatorIdentity(env: NodeJS.ProcessEnv = process.env): string {
  const named = env.FERRY_OPERATOR?.trim();
  if (named) return named;
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry (some containers): the host still says where the request came from.
  }
  return `${user}@${os.hostname()}`;
}

/** `by` for a request: the identity, with a differing --by name kept beside it. */
export function requestedBy(by?: string): string {
  return recordedName(operatorIdentity(), by);
}

export const identityHelp = [
  'Identity: ferry acts as FERRY_OPERATOR, or else as your OS user@host. It is the Temporal',
  'client identity and the "by" of every request; a --by NAME that differs is recorded beside',
  'it, as "NAME (as user@host)". A plan may name who can approve and force gates',
  '(lifecycle.gates.approvers, forcers) and keep the starter from approving (fourEyes); those',
  'checks use the identity. Every decision is also kept in ferry.audit on the target.',
].join('\n');
