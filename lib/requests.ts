/**
 * Whether a migration can serve an operator's request now: one rule for every update, so that a
 * request is either taken and served, or refused at once with the reason; never taken and left
 * waiting. A request taken to wait for its turn (a verification waits for a gate) is let go by
 * the same rule once it can no longer be served. Pure: the workflow's validators and handlers
 * call it, tests call it directly.
 */
import type { Phase } from './status';

export type RequestKind = 'abort' | 'verify' | 'approve' | 'reject' | 'throttle' | 'retryFailures' | 'mismatches';

/** What the rule looks at, as the workflow knows it. */
export interface ServingState {
  phase: Phase;
  /** A dry run only inspects. */
  execute: boolean;
  /** Past its last step: the migration records its end and releases its target. */
  releasing: boolean;
  /** An abort (or a rejection, or a gate's expiry) was taken and is being served. */
  abortRequested: boolean;
  /** The backfill has ended: there is something to verify. */
  backfillDone: boolean;
  /** A verification runs, or one was asked for and waits for its turn. */
  verificationBusy: boolean;
  /** The gate waiting for a person, if any. */
  gateWaiting: string | null;
  /** Who approved the waiting gate, once it is approved and before the migration moves on. */
  gateApprovedBy: string | null;
  /** A gate waits now or lies ahead: on-demand verifications run at gates. */
  gateAhead: boolean;
  /** Who paused the migration and why, while it is paused (an operator, or Ferry with a question). */
  paused: string | null;
  /** The run is handing its status to a fresh history: what it takes now would not be carried. */
  continuing?: boolean;
}

const ended: Phase[] = ['completed', 'failed', 'dry-run', 'aborted'];

/** The reason `kind` cannot be served now, or null when it can. */
export function refusalOf(kind: RequestKind, state: ServingState): string | null {
  if (ended.includes(state.phase)) return `the migration is ${state.phase}; it takes no more requests`;
  if (state.phase === 'aborting' || state.abortRequested) return 'an abort is under way; it takes no more requests';
  if (state.continuing) return 'the migration is moving to a fresh history (continue-as-new); send the request again in a few seconds';
  if (state.releasing) return 'the migration is past its last step and is recording its end; it takes no more requests';
  if (!state.execute) {
    if (kind === 'abort') return 'a dry run writes nothing and ends by itself once it has inspected the tables';
    return 'a dry run copies nothing; it takes no requests';
  }
  switch (kind) {
    case 'abort':
    case 'throttle':
    case 'retryFailures':
    case 'mismatches':
      return null;
    case 'approve':
    case 'reject':
      if (state.gateWaiting === null) return 'no gate is waiting for a decision now';
      // Decisions that reach the migration together (sent while no worker ran) must not all be
      // taken: the first is the gate's, and a later one would tell its sender something false.
      if (state.gateApprovedBy !== null) return `gate ${state.gateWaiting} was already approved by ${state.gateApprovedBy}; a gate takes one decision`;
      // A pause holds everything: an approval would move the flags under it, and the resume
      // meant to end it (or to answer Ferry's question) would come after the fact.
      if (kind === 'approve' && state.paused) return `the migration is paused (${state.paused}); resume it first (ferry resume), then approve`;
      // The approval must see what the verification finds: taken now, it would pass the gate
      // whatever that is.
      if (kind === 'approve' && state.verificationBusy) return 'a verification is running at this gate; approve once it has reported (ferry status shows it)';
      return null;
    case 'verify':
      if (!state.backfillDone) return 'the backfill has not finished; verify after it';
      // A pause holds verifications too: one taken now would wait for the resume.
      if (state.paused) return `the migration is paused (${state.paused}); resume it first (ferry resume), then verify`;
      if (state.verificationBusy) return 'a verification is already running';
      if (!state.gateAhead) return 'no gate is left to verify at: the migration is in its last steps (ferry report shows the last verification)';
      return null;
  }
}

/** Requests that, once taken, wait for their turn in the lifecycle. */
export type WaitingRequestKind = Extract<RequestKind, 'verify'>;

/**
 * Why a request taken earlier, and still waiting for its turn, can no longer be served (its
 * caller is answered so rather than left waiting for ever); null while it still can.
 */
export function lapseOf(kind: WaitingRequestKind, state: Pick<ServingState, 'abortRequested' | 'gateAhead'>): string | null {
  switch (kind) {
    case 'verify':
      if (state.abortRequested) return 'an abort came first';
      if (!state.gateAhead) return 'the migration passed its last gate first';
      return null;
  }
}
