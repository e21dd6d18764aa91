/**
 * Starts the real servers every integration test uses: one throwaway PostgreSQL (or the one in
 * DATABASE_URL) and one Temporal dev server, and bundles the workflows once for all workers.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../../scripts/services/postgres';
import { startTemporal } from '../../scripts/services/temporal';
import { workflowsPath } from '../../workers/worker';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
    temporalAddress: string;
    workflowBundlePath: string;
  }
}

/** Low enough that shards continue-as-new several times in every test run. */
export const TEST_CONTINUE_AS_NEW_EVENTS = 40;

export default async function setup(project: TestProject) {
  const [postgres, temporal, bundle] = await Promise.all([
    startPostgres(),
    startTemporal({ dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': TEST_CONTINUE_AS_NEW_EVENTS } }),
    bundleWorkflowCode({ workflowsPath, logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error } }),
  ]);
  const bundleDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bundle-'));
  const bundlePath = path.join(bundleDir, 'workflows.js');
  writeFileSync(bundlePath, bundle.code);

  project.provide('postgresUrl', postgres.url());
  project.provide('temporalAddress', temporal.address);
  project.provide('workflowBundlePath', bundlePath);

  return async () => {
    await temporal.stop();
    await postgres.stop();
    rmSync(bundleDir, { recursive: true, force: true });
  };
}
