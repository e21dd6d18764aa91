/**
 * The check that a batch's key range is still empty on the target runs before every batch,
 * while the copy fills the target and before anyone has analyzed it. It must walk the key index
 * then too: planned as a scan of the table, each check read every row copied so far.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { copySpecOf, targetRangeIsClearSql } from '../../activities/copy/copy-statements';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

describe('the range-clear check on a target being filled', () => {
  let url: string;
  let client: pg.Client;
  beforeAll(async () => {
    url = await createTestDatabase('range_clear');
    // Copied rows, never analyzed: what a backfill's target looks like halfway through.
    await sql(url, `CREATE TABLE accounts (id int8 PRIMARY KEY, note text) WITH (autovacuum_enabled = off);
                    CREATE TABLE accounts_new (id int8 PRIMARY KEY, note text) WITH (autovacuum_enabled = off);
                    INSERT INTO accounts_new SELECT g, repeat('x', 40) FROM generate_series(1, 200000) g;`);
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });
  afterAll(() => client?.end());

  it('walks the key index, whatever the bounds, and finds the range clear or not', async () => {
    const plan = validatePlan({
      name: 'range-clear',
      source: { connection: 'DATABASE_URL', table: 'accounts', key: 'id' },
      target: { connection: 'DATABASE_URL', table: 'accounts_new' },
      transform: { sql: { id: 'id', note: 'note' } },
    });
    const spec = { ...copySpecOf(plan), honourTombstones: false };
    for (const [range, clear] of [
      [{ after: '200000', upTo: '250000' }, true],
      [{ after: '150000', upTo: '250000' }, false],
      [{ after: null, upTo: '10' }, false],
    ] as const) {
      const check = targetRangeIsClearSql(spec, range);
      const explained = await client.query<{ 'QUERY PLAN': string }>({ text: `EXPLAIN ${check.text}`, values: check.values });
      const plan = explained.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan, plan).not.toMatch(/Seq Scan/);
      expect(plan, plan).toMatch(/Index (Only )?Scan using accounts_new_pkey/);
      expect((await client.query<{ clear: boolean }>(check)).rows[0]!.clear).toBe(clear);
    }
  });
});
