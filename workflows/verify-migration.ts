/**
 * A check of a migration that has ended (completed or aborted): a finished workflow takes no
 * more updates, so the check runs as a workflow of its own over the shards the migration
 * copied. It reports what differs, and repairs only when asked; the run is recorded in
 * ferry.verification_runs either way.
 */
import { executeChild, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { MismatchReport } from '../activities/verify/report';
import { rootMessage } from '../lib/errors';
import type { ShardSpec } from '../lib/key-range';
import type { Plan } from '../lib/plan';
import type { VerificationRun } from '../lib/verification-runs';
import { coverageInput, noTotals, verifyShardWorkflow, withCoverage, type VerifyTotals } from './verify-shard';
import { checkShardWorkflowId } from '../lib/ids';

export interface VerifyMigrationInput {
  /** The migration checked: mismatches are recorded under its id. */
  migrationId: string;
  plan: Plan;
  /** The migration's shards, from its final status. */
  shards: ShardSpec[];
  samplePercent: number | null;
  /** Repair what differs from the source, and compare again (up to plan.verify.maxPasses). */
  repair: boolean;
  by: string;
  /** Shards compared at once. */
  concurrency: number;
  /** The last pass number the migration itself recorded. */
  afterPass: number;
}

const { beginVerificationRun, finishVerificationRun } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection', 'TargetTaken'] },
});

const { repairMismatches, recheckOpenMismatches, mismatchReport } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

/** Reads the whole scope on the source and may walk the whole target: as long as the lifecycle's. */
const { verifyCoverage } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

export async function verifyMigrationWorkflow(input: VerifyMigrationInput): Promise<VerificationRun> {
  const { plan, migrationId, samplePercent } = input;
  const { workflowId } = workflowInfo();
  const begun = await beginVerificationRun({
    plan,
    migrationId,
    requestId: workflowId,
    kind: 'after-finish',
    by: input.by,
    samplePercent,
    repair: input.repair,
    maxPasses: input.repair ? plan.verify.maxPasses : 1,
    afterPass: input.afterPass,
  });
  const run: VerificationRun = {
    migrationId,
    run: begun.run,
    kind: 'after-finish',
    by: input.by,
    startedAt: begun.startedAt,
    finishedAt: null,
    samplePercent,
    repair: input.repair,
    passes: 0,
    firstPass: begun.firstPass,
    rowsChecked: 0,
    missing: 0,
    extra: 0,
    value: 0,
    carried: 0,
    repaired: 0,
    inFlight: 0,
    clean: false,
    problem: null,
  };
  const maxPasses = input.repair ? plan.verify.maxPasses : 1;
  for (let pass = 1; pass <= maxPasses; pass += 1) {
    const passId = begun.firstPass + pass - 1;
    const { totals, problem } = await verifyShards(input, workflowId, pass, passId);
    run.passes = pass;
    if (problem) {
      run.problem = problem;
      break;
    }
    const carried = await recheckOpenMismatches({ migrationId, plan, pass: passId });
    Object.assign(run, {
      rowsChecked: totals.rowsChecked,
      missing: totals.missing + carried.missing,
      extra: totals.extra + carried.extra,
      value: totals.value + carried.value,
      carried: carried.missing + carried.extra + carried.value,
      inFlight: run.inFlight + totals.inFlight,
    });
    // After the migration, nothing short of no difference at all is clean: there is no gate to budget
    // for. A sample that finds nothing keeps an earlier clean verdict and never makes one, as in the
    // lifecycle (guarded: checks recorded before recorded it clean).
    const found = run.missing + run.extra + run.value;
    run.clean = samplePercent !== null && patched('after-finish-sample-verdict') ? begun.previousClean === true && found === 0 : found === 0;
    if (found === 0 || !input.repair || pass === maxPasses) break;
    const repair = await repairMismatches({ migrationId, plan, pass: passId });
    run.repaired += repair.repaired + repair.deleted;
  }
  const { finishedAt } = await finishVerificationRun({ plan, migrationId, outcome: run });
  run.finishedAt = finishedAt;
  return run;
}

/**
 * One pass over every shard, `concurrency` at a time, then the final check of the pass that
 * every row is accounted for (as the lifecycle's verification makes it); the first failure is
 * the problem.
 */
async function verifyShards(input: VerifyMigrationInput, checkId: string, checkPass: number, pass: number): Promise<{ totals: VerifyTotals; problem: string | null }> {
  const totals: VerifyTotals = { ...noTotals };
  let problem: string | null = null;
  const queue = input.shards.map((spec, index) => ({ spec, index }));
  const lanes = Array.from({ length: Math.max(1, Math.min(input.concurrency, queue.length)) }, async () => {
    for (let shard = queue.shift(); shard; shard = queue.shift()) {
      try {
        const result = await executeChild(verifyShardWorkflow, {
          workflowId: checkShardWorkflowId(checkId, checkPass, shard.index),
          args: [{ migrationId: input.migrationId, plan: input.plan, spec: shard.spec, pass, samplePercent: input.samplePercent, cursor: null, totals: noTotals }],
        });
        for (const key of Object.keys(totals) as (keyof VerifyTotals)[]) totals[key] += result[key];
      } catch (error) {
        problem ??= rootMessage(error);
      }
    }
  });
  await Promise.all(lanes);
  // Rows no shard reads: target rows the source does not hold beyond a shard's reach, source rows
  // no shard reaches, NULL keys. Added while checks may be running: guarded, so they still replay.
  if (problem === null && patched('after-finish-coverage')) {
    try {
      problem = withCoverage(totals, await verifyCoverage(coverageInput(input.migrationId, input.plan, input.shards, pass, input.samplePercent)));
    } catch (error) {
      problem = rootMessage(error);
    }
  }
  return { totals, problem };
}

export interface MismatchesInput {
  migrationId: string;
  plan: Plan;
  showValues: boolean;
  limit: number;
}

/** The mismatches of a migration that has ended, read on the target by a worker (the CLI holds no connection). */
export async function mismatchesWorkflow(input: MismatchesInput): Promise<MismatchReport> {
  return mismatchReport({ migrationId: input.migrationId, plan: input.plan, showValues: input.showValues, limit: input.limit });
}
