/**
 * The worker's log: JSON lines (pino) with level, time, migration and shard, or the same lines
 * made readable when the output is a terminal. The Temporal runtime logs through it, so the
 * SDK's lines (workflow and activity context included) and Ferry's own share one format.
 */
import type { Logger, LogLevel, LogMetadata } from '@temporalio/common';
import pino from 'pino';
import pinoPretty from 'pino-pretty';
import { migrationIdOf, shardIndexOf } from '../lib/ids';

export type LogFormat = 'json' | 'pretty';

export interface WorkerLoggerOptions {
  /** (Default: FERRY_LOG_FORMAT, or pretty on a terminal and json otherwise) */
  format?: LogFormat;
  /** (Default: FERRY_LOG_LEVEL, or INFO) */
  level?: LogLevel;
  /** Where lines go. (Default: standard output) */
  destination?: NodeJS.WritableStream;
}

const LEVELS: Record<LogLevel, pino.Level> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/** A setting that is not one of the known values, named with what is allowed. */
export class LogSettingError extends Error {
  override name = 'LogSettingError';
}

export function logOptionsFromEnv(env: Record<string, string | undefined>): Pick<WorkerLoggerOptions, 'format' | 'level'> {
  const format = env.FERRY_LOG_FORMAT?.trim().toLowerCase();
  const level = env.FERRY_LOG_LEVEL?.trim().toUpperCase();
  if (format && format !== 'json' && format !== 'pretty') throw new LogSettingError(`FERRY_LOG_FORMAT must be json or pretty, not "${env.FERRY_LOG_FORMAT}"`);
  if (level && !(level in LEVELS)) throw new LogSettingError(`FERRY_LOG_LEVEL must be one of ${Object.keys(LEVELS).join(', ')}, not "${env.FERRY_LOG_LEVEL}"`);
  return { ...(format ? { format: format as LogFormat } : {}), ...(level ? { level: level as LogLevel } : {}) };
}

/**
 * The migration and shard a line is about, from the workflow id the SDK attaches: migration ids
 * read `ferry/<plan>/<time>`, shards and verification shards end in `/shard-<n>`.
 */
export function migrationFields(workflowId: unknown): { migration?: string; shard?: number } {
  const migration = migrationIdOf(workflowId);
  if (migration === null) return {};
  const shard = shardIndexOf(workflowId as string);
  return { migration, ...(shard === null ? {} : { shard }) };
}

export function createWorkerLogger(options: WorkerLoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stdout;
  const format = options.format ?? ((destination as { isTTY?: boolean }).isTTY ? 'pretty' : 'json');
  const stream =
    format === 'pretty'
      ? pinoPretty({ destination, colorize: Boolean((destination as { isTTY?: boolean }).isTTY) && !process.env.NO_COLOR, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true })
      : destination;
  const logger = pino(
    { level: LEVELS[options.level ?? 'INFO'], base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    stream,
  );
  const log = (level: LogLevel, message: string, meta: LogMetadata = {}) => {
    const { error, ...rest } = meta as LogMetadata & { error?: unknown };
    const fields = { ...migrationFields(rest.workflowId), ...rest, ...(error instanceof Error ? { err: error } : error !== undefined ? { err: String(error) } : {}) };
    logger[LEVELS[level]](fields, message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}
