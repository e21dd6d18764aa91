/**
 * MigrationRun is the migrator's state: the status operators see, the requests taken and not yet
 * served (abort, gate decision, verification), and the few rules every part of the run shares
 * (recording an event, entering a phase, telling the shards). Every part of the migration
 * workflow reads and changes the run through this one object, and nothing else is shared.
 */
import { getExternalWorkflowHandle, log, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { capturesLogically, capturesWithTrigger } from '../../lib/capture';
import { shardWorkflowId } from '../../lib/ids';
import { lifecycleSteps, type Step } from '../../lib/lifecycle';
import type { ShardSpec } from '../../lib/key-range';
import type { AbortRequest } from '../../lib/messages-input';
import type { Plan } from '../../lib/plan';
import type { ServingState } from '../../lib/requests';
import { phaseKey } from '../../lib/search-attributes';
import { newMigrationStatus, type FailedRow, type MigrationEvent, type MigrationStatus, type Phase, type VerifyPassUnderWay } from '../../lib/status';
import { limitsInForce, plannedLimits, shardRate, withLimits, type PlanLimits } from '../../lib/throttle';
import { auditWriter, type AuditWriter } from '../audit-writer';
import { captureRunner, type CaptureRunner } from './capture';
import type { MigrationInput } from './input';
import { shardLimitsSignal, shardPauseSignal, shardThrottleSignal, type OperatorNote, type ShardThrottle, type VerifyRequest } from '../messages';

/** Shards planned ahead of the backfill: their specs, or the planning's failure. */
export type ShardPlanning = Promise<ShardSpec[]>;

/** Signals refused for a bad payload are recorded up to this many; more only reach the worker's log. */
const REFUSALS_RECORDED = 20;
/** Failed rows the status shows; ferry.failed_records keeps them all. */
const RECENT_FAILURES_KEPT = 50;
/** Under this many rows read, a failure rate says little; only the count limit applies. */
const MIN_ROWS_FOR_FAILURE_RATE = 1000;
/** The events the status carries, in characters of JSON; the oldest ones beyond it live in ferry.audit only. */
const EVENTS_CARRIED = 256 * 1024;

export class MigrationRun {
  readonly workflowId: string;
  readonly status: MigrationStatus;
  /** The lifecycle's steps after inspection, as the plan asks for them. */
  readonly steps: Step[];
  /** Every recorded event also goes to ferry.audit on the target, once the target is this migration's. */
  readonly audit: AuditWriter;
  /** Whether dual writes may go ahead with no application following the flags, and on whose word. */
  readonly noAppsAllowedBy: string | null;
  /** The plan captures changes with a trigger. Guarded, and asked only of such plans, so that older histories replay. */
  readonly capturing: boolean;
  /** The trigger and the change apply beside the lifecycle (workflows/migrator/capture.ts). */
  readonly capture: CaptureRunner;

  // The requests taken and not yet served. Handlers set them; the lifecycle takes them up.
  /** An abort (or a rejection, or a gate's expiry) to serve at the next point the lifecycle can stop. */
  abortRequest: AbortRequest | null = null;
  /** The waiting gate was approved. */
  gateDecision: 'approved' | null = null;
  /** An on-demand verification waiting for a gate to run at. */
  verifyRequest: VerifyRequest | null = null;

  /** The shards' plan, when it was started before the backfill (workflows/migrator/backfill.ts). */
  shardPlanning: ShardPlanning | null = null;

  /** A verification runs now. */
  verifying = false;
  /** The verification pass whose shards run now (their workflow ids carry it). */
  passUnderWay: VerifyPassUnderWay | null = null;
  /** The on-demand verification an abort stopped: its caller hears that, not an older verdict. */
  stoppedVerification: VerifyRequest | null = null;
  /** Past the last step: the migration records its end and releases its target. */
  releasing = false;
  /** Handing the status to a fresh history: requests taken now would not be carried, so none is. */
  continuing = false;
  /** When progress was last sampled for charts (workflow time, ms). */
  lastSampleAt = 0;

  /** The phase is a search attribute when the server knows it (the migration was started with it). */
  private readonly phaseSearchable: boolean;

  constructor(
    readonly input: MigrationInput,
    readonly plan: Plan,
    auditing: boolean,
  ) {
    this.workflowId = workflowInfo().workflowId;
    this.status = input.carried ?? {
      ...newMigrationStatus({
        migrationId: this.workflowId,
        planName: plan.name,
        execute: input.execute,
        startedAt: this.now(),
        throttle: { rowsPerSecond: plan.throttle.rowsPerSecond, batchSize: plan.throttle.batchSize, concurrency: plan.throttle.concurrency },
      }),
      startedBy: input.startedBy ?? null,
    };
    this.steps = lifecycleSteps(plan);
    // Never in a dry run, which writes nothing: the lifecycle opens it once the target is claimed.
    this.audit = auditWriter(auditing, plan, this.workflowId, this.status);
    this.phaseSearchable = workflowInfo().typedSearchAttributes.get(phaseKey) !== undefined;
    this.noAppsAllowedBy = input.noApps ? '--no-apps' : plan.lifecycle.noApps ? 'lifecycle.noApps' : null;
    this.capturing = (capturesWithTrigger(plan) && patched('capture-trigger')) || (capturesLogically(plan) && patched('capture-logical'));
    this.capture = captureRunner({
      plan,
      planInForce: () => this.planInForce(),
      migrationId: this.workflowId,
      status: this.status,
      now: () => this.now(),
      backfillDone: () => this.backfillDone(),
      countFailures: (count, failures) => this.countFailures(count, failures),
    });
  }

  now(): string {
    return new Date().toISOString();
  }

  record(kind: MigrationEvent['kind'], note: OperatorNote, detail: string): void {
    // A detail that is the note's reason already (a pause's) does not say it twice.
    const said = note.reason && note.reason !== detail ? `${detail} (${note.reason})` : detail;
    const event: MigrationEvent = { at: this.now(), kind, by: note.by ?? null, detail: said };
    this.status.events.push(event);
    if (this.eventsChars !== null) this.eventsChars += JSON.stringify(event).length + 1;
    this.trimEvents();
    void this.audit.write();
  }

  /** The events carried, in characters of JSON: counted once, then kept up to date as events come and go. */
  private eventsChars: number | null = null;

  /** The events carried are over their budget: anyone can send messages, and each adds one. */
  eventsOverBudget(): boolean {
    this.eventsChars ??= JSON.stringify(this.status.events).length;
    return this.eventsChars > EVENTS_CARRIED;
  }

  /**
   * While the events carried are over budget, drops the oldest ones already written to
   * ferry.audit, which keeps them all: a status too large to continue-as-new with would wedge
   * the migration. Guarded, and asked only over budget, so older histories replay as they ran.
   */
  trimEvents(): void {
    if (!this.eventsOverBudget() || !patched('bounded-events')) return;
    const { events } = this.status;
    const dropped = this.status.eventsDropped ?? 0;
    const audited = (this.status.eventsAudited ?? 0) - dropped;
    let cut = 0;
    while (cut < audited && this.eventsChars! > EVENTS_CARRIED) this.eventsChars! -= JSON.stringify(events[cut++]).length + 1;
    if (cut === 0) return;
    events.splice(0, cut);
    this.status.eventsDropped = dropped + cut;
  }

  /** A signal whose payload could not be read changes nothing; it is recorded, without its values. */
  refuse(signal: string, problems: string[]): void {
    const detail = `signal ${signal} ignored: ${problems.join('; ')}`.slice(0, 300);
    log.warn(`migration ${this.workflowId}: ${detail}`);
    if (this.status.events.filter((e) => e.kind === 'refused').length < REFUSALS_RECORDED) this.record('refused', {}, detail);
  }

  backfillDone(): boolean {
    return this.status.phases.some((p) => p.name === 'backfill' && p.endedAt !== null);
  }

  /** Some step after `step` in the lifecycle has begun: a step added later must not run behind it. */
  passed(step: Step): boolean {
    const later = this.steps.slice(this.steps.indexOf(step) + 1);
    return this.status.phases.some((p) => (later as string[]).includes(p.name));
  }

  /** A gate waits now or lies ahead. */
  gateAhead(): boolean {
    return this.status.gate !== null || this.steps.some((step) => step.startsWith('gate:') && !this.status.phases.some((p) => p.name === step && p.endedAt !== null));
  }

  /** What lib/requests.ts decides by: whether a request can be served now, or still can. */
  servingState(): ServingState {
    return {
      phase: this.status.phase,
      execute: this.status.execute,
      releasing: this.releasing,
      abortRequested: this.abortRequest !== null,
      backfillDone: this.backfillDone(),
      verificationBusy: this.verifying || this.verifyRequest !== null,
      gateWaiting: this.status.gate?.name ?? null,
      gateApprovedBy: this.gateDecision === 'approved' ? this.approver() : null,
      gateAhead: this.gateAhead(),
      paused: this.status.paused && `by ${this.status.paused.by ?? 'an operator'}: ${this.status.paused.reason}`,
      continuing: this.continuing,
    };
  }

  /** Who gave the gate decision taken: the last approval recorded. */
  private approver(): string {
    const approval = [...this.status.events].reverse().find((e) => e.kind === 'approve');
    return approval?.by ?? 'an operator';
  }

  /** An abort, a gate decision or a verification asked for by an operator and not yet taken up. */
  somethingAsked(): boolean {
    return this.abortRequest !== null || this.gateDecision !== null || this.verifyRequest !== null;
  }

  private setPhase(phase: Phase): void {
    this.status.phase = phase;
    if (this.phaseSearchable) upsertSearchAttributes([{ key: phaseKey, value: phase }]);
  }

  /** Ends the open step's record and starts `step`'s, in `phase`. */
  enter(phase: Phase, step: string): void {
    this.closeStep();
    this.setPhase(phase);
    this.status.phases.push({ name: step, startedAt: this.now(), endedAt: null });
  }

  /** Ends the run's record in `phase`. */
  finish(phase: Phase): MigrationStatus {
    this.closeStep();
    this.setPhase(phase);
    this.status.finishedAt = this.now();
    this.status.gate = null;
    // An ended migration copies nothing and takes no resume: a pause left from its last steps
    // (a gate approved while paused) must not show as "PAUSED". Guarded, so older histories replay.
    if (this.status.paused && patched('ended-not-paused')) this.status.paused = null;
    return this.status;
  }

  private closeStep(): void {
    const open = this.status.phases.at(-1);
    if (open && open.endedAt === null) open.endedAt = this.now();
  }

  running() {
    return this.status.shards.filter((s) => s.state === 'running');
  }

  /**
   * A running shard's share of the throttle: rates are shares of the whole, among every shard
   * that runs. A lower concurrency stops no running shard (the window only starts none), so
   * while more run than it allows, a share of the concurrency would copy faster than the limit.
   * Guarded, and asked only then, so older histories replay as they ran.
   */
  shardThrottle(): ShardThrottle {
    const { throttle } = this.status;
    const running = this.running().length;
    const overrun = throttle.rowsPerSecond !== null && running > throttle.concurrency && patched('rate-shared-by-running');
    const sharing = overrun ? running : Math.max(1, Math.min(running, throttle.concurrency));
    return { rowsPerSecond: shardRate(throttle, sharing), batchSize: throttle.batchSize };
  }

  /** The plan's limits (backoff and pacing budget), which an operator's throttle changes override. */
  plannedLimits(): PlanLimits {
    return plannedLimits(this.plan);
  }

  /** The plan with the limits in force: the one a shard starts with. */
  planInForce(): Plan {
    const { backoff, budget } = this.status.throttle;
    return backoff || budget !== undefined ? withLimits(this.plan, limitsInForce(this.status.throttle, this.plannedLimits())) : this.plan;
  }

  /** Tells running shards of a change; a shard that just ended no longer listens, which is fine. */
  async tellShards(signal: 'throttle' | 'pause' | 'limits'): Promise<void> {
    await Promise.all(
      this.running().map((shard) => {
        const handle = getExternalWorkflowHandle(shardWorkflowId(this.workflowId, shard.index));
        const sent =
          signal === 'throttle'
            ? handle.signal(shardThrottleSignal, this.shardThrottle())
            : signal === 'limits'
              ? handle.signal(shardLimitsSignal, limitsInForce(this.status.throttle, this.plannedLimits()))
              : handle.signal(shardPauseSignal, this.status.paused !== null);
        return sent.catch(() => {});
      }),
    );
  }

  /**
   * Counts rows that failed, from a shard's copy or the change apply, each once, and pauses for
   * a person once they pass the plan's limits.
   */
  countFailures(count: number, failures: readonly FailedRow[]): void {
    this.status.rowsFailed += count;
    this.status.unresolvedFailures += count;
    this.status.recentFailures = [...this.status.recentFailures, ...failures].slice(-RECENT_FAILURES_KEPT);
    const reason = this.failureLimitReached();
    if (reason) void this.pause({ by: 'ferry' }, 'auto-pause', reason);
  }

  /** The reason to pause for a person, once failed rows pass the plan's limits. */
  private failureLimitReached(): string | null {
    const { status } = this;
    if (status.paused) return null;
    const { maxCount, maxRate } = this.plan.failures;
    if (status.unresolvedFailures > maxCount) {
      return `${status.unresolvedFailures} row${status.unresolvedFailures === 1 ? '' : 's'} failed, over failures.maxCount (${maxCount}); see \`ferry failures\``;
    }
    if (status.rowsRead >= MIN_ROWS_FOR_FAILURE_RATE && status.rowsFailed / status.rowsRead > maxRate) {
      return `${((100 * status.rowsFailed) / status.rowsRead).toFixed(2)}% of rows failed, over failures.maxRate (${maxRate * 100}%); see \`ferry failures\``;
    }
    return null;
  }

  async pause(note: OperatorNote, kind: 'pause' | 'auto-pause', reason: string): Promise<void> {
    if (this.status.paused) {
      // A question for a person that comes up while an operator's pause holds (no application
      // follows the flags, failed rows wait) is still asked and recorded: otherwise the resume
      // meant to end that pause would answer it unseen. Guarded, so older histories replay.
      const paused = this.status.paused;
      if (kind !== 'auto-pause' || paused.by === 'ferry' || !patched('auto-pause-while-paused')) return;
      this.status.paused = { since: paused.since, by: note.by ?? null, reason: `${reason}; also paused by ${paused.by ?? 'an operator'}: ${paused.reason}` };
      this.record(kind, note, reason);
      return;
    }
    this.status.paused = { since: this.now(), by: note.by ?? null, reason };
    this.record(kind, note, reason);
    await this.tellShards('pause');
  }
}
