/**
 * Database connections of a worker. Plans name environment variables; only here are those
 * names turned into connection strings, so secrets stay inside the worker process.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';

export type ConnectionEnv = Record<string, string | undefined>;

export interface Databases {
  /** The pool for the database whose URL is in environment variable `envName`. */
  pool(envName: string): pg.Pool;
  /** Whether two environment variables lead to the same database (the copy can stay inside it). */
  sameDatabase(envNameA: string, envNameB: string): boolean;
  close(): Promise<void>;
}

export interface DatabasesOptions {
  env?: ConnectionEnv;
  /** Connections per database per worker process. (Default: 4) */
  poolSize?: number;
  /**
   * How long a Ferry statement waits for a lock before it gives up and tries again later, so a
   * long lock on a table never queues Ferry's sessions (and everyone behind them). (Default: 5000)
   */
  lockTimeoutMs?: number;
  /** The longest a Ferry statement may run. (Default: 300000) */
  statementTimeoutMs?: number;
}

export function createDatabases({
  env = process.env,
  poolSize = 4,
  lockTimeoutMs = 5_000,
  statementTimeoutMs = 300_000,
}: DatabasesOptions = {}): Databases {
  const pools = new Map<string, pg.Pool>();

  function resolve(envName: string): string {
    const url = env[envName];
    if (!url) {
      throw ApplicationFailure.nonRetryable(
        `environment variable ${envName} is not set on this worker; set it to the database URL and restart the worker`,
        'MissingConnection',
      );
    }
    return url;
  }

  return {
    pool(envName) {
      let pool = pools.get(envName);
      if (!pool) {
        const password = passwordCommand(env, envName);
        pool = new pg.Pool({
          // Parsed here rather than given as connectionString, which pg would read again for each
          // connection and let override a password command.
          ...parseIntoClientConfig(resolve(envName)),
          ...(password ? { password } : {}),
          max: poolSize,
          application_name: 'ferry',
          idleTimeoutMillis: 30_000,
          // Values leave as exact, unambiguous text whatever the role's defaults: ISO dates, intervals
          // that read back the same, floats to their last digit, bytea as hex.
          options:
            `-c lock_timeout=${lockTimeoutMs} -c statement_timeout=${statementTimeoutMs} ` +
            '-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c bytea_output=hex',
        });
        // An idle client losing its connection (a database restart) must not crash the worker;
        // the next checkout reconnects.
        pool.on('error', () => {});
        pools.set(envName, pool);
      }
      return pool;
    },
    sameDatabase(a, b) {
      return a === b || resolve(a) === resolve(b);
    },
    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((pool) => pool.end()));
    },
  };
}

/** How long a password command may take before the connection attempt fails. */
const PASSWORD_COMMAND_TIMEOUT_MS = 15_000;

/**
 * A rotating password (a cloud IAM token, a vault lease): `<VARIABLE>_PASSWORD_COMMAND` is a
 * shell command whose standard output is the password, run for each new connection, so a
 * token never outlives its validity inside a pool. Its output never reaches a log or Temporal.
 */
function passwordCommand(env: ConnectionEnv, envName: string): (() => Promise<string>) | undefined {
  const variable = `${envName}_PASSWORD_COMMAND`;
  const command = env[variable];
  if (!command) return undefined;
  return () =>
    new Promise((resolve, reject) => {
      execFile('/bin/sh', ['-c', command], { timeout: PASSWORD_COMMAND_TIMEOUT_MS, env: process.env }, (error, stdout) => {
        const password = stdout.replace(/\r?\n$/, '');
        if (error || password === '') {
          const why = error ? ((error as { killed?: boolean }).killed ? `took over ${PASSWORD_COMMAND_TIMEOUT_MS / 1000} s` : `exited with ${error.code ?? 'an error'}`) : 'printed nothing';
          reject(new Error(`the password command in ${variable} ${why}; run it by hand on this worker to see why`));
          return;
        }
        resolve(password);
      });
    });
}

/** Query option that returns every value as Postgres's own text, untouched by type parsers. */
export const asText = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

const ignoreError = () => {};

/**
 * Runs `use` with a client of its own. A client whose connection broke (killed, database
 * restarted) is discarded, never returned to the pool; and its error event, which pg emits on
 * top of failing the query, is caught so it cannot crash the worker.
 */
export async function withClient<T>(pool: pg.Pool, use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  client.on('error', ignoreError);
  try {
    const result = await use(client);
    client.off('error', ignoreError);
    client.release();
    return result;
  } catch (error) {
    client.off('error', ignoreError);
    client.release(true);
    throw error;
  }
}
