/**
 * A gate: the migration waits for a person to approve the next point of no return, runs the
 * verifications asked for meanwhile, reminds, refreshes the figures an approver looks at, and
 * turns an expiry into an abort.
 */
import { condition, log, patched, workflowInfo } from '@temporalio/workflow';
import { gateDescriptions, type GateName } from '../../lib/lifecycle';
import type { VerifyRequest } from '../messages';
import { gateFigures } from './activity-proxies';
import { readyToContinueAsNew } from './continue-as-new';
import type { MigrationRun } from './run';
import { verification } from './verification';

/**
 * Waits for a person: approved, or (through reject, abort or expiry) an abort request. A gate
 * may wait for months, so it continues-as-new when its history grows large (its reminders and
 * figures add to it); the next run finds the gate open and goes on waiting where this one was.
 */
export async function waitAtGate(run: MigrationRun, name: GateName): Promise<'approved' | 'abort' | 'continue-as-new'> {
  const { status, plan, workflowId } = run;
  // After a swap an abort cannot go back, so the cleanup gate waits for a person however long it takes.
  const expirySeconds = name === 'cleanup' && status.capture?.swap ? null : plan.lifecycle.gates.expirySeconds;
  // Every gate clears status.gate when it ends: one still set was carried by continue-as-new.
  const carriedGate = status.gate?.name === name ? status.gate : null;
  const since = carriedGate ? Date.parse(carriedGate.waitingSince) : Date.now();
  if (!carriedGate) {
    run.enter('awaiting-approval', `gate:${name}`);
    run.gateDecision = null;
    status.gate = {
      name,
      description: gateDescriptions[name],
      waitingSince: run.now(),
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
      () => run.somethingAsked(),
      Math.max(1, Math.min(nextReminder - Date.now(), nextFigures - Date.now(), untilExpiry)),
    );
    if (run.verifyRequest && !run.gateDecision && !run.abortRequest) {
      const request: VerifyRequest = run.verifyRequest;
      if ((await verification(run, request.samplePercent ?? null, { by: request.by }, 'on-demand')) === 'stopped') run.stoppedVerification = request;
      continue;
    }
    if (decided) break;
    // Asked only when the server suggests it, so histories recorded before this replay as they ran.
    if (workflowInfo().continueAsNewSuggested && patched('gate-continue-as-new')) {
      if (await readyToContinueAsNew(run)) return 'continue-as-new';
      continue; // a decision or a verification came in meanwhile: the loop takes it up
    }
    if (expirySeconds && Date.now() >= since + expirySeconds * 1000) {
      run.record('gate-expired', { by: 'ferry' }, `gate ${name} waited ${expirySeconds} s without a decision`);
      run.abortRequest = { by: 'ferry', reason: `gate ${name} expired after ${expirySeconds} s` };
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
  return run.gateDecision === 'approved' && !run.abortRequest ? 'approved' : 'abort';
}
