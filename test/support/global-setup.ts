/**
 * Starts the real servers every integration test uses: one throwaway PostgreSQL (or the one in
 * DATABASE_URL) and one Temporal dev server, and builds dist/ when a source changed (the CLI
 * and the workflow bundle that every test worker runs come from there).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startPostgres } from '../../scripts/services/postgres';
import { startTemporal } from '../../scripts/services/temporal';
import { build, buildIsCurrent } from '../../scripts/build';

/** dist/workflow-bundle.js, which `npm run build` writes. */
const prebuiltWorkflowBundlePath = path.join(__dirname, '..', '..', 'dist', 'workflow-bundle.js');

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
  // Tests run the `ferry` command as it is installed, from dist/: rebuilt when a source changed.
  const [postgres, temporal] = await Promise.all([
    startPostgres(),
    startTemporal({ dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': TEST_CONTINUE_AS_NEW_EVENTS } }),
    buildIsCurrent() ? Promise.resolve() : build(),
  ]);
  // Workers in the test process run the same workflow bundle as the built CLI's workers.
  const bundleDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bundle-'));
  const bundlePath = path.join(bundleDir, 'workflows.js');
  copyFileSync(prebuiltWorkflowBundlePath, bundlePath);

  project.provide('postgresUrl', postgres.url());
  project.provide('temporalAddress', temporal.address);
  project.provide('workflowBundlePath', bundlePath);

  return async () => {
    await temporal.stop();
    await postgres.stop();
    rmSync(bundleDir, { recursive: true, force: true });
  };
}
