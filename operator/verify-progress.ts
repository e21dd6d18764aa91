/**
 * How far the verification pass under way has got, from Temporal's visibility store: each shard
 * is verified by a child workflow `<id>/verify-<pass>/shard-<n>`, so counting the finished ones
 * says how many shards of the pass are checked, without a worker and without touching a history.
 */
import type { Client } from '@temporalio/client';
import type { MigrationStatus, VerifyPassProgress } from '../lib/status';
import { verifyPassPrefix } from '../lib/ids';

/** The pass under way and its shards verified so far; null when not verifying or not known. */
export async function verifyPassProgress(client: Client, status: MigrationStatus): Promise<VerifyPassProgress | null> {
  if (status.phase !== 'verifying' && status.phase !== 'awaiting-approval') return null;
  // The worker names the pass under way (a run's passes are numbered among all the migration's,
  // and a sampled pass's ids say so); a worker from before that is guessed for.
  const underWay = status.verifyPassUnderWay;
  const pass = underWay?.id ?? (status.verification?.passes ?? 0) + 1;
  // The '/' keeps pass 1 from counting the shards of passes 10 to 19 and of sampled pass 1.
  const prefix = `${verifyPassPrefix(status.migrationId, pass, underWay?.sampled ?? false)}/`.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  const latest = new Map<string, string>();
  try {
    for await (const run of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) {
      // Newest first: the first run seen of an id is its latest (a shard may continue-as-new).
      if (!latest.has(run.workflowId)) latest.set(run.workflowId, run.status.name);
    }
  } catch {
    return null; // a server without STARTS_WITH: the pass's end still reports its figures
  }
  if (latest.size === 0) return status.phase === 'verifying' ? { pass, shardsVerified: 0, shardsRunning: 0, shards: status.shards.length } : null;
  const states = [...latest.values()];
  return {
    pass,
    shardsVerified: states.filter((s) => s === 'COMPLETED').length,
    shardsRunning: states.filter((s) => s === 'RUNNING').length,
    shards: status.shards.length,
  };
}
