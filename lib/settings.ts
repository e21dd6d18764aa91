/** Where Ferry finds Temporal: shared by the CLI, the worker and the scripts. */

export interface TemporalSettings {
  /** host:port of the Temporal frontend. (Default: localhost:7233, or TEMPORAL_ADDRESS) */
  address: string;
  /** (Default: default, or TEMPORAL_NAMESPACE) */
  namespace: string;
  /** The task queue every Ferry worker polls. (Default: ferry, or FERRY_TASK_QUEUE) */
  taskQueue: string;
}

export function temporalSettings(env: Record<string, string | undefined>, overrides: Partial<TemporalSettings> = {}): TemporalSettings {
  return {
    address: overrides.address ?? env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: overrides.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: overrides.taskQueue ?? env.FERRY_TASK_QUEUE ?? 'ferry',
  };
}
