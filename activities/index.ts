/** Every activity a Ferry worker runs, bound to the worker's database connections. */
import type { Databases } from './connections';
import { createCopier } from './copier';
import { installFerrySchema } from './ferry-schema';
import { createInspector } from './inspector';
import { createShardPlanner } from './shard-planner';
import { createVerifier } from './verifier';
import type { Plan } from '../lib/plan';

export interface ActivityDependencies {
  databases: Databases;
}

export function createActivities({ databases }: ActivityDependencies) {
  return {
    ...createInspector(databases),
    ...createCopier(databases),
    ...createShardPlanner(databases),
    ...createVerifier(databases),
    /** Installs Ferry's schema (tombstones, failed records) on the target. Safe to run twice. */
    async prepareTarget({ plan }: { plan: Plan }): Promise<void> {
      await installFerrySchema(databases.pool(plan.target.connection));
    },
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
