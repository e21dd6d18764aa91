/**
 * Database connections of a worker. Plans name environment variables; only here are those
 * names turned into connection strings, so secrets stay inside the worker process.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';

/** Ferry's sessions name themselves so; the pacing and back-off checks leave them out of what the application does. */
export const FERRY_APPLICATION = 'ferry';

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

  const settings = sessionSettings(lockTimeoutMs, statementTimeoutMs);

  return {
    pool(envName) {
      let pool = pools.get(envName);
      if (!pool) {
        const password = passwordCommand(env, envName);
        const pooling = poolingOf(env, envName);
        pool = new pg.Pool({
          // Parsed here rather than given as connectionString, which pg would read again for each
          // connection and let override a password command.
          ...parseIntoClientConfig(resolve(envName)),
          ...(password ? { password } : {}),
          max: poolSize,
          // A startup parameter every pooler passes on (PgBouncer tracks it per client); the rest
          // of the settings go by SET, as startup `options` are refused by PgBouncer.
          application_name: FERRY_APPLICATION,
          idleTimeoutMillis: 30_000,
          onConnect: pooling === 'transaction' ? (client) => applyInEveryTransaction(client, settings) : (client) => applyToSession(client, settings),
        });
        poolings.set(pool, pooling);
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

/**
 * How a worker reaches a database, from `<VARIABLE>_POOLING`: `session` for a direct connection
 * or a pooler in session mode, `transaction` for a pooler that hands each transaction to any
 * server connection (PgBouncer's pool_mode = transaction). (Default: session)
 */
export type Pooling = 'session' | 'transaction';

function poolingOf(env: ConnectionEnv, envName: string): Pooling {
  const variable = `${envName}_POOLING`;
  const value = (env[variable] ?? '').trim().toLowerCase();
  if (value === '' || value === 'session') return 'session';
  if (value === 'transaction') return 'transaction';
  throw ApplicationFailure.nonRetryable(`${variable} must be "session" or "transaction", not "${env[variable]}"; fix it on this worker and restart it`, 'BadConnectionSetting');
}

const poolings = new WeakMap<pg.Pool, Pooling>();

/** How a pool made by createDatabases reaches its database. (Default: session, for any other pool) */
export function poolingOfPool(pool: pg.Pool): Pooling {
  return poolings.get(pool) ?? 'session';
}

/**
 * Settings every Ferry statement runs under. Values leave as exact, unambiguous text whatever the
 * role's defaults: ISO dates, intervals that read back the same, floats to their last digit,
 * bytea as hex. Constants and numbers only: they are written into SQL as they are.
 */
function sessionSettings(lockTimeoutMs: number, statementTimeoutMs: number): [string, string][] {
  return [
    ['lock_timeout', String(Math.trunc(lockTimeoutMs))],
    ['statement_timeout', String(Math.trunc(statementTimeoutMs))],
    ['datestyle', 'ISO'],
    ['intervalstyle', 'postgres'],
    ['extra_float_digits', '3'],
    ['bytea_output', 'hex'],
  ];
}

const setAll = (settings: [string, string][], scope: 'SESSION' | 'LOCAL') => settings.map(([name, value]) => `SET ${scope} ${name} = '${value}'`).join('; ');

/** A session of its own (direct, or a session-mode pooler): set once, before the pool hands it out. */
async function applyToSession(client: pg.ClientBase, settings: [string, string][]): Promise<void> {
  await client.query(setAll(settings, 'SESSION'));
}

/** Ends a transaction (not a savepoint's ROLLBACK TO). */
const ENDS_TRANSACTION = /^\s*(COMMIT|END|ABORT|ROLLBACK)(\s+(WORK|TRANSACTION))?(\s+AND\s+NO\s+CHAIN)?\s*;?\s*$/i;
const STARTS_TRANSACTION = /^\s*(BEGIN|START\s+TRANSACTION)\b/i;
const ignore = () => {};
/** A lock that outlives its transaction (not pg_advisory_xact_lock). */
const SESSION_LOCK = /\bpg_(try_)?advisory_lock(_shared)?\s*\(/i;

type Send = (config: unknown, values?: unknown, callback?: unknown) => unknown;
type Callback = (error: unknown, result?: unknown) => void;

/**
 * Behind a transaction-mode pooler a session SET would stay on a server connection that the next
 * transaction may not get, and reach other clients. So the settings travel with every
 * transaction instead, as SET LOCAL (gone at its end): in the same round trip as each BEGIN, and
 * around each statement sent outside one, which thereby runs in a transaction of its own and
 * resolves once committed. What needs a session (a COPY stream outside a transaction, a named
 * prepared statement) is refused.
 * Every query of this client passes through here in the order it was called, so its
 * transaction state is known from the text.
 */
function applyInEveryTransaction(client: pg.ClientBase, settings: [string, string][]): void {
  const send = client.query.bind(client) as Send;
  const local = setAll(settings, 'LOCAL');
  let inTransaction = false;

  async function begin(config: unknown, values: unknown): Promise<unknown> {
    if (typeof config === 'string' && values === undefined) {
      const results = await (send(`${config}; ${local}`) as Promise<unknown>);
      return Array.isArray(results) ? results[0] : results;
    }
    const result = await (send(config, values) as Promise<unknown>);
    await (send(local) as Promise<unknown>);
    return result;
  }

  async function alone(config: unknown, values: unknown): Promise<unknown> {
    await (send(`BEGIN; ${local}`) as Promise<unknown>);
    let result: unknown;
    try {
      result = await (send(config, values) as Promise<unknown>);
    } catch (error) {
      await (send('ROLLBACK') as Promise<unknown>).catch(ignore);
      throw error;
    }
    await (send('COMMIT') as Promise<unknown>);
    return result;
  }

  const query: Send = (config, values, callback) => {
    if (typeof values === 'function') [values, callback] = [undefined, values];
    const text = typeof config === 'string' ? config : ((config as { text?: string } | null)?.text ?? '');
    // pg would keep a named statement for the connection and find it gone on the next server one.
    if ((config as { name?: unknown } | null)?.name) throw new Error('a named prepared statement cannot pass a transaction-mode pooler; send the query unnamed');
    if (inTransaction && !SESSION_LOCK.test(text)) {
      if (ENDS_TRANSACTION.test(text)) inTransaction = false;
      return send(config, values, callback);
    }
    if (typeof (config as { submit?: unknown } | null)?.submit === 'function') {
      throw new Error('a COPY stream or other submittable must run inside a transaction behind a transaction-mode pooler');
    }
    const starts = !inTransaction && STARTS_TRANSACTION.test(text);
    if (starts) inTransaction = true;
    const result = SESSION_LOCK.test(text)
      ? Promise.reject<unknown>(
          ApplicationFailure.nonRetryable(
            'this step holds a session advisory lock across transactions, which a transaction-mode pooler cannot keep; give this database a direct connection (or a session-mode pool) for it',
            'NeedsSession',
          ),
        )
      : starts
        ? begin(config, values)
        : alone(config, values);
    if (typeof callback !== 'function') return result;
    result.then((value) => (callback as Callback)(null, value), (error: unknown) => (callback as Callback)(error));
    return undefined;
  };
  client.query = query as typeof client.query;
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
