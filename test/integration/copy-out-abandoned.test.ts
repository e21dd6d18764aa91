/**
 * A COPY out of the source that its reader gives up on midway (the target refused the rows, a
 * writer failed) must not hold the source connection forever: the batch falls back or fails at
 * once, and the pool goes on serving. A source still sending when the target refuses is the
 * common case on a loaded machine, so the test makes it certain with a large batch.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { writeBatch } from '../../activities/copy/batch-writer';
import { copyOutSql, copySpecOf } from '../../activities/copy/copy-statements';
import { readOnly } from '../../activities/plan-sql';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, sql, sqlRow } from '../support/harness';

const ROWS = 200_000;

/** Rejects when `promise` has not settled within `ms`, naming what hung. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('a COPY out that its reader abandons', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('abandon_src'), createTestDatabase('abandon_dst')]);
    await sql(sourceUrl, `
      CREATE TABLE items (id bigint PRIMARY KEY, note text NOT NULL);
      INSERT INTO items SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, ${ROWS}) i;`);
    // Key 1 is on the target already: a straight COPY of the batch is refused at its first row.
    await sql(targetUrl, `
      CREATE TABLE items (id bigint PRIMARY KEY, note text NOT NULL);
      INSERT INTO items VALUES (1, 'written by the application');`);
    // One connection per database: a connection left in COPY would starve the next use.
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl }, poolSize: 1 });
    // The copy lock and the tombstones live in Ferry's schema on the target.
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(async () => {
    await databases?.close();
  });

  it('fails its reader at once and leaves the source pool serving', async () => {
    const pool = databases.pool('SOURCE_URL');
    const refusing = new Writable({
      highWaterMark: 1,
      write(_chunk, _encoding, done) {
        setTimeout(() => done(new Error('the target refused the rows')), 5);
      },
    });
    const read = readOnly(pool, (client) => pipeline(client.query(copyTo('COPY items TO STDOUT')), refusing));
    await expect(within(20_000, 'the abandoned read', read)).rejects.toThrow('the target refused the rows');
    const { rows } = await within(20_000, 'the next query on the pool', pool.query('SELECT count(*)::int AS rows FROM items'));
    expect(rows[0].rows).toBe(ROWS);
  });

  it('falls back to staging when the target refuses a straight COPY while the source still sends', async () => {
    const plan = validatePlan({
      name: 'abandoned-copy',
      source: { connection: 'SOURCE_URL', table: 'items', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'items' },
      transform: { sql: { id: 'id', note: 'note' } },
    });
    // The batch claims the keys after 1, which the target has none of, so it takes the straight
    // path; its rows start at key 1, which the target refuses while the source is still sending.
    const spec = copySpecOf(plan);
    const sourcePool = databases.pool('SOURCE_URL');
    const targetPool = databases.pool('TARGET_URL');
    const out = copyOutSql(spec, wholeKeySpace);
    const written = await within(
      60_000,
      'the batch',
      writeBatch(targetPool, spec, { after: '1', upTo: null }, (send) => readOnly(sourcePool, (source) => send(source.query(copyTo(out))))),
    );
    expect(written).toBe(ROWS - 1);
    // The application's row is kept (the plan's default conflict policy), every other row arrived.
    const target = await sqlRow(targetUrl, `SELECT count(*)::int AS rows, md5(string_agg(items::text, ',' ORDER BY id) FILTER (WHERE id > 1)) AS digest, min(note) FILTER (WHERE id = 1) AS first FROM items`);
    const source = await sqlRow(sourceUrl, `SELECT md5(string_agg(items::text, ',' ORDER BY id) FILTER (WHERE id > 1)) AS digest FROM items`);
    expect(target).toEqual({ rows: ROWS, digest: source.digest, first: 'written by the application' });
  });
});
