/**
 * Verifier proves that the target holds what the source holds through the plan's transform,
 * says precisely where it does not (keys, categories and column names, never values), and
 * repairs it from the source. Chunks are compared by count and an order-independent digest
 * computed inside both databases at once; only chunks that differ are read row by row.
 */
import { withHeartbeats } from '../heartbeats';
import type { Databases } from '../connections';
import { transformDirFromEnv } from '../transform/load';
import { createShardComparison } from './compare';
import type { VerifyShardInput, VerifyShardResult } from './shard-calls';
import { createBothSides, MIN_PAGE_ROWS, type MismatchCounts } from './both-sides';
import { createCoverageCheck, type CoverageInput, type CoverageResult } from './coverage';
import { createRepair, type RepairInput, type RepairResult } from './repair';
import { createMismatchReport } from './report';

export { MAX_EXAMPLES } from './compare';
export type { VerifyCounts, VerifyShardInput, VerifyShardResult } from './shard-calls';
export type { ColumnValues, MismatchCounts } from './both-sides';
export type { RepairInput, RepairResult } from './repair';
export type { MismatchReport, MismatchReportExample, MismatchReportInput } from './report';

/** The verifier's activities: compare, repair, report and coverage, over one reader of both sides. */
export function createVerifier(databases: Databases, transformDir: string | null = transformDirFromEnv()) {
  const sides = createBothSides(databases, transformDir);
  const { verificationOf, bothSides } = sides;

  const coverage = createCoverageCheck(databases, {
    shapeOf: async (plan, samplePercent, migrationId) => (await verificationOf(plan, null, samplePercent, migrationId)).shape,
    bothSides: async (plan, keys, samplePercent, migrationId) => {
      const v = await verificationOf(plan, null, samplePercent, migrationId);
      return bothSides(plan, v, { keys }, { keys }, Math.max(MIN_PAGE_ROWS, keys.length + 1));
    },
  });

  const activities = {
    ...coverage,
    ...createShardComparison(databases, sides),
    ...createRepair(databases, sides, transformDir),
    ...createMismatchReport(databases, sides),
  };

  // Heartbeats from a timer, whatever a call is doing: a long statement, the in-flight delay.
  return {
    ...activities,
    verifyShard: (input: VerifyShardInput): Promise<VerifyShardResult> => withHeartbeats((heartbeats) => activities.verifyShard(input, heartbeats)),
    repairMismatches: (input: RepairInput): Promise<RepairResult> => withHeartbeats((heartbeats) => activities.repairMismatches(input, heartbeats)),
    // Their re-reads wait out the in-flight delay, and under capture the change apply.
    recheckOpenMismatches: (input: RepairInput): Promise<MismatchCounts> => withHeartbeats(() => activities.recheckOpenMismatches(input)),
    verifyCoverage: (input: CoverageInput): Promise<CoverageResult> => withHeartbeats(() => activities.verifyCoverage(input)),
  };
}
