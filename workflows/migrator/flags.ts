/**
 * The migration's flags, which the applications follow: changing them and waiting for the
 * applications to confirm, and putting them back where no write is lost when a migration aborts.
 */
import { condition } from '@temporalio/workflow';
import type { FlagAcks } from '../../activities/state/flags';
import { flagsAfterAbort, type FlagSettings } from '../../lib/lifecycle';
import { awaitFlagAcks, setFlags } from './activity-proxies';
import type { MigrationRun } from './run';

const WITHOUT_APPS = 'writes the application makes to the old table only are missing from the new one until verification repairs them';

/**
 * Sets the flags and waits for the applications to follow. With `needsApps` (dual writes on),
 * no application following is said in the same record, with what allows going ahead.
 */
export async function changeFlags(run: MigrationRun, flags: FlagSettings, why: string, needsApps = false): Promise<FlagAcks> {
  const { status, plan, workflowId } = run;
  status.flags = await setFlags({ plan, flags, by: `ferry ${workflowId}` });
  run.record('flags', { by: 'ferry' }, `${why}: write old ${flags.writeOld ? 'on' : 'off'}, write new ${flags.writeNew ? 'on' : 'off'}, reads from ${flags.readFrom}, compare ${flags.comparePercent}% (version ${status.flags.version})`);
  const acks = await awaitFlagAcks({ plan, version: status.flags.version, soakSeconds: plan.lifecycle.soakSeconds });
  const allowed =
    needsApps && acks.confirmed.length === 0 && run.noAppsAllowedBy ? `; going ahead as ${run.noAppsAllowedBy} allows: ${WITHOUT_APPS}` : '';
  run.record(
    'apps',
    { by: 'ferry' },
    (acks.lagging.length
      ? `${acks.confirmed.length} application processes follow version ${status.flags.version}; ${acks.lagging.length} had not after ${plan.lifecycle.soakSeconds} s: ${acks.lagging.join(', ')}`
      : `${acks.confirmed.length} application processes follow version ${status.flags.version}`) + allowed,
  );
  return acks;
}

/**
 * Dual writes that no application follows, unless allowed, wait paused for a person: `ferry
 * resume` goes ahead (recorded), `ferry abort` rolls the flags back.
 */
export async function awaitApplications(run: MigrationRun, acks: FlagAcks): Promise<void> {
  const { status, plan } = run;
  if (acks.confirmed.length > 0 || run.noAppsAllowedBy) return;
  await run.pause(
    { by: 'ferry' },
    'auto-pause',
    `no application process follows the flags (version ${status.flags?.version ?? 0}) after ${plan.lifecycle.soakSeconds} s: ${WITHOUT_APPS}; ` +
      "deploy the application with Ferry's client library, or `ferry resume` to go ahead without it " +
      '(lifecycle.noApps: true in the plan, or start --no-apps, allows it from the start)',
  );
  await condition(() => status.paused === null || run.abortRequest !== null);
}

/**
 * Puts the flags back where no write is lost (lib/lifecycle.ts's flagsAfterAbort), on behalf of
 * `by`. The rollback of every step that changes flags: the safe state depends only on where the
 * flags are now, so it runs once however many such steps ran. Returns what it did, for the record.
 */
export async function rollBackFlags(run: MigrationRun, by: string): Promise<string> {
  const { status, plan } = run;
  const rollback = flagsAfterAbort(status.flags);
  if (rollback.flags) {
    status.flags = await setFlags({ plan, flags: rollback.flags, by });
    run.record('flags', { by: 'ferry' }, `rolled back on abort: ${rollback.note} (version ${status.flags.version})`);
  }
  return rollback.note;
}
