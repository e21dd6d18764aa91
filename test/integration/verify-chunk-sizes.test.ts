/**
 * Chunk sizes that adapt, against real PostgreSQL: after a chunk that differs the next ones are
 * half as large, after equal ones they grow back by quarters to the plan's chunk size, and every difference is
 * still found and sorted exactly (proved by the test's own md5 of each row on both sides).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { MIN_ADAPTED_CHUNK } from '../../activities/verify/chunk-size';
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

describe('verification chunk sizes', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  /** Holds a module transform that makes the same rows as the SQL transform. */
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-chunks-'));
    writeFileSync(path.join(dir, 'transform.ts'), `export default (row: Record<string, any>) => ({ id: row.id, name: row.name, amount: row.amount });`);
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('chunks_src'), createTestDatabase('chunks_tgt')]);
    await sql(sourceUrl, ddl('items') + sourceChanges);
    await sql(targetUrl, ddl('items_v2') + targetChanges);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(async () => {
    await databases?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const planOf = (extra: Partial<PlanInput> = {}): Plan =>
    validatePlan({
      name: 'chunk-sizes',
      source: { connection: 'SOURCE_URL', table: 'items', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name', amount: 'amount' } },
      verify: { chunkSize: CHUNK },
      ...extra,
    });

  async function verifyAll(plan: Plan, migrationId: string): Promise<{ chunks: number; rowsChecked: number; mismatches: VerifyShardResult['mismatches'] }> {
    const verifier = createVerifier(databases, dir);
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

  it('halves the chunk after a difference, grows it back by quarters after equal ones, and finds every difference', async () => {
    const truth = await differencesBySql(sourceUrl, targetUrl);
    expect(truth).toEqual([
      { key: '7000', category: 'extra' },
      { key: '12345', category: 'value' },
      { key: '30001', category: 'missing' },
      { key: '39999', category: 'value' },
      { key: '50000', category: 'extra' },
    ]);
    const result = await verifyAll(planOf(), 'chunks-1');
    // (, 20001] differs, so (20001, 30001] is 10,000 keys; it differs: (30001, 35001] is 5,000;
    // equal, the size grows to 6,250, but (35001, 40001] was bounded already; it differs, so
    // (40001, 43126] is bounded again at 3,125; equal, then (43126, 45000], already bounded, holds
    // the source's last key; then the rest of the key space. Fixed chunks of 20,000 would be 4.
    expect(result.chunks).toBe(7);
    expect(result.rowsChecked).toBe(ROWS - 1);
    expect(result.mismatches).toEqual({ missing: 1, extra: 2, value: 2 });
    const found = await recorded('chunks-1');
    expect(found.map(({ key, category }) => ({ key, category }))).toEqual(truth);
    expect(found.find((m) => m.key === '12345')!.columns).toEqual(['name']);
    expect(found.find((m) => m.key === '39999')!.columns).toEqual(['amount']);
  });

  it('bounds the smaller chunks again where the target side is selected by the source keys (a subset filter)', async () => {
    const result = await verifyAll(planOf({ subset: { where: 'amount > 0' } }), 'chunks-2');
    expect(result.chunks).toBe(7);
    // With a filter on more than the key, rows only in the target are left to the pass's final check.
    expect(result.mismatches).toEqual({ missing: 1, extra: 0, value: 2 });
    const found = await recorded('chunks-2');
    expect(found.map(({ key, category }) => ({ key, category }))).toEqual([
      { key: '12345', category: 'value' },
      { key: '30001', category: 'missing' },
      { key: '39999', category: 'value' },
    ]);
  });

  it('bounds the smaller chunks again where a module transform\'s digest was read ahead for the old bound', async () => {
    const plan = planOf({ transform: { module: path.join(dir, 'transform.ts'), columns: ['id', 'name', 'amount'] } });
    const result = await verifyAll(plan, 'chunks-module');
    expect(result.chunks).toBe(7);
    expect(result.rowsChecked).toBe(ROWS - 1);
    expect(result.mismatches).toEqual({ missing: 1, extra: 2, value: 2 });
    expect((await recorded('chunks-module')).map(({ key, category }) => ({ key, category }))).toEqual(await differencesBySql(sourceUrl, targetUrl));
  });

  it('keeps a chunk size below the smallest adapted one fixed, and finds the same differences', async () => {
    expect(500).toBeLessThan(MIN_ADAPTED_CHUNK);
    const result = await verifyAll(planOf({ verify: { chunkSize: 500 } }), 'chunks-3');
    expect(result.chunks).toBe(Math.ceil((ROWS - 1) / 500) + 1);
    expect(result.mismatches).toEqual({ missing: 1, extra: 2, value: 2 });
    expect((await recorded('chunks-3')).map(({ key, category }) => ({ key, category }))).toEqual(await differencesBySql(sourceUrl, targetUrl));
  });
});
