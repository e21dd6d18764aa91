/**
 * Verification: compares every shard's rows (or a sample) through verification shard children,
 * `concurrency` at a time, repairs what differs from the source, and compares again, up to the
 * plan's pass limit. Runs as a lifecycle step and on demand at a gate; an abort stops it.
 */
import { condition, executeChild, patched, workflowInfo } from '@temporalio/workflow';
import { rootMessage } from '../../lib/errors';
import { verifyShardWorkflowId } from '../../lib/ids';
import type { VerificationSummary } from '../../lib/status';
import { differenceCounts, uncleanReason, type VerificationKind } from '../../lib/verification-runs';
import type { OperatorNote } from '../messages';
import { coverageInput, noTotals, verifyShardWorkflow, withCoverage, type VerifyTotals } from '../verify-shard';
import { beginVerificationRun, finishVerificationRun, recheckOpenMismatches, repairMismatches, verifyCoverage } from './activity-proxies';
import type { MigrationRun } from './run';

/**
 * Compares every shard's rows (or a sample), repairs what differs from the source, and
 * compares again, up to the plan's pass limit. The last comparison decides whether the
 * migration is clean; a sampled check only ever marks it not clean. 'stopped' when an abort
 * ended it: `status.verification` then holds no verdict of this run.
 */
export async function verification(run: MigrationRun, samplePercent: number | null, note: OperatorNote, kind: VerificationKind): Promise<'finished' | 'stopped'> {
  const { status, plan, workflowId } = run;
  // Runs recorded, passes counted within a run, open mismatches carried: added while
  // migrations may be verifying, so guarded.
  if (patched('verification-runs')) return recordedVerification(run, samplePercent, note, kind);
  run.verifying = true;
  run.verifyRequest = null;
  const summary = status.verification ?? { clean: false, passes: 0, rowsChecked: 0, missing: 0, extra: 0, value: 0, repaired: 0, inFlight: 0, forcedBy: null };
  const wasClean = status.verification?.clean ?? false;
  try {
    for (let attempt = 1; attempt <= plan.verify.maxPasses; attempt += 1) {
      const pass = summary.passes + 1;
      const outcome = await verifyAllShards(run, pass, samplePercent);
      if (outcome === null) return 'stopped';
      const { totals, problem } = outcome;
      if (problem) {
        summary.passes = pass;
        summary.clean = false;
        status.verification = summary;
        run.record('verify', note, `pass ${pass} could not finish: ${problem}`);
        return 'finished';
      }
      Object.assign(summary, { passes: pass, rowsChecked: totals.rowsChecked, missing: totals.missing, extra: totals.extra, value: totals.value });
      summary.inFlight += totals.inFlight;
      const found = totals.missing + totals.extra + totals.value;
      summary.clean = samplePercent === null ? found <= plan.verify.mismatchBudget : wasClean && found === 0;
      status.verification = summary;
      run.record(
        'verify',
        note,
        `pass ${pass}${samplePercent === null ? '' : ` (sample ${samplePercent}%)`}: ${totals.rowsChecked} rows checked, ` +
          `${totals.missing} missing, ${totals.extra} extra, ${totals.value} differing, ${totals.inFlight} in flight`,
      );
      if (found <= plan.verify.mismatchBudget || attempt === plan.verify.maxPasses) break;
      const repair = await repairMismatches({ migrationId: workflowId, plan, pass });
      summary.repaired += repair.repaired + repair.deleted;
      run.record('verify', note, `pass ${pass} repaired: ${repair.repaired} rows written, ${repair.deleted} deleted, ${repair.unresolved} unresolved`);
    }
    return 'finished';
  } finally {
    run.verifying = false;
  }
}

/**
 * A verification run: numbered and recorded in ferry.verification_runs, its passes counted
 * from 1, its figures this run's own. Each pass also compares again what earlier passes left
 * unresolved, so a sample neither forgets nor clears them. A sampled run only ever marks the
 * migration not clean.
 */
async function recordedVerification(run: MigrationRun, samplePercent: number | null, note: OperatorNote, kind: VerificationKind): Promise<'finished' | 'stopped'> {
  const { status, plan, workflowId } = run;
  run.verifying = true;
  run.verifyRequest = null;
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
      // Which verdict was forced past stays with who forced it: a later run does not clear the record.
      ...(previous?.forcedPast ? { forcedPast: previous.forcedPast } : {}),
      run: begun.run,
      samplePercent,
      lastPassId: afterPass,
      repairedTotal: previous?.repairedTotal ?? previous?.repaired ?? 0,
    };
    const label = (pass: number) => `${begun.run > 1 ? `run ${begun.run} ` : ''}pass ${pass}${samplePercent === null ? '' : ` (sample ${samplePercent}%)`}`;
    let problem: string | null = null;
    for (let pass = 1; pass <= plan.verify.maxPasses; pass += 1) {
      const passId = begun.firstPass + pass - 1;
      const outcome = (await heldWhilePaused(run)) ? await verifyAllShards(run, passId, samplePercent) : null;
      if (outcome === null) {
        problem = ABORTED;
        break;
      }
      summary.passes = pass;
      summary.lastPassId = passId;
      status.verification = summary;
      if (outcome.problem) {
        problem = outcome.problem;
        summary.clean = false;
        run.record('verify', note, `${label(pass)} could not finish: ${problem}`);
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
      run.record(
        'verify',
        note,
        `${label(pass)}: ${totals.rowsChecked} rows checked, ${differenceCounts(summary)}, ${totals.inFlight} in flight` +
          (carriedCount ? ` (${carriedCount} of them left unresolved by an earlier pass)` : ''),
      );
      if (found <= plan.verify.mismatchBudget || pass === plan.verify.maxPasses) break;
      if (!(await heldWhilePaused(run))) {
        problem = ABORTED;
        break;
      }
      const repair = await repairMismatches({ migrationId: workflowId, plan, pass: passId });
      summary.repaired += repair.repaired + repair.deleted;
      summary.repairedTotal! += repair.repaired + repair.deleted;
      run.record('verify', note, `${label(pass)} repaired: ${repair.repaired} rows written, ${repair.deleted} deleted, ${repair.unresolved} unresolved`);
    }
    if (!summary.clean && samplePercent !== null && summary.missing + summary.extra + summary.value === 0 && !problem) {
      run.record('verify', note, `${label(summary.passes)}: ${uncleanReason(summary)}`);
    }
    await finishVerificationRun({
      plan,
      migrationId: workflowId,
      outcome: { run: begun.run, passes: summary.passes, rowsChecked: summary.rowsChecked, missing: summary.missing, extra: summary.extra, value: summary.value, repaired: summary.repaired, clean: summary.clean, problem },
    });
    return problem === ABORTED ? 'stopped' : 'finished';
  } finally {
    run.verifying = false;
  }
}

/** The problem of a verification run an abort stopped. */
const ABORTED = 'the migration was aborted';

/**
 * A pause holds a verification where it stands between its passes and before it repairs, as it
 * holds a copy between batches (the pass under way finishes). False when an abort came instead.
 * Added while migrations may be verifying while paused: guarded, so their histories replay.
 */
async function heldWhilePaused(run: MigrationRun): Promise<boolean> {
  if (run.status.paused && patched('verification-holds-for-pause')) await condition(() => run.status.paused === null || run.abortRequest !== null);
  return run.abortRequest === null;
}

/** One verification pass over every shard, `concurrency` at a time; null when aborted. */
async function verifyAllShards(run: MigrationRun, pass: number, samplePercent: number | null): Promise<{ totals: VerifyTotals; problem: string | null } | null> {
  run.passUnderWay = { id: pass, sampled: samplePercent !== null };
  try {
    return await verifyShardsOfPass(run, pass, samplePercent);
  } finally {
    run.passUnderWay = null;
  }
}

async function verifyShardsOfPass(run: MigrationRun, pass: number, samplePercent: number | null): Promise<{ totals: VerifyTotals; problem: string | null } | null> {
  const { status, plan, workflowId } = run;
  let problem: string | null = null;
  const queue = [...status.shards];
  const totals: VerifyTotals = { ...noTotals };
  const lanes = Array.from({ length: Math.max(1, Math.min(status.throttle.concurrency, queue.length)) }, async () => {
    for (let shard = queue.shift(); shard && !run.abortRequest; shard = queue.shift()) {
      try {
        const result = await executeChild(verifyShardWorkflow, {
          workflowId: verifyShardWorkflowId(workflowId, pass, shard.index, samplePercent !== null),
          args: [{ migrationId: workflowId, plan, spec: { range: shard.range, partitionValue: shard.partitionValue }, pass, samplePercent, cursor: null, totals: noTotals }],
        });
        for (const key of Object.keys(totals) as (keyof VerifyTotals)[]) totals[key] += result[key];
      } catch (error) {
        problem ??= rootMessage(error);
      }
    }
  });
  await Promise.race([Promise.all(lanes), condition(() => run.abortRequest !== null)]);
  if (run.abortRequest) return null;
  // Every source row in scope accounted for, every target row owned: what no shard could see.
  // Added while migrations may be verifying: guarded, so their histories still replay.
  if (problem === null && patched('verify-coverage')) {
    const shards = status.shards.map((s) => ({ range: s.range, partitionValue: s.partitionValue }));
    const checked = verifyCoverage(coverageInput(workflowId, plan, shards, pass, samplePercent));
    checked.catch(() => {}); // an abort may leave it behind
    try {
      const coverage = await Promise.race([checked, condition(() => run.abortRequest !== null).then(() => null)]);
      if (coverage === null) return null;
      problem = withCoverage(totals, coverage);
    } catch (error) {
      problem = rootMessage(error);
    }
  }
  return { totals, problem };
}
