import os from 'node:os';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The integration files that take longest, longest first, as measured in a full run on a 2-core
 * machine. On a clean clone vitest has no durations to go by and starts the largest files first,
 * which left the faults and differential files (three to four minutes each) to end the run alone.
 */
const LONGEST = ['faults', 'differential', 'capture-logical', 'bad-input', 'lifecycle', 'capture-faults', 'capture-pgbench', 'capture', 'operator-truth', 'backoff'].map(
  (name) => `/test/integration/${name}.test.ts`,
);

function rank(file: TestSpecification): number {
  const at = LONGEST.findIndex((suffix) => file.moduleId.endsWith(suffix));
  return at < 0 ? LONGEST.length : at;
}

/** vitest's order, except that the longest files start first (Array.prototype.sort is stable). */
class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    // Forks, not threads: the Temporal worker's native runtime wants a process of its own.
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
    // Three files at once on a 2-core machine: integration tests mostly wait on Postgres,
    // Temporal's timers and child processes, so a third file fills the idle CPU.
    maxWorkers: 3,
    sequence: { sequencer: LongestFirstSequencer },
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
          // Each fork runs file after file with the modules it has loaded: a process and fresh
          // imports for every file cost about 15% of the suite's CPU (scripts/suite-cpu.ts). Files
          // share nothing else: each makes its own databases and task queues.
          isolate: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
