/**
 * Binary COPY between two databases: chosen only where every column's type is the same built-in
 * type on both sides, and then every value arrives exactly. Proved with this test's own SQL (md5
 * of each row's text on both sides) on the table of extreme values and on generated rows
 * (fast-check, fixed seed), between databases that print times in different zones; a value the
 * target's column refuses (too long for its varchar) fails its row alone, as over text.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesResult } from '../../activities/copy/copier';
import { copyFormatFor } from '../../activities/copy/copy-format';
import { copySpecOf } from '../../activities/copy/copy-statements';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';
import { databasesPrintingApart, rowDigests, rowsSql, tableDdl, TYPES_DDL, withSession } from '../support/nasty-values';

async function copyAll(databases: Databases, plan: Plan): Promise<CopyBatchesResult> {
  const copier = createCopier(databases, undefined, null);
  return new MockActivityEnvironment().run(copier.copyBatches, {
    migrationId: `binary-${plan.name}`,
    plan,
    shard: { range: wholeKeySpace, partitionValue: null },
    cursor: null,
    batchSize: 7,
    maxBatchSize: 7,
    rowsPerSecond: null,
    failureBudget: 100,
    maxSeconds: 120,
  });
}

/** md5 of each row's text, by key, in a session of this test's own that prints values one way. */
async function digests(url: string, table: string, columns: string[], where = 'true'): Promise<Record<string, string>> {
  const result = await withSession(url, (client) =>
    client.query<{ id: string; digest: string }>(`SELECT id::text, md5(ROW(${columns.join(', ')})::text) AS digest FROM ${table} WHERE ${where} ORDER BY id`),
  );
  return Object.fromEntries(result.rows.map((r) => [r.id, r.digest]));
}

describe('binary COPY between databases', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  /** The extreme-values table's columns of built-in types; the rest are an enum, domains and a composite. */
  let builtIn: string[];
  let userTyped: string[];

  beforeAll(async () => {
    const created = await databasesPrintingApart(createTestDatabase, ['binary_src', 'binary_tgt'], [
      { timezone: 'Europe/Amsterdam', datestyle: 'SQL, DMY' },
      { timezone: 'Asia/Kolkata', intervalstyle: 'sql_standard' },
    ]);
    ({ sourceUrl, targetUrl } = created);
    const serverVersion = created.serverVersion;
    for (const url of [sourceUrl, targetUrl]) await sql(url, TYPES_DDL);
    await sql(sourceUrl, `${tableDdl('nasty')}; ${rowsSql('nasty', serverVersion)}`);
    await sql(targetUrl, `${tableDdl('nasty')}; ${tableDdl('nasty_all')}`);
    const columns = await sql<{ name: string; built_in: boolean }>(
      sourceUrl,
      `SELECT attname AS name, atttypid < 16384 AS built_in FROM pg_attribute WHERE attrelid = 'nasty'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'id' ORDER BY attnum`,
    );
    builtIn = columns.filter((c) => c.built_in).map((c) => c.name);
    userTyped = columns.filter((c) => !c.built_in).map((c) => c.name);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(() => databases?.close());

  const plan = (name: string, source: string, target: string, columns: string[]): Plan =>
    validatePlan({
      name,
      source: { connection: 'SOURCE_URL', table: source, key: 'id' },
      target: { connection: 'TARGET_URL', table: target },
      transform: { sql: Object.fromEntries(['id', ...columns].map((c) => [c, `"${c}"`])) },
    });

  it('copies every extreme value of every built-in type exactly, in binary', async () => {
    expect(builtIn.length).toBeGreaterThan(15);
    expect(userTyped.length).toBeGreaterThan(0);
    const builtInPlan = plan('binary-built-in', 'nasty', 'nasty', builtIn);
    const spec = copySpecOf(builtInPlan);
    expect(await copyFormatFor(databases.pool('SOURCE_URL'), databases.pool('TARGET_URL'), spec)).toBe('binary');
    const result = await copyAll(databases, builtInPlan);
    expect(result).toMatchObject({ done: true, rowsFailed: 0 });
    const source = await rowDigests(sourceUrl, 'nasty', builtIn);
    expect(Object.keys(source).length).toBeGreaterThan(10);
    expect(await rowDigests(targetUrl, 'nasty', builtIn)).toEqual(source);
  });

  it('goes as text where a column is of a type of the database (an enum, a domain, a composite), and still copies exactly', async () => {
    const allPlan = plan('binary-all', 'nasty', 'nasty_all', [...builtIn, ...userTyped]);
    expect(await copyFormatFor(databases.pool('SOURCE_URL'), databases.pool('TARGET_URL'), copySpecOf(allPlan))).toBe('text');
    expect(await copyAll(databases, allPlan)).toMatchObject({ done: true, rowsFailed: 0 });
    const names = [...builtIn, ...userTyped];
    expect(await rowDigests(targetUrl, 'nasty_all', names)).toEqual(await rowDigests(sourceUrl, 'nasty', names));
  });

  it('goes as text where the target column is of another type than the transform gives', async () => {
    await sql(sourceUrl, `CREATE TABLE wide (id int8 PRIMARY KEY, n int8, at timestamptz); INSERT INTO wide SELECT g, g * 3, '2026-01-01 12:00:00.123456+00'::timestamptz + g * interval '1 hour' FROM generate_series(1, 40) g`);
    await sql(targetUrl, `CREATE TABLE wide (id int8 PRIMARY KEY, n int4, at timestamp)`);
    const widePlan = plan('binary-wide', 'wide', 'wide', ['n', 'at']);
    expect(await copyFormatFor(databases.pool('SOURCE_URL'), databases.pool('TARGET_URL'), copySpecOf(widePlan))).toBe('text');
    expect(await copyAll(databases, widePlan)).toMatchObject({ done: true, rowsRead: 40, rowsFailed: 0 });
    // Text COPY's meaning is kept: the target reads the source's printed text.
    expect(await digests(targetUrl, 'wide', ['id', 'n'])).toEqual(await digests(sourceUrl, 'wide', ['id', 'n']));
  });

  it('refuses a value too long for the target varchar on its own row, and copies the others', async () => {
    await sql(sourceUrl, `CREATE TABLE names (id int8 PRIMARY KEY, name varchar(20)); INSERT INTO names SELECT g, CASE WHEN g IN (5, 17) THEN 'much too long here' ELSE 'n' || g END FROM generate_series(1, 30) g`);
    await sql(targetUrl, `CREATE TABLE names (id int8 PRIMARY KEY, name varchar(5))`);
    const namesPlan = plan('binary-names', 'names', 'names', ['name']);
    expect(await copyFormatFor(databases.pool('SOURCE_URL'), databases.pool('TARGET_URL'), copySpecOf(namesPlan))).toBe('binary');
    const result = await copyAll(databases, namesPlan);
    expect(result).toMatchObject({ done: true, rowsRead: 30, rowsWritten: 28, rowsFailed: 2 });
    expect(result.failures.map((f) => f.key).sort()).toEqual(['17', '5']);
    expect(result.failures.every((f) => f.code === '22001' && !f.error.includes('much too long'))).toBe(true);
    const source = await digests(sourceUrl, 'names', ['id', 'name'], 'id NOT IN (5, 17)');
    expect(await digests(targetUrl, 'names', ['id', 'name'])).toEqual(source);
  });

  it('copies generated rows of built-in types exactly', async () => {
    const text = fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0') && !/[\ud800-\udfff]/.test(s));
    const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`));
    const decimal = fc.tuple(fc.constantFrom('', '-'), digits(1, 30), fc.option(digits(1, 30), { nil: undefined })).map(([sign, whole, fraction]) => `${sign}${whole}${fraction === undefined ? '' : '.' + fraction}`);
    const nullable = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null, freq: 6 });
    const row = fc.record({
      t: nullable(text),
      n: nullable(fc.oneof(decimal, fc.constantFrom('NaN', 'Infinity', '-Infinity'))),
      f8: nullable(fc.double().map((d) => (Object.is(d, -0) ? '-0' : String(d)))),
      i8: nullable(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String)),
      ts: nullable(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).chain((d) => fc.integer({ min: 0, max: 999 }).map((us) => d.toISOString().replace('Z', `${String(us).padStart(3, '0')}+00`)))),
      jb: nullable(fc.json()),
      b: nullable(fc.uint8Array({ maxLength: 40 }).map((bytes) => `\\x${Buffer.from(bytes).toString('hex')}`)),
      u: nullable(fc.uuid()),
      a: nullable(fc.array(fc.option(fc.integer(), { nil: null }), { maxLength: 5 }).map((items) => `{${items.map((i) => (i === null ? 'NULL' : String(i))).join(',')}}`)),
    });
    const rows = fc.sample(row, { numRuns: 400, seed: 20261201 });
    const ddl = 'CREATE TABLE generated (id int8 PRIMARY KEY, t text, n numeric, f8 float8, i8 int8, ts timestamptz, jb jsonb, b bytea, u uuid, a int4[])';
    await sql(targetUrl, ddl);
    await sql(sourceUrl, ddl);
    const columns = ['t', 'n', 'f8', 'i8', 'ts', 'jb', 'b', 'u', 'a'] as const;
    await sql(
      sourceUrl,
      `INSERT INTO generated SELECT n, t, n_::numeric, f8::float8, i8::int8, ts::timestamptz, jb::jsonb, b::bytea, u::uuid, a::int4[]
         FROM unnest(${columns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) WITH ORDINALITY AS r(t, n_, f8, i8, ts, jb, b, u, a, n)`,
      columns.map((c) => rows.map((r) => r[c])),
    );
    const generatedPlan = plan('binary-generated', 'generated', 'generated', [...columns]);
    expect(await copyFormatFor(databases.pool('SOURCE_URL'), databases.pool('TARGET_URL'), copySpecOf(generatedPlan))).toBe('binary');
    expect(await copyAll(databases, generatedPlan)).toMatchObject({ done: true, rowsRead: 400, rowsFailed: 0 });
    const names = ['id', ...columns];
    expect(await digests(targetUrl, 'generated', names)).toEqual(await digests(sourceUrl, 'generated', names));
  });
});
