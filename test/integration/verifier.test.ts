/**
 * Verification and repair against real PostgreSQL: every kind of difference is found exactly
 * (keys, categories, column names), equal data written differently is not a difference, a
 * repair makes the target equal, and live writes in flight are not reported.
 */
import { runActivity } from '../support/activities';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardInput, type VerifyShardResult } from '../../activities/verify/verifier';
import type { Mismatch } from '../../activities/state/ferry-schema';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 300;

/** The same rows on both sides: `source` holds them in source shape (json payload), `target` in target shape. */
const sourceDdl = (table = 'orders') => `
  CREATE TABLE ${table} (
    id bigint PRIMARY KEY,
    name text,
    note text,
    created_at timestamptz NOT NULL,
    payload json,
    amount numeric(12, 2)
  );
  INSERT INTO ${table}
  SELECT i, 'name ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
         timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1 hour 1.000001 seconds',
         json_build_object('i', i, 'tags', json_build_array('a', i % 5)),
         i * 1.25
    FROM generate_series(1, ${ROWS}) AS i;`;

const targetDdl = (table: string) => `
  CREATE TABLE ${table} (
    id bigint PRIMARY KEY,
    name text,
    note text,
    created_at timestamptz NOT NULL,
    payload jsonb,
    amount numeric
  );`;

const transformSql = {
  id: 'id',
  name: 'name',
  note: 'note',
  created_at: 'created_at',
  payload: 'payload',
  amount: 'amount',
};

/** Fills a target with exactly what the transform makes of the source, then applies `changes`. */
const seedTarget = (table: string) => `
  INSERT INTO ${table}
  SELECT i, 'name ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
         timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1 hour 1.000001 seconds',
         jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 5)),
         (i * 1.25)::numeric(12, 2)
    FROM generate_series(1, ${ROWS}) AS i;`;

/**
 * Differences of every kind, and equal data written differently:
 * 5, 77 missing; 1001, 1002 extra; 10 name changed; 60 name and amount changed;
 * 50 NULL in the source, '' in the target; 51 '' in the source, NULL in the target.
 * Not differences: 20 json key order and spacing; 30 the same instant written in +05:30
 * (and the target database's TimeZone is Asia/Tokyo); 40 numeric 1.50 against 15.0e-1 (the same
 * value and scale; 1.5 would differ, as Postgres prints it).
 */
const sourceChanges = (table = 'orders') => `
  UPDATE ${table} SET note = NULL WHERE id = 50;
  UPDATE ${table} SET note = '' WHERE id = 51;
  UPDATE ${table} SET payload = '{ "z": 1,  "a": {"y": true, "b": [1, 2]} }' WHERE id = 20;
  UPDATE ${table} SET amount = 1.50 WHERE id = 40;
  UPDATE ${table} SET created_at = '2024-03-01 07:00:00.123456+00' WHERE id = 30;`;

/** The source's changes, written to the target differently but equal. */
const equalChanges = (table: string) => `
  UPDATE ${table} SET note = NULL WHERE id = 50;
  UPDATE ${table} SET note = '' WHERE id = 51;
  UPDATE ${table} SET payload = '{"a": {"b": [1, 2], "y": true}, "z": 1}' WHERE id = 20;
  UPDATE ${table} SET amount = 15.0e-1 WHERE id = 40;
  UPDATE ${table} SET created_at = '2024-03-01 12:30:00.123456+05:30' WHERE id = 30;`;

const targetChanges = (table: string) => `${equalChanges(table)}
  DELETE FROM ${table} WHERE id IN (5, 77);
  INSERT INTO ${table} (id, name, note, created_at, payload, amount) VALUES
    (1001, 'stray', NULL, now(), '{}', 1), (1002, 'stray', 'x', now(), NULL, NULL);
  UPDATE ${table} SET name = 'changed' WHERE id = 10;
  UPDATE ${table} SET name = 'changed', amount = amount + 1 WHERE id = 60;
  UPDATE ${table} SET note = '' WHERE id = 50;
  UPDATE ${table} SET note = NULL WHERE id = 51;`;

const EXPECTED: Mismatch[] = [
  { key: '10', category: 'value', columns: ['name'] },
  { key: '1001', category: 'extra', columns: [] },
  { key: '1002', category: 'extra', columns: [] },
  { key: '5', category: 'missing', columns: [] },
  { key: '50', category: 'value', columns: ['note'] },
  { key: '51', category: 'value', columns: ['note'] },
  { key: '60', category: 'value', columns: ['name', 'amount'] },
  { key: '77', category: 'missing', columns: [] },
];

function plan(name: string, targetEnv: string, table: string, extra: Partial<PlanInput> = {}, sourceTable = 'orders'): Plan {
  return validatePlan({
    name,
    source: { connection: 'SOURCE_URL', table: sourceTable, key: 'id' },
    target: { connection: targetEnv, table },
    transform: { sql: transformSql },
    ...extra,
  });
}

async function mismatchesOf(url: string, migrationId: string, pass: number): Promise<Mismatch[]> {
  return sql<Mismatch>(
    url,
    `SELECT key, category, columns FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL ORDER BY key`,
    [migrationId, pass],
  );
}

/** Verifies a whole table, call after call from the returned cursor, as the workflow will. */
async function verifyAll(databases: Databases, input: Omit<VerifyShardInput, 'cursor' | 'shard'>): Promise<VerifyShardResult> {
  const verifier = createVerifier(databases);
  const total: VerifyShardResult = {
    cursor: null,
    done: false,
    chunks: 0,
    chunksDiffering: 0,
    rowsChecked: 0,
    mismatches: { missing: 0, extra: 0, value: 0 },
    inFlight: 0,
    examples: [],
  };
  while (!total.done) {
    const result = await runActivity(verifier.verifyShard, {
      ...input,
      shard: { range: wholeKeySpace, partitionValue: null },
      cursor: total.cursor,
    });
    total.cursor = result.cursor;
    total.done = result.done;
    total.chunks += result.chunks;
    total.chunksDiffering += result.chunksDiffering;
    total.rowsChecked += result.rowsChecked;
    total.inFlight += result.inFlight;
    for (const category of ['missing', 'extra', 'value'] as const) total.mismatches[category] += result.mismatches[category];
    total.examples.push(...result.examples);
  }
  return total;
}

/** Runs one activity as Temporal would, without a server (heartbeats go nowhere). */
const byKey = (a: Mismatch, b: Mismatch) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

describe('verifier across two databases', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('verify_src'), createTestDatabase('verify_tgt')]);
    // The target database prints times in another zone; only the instant may count.
    await sql(targetUrl, `ALTER DATABASE ${targetUrl.split('/').pop()!.split('?')[0]} SET timezone = 'Asia/Tokyo'`);
    await sql(sourceUrl, sourceDdl() + sourceChanges());
    await sql(targetUrl, targetDdl('orders_v2') + seedTarget('orders_v2') + targetChanges('orders_v2'));
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(() => databases?.close());

  it('finds every difference exactly, repairs it, and verifies clean', async () => {
    const p = plan('verify-cross', 'TARGET_URL', 'orders_v2');
    const id = 'verify-cross-1';
    const first = await verifyAll(databases, { migrationId: id, plan: p, chunkSize: 40, pass: 1, maxSeconds: 1, inFlightDelayMs: 50 });
    expect(first.rowsChecked).toBe(ROWS);
    expect(first.mismatches).toEqual({ missing: 2, extra: 2, value: 4 });
    expect(first.chunks).toBe(Math.ceil(ROWS / 40) + 1); // and the tail after the source's last key
    expect([...first.examples].sort(byKey)).toEqual(EXPECTED);
    expect(await mismatchesOf(targetUrl, id, 1)).toEqual(EXPECTED);

    const verifier = createVerifier(databases);
    const report = await runActivity(verifier.mismatchReport, { migrationId: id, plan: p });
    expect(report.pass).toBe(1);
    expect(report.counts).toEqual({ missing: 2, extra: 2, value: 4 });
    expect(JSON.stringify(report)).not.toContain('changed');
    expect(report.examples.every((e) => e.values === undefined)).toBe(true);
    const shown = await runActivity(verifier.mismatchReport, { migrationId: id, plan: p, showValues: true });
    const sixty = shown.examples.find((e) => e.key === '60')!;
    expect(sixty.values).toEqual({ name: { source: 'name 60', target: 'changed' }, amount: { source: '75.00', target: '76.00' } });
    expect(shown.examples.find((e) => e.key === '50')!.values).toEqual({ note: { source: null, target: '' } });

    const repair = await runActivity(verifier.repairMismatches, { migrationId: id, plan: p, pass: 1 });
    expect(repair).toEqual({ repaired: 6, deleted: 2, unresolved: 0 });

    const second = await verifyAll(databases, { migrationId: id, plan: p, chunkSize: 40, pass: 2, inFlightDelayMs: 50 });
    expect(second.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(second.chunksDiffering).toBe(0);
    expect(second.rowsChecked).toBe(ROWS);
    const after = await runActivity(verifier.mismatchReport, { migrationId: id, plan: p });
    expect(after.pass).toBe(1);
    expect(after.unresolved).toEqual({ missing: 0, extra: 0, value: 0 });
  });

  it('repairs around tombstones, and re-copies an extra key that appeared in the source', async () => {
    await sql(targetUrl, targetDdl('orders_t') + seedTarget('orders_t') + equalChanges('orders_t'));
    await sql(targetUrl, `DELETE FROM orders_t WHERE id IN (7, 8); INSERT INTO orders_t (id, created_at) VALUES (${ROWS + 1}, now())`);
    const p = plan('verify-tomb', 'TARGET_URL', 'orders_t');
    const id = 'verify-tomb-1';
    const found = await verifyAll(databases, { migrationId: id, plan: p, chunkSize: 1000, pass: 1, inFlightDelayMs: 10 });
    expect(found.mismatches).toEqual({ missing: 2, extra: 1, value: 0 });
    // The application deleted 8 meanwhile (tombstone), and wrote key ROWS + 1 to the source.
    await sql(targetUrl, `SELECT ferry.record_delete('public.orders_t', '8')`);
    await sql(sourceUrl, `INSERT INTO orders SELECT ${ROWS + 1}, 'late', NULL, now(), '{}', 2`);
    try {
      const verifier = createVerifier(databases);
      const repair = await runActivity(verifier.repairMismatches, { migrationId: id, plan: p, pass: 1 });
      expect(repair).toEqual({ repaired: 2, deleted: 0, unresolved: 0 });
      expect(await sql(targetUrl, `SELECT id::text, name FROM orders_t WHERE id IN (7, 8, ${ROWS + 1}) ORDER BY orders_t.id`)).toEqual([
        { id: '7', name: 'name 7' },
        { id: String(ROWS + 1), name: 'late' },
      ]);
    } finally {
      await sql(sourceUrl, `DELETE FROM orders WHERE id = ${ROWS + 1}`);
    }
  });

  it('reports a row written to both sides while it verifies as nothing (in flight)', async () => {
    await sql(sourceUrl, sourceDdl('orders_live') + sourceChanges('orders_live'));
    await sql(targetUrl, targetDdl('orders_live') + seedTarget('orders_live') + targetChanges('orders_live'));
    const p = plan('verify-live', 'TARGET_URL', 'orders_live', {}, 'orders_live');
    // Make the target equal first, then write to both sides while verifying.
    const verifier = createVerifier(databases);
    await verifyAll(databases, { migrationId: 'verify-live-0', plan: p, chunkSize: 50, pass: 1, inFlightDelayMs: 10 });
    await runActivity(verifier.repairMismatches, { migrationId: 'verify-live-0', plan: p, pass: 1 });

    let writing = true;
    let writes = 0;
    // One open session a side, as an application has: a new connection for each write would add its
    // setup (a backend started, which a loaded machine can stretch past the in-flight delay) to the window.
    const [sourceSession, targetSession] = [new pg.Client({ connectionString: sourceUrl }), new pg.Client({ connectionString: targetUrl })];
    await Promise.all([sourceSession.connect(), targetSession.connect()]);
    const writer = (async () => {
      while (writing) {
        const key = 1 + Math.floor(Math.random() * ROWS);
        const value = `live ${writes}`;
        await sourceSession.query(`UPDATE orders_live SET name = $1, amount = amount + 1 WHERE id = $2`, [value, key]);
        // The window in which the two sides differ, as an application writing both would leave it.
        await new Promise((resolve) => setTimeout(resolve, 50));
        await targetSession.query(`UPDATE orders_live SET name = $1, amount = amount + 1 WHERE id = $2`, [value, key]);
        writes += 1;
      }
    })().finally(() => Promise.all([sourceSession.end(), targetSession.end()]));
    const rounds: VerifyShardResult[] = [];
    // The writer is well under way before verifying starts: a pass that catches a write at once
    // (differing chunks wait out their delay together) must still have a writer to catch.
    while (writes <= 5) await new Promise((resolve) => setTimeout(resolve, 50));
    try {
      // Until verification has caught a write between its two sides at least once. The writer's
      // window is 50 ms, but a loaded machine can stretch it past a short delay: 2 s (the
      // default) keeps a write in flight from being a difference.
      for (let pass = 1; pass <= 20 && !rounds.some((r) => r.inFlight > 0); pass++) {
        rounds.push(await verifyAll(databases, { migrationId: 'verify-live-1', plan: p, chunkSize: 10, pass, inFlightDelayMs: 2000 }));
      }
    } finally {
      writing = false;
      await writer;
    }
    expect(writes).toBeGreaterThan(5);
    expect(rounds.some((r) => r.inFlight > 0)).toBe(true);
    for (const round of rounds) expect(round.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(await mismatchesOf(targetUrl, 'verify-live-1', 1)).toEqual([]);
  });

  it('does not report a difference that is fixed before its re-check', async () => {
    await sql(targetUrl, targetDdl('orders_fix') + seedTarget('orders_fix') + equalChanges('orders_fix'));
    await sql(targetUrl, `UPDATE orders_fix SET name = 'behind' WHERE id = 3`);
    const p = plan('verify-fix', 'TARGET_URL', 'orders_fix');
    const fix = new Promise((resolve) => setTimeout(resolve, 1000)).then(() => sql(targetUrl, `UPDATE orders_fix SET name = 'name 3' WHERE id = 3`));
    const result = await verifyAll(databases, { migrationId: 'verify-fix-1', plan: p, chunkSize: 1000, pass: 1, inFlightDelayMs: 4000 });
    await fix;
    expect(result.chunksDiffering).toBe(0);
    expect(result.inFlight).toBe(1);
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    // Without the fix it is reported.
    await sql(targetUrl, `UPDATE orders_fix SET name = 'behind' WHERE id = 3`);
    const again = await verifyAll(databases, { migrationId: 'verify-fix-1', plan: p, chunkSize: 1000, pass: 2, inFlightDelayMs: 10 });
    expect(again.examples).toEqual([{ key: '3', category: 'value', columns: ['name'] }]);
  });

  it('re-reads differing chunks after the in-flight delay at once, not one after another, and reports each in key order', async () => {
    await sql(targetUrl, targetDdl('orders_many') + seedTarget('orders_many') + equalChanges('orders_many'));
    const keys = [10, 60, 110, 160, 210, 260];
    await sql(targetUrl, `UPDATE orders_many SET name = 'behind' WHERE id IN (${keys.join(', ')})`);
    const p = plan('verify-many', 'TARGET_URL', 'orders_many');
    const started = Date.now();
    const result = await verifyAll(databases, { migrationId: 'verify-many-1', plan: p, chunkSize: 50, pass: 1, inFlightDelayMs: 1500, maxSeconds: 60 });
    // One after another, six delays would take 9 s.
    expect(Date.now() - started).toBeLessThan(4500);
    expect(result).toMatchObject({ done: true, chunks: 7, chunksDiffering: 6, rowsChecked: ROWS, inFlight: 0, mismatches: { missing: 0, extra: 0, value: 6 } });
    expect(result.examples.map((e) => e.key)).toEqual(keys.map(String));
    expect((await mismatchesOf(targetUrl, 'verify-many-1', 1)).map((m) => m.key).sort()).toEqual(keys.map(String).sort());
  });

  it('compares only the sample, on both sides', async () => {
    await sql(targetUrl, targetDdl('orders_sample') + seedTarget('orders_sample') + targetChanges('orders_sample'));
    const p = plan('verify-sample', 'TARGET_URL', 'orders_sample');
    const inSample = await sql<{ key: string }>(
      sourceUrl,
      `SELECT k::text AS key FROM unnest(ARRAY[5, 10, 50, 51, 60, 77, 1001, 1002]::bigint[]) AS k WHERE abs(hashtext(k::text)::bigint) % 10000 < 4000`,
    );
    const sampled = await sql<{ n: string }>(sourceUrl, `SELECT count(*) AS n FROM orders WHERE abs(hashtext(id::text)::bigint) % 10000 < 4000`);
    const result = await verifyAll(databases, { migrationId: 'verify-sample-1', plan: p, chunkSize: 30, pass: 1, samplePercent: 40, inFlightDelayMs: 10 });
    expect(result.rowsChecked).toBe(Number(sampled[0]!.n));
    expect(result.rowsChecked).toBeLessThan(ROWS);
    const expected = EXPECTED.filter((m) => inSample.some((k) => k.key === m.key));
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(EXPECTED.length);
    expect([...result.examples].sort(byKey)).toEqual(expected);
  });
});

describe('verifier within one database', () => {
  let url: string;
  let databases: Databases;

  beforeAll(async () => {
    url = await createTestDatabase('verify_one');
    await sql(url, sourceDdl() + sourceChanges() + targetDdl('orders_v2') + seedTarget('orders_v2') + targetChanges('orders_v2'));
    databases = createDatabases({ env: { SOURCE_URL: url, TARGET_URL: url } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(() => databases?.close());

  it('finds, repairs and re-verifies in one database', async () => {
    const p = plan('verify-one', 'TARGET_URL', 'orders_v2');
    const first = await verifyAll(databases, { migrationId: 'one', plan: p, chunkSize: 64, pass: 1, inFlightDelayMs: 10 });
    expect([...first.examples].sort(byKey)).toEqual(EXPECTED);
    const verifier = createVerifier(databases);
    const repair = await runActivity(verifier.repairMismatches, { migrationId: 'one', plan: p, pass: 1 });
    expect(repair).toEqual({ repaired: 6, deleted: 2, unresolved: 0 });
    const second = await verifyAll(databases, { migrationId: 'one', plan: p, chunkSize: 64, pass: 2, inFlightDelayMs: 10 });
    expect(second.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
  });
});

describe('verifier with a module transform', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  let dir: string;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('verify_msrc'), createTestDatabase('verify_mtgt')]);
    await sql(sourceUrl, sourceDdl());
    await sql(
      targetUrl,
      `CREATE TABLE people (id bigint PRIMARY KEY, label text, note text, created_at timestamptz NOT NULL, payload jsonb, amount numeric);
       INSERT INTO people
       SELECT i, upper('name ' || i), CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
              timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1 hour 1.000001 seconds',
              jsonb_build_object('tags', jsonb_build_array('a', i % 5), 'i', i), (i * 1.25)
         FROM generate_series(1, ${ROWS}) AS i WHERE i % 10 <> 0;
       DELETE FROM people WHERE id = 33;
       UPDATE people SET payload = payload || '{"i": -1}' WHERE id = 44;
       INSERT INTO people (id, created_at) VALUES (20, now());`,
    );
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-verify-'));
    // Every tenth row is skipped (null); 20 is one of them, so the target's row 20 is extra.
    writeFileSync(
      path.join(dir, 'transform.ts'),
      `export default (row: Record<string, any>) => Number(row.id) % 10 === 0 ? null : ({
         id: row.id, label: row.name.toUpperCase(), note: row.note, created_at: row.created_at, payload: row.payload, amount: row.amount,
       });`,
    );
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(async () => {
    await databases?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const modulePlan = (name: string, extra: Partial<PlanInput> = {}): Plan =>
    validatePlan({
      name,
      source: { connection: 'SOURCE_URL', table: 'orders', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'people' },
      transform: { module: path.join(dir, 'transform.ts'), columns: ['id', 'label', 'note', 'created_at', 'payload', 'amount'] },
      ...extra,
    });

  it('hashes the transform output in the worker, equal to the target where the data is equal', async () => {
    const p = modulePlan('verify-module');
    const first = await verifyAll(databases, { migrationId: 'mod', plan: p, chunkSize: 50, pass: 1, inFlightDelayMs: 10 });
    expect([...first.examples].sort(byKey)).toEqual([
      { key: '20', category: 'extra', columns: [] },
      { key: '33', category: 'missing', columns: [] },
      { key: '44', category: 'value', columns: ['payload'] },
    ]);
    const verifier = createVerifier(databases);
    const repair = await runActivity(verifier.repairMismatches, { migrationId: 'mod', plan: p, pass: 1 });
    expect(repair).toEqual({ repaired: 2, deleted: 1, unresolved: 0 });
    const second = await verifyAll(databases, { migrationId: 'mod', plan: p, chunkSize: 50, pass: 2, inFlightDelayMs: 10 });
    expect(second.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
  });

  it('compares clean chunks in the worker: the target is only summed, no row is read or sent back', async () => {
    // Keys 100 to 300 were never changed in the target.
    const p = modulePlan('verify-module-clean', { subset: { keyRange: { from: '100', to: '300' } } });
    const target = databases.pool('TARGET_URL');
    const statements: string[] = [];
    const query = target.query.bind(target);
    target.query = ((...args: Parameters<typeof query>) => {
      const [first] = args as unknown[];
      statements.push(typeof first === 'string' ? first : (first as { text: string }).text);
      return (query as (...a: unknown[]) => unknown)(...args);
    }) as typeof target.query;
    let result: VerifyShardResult;
    try {
      result = await verifyAll(databases, { migrationId: 'mod-clean', plan: p, chunkSize: 50, pass: 1, inFlightDelayMs: 10 });
    } finally {
      target.query = query;
    }
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    // 100 to 300, less the multiples of ten the transform skips.
    expect(result.rowsChecked).toBe(180);
    expect(statements.filter((text) => text.includes('unnest('))).toEqual([]);
    expect(statements.filter((text) => text.includes('coalesce(sum(')).length).toBe(result.chunks);
  });
});
