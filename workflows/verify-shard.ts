/**
 * A verification shard compares one key range of a migration, chunk by chunk, through the
 * verifier activity, keeping its cursor and counts in workflow state across continue-as-new.
 */
import { continueAsNew, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { CoverageInput, CoverageResult } from '../activities/verify/coverage';
import type { ShardSpec } from '../lib/key-range';
import type { Plan } from '../lib/plan';

export interface VerifyShardWorkflowInput {
  migrationId: string;
  plan: Plan;
  spec: ShardSpec;
  pass: number;
  samplePercent: number | null;
  /** Carried across continue-as-new. */
  cursor: string | null;
  totals: VerifyTotals;
}

export interface VerifyTotals {
  rowsChecked: number;
  missing: number;
  extra: number;
  value: number;
  inFlight: number;
}

export const noTotals: VerifyTotals = { rowsChecked: 0, missing: 0, extra: 0, value: 0, inFlight: 0 };

/** The final coverage check of a pass over `shards` (activities/verify/coverage.ts): what no shard reads. */
export function coverageInput(migrationId: string, plan: Plan, shards: ShardSpec[], pass: number, samplePercent: number | null): CoverageInput {
  return {
    migrationId,
    plan,
    shards,
    pass,
    chunkSize: plan.verify.chunkSize,
    inFlightDelayMs: plan.verify.inFlightDelaySeconds * 1000,
    ...(samplePercent === null ? {} : { samplePercent }),
  };
}

/** Adds what the coverage check found to a pass's totals; returns its problem, if any. */
export function withCoverage(totals: VerifyTotals, coverage: CoverageResult): string | null {
  totals.rowsChecked += coverage.unreachedRows;
  totals.missing += coverage.mismatches.missing;
  totals.extra += coverage.mismatches.extra;
  totals.value += coverage.mismatches.value;
  return coverage.problem;
}

const { verifyShard } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  // The verifier heartbeats every 2 s from a timer: silence this long means its worker is gone.
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['MissingConnection'] },
});

export async function verifyShardWorkflow(input: VerifyShardWorkflowInput): Promise<VerifyTotals> {
  const state = { ...input, totals: { ...input.totals } };
  for (;;) {
    const result = await verifyShard({
      migrationId: state.migrationId,
      plan: state.plan,
      shard: state.spec,
      cursor: state.cursor,
      chunkSize: state.plan.verify.chunkSize,
      pass: state.pass,
      inFlightDelayMs: state.plan.verify.inFlightDelaySeconds * 1000,
      ...(state.samplePercent === null ? {} : { samplePercent: state.samplePercent }),
    });
    state.cursor = result.cursor;
    state.totals.rowsChecked += result.rowsChecked;
    state.totals.missing += result.mismatches.missing;
    state.totals.extra += result.mismatches.extra;
    state.totals.value += result.mismatches.value;
    state.totals.inFlight += result.inFlight;
    if (result.done) return state.totals;
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof verifyShardWorkflow>(state);
  }
}
