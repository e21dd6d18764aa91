/** Every activity a Ferry worker runs, bound to the worker's database connections. */
import { createFerryMetrics, type FerryMetrics } from '../workers/metrics';
import { createAuditLog } from './audit';
import type { Databases } from './connections';
import { createCopier } from './copier';
import { installFerrySchema } from './ferry-schema';
import { createFlagSetter } from './flags';
import { createInspector } from './inspector';
import { createMigrationRegistry } from './migration-registry';
import { createShardPlanner } from './shard-planner';
import { createVerifier } from './verifier';
import type { Plan } from '../lib/plan';

export interface ActivityDependencies {
  databases: Databases;
  /** Where the activities record Ferry's metrics. (Default: a registry of their own, not served) */
  metrics?: FerryMetrics;
}

export function createActivities({ databases, metrics = createFerryMetrics() }: ActivityDependencies) {
  return {
    ...createInspector(databases),
    ...createCopier(databases, metrics),
    ...createShardPlanner(databases),
    ...createFlagSetter(databases),
    ...createMigrationRegistry(databases),
    ...createVerifier(databases),
    ...createAuditLog(databases),
    /** Installs Ferry's schema (tombstones, failed records) on the target. Safe to run twice. */
    async prepareTarget({ plan }: { plan: Plan }): Promise<void> {
      await installFerrySchema(databases.pool(plan.target.connection));
    },
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
