/** `ferry worker`: a worker that copies rows for the migrations on its task queue, its connection URLs from its environment. */
import type { Logger } from '@temporalio/common';
import type { Command } from 'commander';
import { realpathSync, statSync } from 'node:fs';
import type * as TransformLoadExports from '../../activities/transform/load';
import type * as LoggingExports from '../../workers/logging';
import type * as MetricsExports from '../../workers/metrics';
import type { PayloadKey } from '../../workers/payload-codec';
import type * as WorkersExports from '../../workers/worker';
import { CliError, settingsOf } from '../context';
import { ExitCode } from '../exit-codes';
import { lazy, payloadCodecModule } from '../lazy';

/* eslint-disable @typescript-eslint/no-require-imports */
const metricsModule = lazy(() => require('../../workers/metrics') as typeof MetricsExports);
const workersModule = lazy(() => require('../../workers/worker') as typeof WorkersExports);
const loggingModule = lazy(() => require('../../workers/logging') as typeof LoggingExports);
const transformLoadModule = lazy(() => require('../../activities/transform/load') as typeof TransformLoadExports);
/* eslint-enable @typescript-eslint/no-require-imports */

interface WorkerCommandOptions {
  metricsHost?: string;
  metricsPort?: string;
  sdkMetricsPort?: string;
  transformDir?: string;
}

export function addWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('Run a Ferry worker: it copies rows for the migrations on its task queue. Connection URLs come from its environment.')
    .option('--metrics-port <port>', "serve Ferry's metrics at /metrics on this port (default: FERRY_METRICS_PORT, or off)")
    .option('--sdk-metrics-port <port>', "serve the Temporal SDK's worker metrics (temporal_*) on this port (default: FERRY_SDK_METRICS_PORT, or off)")
    .option('--metrics-host <address>', 'the interface both metrics ports listen on; 0.0.0.0 for every one (default: FERRY_METRICS_HOST, or 127.0.0.1)')
    .option('--transform-dir <dir>', 'load transform modules only from this directory, links resolved (default: FERRY_TRANSFORM_DIR, or no modules at all)')
    .action(async (options: WorkerCommandOptions, command: Command) => {
      const { metricsPort, sdkMetricsPort } = metricsPortsOf(options);
      const metricsHost = options.metricsHost ?? process.env.FERRY_METRICS_HOST ?? metricsModule().DEFAULT_METRICS_HOST;
      const transformDir = transformDirOf(options);
      let payloadKeys: PayloadKey[];
      let logger: Logger;
      try {
        payloadKeys = payloadCodecModule().payloadKeysFromEnv();
        logger = loggingModule().createWorkerLogger(loggingModule().logOptionsFromEnv(process.env));
      } catch (error) {
        throw new CliError((error as Error).message, ExitCode.badInput);
      }
      const sdkMetricsUrl = workersModule().installWorkerRuntime({ logger, ...(sdkMetricsPort ? { sdkMetrics: { port: sdkMetricsPort, host: metricsHost } } : {}) });
      if (sdkMetricsUrl) logger.info(`temporal SDK metrics at ${sdkMetricsUrl}`);
      const worker = await workersModule().createFerryWorker({ temporal: settingsOf(command), metricsPort, metricsHost, transformDir, payloadKeys, log: (line) => logger.info(line) });
      logger.info(transformDir ? `transform modules load from ${transformDir} only` : 'transform modules are off (start with --transform-dir DIR to allow them)');
      logger.info(payloadKeys[0] ? `payloads to Temporal are encrypted (key id ${payloadKeys[0].id})` : 'payloads to Temporal are not encrypted (set FERRY_PAYLOAD_KEY to encrypt them)');
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
      await worker.run();
    });
}

/** The transform directory, as its real path; a directory that is not there is a mistake worth stopping for. */
function transformDirOf(options: WorkerCommandOptions): string | null {
  const given = options.transformDir ?? transformLoadModule().transformDirFromEnv();
  if (!given) return null;
  const source = options.transformDir !== undefined ? '--transform-dir' : 'FERRY_TRANSFORM_DIR';
  try {
    const real = realpathSync(given);
    if (!statSync(real).isDirectory()) throw new Error('not a directory');
    return real;
  } catch {
    throw new CliError(`${source} ${given} is not a directory on this machine; create it or give another`, ExitCode.badInput);
  }
}

function metricsPortsOf(options: WorkerCommandOptions): { metricsPort: number; sdkMetricsPort: number } {
  const port = (text: string | undefined, source: string) => {
    try {
      return metricsModule().parseMetricsPort(text, source);
    } catch (error) {
      throw new CliError((error as Error).message, ExitCode.badInput);
    }
  };
  const metricsPort = options.metricsPort !== undefined ? port(options.metricsPort, '--metrics-port') : port(process.env.FERRY_METRICS_PORT, 'FERRY_METRICS_PORT');
  const sdkMetricsPort =
    options.sdkMetricsPort !== undefined ? port(options.sdkMetricsPort, '--sdk-metrics-port') : port(process.env.FERRY_SDK_METRICS_PORT, 'FERRY_SDK_METRICS_PORT');
  if (metricsPort && metricsPort === sdkMetricsPort) throw new CliError(`Ferry's and the SDK's metrics need two ports, not both ${metricsPort}`, ExitCode.badInput);
  return { metricsPort, sdkMetricsPort };
}
