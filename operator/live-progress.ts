/**
 * A shard reports to its migration only between copy calls (every few seconds). In between, the
 * running copy call's last heartbeat says how far it got: read it from Temporal (decoded as the
 * client decodes any payload) and add it, so status is live without writing to any history.
 */
import type { Client } from '@temporalio/client';
import { shardWorkflowId } from '../lib/ids';
import { addLiveCopy, copyProgressOf } from '../lib/progress';
import { recountRows, type MigrationStatus } from '../lib/status';

/** The last heartbeat of the copy call a shard workflow runs; null when there is none (yet). */
async function runningCopy(client: Client, shardWorkflowId: string) {
  const child = await client.workflow.getHandle(shardWorkflowId).describe();
  const payload = child.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
  if (!payload) return null;
  // Raw payloads are as stored: decoded (decrypted) by the client's codecs first.
  const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
  let decoded = [payload];
  for (const codec of [...payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return copyProgressOf(payloadConverter.fromPayload(decoded[0]!));
}

/** Adds each running shard's copy under way to `status`, and recounts its totals. */
export async function addLiveProgress(client: Client, status: MigrationStatus): Promise<void> {
  await Promise.all(
    status.shards
      .filter((shard) => shard.state === 'running')
      .map(async (shard) => {
        try {
          const live = await runningCopy(client, shardWorkflowId(status.migrationId, shard.index));
          if (live) addLiveCopy(shard, live);
          if (live?.throttleReason !== undefined) shard.throttleReason = live.throttleReason;
        } catch {
          // The shard finished between the query and the describe: its own report is current.
        }
      }),
  );
  recountRows(status);
}
