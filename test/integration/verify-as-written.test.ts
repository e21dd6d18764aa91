/**
 * Verification takes the transform's values as a write into the target takes them, not as an
 * explicit cast would: a string longer than a varchar(n) or char(n) column (or a domain over
 * one), or a bit string of the wrong length, which the copy refuses and a cast would cut, is a
 * difference from the cut value a target holds; and under a module transform, a source row the target refuses is a
 * difference of that row, never an extra target row for repair to delete. Between two databases,
 * a value whose type the target column converts is compared as the copy converts it (the
 * source's text read by the target's input, a timestamp as a time in the target's zone), not as
 * a cast would. Each case is proved by the test's own md5 of every row's text on both sides.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesResult } from '../../activities/copy/copier';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardInput, type VerifyShardResult } from '../../activities/verify/verifier';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 40;
const COLUMNS = ['id', 'code', 'tag', 'bits', 'codes', 'qty', 'short'];

/** Every row's md5 by key, of the transform written out in the test's own SQL: trailing spaces a write may cut do not count. */
const SOURCE_ROWS = `SELECT id::text AS id, md5(ROW(id, rtrim(code), rtrim(tag), bits::text, codes::text, qty, short)::text) AS hash FROM items`;
const TARGET_ROWS = `SELECT id::text AS id, md5(ROW(id, rtrim(code), rtrim(tag), bits::text, codes::text, qty::text, short)::text) AS hash FROM items`;

async function hashes(url: string, query: string): Promise<Map<string, string>> {
  return new Map((await sql<{ id: string; hash: string }>(url, query)).map((r) => [r.id, r.hash]));
}

async function differingKeys(sourceUrl: string, targetUrl: string, sourceRows = SOURCE_ROWS, targetRows = TARGET_ROWS): Promise<string[]> {
  const [s, t] = await Promise.all([hashes(sourceUrl, sourceRows), hashes(targetUrl, targetRows)]);
  const keys = new Set([...s.keys(), ...t.keys()]);
  return [...keys].filter((k) => s.get(k) !== t.get(k)).sort((a, b) => Number(a) - Number(b));
}

/** Verifies the whole table, call after call, and returns every difference it found. */
/** Ferry's own copy of every source row, in batches of 100. */
function copyAll(databases: Databases, migrationId: string, plan: Plan): Promise<CopyBatchesResult> {
  return new MockActivityEnvironment().run(createCopier(databases, undefined, null).copyBatches, {
    migrationId,
    plan,
    shard: { range: wholeKeySpace, partitionValue: null },
    cursor: null,
    batchSize: 100,
    maxBatchSize: 100,
    rowsPerSecond: null,
    failureBudget: 0,
    maxSeconds: 60,
  });
}

async function verifyAll(databases: Databases, input: Omit<VerifyShardInput, 'cursor' | 'shard'>): Promise<Mismatch[]> {
  const verifier = createVerifier(databases);
  const found: Mismatch[] = [];
  let cursor: string | null = null;
  for (;;) {
    const result: VerifyShardResult = await runActivity(verifier.verifyShard, { ...input, shard: { range: wholeKeySpace, partitionValue: null }, cursor });
    found.push(...result.examples);
    cursor = result.cursor;
    if (result.done) return found.sort((a, b) => Number(a.key) - Number(b.key));
  }
}

describe('verification takes values as the target takes them', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  let dir: string;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('written_src'), createTestDatabase('written_tgt')]);
    // Row 3's code and row 4's tag end in spaces that a write into varchar(3) and char(3) cuts.
    await sql(
      sourceUrl,
      `CREATE DOMAIN short3 AS varchar(3);
       CREATE TABLE items (id int8 PRIMARY KEY, code text, tag text, bits varbit, codes text[], qty text, short text);
       INSERT INTO items SELECT g, CASE g WHEN 3 THEN 'ab   ' ELSE 'c' || g END, CASE g WHEN 4 THEN 'xyz  ' ELSE 't' || g % 10 END,
                                B'101', ARRAY['a' || g % 10, 'bb'], (g % 7)::text, 's' || g % 10
         FROM generate_series(1, ${ROWS}) AS g;`,
    );
    await sql(targetUrl, `CREATE DOMAIN short3 AS varchar(3); CREATE TABLE items (id int8 PRIMARY KEY, code varchar(3), tag char(3), bits bit(3), codes varchar(3)[], qty int, short short3)`);
    // The target holds what writes make of the source: each value through its column's input.
    const client = new pg.Client({ connectionString: targetUrl });
    await client.connect();
    try {
      for (const row of await sql(sourceUrl, `SELECT id, code, tag, bits::text AS bits, codes::text AS codes, qty, short FROM items ORDER BY id`)) {
        await client.query(`INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6, $7)`, [row.id, row.code, row.tag, row.bits, row.codes, row.qty, row.short]);
      }
    } finally {
      await client.end();
    }
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-written-'));
    writeFileSync(path.join(dir, 'transform.ts'), `export default (row: Record<string, unknown>) => row;`);
  });
  afterAll(async () => {
    await databases?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const plan = (name: string, transform: PlanInput['transform']): Plan =>
    validatePlan({ name, source: { connection: 'SOURCE_URL', table: 'items', key: 'id' }, target: { connection: 'TARGET_URL', table: 'items' }, transform });
  const sqlPlan = () => plan('written-sql', { sql: Object.fromEntries(COLUMNS.map((c) => [c, c])) });
  const modulePlan = () => plan('written-module', { module: path.join(dir, 'transform.ts'), columns: COLUMNS });
  const cut: Mismatch[] = [
    { key: '5', category: 'value', columns: ['code'] },
    { key: '6', category: 'value', columns: ['tag'] },
    { key: '7', category: 'value', columns: ['bits'] },
    { key: '8', category: 'value', columns: ['codes'] },
    { key: '10', category: 'value', columns: ['short'] },
  ];

  it('finds a value that a write would refuse and a cast would cut, through a SQL and a module transform', async () => {
    expect(await differingKeys(sourceUrl, targetUrl)).toEqual([]);
    expect(await verifyAll(databases, { migrationId: 'written-sql', plan: sqlPlan(), chunkSize: 10, pass: 1, inFlightDelayMs: 10 })).toEqual([]);
    expect(await verifyAll(databases, { migrationId: 'written-mod', plan: modulePlan(), chunkSize: 10, pass: 1, inFlightDelayMs: 10 })).toEqual([]);

    // The source's new values are too long for the target; the target holds them cut, as an
    // application writing both sides might have written them.
    await sql(
      sourceUrl,
      `UPDATE items SET code = 'abcdef' WHERE id = 5; UPDATE items SET tag = 'wxyz' WHERE id = 6;
       UPDATE items SET bits = B'1011' WHERE id = 7; UPDATE items SET codes = ARRAY['a', 'bcde'] WHERE id = 8;
       UPDATE items SET short = 'abcdef' WHERE id = 10;`,
    );
    await sql(
      targetUrl,
      `UPDATE items SET code = 'abc' WHERE id = 5; UPDATE items SET tag = 'wxy' WHERE id = 6;
       UPDATE items SET bits = B'101' WHERE id = 7; UPDATE items SET codes = '{a,bcd}' WHERE id = 8;
       UPDATE items SET short = 'abc' WHERE id = 10;`,
    );
    expect(await differingKeys(sourceUrl, targetUrl)).toEqual(['5', '6', '7', '8', '10']);
    const before = await hashes(targetUrl, TARGET_ROWS);

    expect(await verifyAll(databases, { migrationId: 'written-sql', plan: sqlPlan(), chunkSize: 10, pass: 2, inFlightDelayMs: 10 })).toEqual(cut);
    expect(await verifyAll(databases, { migrationId: 'written-mod', plan: modulePlan(), chunkSize: 10, pass: 2, inFlightDelayMs: 10 })).toEqual(cut);
    // The copy refuses the values, so a repair writes nothing and leaves the differences open.
    const verifier = createVerifier(databases);
    expect(await runActivity(verifier.repairMismatches, { migrationId: 'written-sql', plan: sqlPlan(), pass: 2 })).toMatchObject({ deleted: 0, unresolved: 5 });
    expect(await runActivity(verifier.repairMismatches, { migrationId: 'written-mod', plan: modulePlan(), pass: 2 })).toMatchObject({ deleted: 0, unresolved: 5 });
    expect(await hashes(targetUrl, TARGET_ROWS)).toEqual(before);
  });

  it('under a module transform, a source row the target refuses differs in every column and is not deleted', async () => {
    await sql(sourceUrl, `UPDATE items SET qty = 'n/a' WHERE id = 9`);
    expect(await differingKeys(sourceUrl, targetUrl)).toEqual(['5', '6', '7', '8', '9', '10']);
    const before = await hashes(targetUrl, TARGET_ROWS);
    expect(await verifyAll(databases, { migrationId: 'written-mod', plan: modulePlan(), chunkSize: 10, pass: 3, inFlightDelayMs: 10 })).toEqual(
      [...cut, { key: '9', category: 'value', columns: COLUMNS }].sort((a, b) => Number(a.key) - Number(b.key)),
    );
    const verifier = createVerifier(databases);
    expect(await runActivity(verifier.repairMismatches, { migrationId: 'written-mod', plan: modulePlan(), pass: 3 })).toMatchObject({ deleted: 0, unresolved: 6 });
    expect(await hashes(targetUrl, TARGET_ROWS)).toEqual(before);
    expect(await verifyAll(databases, { migrationId: 'written-mod', plan: modulePlan(), chunkSize: 10, pass: 4, inFlightDelayMs: 10 })).toHaveLength(6);
  });
});

describe('verification between two databases converts values as the copy does', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  // The copy sends each value as the text the source prints, read by the target column's input:
  // written out, a float's shortest exact digits and a bool's t or f.
  const sourceRows = `SELECT id::text AS id, md5(ROW(id, f::text, g::text, CASE WHEN b THEN 't' ELSE 'f' END, j::jsonb)::text) AS hash FROM items`;
  const targetRows = `SELECT id::text AS id, md5(ROW(id, f::text, g::text, b, j)::text) AS hash FROM items`;
  const plan = validatePlan({
    name: 'converted',
    source: { connection: 'SOURCE_URL', table: 'items', key: 'id' },
    target: { connection: 'TARGET_URL', table: 'items' },
    transform: { sql: { id: 'id', f: 'f', g: 'g', b: 'b', j: 'j' } },
  });

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('converted_src'), createTestDatabase('converted_tgt')]);
    await sql(
      sourceUrl,
      `CREATE TABLE items (id int4 PRIMARY KEY, f float8, g float4, b bool, j json);
       INSERT INTO items SELECT x, x * 0.1::float8, (x * 0.1)::float4, x % 2 = 0, json_build_object('x', x) FROM generate_series(1, ${ROWS}) AS x;`,
    );
    await sql(targetUrl, `CREATE TABLE items (id int8 PRIMARY KEY, f numeric, g float8, b text, j jsonb)`);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(() => databases?.close());

  it('verifies its own copy clean, and finds a target holding what a cast would have made', async () => {
    const copied = await copyAll(databases, 'converted', plan);
    expect(copied.failures).toEqual([]);
    expect(await differingKeys(sourceUrl, targetUrl, sourceRows, targetRows)).toEqual([]);
    expect(await verifyAll(databases, { migrationId: 'converted', plan, chunkSize: 10, pass: 1, inFlightDelayMs: 10 })).toEqual([]);

    // What the casts make: 0.3 for 0.30000000000000004, the float4 0.4's every binary digit, 'true' for t.
    await sql(targetUrl, `UPDATE items SET f = 0.3 WHERE id = 3; UPDATE items SET g = 0.4::float4::float8 WHERE id = 4; UPDATE items SET b = 'true' WHERE id = 6`);
    expect(await differingKeys(sourceUrl, targetUrl, sourceRows, targetRows)).toEqual(['3', '4', '6']);
    expect(await verifyAll(databases, { migrationId: 'converted', plan, chunkSize: 10, pass: 2, inFlightDelayMs: 10 })).toEqual([
      { key: '3', category: 'value', columns: ['f'] },
      { key: '4', category: 'value', columns: ['g'] },
      { key: '6', category: 'value', columns: ['b'] },
    ]);
    const verifier = createVerifier(databases);
    expect(await runActivity(verifier.repairMismatches, { migrationId: 'converted', plan, pass: 2 })).toEqual({ repaired: 3, deleted: 0, unresolved: 0 });
    expect(await differingKeys(sourceUrl, targetUrl, sourceRows, targetRows)).toEqual([]);
    expect(await verifyAll(databases, { migrationId: 'converted', plan, chunkSize: 10, pass: 3, inFlightDelayMs: 10 })).toEqual([]);
  });
});

describe('verification between two databases in different time zones', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  const plan = validatePlan({
    name: 'zoned',
    source: { connection: 'SOURCE_URL', table: 'events', key: 'id' },
    target: { connection: 'TARGET_URL', table: 'events' },
    transform: { sql: { id: 'id', at: 'at' } },
  });
  const databaseName = (url: string) => new URL(url).pathname.slice(1);

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('zoned_src'), createTestDatabase('zoned_tgt')]);
    await sql(sourceUrl, `ALTER DATABASE ${databaseName(sourceUrl)} SET timezone = 'UTC'`);
    await sql(targetUrl, `ALTER DATABASE ${databaseName(targetUrl)} SET timezone = 'Asia/Tokyo'`);
    await sql(sourceUrl, `CREATE TABLE events (id int8 PRIMARY KEY, at timestamp); INSERT INTO events SELECT x, timestamp '2024-01-01' + x * interval '1 hour' FROM generate_series(1, ${ROWS}) AS x`);
    await sql(targetUrl, `CREATE TABLE events (id int8 PRIMARY KEY, at timestamptz)`);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(() => databases?.close());

  // The copy sends a timestamp's text, which the target reads as a time in its own zone: so does
  // verification, not in the source's zone (which reported Ferry's own copy differing in every
  // row, and would have called clean a target read in the source's zone).
  it('reads a timestamp copied into a timestamptz column in the zone the copy read it in', async () => {
    const copied = await copyAll(databases, 'zoned', plan);
    expect(copied.failures).toEqual([]);
    // Written out: each source timestamp as a time in Tokyo, in UTC on both sides.
    const source = await hashes(sourceUrl, `SELECT id::text AS id, md5(ROW(id, (at AT TIME ZONE 'Asia/Tokyo') AT TIME ZONE 'UTC')::text) AS hash FROM events`);
    expect(await hashes(targetUrl, `SELECT id::text AS id, md5(ROW(id, at AT TIME ZONE 'UTC')::text) AS hash FROM events`)).toEqual(source);
    expect(await verifyAll(databases, { migrationId: 'zoned', plan, chunkSize: 10, pass: 1, inFlightDelayMs: 10 })).toEqual([]);

    // Row 7 read in the source's zone instead: nine hours off.
    await sql(targetUrl, `UPDATE events SET at = timestamp '2024-01-01 07:00' AT TIME ZONE 'UTC' WHERE id = 7`);
    const target = await hashes(targetUrl, `SELECT id::text AS id, md5(ROW(id, at AT TIME ZONE 'UTC')::text) AS hash FROM events`);
    expect([...source.keys()].filter((k) => source.get(k) !== target.get(k))).toEqual(['7']);
    expect(await verifyAll(databases, { migrationId: 'zoned', plan, chunkSize: 10, pass: 2, inFlightDelayMs: 10 })).toEqual([{ key: '7', category: 'value', columns: ['at'] }]);
  });
});

describe('verification by lineage of a group the target refuses', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  let dir: string;
  // The test's own transform: one target row per subscription, keyed by its id.
  const sourceRows = `SELECT s->>'id' AS id, md5(ROW(s->>'id', c.id, s->>'seats')::text) AS hash FROM customers c, jsonb_array_elements(c.subs) AS s`;
  const targetRows = `SELECT id, md5(ROW(id, customer_id, seats)::text) AS hash FROM subs`;
  let plan: Plan;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('group_src'), createTestDatabase('group_tgt')]);
    await sql(
      sourceUrl,
      `CREATE TABLE customers (id int8 PRIMARY KEY, subs jsonb NOT NULL);
       INSERT INTO customers SELECT i, coalesce((SELECT jsonb_agg(jsonb_build_object('id', i || '-' || n, 'seats', n * 3) ORDER BY n)
                                                   FROM generate_series(1, i % 3) AS n), '[]') FROM generate_series(1, 20) AS i;`,
    );
    await sql(targetUrl, `CREATE TABLE subs (id text PRIMARY KEY, customer_id int8, seats int4); CREATE INDEX ON subs (customer_id)`);
    for (const row of await sql(sourceUrl, `SELECT s->>'id' AS id, c.id AS customer_id, s->>'seats' AS seats FROM customers c, jsonb_array_elements(c.subs) AS s`)) {
      await sql(targetUrl, `INSERT INTO subs VALUES ($1, $2, $3)`, [row.id, row.customer_id, row.seats]);
    }
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-group-'));
    writeFileSync(
      path.join(dir, 'transform.ts'),
      `export default (c: { id: string; subs: { id: string; seats: unknown }[] }) => c.subs.map((s) => ({ id: s.id, customer_id: c.id, seats: s.seats }));`,
    );
    plan = validatePlan({
      name: 'group',
      source: { connection: 'SOURCE_URL', table: 'customers', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'subs', key: 'id', sourceKey: 'customer_id' },
      transform: { module: path.join(dir, 'transform.ts'), columns: ['id', 'customer_id', 'seats'] },
    });
  });
  afterAll(async () => {
    await databases?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("finds the group's target rows differing in every column, not extra, and repair deletes none", async () => {
    expect(await verifyAll(databases, { migrationId: 'group', plan, chunkSize: 5, pass: 1, inFlightDelayMs: 10 })).toEqual([]);
    // Customer 5's second subscription now has seats the int4 column refuses.
    await sql(sourceUrl, `UPDATE customers SET subs = jsonb_set(subs, '{1,seats}', '"many"') WHERE id = 5`);
    const [s, t] = await Promise.all([hashes(sourceUrl, sourceRows), hashes(targetUrl, targetRows)]);
    expect([...t.keys()].filter((k) => s.get(k) !== t.get(k))).toEqual(['5-2']);
    const before = t;
    const found = await verifyAll(databases, { migrationId: 'group', plan, chunkSize: 5, pass: 2, inFlightDelayMs: 10 });
    expect(found.map((d) => ({ ...d })).sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      { key: '5-1', category: 'value', columns: ['id', 'customer_id', 'seats'], sourceKey: '5' },
      { key: '5-2', category: 'value', columns: ['id', 'customer_id', 'seats'], sourceKey: '5' },
    ]);
    const verifier = createVerifier(databases);
    expect(await runActivity(verifier.repairMismatches, { migrationId: 'group', plan, pass: 2 })).toMatchObject({ deleted: 0, unresolved: 2 });
    expect(await hashes(targetUrl, targetRows)).toEqual(before);
  });
});
