/**
 * The modules a worker evaluates once and shares between all the workflows it runs (the bundle's
 * preloadModules; see workers/worker.ts and scripts/build.ts): zod and yaml, which every new
 * workflow (a migration, each of its shards) would otherwise evaluate again before its first
 * step, tens of milliseconds of a worker's one workflow thread each time.
 *
 * Contract: nothing shared may hold one workflow's state. zod keeps none between parses; its
 * module-level settings (the default locale and memoizer) are the same for every workflow. yaml
 * is only imported along with the plan (workflows never parse YAML). The SDK deep-freezes shared
 * modules once they are loaded, so both are warmed here first: zod's first schema sets its
 * defaults while they can still be written.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';

const warm = z.object({ text: z.string(), count: z.number().int().optional() }).strict();
warm.safeParse({ text: 'ready', count: 1 });
warm.safeParse({ text: 1, extra: true });
parseDocument('warm: true').toJS();
