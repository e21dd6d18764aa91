/** One transaction on a client of its own: committed when the work returns, rolled back when it throws. */
import type pg from 'pg';
import { withClient } from './connections';
import { sql } from './sql';

export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      // The work's error is the one worth reporting; a rollback on a broken connection fails too.
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  });
}

/**
 * inTransaction waiting at most `lockTimeout` (such as '2s') for any lock, so that DDL on a busy
 * table fails fast (55P03) instead of queueing the application's writers behind it.
 */
export function inTransactionWithLockTimeout<T>(pool: pg.Pool, lockTimeout: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(pool, async (client) => {
    await client.query(sql`SELECT set_config('lock_timeout', ${lockTimeout}, true)`);
    return work(client);
  });
}
