/** Waiting for a migration's change apply to catch up, as its status reports it. */
import type { CaptureLag } from '../../lib/capture';
import { migrationReport } from '../../operator';
import { eventually, type TestWorker } from './harness';

/**
 * Waits until the change apply reports no change waiting in a lag measured after `since` (when
 * the writer stopped: one measured before may read zero between two writes); returns that lag.
 * A status no worker answers (one just killed or restarted) is no answer yet.
 */
export async function noChangeWaitingSince(worker: Pick<TestWorker, 'client'>, id: string, since: string): Promise<CaptureLag> {
  return eventually(
    async () => {
      const lag = (await migrationReport(worker.client, id).catch(() => null))?.status?.capture?.lag;
      return lag?.changesWaiting === 0 && (lag.measuredAt ?? '') > since ? lag : undefined;
    },
    60_000,
    'no change waiting',
  );
}
