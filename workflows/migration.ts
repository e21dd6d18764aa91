/**
 * The migration workflow runs one migration through its lifecycle: inspect; dual writes on;
 * backfill through shard children under a live throttle; then, behind gates a person approves,
 * reads to the new table, old writes off, cleanup. It decides; activities do. A run without
 * `execute` stops after inspection: the dry run. An abort at any point rolls the flags back to
 * the last state that loses no write.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { FlagAcks } from '../activities/state/flags';
import { deciderProblems } from '../lib/approvals';
import { rootMessage } from '../lib/errors';
import { approvalProblems, flagsAfterAbort, gateDescriptions, lifecycleSteps, type FlagSettings, type GateName } from '../lib/lifecycle';
import {
  parseAbortRequest,
  parseApproval,
  parseMigrationInput,
  parseMismatchesRequest,
  parseOperatorNote,
  parseRejection,
  parseRequestNote,
  parseShardProgress,
  parseThrottleChange,
  parseVerifyRequest,
  type AbortRequest,
  type Parsed,
} from '../lib/messages-input';
import type { Plan } from '../lib/plan';
import { refusalOf, type RequestKind } from '../lib/requests';
import { phaseKey } from '../lib/search-attributes';
import { addSample, newMigrationStatus, recountRows, type MigrationEvent, type MigrationStatus, type Phase, type ShardStatus, type VerificationSummary } from '../lib/status';
import { applyThrottleChange, shardRate } from '../lib/throttle';
import { differenceCounts, uncleanReason, type VerificationKind } from '../lib/verification-runs';
import {
  abortUpdate,
  approveUpdate,
  mismatchesUpdate,
  pauseSignal,
  rejectUpdate,
  resumeSignal,
  retryFailuresUpdate,
  setThrottleUpdate,
  shardPauseSignal,
  shardProgressSignal,
  shardThrottleSignal,
  statusQuery,
  verifyUpdate,
  type OperatorNote,
  type VerifyRequest,
} from './messages';
import { auditWriter } from './audit-writer';
import { CANCELLED, shardWorkflow } from './shard';
import { noTotals, verifyShardWorkflow, type VerifyTotals } from './verify-shard';

export interface MigrationInput {
  plan: Plan;
  /** Without it the run is a dry run: inspect, report, write nothing. */
  execute: boolean;
  /** Show real values in the dry run's transform sample (they then live in the workflow history). */
  showSampleValues?: boolean;
  /** Migrate into a target that already holds a finished migration. */
  rerun?: boolean;
  /** `ferry start --no-apps`: as lifecycle.noApps, given on the command line. */
  noApps?: boolean;
  /** The identity that started it (the CLI's FERRY_OPERATOR or user@host), for the record and four-eyes gates. */
  startedBy?: string;
  /** Set by the migration itself when it continues-as-new. */
  carried?: MigrationStatus;
}

/**
 * Every activity heartbeats every 2 s from a timer, whatever it is doing: silence for this long
 * means its worker is gone, and another worker takes it over.
 */
const HEARTBEAT_TIMEOUT = '10 seconds';

const { inspect, planShards, prepareTarget, claimTarget, gateFigures } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection', 'TargetBusy', 'TargetFinished'] },
});

/**
 * What the lifecycle must finish once begun: flag changes (a rollback above all), the wait for
 * applications to follow them, and the record of how the migration ended. They retry until the
 * database answers again, however long an outage lasts; `ferry status` shows each retry and
 * its reason (the pending activity's last failure). Only a worker that lacks the connection
 * cannot heal by waiting.
 */
const UNTIL_DONE = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['MissingConnection'] };

const { setFlags, releaseTarget } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: UNTIL_DONE,
});

/** Releasing the target of a migration that failed: best effort, it must not hold up the failure. */
const { releaseTarget: releaseFailedTarget } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const { recheckOpenMismatches, beginVerificationRun, finishVerificationRun } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const { verifyCoverage } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['MissingConnection'] },
});

const { awaitFlagAcks } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: UNTIL_DONE,
});

const { mismatchReport } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const { repairMismatches } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const { retryFailedRecords } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

const RECENT_FAILURES_KEPT = 50;
/** Signals refused for a bad payload are recorded up to this many; more only reach the worker's log. */
const REFUSALS_RECORDED = 20;
/** Progress samples for charts, at most this often. */
const SAMPLE_EVERY_MS = 2000;
/** How long an abort waits for running shards to stop copying. */
const SHARD_STOP_TIMEOUT = '2 minutes';
/** Under this many rows read, a failure rate says little; only the count limit applies. */
const MIN_ROWS_FOR_FAILURE_RATE = 1000;

export async function migrationWorkflow(input: MigrationInput): Promise<MigrationStatus> {
  // Both guarded, so that histories recorded before them replay as they ran.
  const checksInput = patched('validate-input');
  const auditing = patched('audit-decisions');
  // Anyone can start this workflow through Temporal: its input gets the CLI's checks (the same
  // plan schema, the same messages) before anything is touched. A continued run carries an
  // input its first run checked.
  const plan = checksInput && !input?.carried ? checkedInput(input).plan : input.plan;
  const { workflowId } = workflowInfo();
  const now = () => new Date().toISOString();
  const status: MigrationStatus = input.carried ?? {
    ...newMigrationStatus({
      migrationId: workflowId,
      planName: plan.name,
      execute: input.execute,
      startedAt: now(),
      throttle: { rowsPerSecond: plan.throttle.rowsPerSecond, batchSize: plan.throttle.batchSize, concurrency: plan.throttle.concurrency },
    }),
    startedBy: input.startedBy ?? null,
  };
  const steps = lifecycleSteps(plan);
  let abortRequested: AbortRequest | null = null;
  let gateDecision: 'approved' | null = null;
  /** An on-demand verification waiting to run, and whether one is running. */
  let verifyRequest: VerifyRequest | null = null;
  let lastSampleAt = 0;
  let verifying = false;
  /** Past the last step: the migration records its end and releases its target. */
  let releasing = false;

  // Every recorded event also goes to ferry.audit on the target, once the target is this
  // migration's (never in a dry run, which writes nothing).
  const audit = auditWriter(auditing, plan, workflowId, status);

  const record = (kind: MigrationEvent['kind'], note: OperatorNote, detail: string) => {
    status.events.push({ at: now(), kind, by: note.by ?? null, detail: note.reason ? `${detail} (${note.reason})` : detail });
    void audit.write();
  };
  /** A signal whose payload could not be read changes nothing; it is recorded, without its values. */
  const refuse = (signal: string, problems: string[]) => {
    const detail = `signal ${signal} ignored: ${problems.join('; ')}`.slice(0, 300);
    log.warn(`migration ${workflowId}: ${detail}`);
    if (status.events.filter((e) => e.kind === 'refused').length < REFUSALS_RECORDED) record('refused', {}, detail);
  };
  const backfillDone = () => status.phases.some((p) => p.name === 'backfill' && p.endedAt !== null);
  const gateAhead = () =>
    status.gate !== null || steps.some((step) => step.startsWith('gate:') && !status.phases.some((p) => p.name === step && p.endedAt !== null));
  /** Refuses an update (a throw in its validator writes nothing) that cannot be served now or does not read. */
  const admit = <T>(kind: RequestKind, parsed: Parsed<T>, problemsOf: (value: T) => string[] = () => []) => {
    const refusal = refusalOf(kind, {
      phase: status.phase,
      execute: status.execute,
      releasing,
      abortRequested: abortRequested !== null,
      backfillDone: backfillDone(),
      verificationBusy: verifying || verifyRequest !== null,
      gateWaiting: status.gate?.name ?? null,
      gateAhead: gateAhead(),
    });
    const problems = parsed.ok ? (refusal ? [refusal] : problemsOf(parsed.value)) : [...parsed.problems, ...(refusal ? [refusal] : [])];
    if (problems.length > 0) throw new Error(problems.join('; '));
  };
  // The phase is a search attribute when the server knows it (the migration was started with it).
  const phaseSearchable = workflowInfo().typedSearchAttributes.get(phaseKey) !== undefined;
  const setPhase = (phase: Phase) => {
    status.phase = phase;
    if (phaseSearchable) upsertSearchAttributes([{ key: phaseKey, value: phase }]);
  };
  const enter = (phase: Phase, step: string) => {
    const open = status.phases.at(-1);
    if (open && open.endedAt === null) open.endedAt = now();
    setPhase(phase);
    status.phases.push({ name: step, startedAt: now(), endedAt: null });
  };
  const finish = (phase: Phase): MigrationStatus => {
    const open = status.phases.at(-1);
    if (open && open.endedAt === null) open.endedAt = now();
    setPhase(phase);
    status.finishedAt = now();
    status.gate = null;
    return status;
  };

  const running = () => status.shards.filter((s) => s.state === 'running');
  const shardThrottle = () => ({
    rowsPerSecond: shardRate(status.throttle, Math.max(1, Math.min(running().length, status.throttle.concurrency))),
    batchSize: status.throttle.batchSize,
  });
  /** Tells running shards of a change; a shard that just ended no longer listens, which is fine. */
  const tellShards = async (signal: 'throttle' | 'pause') => {
    await Promise.all(
      running().map((shard) => {
        const handle = getExternalWorkflowHandle(shardWorkflowId(workflowId, shard.index));
        const sent =
          signal === 'throttle' ? handle.signal(shardThrottleSignal, shardThrottle()) : handle.signal(shardPauseSignal, status.paused !== null);
        return sent.catch(() => {});
      }),
    );
  };
  const pause = async (note: OperatorNote, kind: 'pause' | 'auto-pause', reason: string) => {
    if (status.paused) return;
    status.paused = { since: now(), by: note.by ?? null, reason };
    record(kind, note, reason);
    await tellShards('pause');
  };
  /** Whether dual writes may go ahead with no application following the flags, and on whose word. */
  const noAppsAllowedBy = input.noApps ? '--no-apps' : plan.lifecycle.noApps ? 'lifecycle.noApps' : null;
  const withoutApps =
    'writes the application makes to the old table only are missing from the new one until verification repairs them';
  /**
   * Sets the flags and waits for the applications to follow. With `needsApps` (dual writes on),
   * no application following is said in the same record, with what allows going ahead.
   */
  const changeFlags = async (flags: FlagSettings, why: string, needsApps = false) => {
    status.flags = await setFlags({ plan, flags, by: `ferry ${workflowId}` });
    record('flags', { by: 'ferry' }, `${why}: write old ${flags.writeOld ? 'on' : 'off'}, write new ${flags.writeNew ? 'on' : 'off'}, reads from ${flags.readFrom}, compare ${flags.comparePercent}% (version ${status.flags.version})`);
    const acks = await awaitFlagAcks({ plan, version: status.flags.version, soakSeconds: plan.lifecycle.soakSeconds });
    const allowed =
      needsApps && acks.confirmed.length === 0 && noAppsAllowedBy ? `; going ahead as ${noAppsAllowedBy} allows: ${withoutApps}` : '';
    record(
      'apps',
      { by: 'ferry' },
      (acks.lagging.length
        ? `${acks.confirmed.length} application processes follow version ${status.flags.version}; ${acks.lagging.length} had not after ${plan.lifecycle.soakSeconds} s: ${acks.lagging.join(', ')}`
        : `${acks.confirmed.length} application processes follow version ${status.flags.version}`) + allowed,
    );
    return acks;
  };
  /**
   * Dual writes that no application follows, unless allowed, wait paused for a person: `ferry
   * resume` goes ahead (recorded), `ferry abort` rolls the flags back.
   */
  const awaitApplications = async (acks: FlagAcks) => {
    if (acks.confirmed.length > 0 || noAppsAllowedBy) return;
    await pause(
      { by: 'ferry' },
      'auto-pause',
      `no application process follows the flags (version ${status.flags?.version ?? 0}) after ${plan.lifecycle.soakSeconds} s: ${withoutApps}; ` +
        "deploy the application with Ferry's client library, or `ferry resume` to go ahead without it " +
        '(lifecycle.noApps: true in the plan, or start --no-apps, allows it from the start)',
    );
    await condition(() => status.paused === null || abortRequested !== null);
  };

  setHandler(statusQuery, () => status);
  setHandler(
    setThrottleUpdate,
    async (payload) => {
      const change = trusted(parseThrottleChange(payload));
      const before = status.throttle;
      status.throttle = applyThrottleChange(before, change);
      const changes = (['rowsPerSecond', 'batchSize', 'concurrency'] as const)
        .filter((k) => before[k] !== status.throttle[k])
        .map((k) => `${k} ${before[k] ?? 'unlimited'} -> ${status.throttle[k] ?? 'unlimited'}`);
      record('throttle', change, changes.length ? changes.join(', ') : 'no change');
      await tellShards('throttle');
      return status.throttle;
    },
    { validator: (payload) => admit('throttle', parseThrottleChange(payload)) },
  );
  // A pause or resume with no payload (the Web UI's default) is a plain one, by nobody named.
  setHandler(pauseSignal, async (payload) => {
    const parsed = parseOperatorNote(payload);
    if (!parsed.ok) return refuse('pause', parsed.problems);
    await pause(parsed.value, 'pause', parsed.value.reason ?? 'paused by an operator');
  });
  setHandler(resumeSignal, async (payload) => {
    const parsed = parseOperatorNote(payload);
    if (!parsed.ok) return refuse('resume', parsed.problems);
    const note = parsed.value;
    if (!status.paused) return;
    record('resume', note, `resumed after: ${status.paused.reason}`);
    status.paused = null;
    await tellShards('pause');
  });
  setHandler(
    retryFailuresUpdate,
    async (payload) => {
      const note = trusted(parseRequestNote(payload));
      const outcome = await retryFailedRecords({ migrationId: workflowId, plan });
      status.unresolvedFailures = outcome.stillFailing;
      status.failuresFixed += outcome.fixed;
      record('retry', note, `retried ${outcome.retried} failed rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      return outcome;
    },
    { validator: (payload) => admit('retryFailures', parseRequestNote(payload)) },
  );
  setHandler(
    approveUpdate,
    (payload) => {
      const approval = trusted(parseApproval(payload));
      const forced = approval.force === true && status.verification !== null && !status.verification.clean;
      if (forced && status.verification) status.verification.forcedBy = approval.by;
      record('approve', { by: approval.by, reason: approval.note }, `gate ${approval.gate} approved${forced ? ' with --force, past unclean verification' : ''}`);
      gateDecision = 'approved';
      return { gate: approval.gate, forced };
    },
    {
      validator: (payload) =>
        admit('approve', parseApproval(payload), (approval) => {
          const verification = status.verification
            ? { clean: status.verification.clean, summary: uncleanReason(status.verification) }
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
      record('reject', { by: rejection.by, reason: rejection.reason }, `gate ${rejection.gate} rejected`);
      abortRequested = { by: rejection.by, reason: `rejected at gate ${rejection.gate}: ${rejection.reason}` };
    },
    {
      validator: (payload) =>
        admit('reject', parseRejection(payload), (rejection) => {
          const problems = approvalProblems({ gate: rejection.gate, by: rejection.by }, status.gate?.name ?? null, null);
          return problems.length > 0 ? problems : deciderProblems('reject', rejection.by, false, plan.lifecycle.gates, status.startedBy ?? null);
        }),
    },
  );
  setHandler(
    abortUpdate,
    async (payload) => {
      const request = trusted(parseAbortRequest(payload));
      record('abort', { by: request.by, reason: request.reason }, `abort requested in phase ${status.phase}`);
      abortRequested = request;
      // Answer once the flags are back where they are safe: the caller learns the outcome.
      await condition(() => status.phase === 'aborted' || status.phase === 'failed');
      return status.abort;
    },
    { validator: (payload) => admit('abort', parseAbortRequest(payload)) },
  );
  setHandler(
    verifyUpdate,
    async (payload) => {
      const request = trusted(parseVerifyRequest(payload));
      verifyRequest = request;
      // Taken up at a gate. Should the migration abort, or pass its last gate, first, the caller
      // learns so rather than waiting for ever.
      await condition(() => verifyRequest !== request || abortRequested !== null || !gateAhead());
      if (verifyRequest === request) {
        verifyRequest = null;
        const why = abortRequested ? 'an abort came first' : 'the migration passed its last gate first';
        throw ApplicationFailure.nonRetryable(`${why}; the verification did not run`, 'VerificationNotRun');
      }
      await condition(() => !verifying);
      if (!status.verification) throw ApplicationFailure.nonRetryable('the verification was stopped by an abort', 'VerificationNotRun');
      return status.verification;
    },
    { validator: (payload) => admit('verify', parseVerifyRequest(payload)) },
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
    if (!parsed.ok) return refuse('shardProgress', parsed.problems);
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
    if (at - lastSampleAt >= SAMPLE_EVERY_MS) {
      lastSampleAt = at;
      const active = status.shards.filter((s) => s.state === 'running');
      const batchSize = active.length ? Math.round(active.reduce((sum, s) => sum + s.batchSize, 0) / active.length) : progress.batchSize;
      status.samples = addSample(status.samples, { at: now(), rowsRead: status.shards.reduce((sum, s) => sum + s.rowsRead, 0), batchSize });
    }
    if (progress.done) shard.state = 'done';
    if (progress.error === CANCELLED) shard.state = 'cancelled';
    else if (progress.error) Object.assign(shard, { state: 'failed', error: progress.error });
    recountRows(status);
    if (progress.blocked) void pause({ by: 'ferry' }, 'auto-pause', `shard ${progress.index}: ${progress.blocked}`);
    if (newFailures > 0) {
      status.rowsFailed += newFailures;
      status.unresolvedFailures += newFailures;
      status.recentFailures = [...status.recentFailures, ...progress.failures].slice(-RECENT_FAILURES_KEPT);
      const reason = failureLimitReached(plan, status);
      if (reason) void pause({ by: 'ferry' }, 'auto-pause', reason);
    }
  });

  /** Stops everything, puts the flags back where no write is lost, and records why. */
  const abort = async (request: AbortRequest): Promise<MigrationStatus> => {
    const phaseReached = status.phase;
    enter('aborting', 'abort');
    const stopping = running();
    await Promise.all(stopping.map((shard) => getExternalWorkflowHandle(shardWorkflowId(workflowId, shard.index)).cancel().catch(() => {})));
    // Each shard reports once its copier has stopped: no row moves after an abort answers.
    await condition(() => stopping.every((shard) => shard.state !== 'running'), SHARD_STOP_TIMEOUT);
    const rollback = flagsAfterAbort(status.flags);
    if (rollback.flags) {
      status.flags = await setFlags({ plan, flags: rollback.flags, by: `abort by ${request.by}` });
      record('flags', { by: 'ferry' }, `rolled back on abort: ${rollback.note} (version ${status.flags.version})`);
    }
    status.abort = { at: now(), by: request.by, reason: request.reason, phaseReached, flagsNote: rollback.note };
    await releaseTarget({ plan, migrationId: workflowId, state: 'aborted' });
    finish('aborted');
    await audit.settle();
    await condition(allHandlersFinished);
    return status;
  };

  /** An abort, a gate decision or a verification asked for by an operator and not yet taken up. */
  const somethingAsked = () => abortRequested !== null || gateDecision !== null || verifyRequest !== null;
  /**
   * Waits until every handler has finished, so none is lost with this run; false when one asked
   * for something this run must do first (an abort, a gate decision, a verification), whose
   * handler may itself wait for it.
   */
  const readyToContinueAsNew = async (): Promise<boolean> => {
    await condition(() => allHandlersFinished() || somethingAsked());
    return !somethingAsked();
  };
  /** The next run of this migration, carrying everything it has done. */
  const continueWithStatus = () => continueAsNew<typeof migrationWorkflow>({ ...input, carried: status });

  const fail = async (error: ApplicationFailure): Promise<never> => {
    finish('failed');
    await releaseFailedTarget({ plan, migrationId: workflowId, state: 'failed' }).catch(() => {});
    await audit.settle();
    throw error;
  };

  if (!input.carried) {
    status.inspection = await inspect({ plan, showSampleValues: input.showSampleValues ?? false });
    if (!input.execute) return finish('dry-run');
    if (status.inspection.problems.length > 0) {
      finish('failed');
      throw ApplicationFailure.nonRetryable(
        `migration cannot start:\n${status.inspection.problems.map((p) => `  - ${p}`).join('\n')}`,
        'InspectionFailed',
        status.inspection.problems,
      );
    }
    await prepareTarget({ plan });
    try {
      await claimTarget({ plan, migrationId: workflowId, rerun: input.rerun ?? false });
    } catch (error) {
      finish('failed');
      throw error;
    }
    audit.open();
  }

  if (input.carried && status.execute) audit.open();
  // A continued run resumes where the last one stopped: steps with an ended record are done.
  const done = new Set(status.phases.filter((p) => p.endedAt !== null).map((p) => p.name));
  for (const step of steps) {
    if (done.has(step)) continue;
    if (abortRequested) return abort(abortRequested);

    if (step === 'dual-write') {
      enter('dual-write', step);
      const needsApps = patched('dual-writes-need-apps');
      const acks = await changeFlags({ writeOld: true, writeNew: true, readFrom: 'old', comparePercent: 0 }, 'dual writes on', needsApps);
      if (needsApps) await awaitApplications(acks);
    } else if (step === 'backfill') {
      if (!input.carried) {
        enter('backfilling', step);
        const specs = await planShards({ plan });
        status.shards = specs.map(
          (spec, index): ShardStatus => ({
            index,
            range: spec.range,
            partitionValue: spec.partitionValue,
            state: 'pending',
            cursor: null,
            rowsRead: 0,
            rowsWritten: 0,
            rowsFailed: 0,
            batchSize: status.throttle.batchSize,
            throttleReason: null,
            error: null,
          }),
        );
      }
      const outcome = await backfill();
      if (outcome === 'abort') return abort(abortRequested!);
      if (outcome === 'continue-as-new') {
        if (await readyToContinueAsNew()) return continueWithStatus();
        // During a backfill only an abort can be asked for: no gate waits, and verify is refused.
        return abort(abortRequested!);
      }
      const failedShard = status.shards.find((s) => s.state === 'failed');
      if (failedShard) return fail(ApplicationFailure.nonRetryable(`shard ${failedShard.index} failed: ${failedShard.error}`, 'ShardFailed'));
    } else if (step === 'verify') {
      enter('verifying', step);
      await verification(null, { by: 'ferry' }, 'lifecycle');
      if (abortRequested) return abort(abortRequested);
    } else if (step.startsWith('gate:')) {
      const decision = await waitAtGate(step.slice('gate:'.length) as GateName);
      if (decision === 'continue-as-new') return continueWithStatus();
      if (decision !== 'approved') return abort(abortRequested!);
      if (step === 'gate:cleanup') enter('cleanup', 'cleanup');
    } else if (step === 'reads-to-new') {
      enter('reads-on-new', step);
      await changeFlags(
        { writeOld: true, writeNew: true, readFrom: 'new', comparePercent: plan.lifecycle.compareReadsPercent },
        'reads moved to the new table',
      );
    } else if (step === 'old-writes-off') {
      enter('old-writes-off', step);
      await changeFlags(
        { writeOld: false, writeNew: true, readFrom: 'new', comparePercent: 0 },
        'writes to the old table off',
      );
    }
  }
  if (abortRequested) return abort(abortRequested);
  releasing = true;
  await releaseTarget({ plan, migrationId: workflowId, state: 'completed' });
  finish('completed');
  await audit.settle();
  await condition(allHandlersFinished);
  return status;

  /** The sliding window of shards; returns when the backfill is done, or why it stopped early. */
  async function backfill(): Promise<'done' | 'abort' | 'continue-as-new'> {
    // At most `concurrency` shards at once, the next starting as one ends. Shards report by
    // signal, so the window survives this workflow's own continue-as-new.
    for (;;) {
      await condition(
        () =>
          abortRequested !== null ||
          workflowInfo().continueAsNewSuggested ||
          status.shards.some((s) => s.state === 'failed') ||
          status.shards.every((s) => s.state === 'done') ||
          (!status.paused && running().length < status.throttle.concurrency && status.shards.some((s) => s.state === 'pending')),
      );
      if (abortRequested) return 'abort';
      if (status.shards.some((s) => s.state === 'failed')) return 'done';
      if (status.shards.every((s) => s.state === 'done')) break;
      if (workflowInfo().continueAsNewSuggested) return 'continue-as-new';
      while (!status.paused && running().length < status.throttle.concurrency) {
        const shard = status.shards.find((s) => s.state === 'pending');
        if (!shard) break;
        shard.state = 'running';
        await startChild(shardWorkflow, {
          workflowId: shardWorkflowId(workflowId, shard.index),
          // Shards outlive a continue-as-new of this workflow; an abort cancels them explicitly.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          args: [
            {
              migrationWorkflowId: workflowId,
              plan,
              index: shard.index,
              spec: { range: shard.range, partitionValue: shard.partitionValue },
              throttle: shardThrottle(),
              paused: false,
              cursor: shard.cursor,
              rowsRead: shard.rowsRead,
              rowsWritten: shard.rowsWritten,
              rowsFailed: shard.rowsFailed,
              batchSize: shard.batchSize,
            },
          ],
        });
        // Rates are shares of the whole: a new shard slows the others.
        await tellShards('throttle');
      }
    }

    // Nothing is left behind silently: failed rows wait for a person to fix and retry them, or
    // to resume and finish without them.
    if (status.unresolvedFailures > 0) {
      await pause(
        { by: 'ferry' },
        'auto-pause',
        `${status.unresolvedFailures} rows failed; fix the cause and run \`ferry retry\`, or \`ferry resume\` to finish without them`,
      );
      await condition(() => status.paused === null || status.unresolvedFailures === 0 || abortRequested !== null);
      if (abortRequested) return 'abort';
      if (status.paused) {
        record('resume', { by: 'ferry' }, 'every failed row was copied by a retry');
        status.paused = null;
      }
    }
    return 'done';
  }

  /**
   * Compares every shard's rows (or a sample), repairs what differs from the source, and
   * compares again, up to the plan's pass limit. The last comparison decides whether the
   * migration is clean; a sampled check only ever marks it not clean.
   */
  async function verification(samplePercent: number | null, note: OperatorNote, kind: VerificationKind): Promise<void> {
    // Runs recorded, passes counted within a run, open mismatches carried: added while
    // migrations may be verifying, so guarded.
    if (patched('verification-runs')) return recordedVerification(samplePercent, note, kind);
    verifying = true;
    verifyRequest = null;
    const summary = status.verification ?? { clean: false, passes: 0, rowsChecked: 0, missing: 0, extra: 0, value: 0, repaired: 0, inFlight: 0, forcedBy: null };
    const wasClean = status.verification?.clean ?? false;
    try {
      for (let attempt = 1; attempt <= plan.verify.maxPasses; attempt += 1) {
        const pass = summary.passes + 1;
        const outcome = await verifyAllShards(pass, samplePercent);
        if (outcome === null) return; // aborted
        const { totals, problem } = outcome;
        if (problem) {
          summary.passes = pass;
          summary.clean = false;
          status.verification = summary;
          record('verify', note, `pass ${pass} could not finish: ${problem}`);
          return;
        }
        Object.assign(summary, { passes: pass, rowsChecked: totals.rowsChecked, missing: totals.missing, extra: totals.extra, value: totals.value });
        summary.inFlight += totals.inFlight;
        const found = totals.missing + totals.extra + totals.value;
        summary.clean = samplePercent === null ? found <= plan.verify.mismatchBudget : wasClean && found === 0;
        status.verification = summary;
        record(
          'verify',
          note,
          `pass ${pass}${samplePercent === null ? '' : ` (sample ${samplePercent}%)`}: ${totals.rowsChecked} rows checked, ` +
            `${totals.missing} missing, ${totals.extra} extra, ${totals.value} differing, ${totals.inFlight} in flight`,
        );
        if (found <= plan.verify.mismatchBudget || attempt === plan.verify.maxPasses) break;
        const repair = await repairMismatches({ migrationId: workflowId, plan, pass });
        summary.repaired += repair.repaired + repair.deleted;
        record('verify', note, `pass ${pass} repaired: ${repair.repaired} rows written, ${repair.deleted} deleted, ${repair.unresolved} unresolved`);
      }
    } finally {
      verifying = false;
    }
  }

  /**
   * A verification run: numbered and recorded in ferry.verification_runs, its passes counted
   * from 1, its figures this run's own. Each pass also compares again what earlier passes left
   * unresolved, so a sample neither forgets nor clears them. A sampled run only ever marks the
   * migration not clean.
   */
  async function recordedVerification(samplePercent: number | null, note: OperatorNote, kind: VerificationKind): Promise<void> {
    verifying = true;
    verifyRequest = null;
    const previous = status.verification;
    const wasClean = previous?.clean ?? false;
    const afterPass = previous ? (previous.lastPassId ?? previous.passes) : 0;
    const by = note.by ?? null;
    try {
      const begun = await beginVerificationRun({
        plan,
        migrationId: workflowId,
        // The same id may be used again by a later migration; its first run's id is its own.
        requestId: `${workflowId}/${workflowInfo().firstExecutionRunId}@${afterPass + 1}`,
        kind,
        by,
        samplePercent,
        repair: true,
        maxPasses: plan.verify.maxPasses,
        afterPass,
      });
      const summary: VerificationSummary = {
        clean: false,
        passes: 0,
        rowsChecked: 0,
        missing: 0,
        extra: 0,
        value: 0,
        repaired: 0,
        inFlight: 0,
        forcedBy: previous?.forcedBy ?? null,
        run: begun.run,
        samplePercent,
        lastPassId: afterPass,
        repairedTotal: previous?.repairedTotal ?? previous?.repaired ?? 0,
      };
      const label = (pass: number) => `${begun.run > 1 ? `run ${begun.run} ` : ''}pass ${pass}${samplePercent === null ? '' : ` (sample ${samplePercent}%)`}`;
      let problem: string | null = null;
      for (let pass = 1; pass <= plan.verify.maxPasses; pass += 1) {
        const passId = begun.firstPass + pass - 1;
        const outcome = await verifyAllShards(passId, samplePercent);
        if (outcome === null) {
          problem = 'the migration was aborted';
          break;
        }
        summary.passes = pass;
        summary.lastPassId = passId;
        status.verification = summary;
        if (outcome.problem) {
          problem = outcome.problem;
          summary.clean = false;
          record('verify', note, `${label(pass)} could not finish: ${problem}`);
          break;
        }
        const { totals } = outcome;
        const carried = await recheckOpenMismatches({ migrationId: workflowId, plan, pass: passId });
        Object.assign(summary, {
          rowsChecked: totals.rowsChecked,
          missing: totals.missing + carried.missing,
          extra: totals.extra + carried.extra,
          value: totals.value + carried.value,
        });
        summary.inFlight += totals.inFlight;
        const found = summary.missing + summary.extra + summary.value;
        const carriedCount = carried.missing + carried.extra + carried.value;
        summary.clean = samplePercent === null ? found <= plan.verify.mismatchBudget : wasClean && found === 0;
        record(
          'verify',
          note,
          `${label(pass)}: ${totals.rowsChecked} rows checked, ${differenceCounts(summary)}, ${totals.inFlight} in flight` +
            (carriedCount ? ` (${carriedCount} of them left unresolved by an earlier pass)` : ''),
        );
        if (found <= plan.verify.mismatchBudget || pass === plan.verify.maxPasses) break;
        const repair = await repairMismatches({ migrationId: workflowId, plan, pass: passId });
        summary.repaired += repair.repaired + repair.deleted;
        summary.repairedTotal! += repair.repaired + repair.deleted;
        record('verify', note, `${label(pass)} repaired: ${repair.repaired} rows written, ${repair.deleted} deleted, ${repair.unresolved} unresolved`);
      }
      if (!summary.clean && samplePercent !== null && summary.missing + summary.extra + summary.value === 0 && !problem) {
        record('verify', note, `${label(summary.passes)}: ${uncleanReason(summary)}`);
      }
      await finishVerificationRun({
        plan,
        migrationId: workflowId,
        outcome: { run: begun.run, passes: summary.passes, rowsChecked: summary.rowsChecked, missing: summary.missing, extra: summary.extra, value: summary.value, repaired: summary.repaired, clean: summary.clean, problem },
      });
    } finally {
      verifying = false;
    }
  }

  /** One verification pass over every shard, `concurrency` at a time; null when aborted. */
  async function verifyAllShards(pass: number, samplePercent: number | null): Promise<{ totals: VerifyTotals; problem: string | null } | null> {
    let problem: string | null = null;
    const queue = [...status.shards];
    const totals: VerifyTotals = { ...noTotals };
    const label = samplePercent === null ? `verify-${pass}` : `verify-${pass}-sample`;
    const lanes = Array.from({ length: Math.max(1, Math.min(status.throttle.concurrency, queue.length)) }, async () => {
      for (let shard = queue.shift(); shard && !abortRequested; shard = queue.shift()) {
        try {
          const result = await executeChild(verifyShardWorkflow, {
            workflowId: `${workflowId}/${label}/shard-${shard.index}`,
            args: [{ migrationId: workflowId, plan, spec: { range: shard.range, partitionValue: shard.partitionValue }, pass, samplePercent, cursor: null, totals: noTotals }],
          });
          for (const key of Object.keys(totals) as (keyof VerifyTotals)[]) totals[key] += result[key];
        } catch (error) {
          problem ??= rootMessage(error);
        }
      }
    });
    await Promise.race([Promise.all(lanes), condition(() => abortRequested !== null)]);
    if (abortRequested) return null;
    // Every source row in scope accounted for, every target row owned: what no shard could see.
    // Added while migrations may be verifying: guarded, so their histories still replay.
    if (problem === null && patched('verify-coverage')) {
      const checked = verifyCoverage({
        migrationId: workflowId,
        plan,
        shards: status.shards.map((s) => ({ range: s.range, partitionValue: s.partitionValue })),
        pass,
        chunkSize: plan.verify.chunkSize,
        inFlightDelayMs: plan.verify.inFlightDelaySeconds * 1000,
        ...(samplePercent === null ? {} : { samplePercent }),
      });
      checked.catch(() => {}); // an abort may leave it behind
      try {
        const coverage = await Promise.race([checked, condition(() => abortRequested !== null).then(() => null)]);
        if (coverage === null) return null;
        totals.rowsChecked += coverage.unreachedRows;
        totals.missing += coverage.mismatches.missing;
        totals.extra += coverage.mismatches.extra;
        totals.value += coverage.mismatches.value;
        problem = coverage.problem;
      } catch (error) {
        problem = rootMessage(error);
      }
    }
    return { totals, problem };
  }

  /**
   * Waits for a person: approved, or (through reject, abort or expiry) an abort request. A gate
   * may wait for months, so it continues-as-new when its history grows large (its reminders and
   * figures add to it); the next run finds the gate open and goes on waiting where this one was.
   */
  async function waitAtGate(name: GateName): Promise<'approved' | 'abort' | 'continue-as-new'> {
    const expirySeconds = plan.lifecycle.gates.expirySeconds;
    // Every gate clears status.gate when it ends: one still set was carried by continue-as-new.
    const carriedGate = status.gate?.name === name ? status.gate : null;
    const since = carriedGate ? Date.parse(carriedGate.waitingSince) : Date.now();
    if (!carriedGate) {
      enter('awaiting-approval', `gate:${name}`);
      gateDecision = null;
      status.gate = {
        name,
        description: gateDescriptions[name],
        waitingSince: now(),
        expiresAt: expirySeconds ? new Date(since + expirySeconds * 1000).toISOString() : null,
        reminders: 0,
        approveCommand: `ferry approve ${workflowId} --gate ${name} --note "<what you checked>"`,
        figures: null,
      };
    }
    const gate = status.gate!;
    // What the approver should look at, refreshed while the gate waits. Added while migrations may
    // be waiting at gates: guarded, so their histories still replay.
    const withFigures = patched('gate-figures');
    const figuresMs = withFigures ? plan.lifecycle.gates.figuresEverySeconds * 1000 : Infinity;
    const refreshFigures = async () => {
      if (withFigures) gate.figures = await gateFigures({ plan }).catch(() => gate.figures);
    };
    await refreshFigures();
    const reminderMs = plan.lifecycle.gates.reminderSeconds * 1000;
    let nextReminder = since + reminderMs * (gate.reminders + 1);
    let nextFigures = carriedGate ? Date.now() + figuresMs : since + figuresMs;
    for (;;) {
      const untilExpiry = expirySeconds ? since + expirySeconds * 1000 - Date.now() : Infinity;
      const decided = await condition(
        somethingAsked,
        Math.max(1, Math.min(nextReminder - Date.now(), nextFigures - Date.now(), untilExpiry)),
      );
      if (verifyRequest && !gateDecision && !abortRequested) {
        const request: VerifyRequest = verifyRequest;
        await verification(request.samplePercent ?? null, { by: request.by }, 'on-demand');
        continue;
      }
      if (decided) break;
      // Asked only when the server suggests it, so histories recorded before this replay as they ran.
      if (workflowInfo().continueAsNewSuggested && patched('gate-continue-as-new')) {
        if (await readyToContinueAsNew()) return 'continue-as-new';
        continue; // a decision or a verification came in meanwhile: the loop takes it up
      }
      if (expirySeconds && Date.now() >= since + expirySeconds * 1000) {
        record('gate-expired', { by: 'ferry' }, `gate ${name} waited ${expirySeconds} s without a decision`);
        abortRequested = { by: 'ferry', reason: `gate ${name} expired after ${expirySeconds} s` };
        break;
      }
      if (Date.now() >= nextFigures) {
        await refreshFigures();
        nextFigures = Date.now() + figuresMs;
      }
      if (Date.now() < nextReminder) continue;
      nextReminder += reminderMs;
      gate.reminders += 1;
      // The worker serves the gate's figures as metrics (workers/gate-metrics.ts).
      log.warn(`migration ${workflowId} waits at gate ${name} since ${gate.waitingSince}: ${gate.approveCommand}`);
    }
    status.gate = null;
    return gateDecision === 'approved' && !abortRequested ? 'approved' : 'abort';
  }
}


/** The input, checked; otherwise the run fails at once, before it touches anything, with the CLI's messages. */
function checkedInput(input: unknown): MigrationInput {
  const parsed = parseMigrationInput(input);
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.problems.join('\n'), 'InvalidInput', parsed.problems);
  return { ...(input as MigrationInput), ...parsed.value };
}

/** The trusted value of a payload its validator has admitted. */
function trusted<T>(parsed: Parsed<T>): T {
  if (!parsed.ok) throw ApplicationFailure.nonRetryable(parsed.problems.join('; '), 'InvalidRequest');
  return parsed.value;
}

export function shardWorkflowId(migrationId: string, index: number): string {
  return `${migrationId}/shard-${index}`;
}

/** The reason to pause for a person, once failed rows pass the plan's limits. */
function failureLimitReached(plan: Plan, status: MigrationStatus): string | null {
  if (status.paused) return null;
  const { maxCount, maxRate } = plan.failures;
  if (status.unresolvedFailures > maxCount) {
    return `${status.unresolvedFailures} rows failed, over failures.maxCount (${maxCount}); see \`ferry failures\``;
  }
  if (status.rowsRead >= MIN_ROWS_FOR_FAILURE_RATE && status.rowsFailed / status.rowsRead > maxRate) {
    return `${((100 * status.rowsFailed) / status.rowsRead).toFixed(2)}% of rows failed, over failures.maxRate (${maxRate * 100}%); see \`ferry failures\``;
  }
  return null;
}
