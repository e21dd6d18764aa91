/** Where Ferry finds Temporal: shared by the CLI, the worker and the scripts. */
import { DEFAULT_TASK_QUEUE } from './ids';

export interface TemporalSettings {
  /** host:port of the Temporal frontend. (Default: localhost:7233, or TEMPORAL_ADDRESS) */
  address: string;
  /** (Default: default, or TEMPORAL_NAMESPACE) */
  namespace: string;
  /** The task queue every Ferry worker polls. (Default: ferry, or FERRY_TASK_QUEUE) */
  taskQueue: string;
  /** TLS toward Temporal: true for the system's roots, or certificates (read by workers/temporal-connection.ts). */
  tls?: boolean | TemporalTls;
  /** Sent as `authorization: Bearer <key>`; stays in the process that read it. */
  apiKey?: string;
  /** Extra gRPC headers from a profile's grpc_meta. */
  metadata?: Record<string, string>;
}

/** The SDK's TLS settings, spelled out here so this module stays free of SDK runtime code. */
export interface TemporalTls {
  serverNameOverride?: string;
  serverRootCACertificate?: Buffer;
  clientCertPair?: { crt: Buffer; key: Buffer };
}

export function temporalSettings(env: Record<string, string | undefined>, overrides: Partial<TemporalSettings> = {}): TemporalSettings {
  return {
    address: overrides.address ?? env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: overrides.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: overrides.taskQueue ?? env.FERRY_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
  };
}
