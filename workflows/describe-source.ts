/** Reads a source table's shape on a worker, which alone holds the connection variables (`ferry init`). */
import { proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { SourceDescription } from '../activities/inspect/describe-source';

const { describeSource } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 2, nonRetryableErrorTypes: ['MissingConnection'] },
});

export async function describeSourceWorkflow(input: { connection: string; schema: string; table: string }): Promise<SourceDescription> {
  return describeSource(input);
}
