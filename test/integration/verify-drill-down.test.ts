/**
 * Large checksum chunks against real PostgreSQL: a differing chunk is narrowed by checksums of
 * its parts before rows are read, every difference is still found and sorted exactly (proved by
 * the test's own md5 of each row on both sides), and only the differing parts' rows are read.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 45_000;
const CHUNK = 20_000;

const ddl = (table: string) => `
  CREATE TABLE ${table} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12, 2));
  INSERT INTO ${table} SELECT i, 'name ' || i, i * 1.25 FROM generate_series(1, ${ROWS}) AS i;`;

/** One difference of each kind, spread over the chunks, and one extra row after the source's last key. */
const sourceChanges = `DELETE FROM items WHERE id = 7000;`;
const targetChanges = `
  UPDATE items_v2 SET name = 'changed' WHERE id = 12345;
  UPDATE items_v2 SET amount = amount + 1 WHERE id = 39999;
  DELETE FROM items_v2 WHERE id = 30001;
  INSERT INTO items_v2 VALUES (50000, 'stray', 1);`;

/** Every difference, from the test's own md5 of each row's text on both sides. */
async function differencesBySql(sourceUrl: string, targetUrl: string): Promise<Omit<Mismatch, 'columns'>[]> {
  const hashes = async (url: string, table: string) =>
    new Map((await sql<{ id: string; hash: string }>(url, `SELECT id::text AS id, md5(t::text) AS hash FROM ${table} AS t`)).map((r) => [r.id, r.hash]));
  const [source, target] = await Promise.all([hashes(sourceUrl, 'items'), hashes(targetUrl, 'items_v2')]);
  const found: Omit<Mismatch, 'columns'>[] = [];
  for (const [id, hash] of source) {
    if (!target.has(id)) found.push({ key: id, category: 'missing' });
    else if (target.get(id) !== hash) found.push({ key: id, category: 'value' });
  }
  for (const id of target.keys()) if (!source.has(id)) found.push({ key: id, category: 'extra' });
  return found.sort((a, b) => Number(a.key) - Number(b.key));
}

describe('verification in large chunks', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  /** Rows the verifier's queries brought back from the target. */
  let targetRowsRead = 0;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('drill_src'), createTestDatabase('drill_tgt')]);
    await sql(sourceUrl, ddl('items') + sourceChanges);
    await sql(targetUrl, ddl('items_v2') + targetChanges);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    const targetPool = databases.pool('TARGET_URL');
    await installFerrySchema(targetPool);
    // Counted, not changed: every query still goes to Postgres and returns what it returned.
    const query = targetPool.query.bind(targetPool) as (...args: unknown[]) => Promise<pg.QueryResult>;
    (targetPool as { query: unknown }).query = async (...args: unknown[]) => {
      const result = await query(...args);
      targetRowsRead += result.rows?.length ?? 0;
      return result;
    };
  });
  afterAll(() => databases?.close());

  const planOf = (extra: Partial<PlanInput> = {}): Plan =>
    validatePlan({
      name: 'drill-down',
      source: { connection: 'SOURCE_URL', table: 'items', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name', amount: 'amount' } },
      verify: { chunkSize: CHUNK },
      ...extra,
    });

  async function verifyAll(plan: Plan, migrationId: string): Promise<{ chunks: number; rowsChecked: number; mismatches: VerifyShardResult['mismatches'] }> {
    const verifier = createVerifier(databases);
    const total = { chunks: 0, rowsChecked: 0, mismatches: { missing: 0, extra: 0, value: 0 } };
    for (let cursor: string | null = null, done = false; !done; ) {
      const result: VerifyShardResult = await new MockActivityEnvironment().run(verifier.verifyShard, {
        migrationId,
        plan,
        shard: { range: wholeKeySpace, partitionValue: null },
        cursor,
        chunkSize: plan.verify.chunkSize,
        pass: 1,
        inFlightDelayMs: 10,
      });
      ({ cursor, done } = result);
      total.chunks += result.chunks;
      total.rowsChecked += result.rowsChecked;
      for (const category of ['missing', 'extra', 'value'] as const) total.mismatches[category] += result.mismatches[category];
    }
    return total;
  }

  const recorded = (migrationId: string) =>
    sql<Mismatch>(targetUrl, `SELECT key, category, columns FROM ferry.mismatches WHERE migration_id = $1 AND pass = 1 ORDER BY key::bigint`, [migrationId]);

  it('finds and sorts every difference while reading only the rows of the parts that differ', async () => {
    const truth = await differencesBySql(sourceUrl, targetUrl);
    expect(truth).toEqual([
      { key: '7000', category: 'extra' },
      { key: '12345', category: 'value' },
      { key: '30001', category: 'missing' },
      { key: '39999', category: 'value' },
      { key: '50000', category: 'extra' },
    ]);
    targetRowsRead = 0;
    const result = await verifyAll(planOf(), 'drill-1');
    // 20,000 + 20,000 + 4,999 source rows, then the rest of the key space after the last key.
    expect(result.chunks).toBe(4);
    expect(result.rowsChecked).toBe(ROWS - 1);
    expect(result.mismatches).toEqual({ missing: 1, extra: 2, value: 2 });
    const found = await recorded('drill-1');
    expect(found.map(({ key, category }) => ({ key, category }))).toEqual(truth);
    expect(found.find((m) => m.key === '12345')!.columns).toEqual(['name']);
    expect(found.find((m) => m.key === '39999')!.columns).toEqual(['amount']);
    // Every chunk differs; read whole, they bring back about 40,000 target rows. Narrowed (two
    // levels of ten parts), each difference costs a part of about 200 rows: under 900 in all.
    expect(targetRowsRead).toBeLessThan(2000);
  });

  it('narrows a chunk whose target side is selected by the source keys (a subset filter) the same way', async () => {
    const plan = planOf({ subset: { where: 'amount > 0' } });
    const result = await verifyAll(plan, 'drill-2');
    // With a filter on more than the key, rows only in the target are left to the pass's final check.
    expect(result.mismatches).toEqual({ missing: 1, extra: 0, value: 2 });
    const found = await recorded('drill-2');
    expect(found.map(({ key, category }) => ({ key, category }))).toEqual([
      { key: '12345', category: 'value' },
      { key: '30001', category: 'missing' },
      { key: '39999', category: 'value' },
    ]);
  });

  it('finds the same differences in the small chunks of a plan that asks for them', async () => {
    const result = await verifyAll(planOf({ verify: { chunkSize: 1000 } }), 'drill-3');
    expect(result.chunks).toBe(46);
    expect(result.mismatches).toEqual({ missing: 1, extra: 2, value: 2 });
    expect((await recorded('drill-3')).map(({ key, category }) => ({ key, category }))).toEqual(await differencesBySql(sourceUrl, targetUrl));
  });
});
