import os from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Forks, not threads: the Temporal worker's native runtime wants a process of its own.
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
    // Three files at once on a 2-core machine: integration tests mostly wait on Postgres,
    // Temporal's timers and child processes, so a third file fills the idle CPU.
    maxWorkers: 3,
    // Workers load transform modules only from a directory they are given; tests write theirs
    // under the system's temporary directory.
    env: { FERRY_TRANSFORM_DIR: os.tmpdir() },
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
