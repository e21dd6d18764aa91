/**
 * The migration's message handlers: what operators (and its shards) may ask of a running
 * migration. Every update is admitted by lib/requests.ts's one rule and its payload's own checks
 * (a throw in a validator refuses it and writes nothing); a handler only changes the run or
 * leaves a request on it for the lifecycle to take up.
 */
import { ApplicationFailure, condition, defineSignal, patched, setHandler } from '@temporalio/workflow';
import { deciderProblems } from '../../lib/approvals';
import { refusalAfterSwap } from '../../lib/capture';
import { approvalProblems } from '../../lib/lifecycle';
import {
  nameProblems,
  parseAbortRequest,
  parseApproval,
  parseMismatchesRequest,
  parseOperatorNote,
  parseRejection,
  parseRequestNote,
  parseShardProgress,
  parseThrottleChange,
  parseVerifyRequest,
  type OperatorNote,
  type Parsed,
} from '../../lib/messages-input';
import { lapseOf, refusalOf, type RequestKind } from '../../lib/requests';
import { addSample, recountRows } from '../../lib/status';
import { applyThrottleChange, limitsInForce, sameLimits, throttleChangeRefusal, throttleChanges } from '../../lib/throttle';
import { describeVerdict, uncleanReason, verdictOf, verdictPassId } from '../../lib/verification-runs';
import {
  abortUpdate,
  approveUpdate,
  mismatchesUpdate,
  pauseSignal,
  rejectUpdate,
  resumeSignal,
  retryFailuresUpdate,
  setThrottleUpdate,
  shardProgressSignal,
  statusQuery,
  verifyUpdate,
} from '../messages';
import { CANCELLED } from '../shard';
import { mismatchReport, retryFailedRecords } from './activity-proxies';
import type { MigrationRun } from './run';

/** Progress samples for charts, at most this often. */
const SAMPLE_EVERY_MS = 2000;

/** Sets every handler of the migration on `run`; before the first await, so no message waits for them. */
export function setMigrationHandlers(run: MigrationRun): void {
  const { status, plan, workflowId } = run;

  /** Refuses an update that cannot be served now or does not read. */
  const admit = <T>(kind: RequestKind, parsed: Parsed<T>, problemsOf: (value: T) => string[] = () => []) => {
    const refusal = refusalOf(kind, run.servingState());
    const problems = parsed.ok
      ? refusal
        ? [refusal]
        : [...nameProblems(parsed.value as object), ...problemsOf(parsed.value)]
      : [...parsed.problems, ...(refusal ? [refusal] : [])];
    if (problems.length > 0) throw new Error(problems.join('; '));
  };

  // Whether a verification runs now is the run's, not the carried status's.
  setHandler(statusQuery, () => (run.verifying ? { ...status, verificationRunning: true, verifyPassUnderWay: run.passUnderWay } : status));
  // Temporal's CLI and Web UI will send any name as a signal. One sent by an update's name would
  // be accepted and never seen (a signal is not answered): it is refused where `ferry status`
  // shows it. Guarded, so a history holding such a signal replays as it ran.
  for (const update of [setThrottleUpdate, retryFailuresUpdate, approveUpdate, rejectUpdate, abortUpdate, verifyUpdate, mismatchesUpdate]) {
    setHandler(defineSignal<unknown[]>(update.name), () => {
      if (!patched('update-sent-as-signal')) return;
      run.refuse(update.name, [`${update.name} is an update, which is answered, not a signal: send it with ferry's CLI or \`temporal workflow update execute --name ${update.name}\``]);
    });
  }
  setHandler(
    setThrottleUpdate,
    async (payload) => {
      const change = trusted(parseThrottleChange(payload));
      const before = status.throttle;
      const planned = run.plannedLimits();
      status.throttle = applyThrottleChange(before, change, planned);
      const changes = throttleChanges(before, status.throttle, planned);
      run.record('throttle', change, changes.length ? changes.join(', ') : 'no change');
      await run.tellShards('throttle');
      // Only a change of the limits tells the shards of them: a history from before them replays as it ran.
      if (!sameLimits(limitsInForce(before, planned), limitsInForce(status.throttle, planned))) await run.tellShards('limits');
      return status.throttle;
    },
    {
      validator: (payload) =>
        admit('throttle', parseThrottleChange(payload), (change) => {
          const refusal = throttleChangeRefusal(status.throttle, change, run.plannedLimits());
          return refusal ? [refusal] : [];
        }),
    },
  );
  // A pause or resume with no payload (the Web UI's default) is a plain one, by nobody named.
  // A name with control characters (sent through Temporal, past the CLI's check) is refused like
  // the updates' are. Guarded, and asked only of such a name, so older histories replay as they ran.
  const namedBadly = (note: OperatorNote) => nameProblems(note).length > 0 && patched('signal-names-checked');
  setHandler(pauseSignal, async (payload) => {
    const parsed = parseOperatorNote(payload);
    if (!parsed.ok) return run.refuse('pause', parsed.problems);
    if (namedBadly(parsed.value)) return run.refuse('pause', nameProblems(parsed.value));
    await run.pause(parsed.value, 'pause', parsed.value.reason ?? 'paused by an operator');
  });
  setHandler(resumeSignal, async (payload) => {
    const parsed = parseOperatorNote(payload);
    if (!parsed.ok) return run.refuse('resume', parsed.problems);
    if (namedBadly(parsed.value)) return run.refuse('resume', nameProblems(parsed.value));
    const note = parsed.value;
    if (!status.paused) return;
    run.record('resume', note, `resumed after: ${status.paused.reason}`);
    status.paused = null;
    await run.tellShards('pause');
  });
  setHandler(
    retryFailuresUpdate,
    async (payload) => {
      const note = trusted(parseRequestNote(payload));
      const outcome = await retryFailedRecords({ migrationId: workflowId, plan });
      status.unresolvedFailures = outcome.stillFailing;
      status.failuresFixed += outcome.fixed;
      run.record('retry', note, `retried ${outcome.retried} failed rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      return outcome;
    },
    { validator: (payload) => admit('retryFailures', parseRequestNote(payload)) },
  );
  setHandler(
    approveUpdate,
    (payload) => {
      const approval = trusted(parseApproval(payload));
      const forced = approval.force === true && status.verification !== null && !status.verification.clean;
      // The verdict forced past, as this run knows it now, goes into the record and the answer.
      // Guarded, so a history holding a forced approval replays as it ran.
      const verdict = forced && status.verification && patched('forced-verdict-recorded') ? verdictOf(status.verification, status.unresolvedFailures) : null;
      if (forced && status.verification) status.verification.forcedBy = approval.by;
      if (verdict && status.verification) status.verification.forcedPast = verdict;
      const how = verdict ? ` with --force, past verification ${describeVerdict(verdict)}` : forced ? ' with --force, past unclean verification' : '';
      run.record('approve', { by: approval.by, reason: approval.note }, `gate ${approval.gate} approved${how}`);
      run.gateDecision = 'approved';
      return verdict ? { gate: approval.gate, forced, verdict } : { gate: approval.gate, forced };
    },
    {
      validator: (payload) =>
        admit('approve', parseApproval(payload), (approval) => {
          const verification = status.verification
            ? { clean: status.verification.clean, summary: uncleanReason(status.verification), pass: verdictPassId(status.verification) }
            : null;
          const problems = approvalProblems(approval, status.gate?.name ?? null, verification);
          return problems.length > 0 ? problems : deciderProblems('approve', approval.by, approval.force === true, plan.lifecycle.gates, status.startedBy ?? null);
        }),
    },
  );
  setHandler(
    rejectUpdate,
    (payload) => {
      const rejection = trusted(parseRejection(payload));
      run.record('reject', { by: rejection.by, reason: rejection.reason }, `gate ${rejection.gate} rejected`);
      run.abortRequest = { by: rejection.by, reason: `rejected at gate ${rejection.gate}: ${rejection.reason}` };
    },
    {
      validator: (payload) =>
        admit('reject', parseRejection(payload), (rejection) => {
          const afterSwap = refusalAfterSwap(status.phase, status.capture);
          if (afterSwap) return [afterSwap];
          const problems = approvalProblems({ gate: rejection.gate, by: rejection.by }, status.gate?.name ?? null, null);
          return problems.length > 0 ? problems : deciderProblems('reject', rejection.by, false, plan.lifecycle.gates, status.startedBy ?? null);
        }),
    },
  );
  setHandler(
    abortUpdate,
    async (payload) => {
      const request = trusted(parseAbortRequest(payload));
      run.record('abort', { by: request.by, reason: request.reason }, `abort requested in phase ${status.phase}`);
      run.abortRequest = request;
      // Answer once the flags are back where they are safe: the caller learns the outcome.
      await condition(() => status.phase === 'aborted' || status.phase === 'failed');
      // A migration that failed first (its inspection, claim or capture) was not aborted: its
      // caller must not hear that it was. Guarded, so older histories replay as they answered.
      if (status.phase === 'failed' && patched('abort-answers-failure')) {
        throw ApplicationFailure.nonRetryable(
          'the migration failed before the abort was served, so it was not aborted: nothing was rolled back (`ferry status` says why it failed)',
          'MigrationFailed',
        );
      }
      return status.abort;
    },
    {
      validator: (payload) =>
        admit('abort', parseAbortRequest(payload), () => {
          const afterSwap = refusalAfterSwap(status.phase, status.capture);
          return afterSwap ? [afterSwap] : [];
        }),
    },
  );
  setHandler(
    verifyUpdate,
    async (payload) => {
      const request = trusted(parseVerifyRequest(payload));
      run.verifyRequest = request;
      // Taken up at a gate. Should the migration abort, or pass its last gate, first, the caller
      // learns so rather than waiting for ever.
      await condition(() => run.verifyRequest !== request || lapseOf('verify', run.servingState()) !== null);
      if (run.verifyRequest === request) {
        run.verifyRequest = null;
        const why = lapseOf('verify', run.servingState());
        throw ApplicationFailure.nonRetryable(`${why}; the verification did not run`, 'VerificationNotRun');
      }
      await condition(() => !run.verifying);
      // An abort that stopped it leaves an earlier verdict (or a pass of this one) in the status:
      // the caller must not take either for what it asked.
      if (!status.verification || run.stoppedVerification === request) {
        throw ApplicationFailure.nonRetryable('the verification was stopped by an abort before it finished: it gave no verdict', 'VerificationNotRun');
      }
      return status.verification;
    },
    {
      validator: (payload) =>
        admit('verify', parseVerifyRequest(payload), () =>
          status.capture?.swap || status.phase === 'swapping'
            ? ['the tables were swapped: the new table now has the old name and the old one is aside, so there is nothing left to compare']
            : [],
        ),
    },
  );
  setHandler(
    mismatchesUpdate,
    (payload) => {
      const request = trusted(parseMismatchesRequest(payload));
      return mismatchReport({ migrationId: workflowId, plan, showValues: request.showValues === true, limit: request.limit });
    },
    { validator: (payload) => admit('mismatches', parseMismatchesRequest(payload)) },
  );
  setHandler(shardProgressSignal, (payload) => {
    const parsed = parseShardProgress(payload);
    if (!parsed.ok) return run.refuse('shardProgress', parsed.problems);
    const progress = parsed.value;
    const shard = status.shards[progress.index];
    if (!shard) return;
    const newFailures = progress.rowsFailed - shard.rowsFailed;
    Object.assign(shard, {
      cursor: progress.cursor,
      rowsRead: progress.rowsRead,
      rowsWritten: progress.rowsWritten,
      rowsFailed: progress.rowsFailed,
      batchSize: progress.batchSize,
      throttleReason: progress.throttleReason,
    });
    const at = Date.now();
    if (at - run.lastSampleAt >= SAMPLE_EVERY_MS) {
      run.lastSampleAt = at;
      const active = run.running();
      const batchSize = active.length ? Math.round(active.reduce((sum, s) => sum + s.batchSize, 0) / active.length) : progress.batchSize;
      status.samples = addSample(status.samples, { at: run.now(), rowsRead: status.shards.reduce((sum, s) => sum + s.rowsRead, 0), batchSize });
    }
    if (progress.done) shard.state = 'done';
    if (progress.error === CANCELLED) shard.state = 'cancelled';
    else if (progress.error) Object.assign(shard, { state: 'failed', error: progress.error });
    recountRows(status);
    if (progress.blocked) void run.pause({ by: 'ferry' }, 'auto-pause', `shard ${progress.index}: ${progress.blocked}`);
    if (newFailures > 0) run.countFailures(newFailures, progress.failures);
  });
}

/** The trusted value of a payload its validator has admitted. */
function trusted<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.problems.join('; '), 'InvalidRequest');
  return parsed.value;
}
