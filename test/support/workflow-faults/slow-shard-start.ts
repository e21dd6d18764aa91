/**
 * A fault for tests: the migration's start of a shard's child workflow reaches the server
 * SLOW_START_MS late, as it can when the server is busy. Meanwhile the shard counts as running
 * in the migration and does not exist in Temporal, so a signal sent to it then finds nothing.
 * Bundled only into the workflows of a test's own worker (bundleWorkflowCode's
 * workflowInterceptorModules), never into Ferry's.
 */
import { sleep, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export const SLOW_START_MS = 4000;

export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      async startChildWorkflowExecution(input, next) {
        if (workflowInfo().workflowType === 'migrationWorkflow') await sleep(SLOW_START_MS);
        return next(input);
      },
    },
  ],
});
