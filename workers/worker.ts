/**
 * A Ferry worker: one process per machine, polling the shared task queue. It holds the
 * database connections, resolved from its own environment.
 */
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createDatabases, type ConnectionEnv } from '../activities/connections';
import type { TemporalSettings } from '../lib/settings';

export interface FerryWorkerOptions {
  temporal: TemporalSettings;
  /** Where connection environment variables are looked up. (Default: process.env) */
  env?: ConnectionEnv;
  /** A prebuilt workflow bundle (tests build one for all workers); otherwise bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Seconds to let running activities finish on shutdown. (Default: 5) */
  shutdownGraceSeconds?: number;
}

export interface FerryWorker {
  worker: Worker;
  /** Runs until shutdown() or a fatal error, then closes connections. */
  run(): Promise<void>;
  shutdown(): void;
}

export const workflowsPath = path.join(__dirname, '..', 'workflows', 'index.ts');

export async function createFerryWorker(options: FerryWorkerOptions): Promise<FerryWorker> {
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const databases = createDatabases({ env: options.env });
  const worker = await Worker.create({
    connection,
    namespace: options.temporal.namespace,
    taskQueue: options.temporal.taskQueue,
    activities: createActivities({ databases }),
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
    shutdownGraceTime: `${options.shutdownGraceSeconds ?? 5}s`,
    // The copier heartbeats its cursor after every batch; sending one a second at most bounds
    // the work a crashed attempt repeats to about a second.
    maxHeartbeatThrottleInterval: '1 second',
  });
  return {
    worker,
    async run() {
      try {
        await worker.run();
      } finally {
        await databases.close();
        await connection.close();
      }
    },
    shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    },
  };
}
