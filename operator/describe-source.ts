/** A source table as a worker sees it (columns, key candidates), read for scaffolding a plan; writes nothing. */
import type { Client } from '@temporalio/client';
import type { SourceDescription } from '../activities/inspect/describe-source';
import { tableKey } from '../lib/ids';
import type { TemporalSettings } from '../lib/settings';
import type { describeSourceWorkflow } from '../workflows/describe-source';

export async function describeSourceTable(
  client: Client,
  temporal: TemporalSettings,
  source: { connection: string; schema: string; table: string },
): Promise<SourceDescription> {
  return client.workflow.execute<typeof describeSourceWorkflow>('describeSourceWorkflow', {
    taskQueue: temporal.taskQueue,
    workflowId: `ferry/init/${tableKey(source)}/${new Date().toISOString()}`,
    args: [source],
    workflowExecutionTimeout: '5 minutes',
  });
}
