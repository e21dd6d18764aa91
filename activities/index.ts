/** Every activity a Ferry worker runs, bound to the worker's database connections. */
import type { Databases } from './connections';
import { createCopier } from './copier';
import { createInspector } from './inspector';
import { createShardPlanner } from './shard-planner';

export interface ActivityDependencies {
  databases: Databases;
}

export function createActivities({ databases }: ActivityDependencies) {
  return {
    ...createInspector(databases),
    ...createCopier(databases),
    ...createShardPlanner(databases),
  };
}

export type FerryActivities = ReturnType<typeof createActivities>;
