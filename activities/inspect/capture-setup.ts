/**
 * Capture setup says, before anything is written, whether the plan's capture can be installed on
 * the source: the checks the logical install makes before it creates anything, and those `ferry
 * doctor` makes for the trigger and the change log, from the same functions. Found here, a dry
 * run lists them and `--execute` refuses before it claims the target, not seconds after "started".
 */
import type pg from 'pg';
import { captureOf } from '../../lib/capture';
import { describeCaptureProblem, type CaptureProblem } from '../../lib/doctor';
import { logicalCaptureName } from '../../lib/ids';
import type { Plan } from '../../lib/plan';
import { readTriggerCaptureSettings, triggerCaptureProblems, triggerCheckNames } from '../capture/doctor-checks';
import { logicalCaptureProblems, readLogicalCaptureSettings } from '../capture/logical-setup';
import { readOnly } from '../plan-sql';

/**
 * Why the source will not take the plan's capture, as the inspection's problems; none without
 * capture. `migrationId` names the slot and the publication the install would find (a dry run has none
 * yet). Read in a READ ONLY transaction.
 */
export async function captureSetupProblems(pool: pg.Pool, plan: Plan, migrationId: string | undefined): Promise<string[]> {
  const mode = captureOf(plan).mode;
  if (mode === 'application') return [];
  const problems = await readOnly(pool, async (client): Promise<CaptureProblem[]> => {
    // Both modes keep the change log and a trigger (logical capture its TRUNCATE guard) on the table.
    const trigger = triggerCaptureProblems(await readTriggerCaptureSettings(client, plan.source), plan.source);
    if (mode === 'trigger') return trigger;
    const settings = await readLogicalCaptureSettings(client, logicalCaptureName(migrationId ?? 'inspection'), plan.source);
    const logical = logicalCaptureProblems(settings, plan.source, plan.source.key);
    // The publication and the guard take the same owner: said once.
    const ownerNamed = logical.some((p) => p.name === 'publication');
    return [...logical, ...trigger.filter((p) => !(ownerNamed && p.name === triggerCheckNames(plan.source).trigger))];
  });
  return problems.map((p) => `capture: ${mode} cannot be installed on the source: ${describeCaptureProblem(p)}; \`ferry doctor\` checks this`);
}
