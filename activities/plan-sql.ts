/**
 * How statements that carry SQL from a plan run: always as one statement over the extended
 * protocol (which refuses several), and inside a READ ONLY transaction wherever Ferry promises
 * not to write (dry runs, probes, shard planning, verification reads of the source).
 */
import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import { sqlFragmentProblem } from '../lib/sql-fragment';
import type { Plan } from '../lib/plan';
import { withClient } from './connections';
import { sql } from './sql';

/** A query config that pg sends with Parse/Bind/Execute even when it has no parameters. */
export type OneStatement = pg.QueryConfig & { queryMode: 'extended'; rowMode?: 'array'; types?: pg.CustomTypesConfig };

/**
 * `query` as one statement: pg sends a query without parameters over the simple protocol,
 * which runs `SELECT 1; COMMIT; DELETE ...` as three statements; the extended protocol refuses.
 */
export function oneStatement<Q extends pg.QueryConfig & { rowMode?: 'array'; types?: pg.CustomTypesConfig }>(
  query: Q | string,
): Q & OneStatement {
  const config = typeof query === 'string' ? ({ text: query } as Q) : query;
  return { ...config, queryMode: 'extended' };
}

/**
 * Runs `use` in a READ ONLY transaction of a client of its own, and always rolls it back. A
 * setting changed inside (set_config('default_transaction_read_only', 'off', false)) is undone
 * by the rollback, and a session advisory lock taken inside (which a rollback keeps, and which
 * a function of the database could take out of sight of lib/sql-fragment) is released before
 * it, so nothing a statement does here reaches the session's next transaction.
 */
export async function readOnly<T>(pool: pg.Pool, use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN READ ONLY');
    // No ROLLBACK after a failed use: withClient discards the connection, which ends the
    // transaction and its session's locks. A ROLLBACK would queue behind a COPY out that the use
    // gave up on midway (pg-copy-streams does not cancel it) and wait for ever.
    const result = await use(client);
    // Inside the transaction, so that behind a transaction-mode pooler it reaches the server
    // connection that took the lock. Ferry itself takes only transaction-level advisory locks.
    await client.query(sql`SELECT pg_advisory_unlock_all()`);
    await client.query('ROLLBACK');
    return result;
  });
}

/** One read-only statement on its own transaction. */
export function readOnlyQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  pool: pg.Pool,
  query: pg.QueryConfig & { rowMode?: 'array'; types?: pg.CustomTypesConfig },
): Promise<pg.QueryResult<R>> {
  return readOnly(pool, (client) => client.query<R>(oneStatement(query)));
}

/** Every SQL fragment of a plan, with the path a person would fix. */
export function planSqlFragments(plan: Plan): { path: string; text: string }[] {
  const fragments: { path: string; text: string }[] = [];
  for (const [column, expression] of Object.entries(plan.transform.sql ?? {})) {
    fragments.push({ path: `transform.sql.${column}`, text: expression });
  }
  if (plan.subset?.where) fragments.push({ path: 'subset.where', text: plan.subset.where });
  if (plan.backoff.probe) fragments.push({ path: 'backoff.probe.sql', text: plan.backoff.probe.sql });
  for (const [column, expression] of Object.entries(plan.capture?.oldShapeView?.columns ?? {})) {
    fragments.push({ path: `capture.oldShapeView.columns.${column}`, text: expression });
  }
  return fragments;
}

/**
 * Refuses a plan whose SQL fragments could end a statement (the plan schema refuses them too;
 * this holds for a plan that reached a worker some other way). Needed before COPY, which
 * pg-copy-streams can send only over the simple protocol.
 */
export function assertPlanSqlIsSafe(plan: Plan): void {
  const problems = planSqlFragments(plan).flatMap(({ path, text }) => {
    const problem = sqlFragmentProblem(text);
    return problem ? [`${path} ${problem}`] : [];
  });
  if (problems.length > 0) throw ApplicationFailure.nonRetryable(`the plan's SQL is refused: ${problems.join('; ')}`, 'UnsafePlanSql');
}
