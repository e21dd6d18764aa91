/** One transaction on a client of its own: committed when the work returns, rolled back when it throws. */
import type pg from 'pg';
import { withClient } from './connections';

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
