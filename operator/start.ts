/**
 * Starting a migration from a plan, and waiting until it has passed its inspection: "started" is
 * said only of a run that got past its inspection and holds its target.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { rootMessage } from '../lib/errors';
import { newMigrationId, tableKey } from '../lib/ids';
import type { Plan } from '../lib/plan';
import { ferrySearchAttributes, phaseKey, planNameKey, targetTableKey } from '../lib/search-attributes';
import type { TemporalSettings } from '../lib/settings';
import type { migrationWorkflow } from '../workflows/migration';
import { InspectionNotPassedError } from './errors';
import { migrationReport, type MigrationReport } from './status';

export interface StartOptions {
  execute: boolean;
  showSampleValues?: boolean;
  migrationId?: string;
  /** Migrate into a target that already holds a finished migration. */
  rerun?: boolean;
  /** Go ahead with dual writes that no application follows (`--no-apps`). */
  noApps?: boolean;
  /** The identity starting it, recorded in its status and checked by four-eyes gates. */
  startedBy?: string;
}

export async function startMigration(
  client: Client,
  temporal: TemporalSettings,
  plan: Plan,
  options: StartOptions,
): Promise<WorkflowHandle<typeof migrationWorkflow>> {
  const workflowId = options.migrationId ?? newMigrationId(plan.name, new Date());
  const start = (searchable: boolean) =>
    client.workflow.start<typeof migrationWorkflow>('migrationWorkflow', {
      taskQueue: temporal.taskQueue,
      workflowId,
      args: [
        {
          plan,
          execute: options.execute,
          showSampleValues: options.showSampleValues ?? false,
          rerun: options.rerun ?? false,
          ...(options.noApps ? { noApps: true } : {}),
          ...(options.startedBy ? { startedBy: options.startedBy } : {}),
        },
      ],
      ...(searchable
        ? {
            typedSearchAttributes: [
              { key: planNameKey, value: plan.name },
              { key: phaseKey, value: 'inspecting' },
              { key: targetTableKey, value: tableKey(plan.target) },
            ],
          }
        : {}),
    });
  try {
    return await start(true);
  } catch (error) {
    // A server that does not know Ferry's search attributes refuses them: start without.
    if (!/search attribute/i.test(rootMessage(error))) throw error;
    process.emitWarning(
      `Temporal at ${temporal.address} does not know Ferry's search attributes, so this migration cannot be listed by plan, phase or target; ` +
        `run \`ferry setup\` once for namespace ${temporal.namespace} (or: ` +
        Object.entries(ferrySearchAttributes).map(([name, type]) => `temporal operator search-attribute create --name ${name} --type ${type}`).join('; ') +
        ')',
    );
    return start(false);
  }
}

/** How long `awaitInspection` waits for the inspection and the target's claim. (Default: 5 minutes) */
export const INSPECTION_WAIT_MS = 5 * 60_000;

/**
 * Waits until a migration has passed its inspection and claimed its target (its phase moves on),
 * or fails (InspectionNotPassedError) with the run's own reason when it ended there instead.
 */
export async function awaitInspection(client: Client, migrationId: string, waitMs = INSPECTION_WAIT_MS): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const outcome = inspectionOutcome(await migrationReport(client, migrationId));
    if (outcome === 'passed') return;
    if (outcome !== 'waiting') throw new InspectionNotPassedError(outcome.reason);
    if (Date.now() > deadline) throw new InspectionNotPassedError(`migration ${migrationId} is still inspecting after ${waitMs / 60_000} minutes; follow it with ferry status`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * What one report says of the inspection and the claim: passed, not yet known, or not passed
 * (with the run's own reason).
 */
export function inspectionOutcome(report: MigrationReport): 'passed' | 'waiting' | { reason: string } {
  const { migrationId, runState, status } = report;
  if (runState !== 'running') {
    if (runState === 'completed' || runState === 'continued') return 'passed';
    return { reason: `migration ${migrationId} ${runState} before it started copying: ${report.failure ?? status?.phase ?? 'no reason given'}` };
  }
  // A run that fails (its claim refused: the target is busy, or holds a finished migration) says
  // "failed" in its status a moment before Temporal closes it: a report taken in between is not
  // a start. The next one gives the run's own reason.
  if (!status || status.phase === 'inspecting' || status.phase === 'failed') return 'waiting';
  return 'passed';
}
