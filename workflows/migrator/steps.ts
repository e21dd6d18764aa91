/**
 * The lifecycle's steps after inspection, one object each (as pgroll's operations): `run` does
 * the step and says how the lifecycle goes on; `rollback`, where a step leaves something an abort
 * must undo, undoes it. The lifecycle runs them in order (workflows/migration.ts); an abort runs
 * the rollbacks of the steps that ran, newest first (workflows/migrator/endings.ts).
 *
 * A new step: name it in lib/lifecycle.ts (Step, and lifecycleSteps() says when the plan wants
 * it and where), give it a Phase in lib/status.ts if operators should see one, write its object
 * here or in a file of its own (`run` opens with run.enter(phase, name), keeps its state on the
 * MigrationRun, returns 'abort' when run.abortRequest is set), and list it in stepsByName.
 * Migrations already running must replay: the step's `run` first returns 'next' unless
 * patched('<its id>'), and also when run.passed(<its name>) (a continued run of an older
 * migration would otherwise run it out of order).
 */
import { ApplicationFailure, condition, patched } from '@temporalio/workflow';
import { rootMessage } from '../../lib/errors';
import type { GateName, Step } from '../../lib/lifecycle';
import type { AbortRequest } from '../../lib/messages-input';
import { backfillWindow, planBackfill } from './backfill';
import { readyToContinueAsNew } from './continue-as-new';
import { dropOldTableAside, swapTables } from './swap';
import { awaitApplications, changeFlags, rollBackFlags } from './flags';
import { waitAtGate } from './gate';
import type { MigrationRun } from './run';
import { verification } from './verification';

/**
 * How the lifecycle goes on after a step: with the next step; with the abort (one was asked
 * for); with a new run of the workflow (the history is long, and nothing asked is left
 * unserved); or by failing with `failed`.
 */
export type StepOutcome = 'next' | 'abort' | 'continue-as-new' | { failed: ApplicationFailure };

/**
 * Undoes what a step did; runs when a migration aborts after the step began, also when the step
 * was cut short, so it starts from where things are, not from what the step meant to do. Says
 * what it did, for the abort's record. Steps that leave the same thing share one rollback, and it
 * runs once.
 */
export type Rollback = (run: MigrationRun, request: AbortRequest) => Promise<string>;

export interface LifecycleStep {
  /** As lib/lifecycle.ts names it; also the name of its record in status.phases. */
  readonly name: Step;
  run(run: MigrationRun): Promise<StepOutcome>;
  readonly rollback?: Rollback;
}

/** Every step that changes the flags leaves them where only the abort's rollback may take them back. */
const flagsBack: Rollback = (run, request) => rollBackFlags(run, `abort by ${request.by}`);

const dualWrite: LifecycleStep = {
  name: 'dual-write',
  async run(run) {
    run.enter('dual-write', 'dual-write');
    const needsApps = patched('dual-writes-need-apps');
    const acks = await changeFlags(run, { writeOld: true, writeNew: true, readFrom: 'old', comparePercent: 0 }, 'dual writes on', needsApps);
    if (needsApps) await awaitApplications(run, acks);
    // An abort asked for meanwhile is served before the next step.
    return 'next';
  },
  rollback: flagsBack,
};

const backfill: LifecycleStep = {
  name: 'backfill',
  async run(run) {
    // A continued run goes on with the shards its last run planned.
    if (!run.input.carried) {
      run.enter('backfilling', 'backfill');
      await planBackfill(run);
    }
    const outcome = await backfillWindow(run);
    if (outcome === 'abort') return 'abort';
    if (outcome === 'continue-as-new') {
      // During a backfill only an abort can be asked for: no gate waits, and verify is refused.
      return (await readyToContinueAsNew(run)) ? 'continue-as-new' : 'abort';
    }
    const failedShard = run.status.shards.find((s) => s.state === 'failed');
    if (failedShard) return { failed: ApplicationFailure.nonRetryable(`shard ${failedShard.index} failed: ${failedShard.error}`, 'ShardFailed') };
    return 'next';
  },
  // Rows copied stay in the target (the registry keeps it this migration's); the abort stops the
  // shards before any rollback, as they run beside the lifecycle, not inside a step.
};

const verify: LifecycleStep = {
  name: 'verify',
  async run(run) {
    run.enter('verifying', 'verify');
    await verification(run, null, { by: 'ferry' }, 'lifecycle');
    return run.abortRequest ? 'abort' : 'next';
  },
};

function gate(name: GateName): LifecycleStep {
  return {
    name: `gate:${name}`,
    async run(run) {
      const decision = await waitAtGate(run, name);
      if (decision !== 'approved') return decision;
      if (name === 'cleanup') run.enter('cleanup', 'cleanup');
      return 'next';
    },
  };
}

const readsToNew: LifecycleStep = {
  name: 'reads-to-new',
  async run(run) {
    run.enter('reads-on-new', 'reads-to-new');
    await changeFlags(
      run,
      { writeOld: true, writeNew: true, readFrom: 'new', comparePercent: run.plan.lifecycle.compareReadsPercent },
      'reads moved to the new table',
    );
    return 'next';
  },
  rollback: flagsBack,
};

const oldWritesOff: LifecycleStep = {
  name: 'old-writes-off',
  async run(run) {
    run.enter('old-writes-off', 'old-writes-off');
    await changeFlags(run, { writeOld: false, writeNew: true, readFrom: 'new', comparePercent: 0 }, 'writes to the old table off');
    return 'next';
  },
  rollback: flagsBack,
};

/** Change capture (plan `capture: trigger` or `logical`): an abort after the capture went on removes it and its log entries. */
const captureBack: Rollback = async (run) => {
  await run.capture.remove();
  return run.status.capture?.mode === 'logical'
    ? 'the replication slot, the publication and the change log entries were removed from the source'
    : 'the capture trigger and its change log entries were removed from the source';
};

/**
 * A capture that stopped for good (its slot gone, its trigger dropped or disabled by hand, a
 * change apply that failed) leaves the source's later changes out of the target: the migration
 * must then fail, naming why, rather than swap or complete. Call after run.capture.stop().
 * Guarded, so histories recorded before it replay as they ran.
 */
function captureLost(run: MigrationRun): { failed: ApplicationFailure } | null {
  const failure = run.capture.failed();
  // An earlier run's reason, carried by continue-as-new: this run's apply may not have failed again yet.
  const why = failure !== null ? rootMessage(failure) : run.status.capture?.stoppedBecause;
  if (!why || !patched('capture-lost-fails')) return null;
  return {
    failed: ApplicationFailure.nonRetryable(
      `change capture stopped: ${why}; the source's changes since then are not in the target`,
      'CaptureApplyFailed',
    ),
  };
}

const captureOn: LifecycleStep = {
  name: 'capture-on',
  async run(run) {
    if (!run.capturing) return 'next';
    run.enter('capture-on', 'capture-on');
    try {
      await run.capture.install();
    } catch (error) {
      return { failed: ApplicationFailure.nonRetryable(`capture could not be installed: ${rootMessage(error)}`, 'CaptureNotInstalled') };
    }
    return 'next';
  },
  rollback: captureBack,
};

/** Captured changes keep flowing after the backfill; verification starts once the apply keeps up. */
const catchUp: LifecycleStep = {
  name: 'catch-up',
  async run(run) {
    if (!run.capturing) return 'next';
    run.enter('catching-up', 'catch-up');
    try {
      await Promise.race([run.capture.caughtUp(), condition(() => run.abortRequest !== null)]);
    } catch (error) {
      return { failed: error as ApplicationFailure };
    }
    return run.abortRequest ? 'abort' : 'next';
  },
  rollback: captureBack,
};

/**
 * The cutover of an application that cannot change (capture.swap): the change apply stops, and
 * one transaction under a short lock timeout drains the log, drops the trigger and gives the new
 * table the old one's name; retried while the lock is not had. An abort is refused from here on.
 */
const swap: LifecycleStep = {
  name: 'swap',
  async run(run) {
    if (!patched('capture-swap') || run.passed('swap') || !run.capturing) return 'next';
    run.enter('swapping', 'swap');
    if (run.status.capture?.swap) return 'next';
    await run.capture.stop();
    const lost = captureLost(run);
    if (lost) return lost;
    try {
      await swapTables(run);
    } catch (error) {
      return { failed: ApplicationFailure.nonRetryable(`the tables could not be swapped: ${rootMessage(error)}`, 'SwapFailed') };
    }
    return 'next';
  },
  rollback: captureBack,
};

/** After the cleanup gate: the changes logged before it are applied, then the trigger, its function and the migration's log entries go; after a swap, the old table too if the plan says so. */
const captureOff: LifecycleStep = {
  name: 'capture-off',
  async run(run) {
    if (!run.capturing) return 'next';
    run.enter('capture-off', 'capture-off');
    // The source's changes committed before the approval reach the target before the log goes:
    // a stop alone cancelled the apply and the removal deleted what it had not applied yet.
    // Guarded, so histories recorded before it replay as they ran.
    if (patched('capture-off-drains')) await run.capture.drain();
    await run.capture.stop();
    const lost = captureLost(run);
    if (lost) return lost;
    await run.capture.remove();
    if (run.status.capture?.swap) await dropOldTableAside(run);
    return 'next';
  },
  rollback: captureBack,
};

const stepsByName: Record<Step, LifecycleStep> = {
  'dual-write': dualWrite,
  'capture-on': captureOn,
  backfill,
  'catch-up': catchUp,
  verify,
  'gate:cutover-reads': gate('cutover-reads'),
  'reads-to-new': readsToNew,
  'gate:stop-old-writes': gate('stop-old-writes'),
  'old-writes-off': oldWritesOff,
  'gate:swap': gate('swap'),
  swap,
  'gate:cleanup': gate('cleanup'),
  'capture-off': captureOff,
};

/** The steps the run's plan asks for, in order (lib/lifecycle.ts decides which). */
export function lifecycleOf(run: MigrationRun): LifecycleStep[] {
  return run.steps.map((name) => stepsByName[name]);
}
