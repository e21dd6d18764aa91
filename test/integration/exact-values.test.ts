/**
 * Exact values through a module transform, proved against PostgreSQL's own text. A table of
 * every supported type, full of extreme values, goes through an identity transform between two
 * databases whose sessions print times in different zones: each row's text must be the same on
 * both sides (md5 computed by this test's own SQL); the decoder and encoder are checked value by
 * value against the text Postgres prints; a value changed in the target is reported by the
 * verifier for every type; and values a transform returns that cannot be written exactly fail
 * their rows, with the reason.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesResult } from '../../activities/copier';
import { columnKindOf, postgresInputText, sourceRowTypes, sourceValueParser } from '../../activities/exact-values';
import { installFerrySchema, type Mismatch } from '../../activities/ferry-schema';
import { targetColumnKinds, type ColumnKinds } from '../../activities/module-transform';
import { stopTransformThreads } from '../../activities/transform-threads';
import { createVerifier, type VerifyShardResult } from '../../activities/verifier';
import { canonicalText, columnTypesSql, rowText, type ColumnType } from '../../activities/verify-statements';
import { workerFieldOf } from '../../activities/worker-checksum';
import { isJsonNull, isLosslessNumber } from '../../lib/json-values';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const TYPES_DDL = `
  CREATE TYPE mood AS ENUM ('happy', 'a,b', 'NULL', 'quote"d', 'sp ace', 'ünï');
  CREATE DOMAIN positive_amount AS numeric(12, 3) CHECK (VALUE > 0);
  CREATE DOMAIN document AS jsonb;
  CREATE TYPE pair AS (label text, n int4);`;

/** Column, type, and the SQL literals of its values, one per row (rows past the end are NULL). */
const COLUMNS: [string, string, string[]][] = [
  ['jb', 'jsonb', [
    `'{"big": 12345678901234567890123}'`,
    `'{"pi": 3.14159265358979323846264338327950288}'`,
    `'123456789012345678901234567890123456789012345678901'`,
    `'null'`,
    `'{"a": null, "b": [null, 1.0, 1.50, -0, 0.0, 100, 1e2, 0.1, 1e-7, 1.5e300]}'`,
    `'1e400'`,
    `'-0.000000000000000000000000000001'`,
    `'"tab\\t nl\\n quote\\" back\\\\ é 🚀 \\u2028 \\u0001"'`,
    `'{"__proto__": {"x": 1}, "": 0, "a b": [[], {}], "nested": {"deep": [1, [2, [3.30]]]}}'`,
    `'[9007199254740993, 9007199254740992, -9007199254740993, 0.30000000000000004, 123456789.1234567]'`,
    `'true'`, `'"just a string"'`, `'[]'`, `'{}'`,
    `'{"at": "2026-12-01T10:00:00.000Z", "n": 5, "e": "1e5"}'`,
  ]],
  ['js', 'json', [
    `'{ "a" : 1.10 , "a": 2, "z":[1e2, 1E-2, -0, 12345678901234567890] }'`,
    `'null'`, `'  12345678901234567890123  '`, `'"s"'`, `'{"b":1,"a":{"y":true}}'`, `'[null]'`,
  ]],
  ['n', 'numeric', [
    `'NaN'`, `'Infinity'`, `'-Infinity'`, `'0.000000000000000000000000000001'`,
    `'-123456789012345678901234567890.123456789012345678901234567890'`, `'1.500'`, `'-0'`, `'0.0'`, `'1e100'`,
  ]],
  ['n_scaled', 'numeric(40, 20)', [`'1.5'`, `'-99999999999999999999.99999999999999999999'`, `'0'`]],
  ['i2', 'int2', ['-32768', '32767', '0']],
  ['i4', 'int4', ['-2147483648', '2147483647']],
  ['i8', 'int8', ['-9223372036854775808', '9223372036854775807', '9007199254740993']],
  ['f4', 'float4', [`'NaN'`, `'Infinity'`, `'-Infinity'`, `'-0'`, `'3.4028235e+38'`, `'1e-45'`, `'1.1'`, `'0.1'`, `'1.17549435e-38'`]],
  ['f8', 'float8', [
    `'NaN'`, `'Infinity'`, `'-Infinity'`, `'-0'`, `'1.7976931348623157e+308'`, `'5e-324'`, `'0.1'`,
    `'1.2345678901234567e-300'`, `'2.2250738585072014e-308'`, `'9007199254740993'`, `'1e21'`,
  ]],
  ['ts', 'timestamp', [
    `'infinity'`, `'-infinity'`, `'4713-01-01 00:00:00 BC'`, `'294276-12-31 23:59:59.999999'`, `'2000-01-01 00:00:00.000001'`,
  ]],
  ['tstz', 'timestamptz', [
    `'infinity'`, `'-infinity'`, `'4713-01-01 00:00:00+00 BC'`, `'294276-12-31 23:59:59.999999+00'`,
    `'1900-01-01 00:00:00+00'`, `'2024-03-31 02:30:00.000001+02'`,
  ]],
  ['d', 'date', [`'infinity'`, `'-infinity'`, `'4714-11-24 BC'`, `'5874897-12-31'`, `'2024-02-29'`]],
  ['tm', 'time', [`'24:00:00'`, `'00:00:00.000001'`, `'23:59:59.999999'`]],
  ['tmtz', 'timetz', [`'24:00:00-15:59'`, `'00:00:00+15:59'`, `'12:00:00.000001+05:30:15'`]],
  ['iv', 'interval', [
    `'-178000000 years'`, `'178000000 years'`, `'1 mon -1 days 00:00:00.000001'`, `'-00:00:00.000001'`,
    `'P1Y2M3DT4H5M6.789S'`, `'-2147483647 days -2562047788:00:54.775807'`,
  ]],
  ['t', 'text', [
    `E'tab\\t nl\\n cr\\r back\\\\ \\\\N quote'' "dq" é 🚀 \\u2028 \\x01 \\x7f \\b \\f \\v'`,
    `''`, `' '`, `E'\\\\.'`, `'NULL'`, `E'\\\\N'`, `'trailing  '`, `E'\\\\x00ff'`,
  ]],
  ['vc', 'varchar(40)', [`'  spaced  '`, `''`, `'ünïcødé'`]],
  ['ch', 'char(5)', [`'ab'`, `'abcde'`, `''`]],
  ['b', 'bytea', [`''::bytea`, `'\\x00ff'::bytea`, `(SELECT string_agg(set_byte('\\x00'::bytea, 0, i), ''::bytea) FROM generate_series(0, 255) AS i)`]],
  ['u', 'uuid', [`'00000000-0000-0000-0000-000000000000'`, `'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'`]],
  ['bo', 'bool', ['true', 'false']],
  ['mood', 'mood', [`'a,b'`, `'NULL'`, `'quote"d'`, `'sp ace'`, `'ünï'`, `'happy'`]],
  ['amount', 'positive_amount', [`'0.001'`, `'999999999.999'`, `'1.5'`]],
  ['doc', 'document', [`'null'`, `'{"big": 123456789012345678901234567890.000}'`, `'[1.0, "x"]'`]],
  ['pt', 'point', [`'(1.5,-0)'`, `'(NaN,Infinity)'`, `'(1e300,5e-324)'`]],
  ['rng', 'int4range', [`'empty'`, `'[1,5)'`, `'(,3]'`]],
  ['tr', 'tstzrange', [`'[2000-01-01 00:00:00.000001+00,infinity]'`, `'empty'`, `'(,1900-01-01 00:00:00+00)'`]],
  ['ip', 'inet', [`'::ffff:1.2.3.4/128'`, `'10.0.0.1/8'`]],
  ['pr', 'pair', [`ROW('a "q", (x)', -1)::pair`, `ROW(NULL, NULL)::pair`, `ROW('', 0)::pair`]],
  ['a_int', 'int4[]', [`'{{1,NULL},{NULL,4}}'`, `'{}'`, `'[0:1]={1,2}'`, `'[-2:-1][1:2]={{1,2},{3,4}}'`, `'{NULL}'`]],
  ['a_text', 'text[]', [
    `ARRAY[NULL, 'NULL', 'a,b', 'q"', E'back\\\\slash', '', ' ', E'tab\\tnl\\n', '{x}', 'é🚀']`, `'{{a,b},{NULL,"c d"}}'`, `'[5:5]={only}'`,
  ]],
  ['a_jsonb', 'jsonb[]', [
    `ARRAY['null'::jsonb, NULL, '{"big": 123456789012345678901234567890}', '1.50', '"s"', '[1, {"a": null}]', '[]']`, `'{}'`,
    `ARRAY[['[1]'::jsonb, NULL], ['null', '{"a": [2]}']]`,
  ]],
  ['a_num', 'numeric[]', [`'{NaN,1.500,-0.0001,NULL,Infinity}'`, `'{{1,2},{3.0,4.00}}'`]],
  ['a_f8', 'float8[]', [`'{NaN,Infinity,-Infinity,-0,5e-324,0.1}'`, `'{{1.5,NULL},{NULL,-0}}'`]],
  ['a_f4', 'float4[]', [`'{NaN,-0,3.4028235e+38,1.1}'`]],
  ['a_i8', 'int8[]', [`'{-9223372036854775808,9223372036854775807,NULL}'`, `'[0:0]={1}'`]],
  ['a_bool', 'bool[]', [`'{t,f,NULL}'`]],
  ['a_bytea', 'bytea[]', [`ARRAY['\\x00'::bytea, NULL, ''::bytea, '\\x5c22'::bytea]`]],
  ['a_tstz', 'timestamptz[]', [`'{infinity,-infinity,NULL,"2000-01-01 00:00:00.000001+00","1900-01-01 00:00:00+00"}'`]],
  ['a_mood', 'mood[]', [`'{happy,"a,b","NULL",NULL,"quote\\"d"}'`, `'{{happy},{"sp ace"}}'`]],
  ['a_uuid', 'uuid[]', [`'{00000000-0000-0000-0000-000000000000,NULL}'`]],
  ['a_date', 'date[]', [`'{infinity,-infinity,"4714-11-24 BC",2024-02-29}'`]],
  ['a_iv', 'interval[]', [`'{"-178000000 years","1 mon -1 days 00:00:00.000001",NULL}'`]],
];

/** A value of each type that Postgres 17 added or that needs a newer server, with the version it needs. */
const NEWER: [string, string, number][] = [
  ['iv', `'infinity'`, 170000],
  ['iv', `'-infinity'`, 170000],
];

const NAMES = COLUMNS.map(([name]) => name);
const ROWS = Math.max(...COLUMNS.map(([, , values]) => values.length)) + 1;

function tableDdl(table: string): string {
  return `CREATE TABLE ${table} (id int8 PRIMARY KEY, ${COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')})`;
}

/** One INSERT per row: row k holds the k-th value of each column; the last row is all NULL. */
function rowsSql(table: string, serverVersion: number): string {
  const values = COLUMNS.map(([name, , list]) => [...list, ...NEWER.filter(([n, , v]) => n === name && serverVersion >= v).map(([, value]) => value)]);
  const rows = Math.max(ROWS, ...values.map((v) => v.length + 1));
  return Array.from({ length: rows }, (_, k) =>
    `INSERT INTO ${table} (id, ${NAMES.join(', ')}) VALUES (${k + 1}, ${values.map((v, c) => `(${v[k] ?? 'NULL'})::${COLUMNS[c]![1]}`).join(', ')});`,
  ).join('\n');
}

/** A session that prints every value the same way, whatever the database's settings. */
async function withSession<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, options: '-c timezone=UTC -c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Per row, the md5 of its text, computed by Postgres; json compared as jsonb (its formatting is not a value). */
async function rowDigests(url: string, table: string, names = NAMES): Promise<Record<string, string>> {
  const type = new Map(COLUMNS.map(([name, t]) => [name, t]));
  const list = names.map((name) => (type.get(name) === 'json' ? `${name}::jsonb` : name)).join(', ');
  return withSession(url, async (client) => {
    const result = await client.query<{ id: string; digest: string }>(`SELECT id::text, md5(ROW(${list})::text) AS digest FROM ${table} ORDER BY id`);
    return Object.fromEntries(result.rows.map((r) => [r.id, r.digest]));
  });
}

/** Per row and column, Postgres's own text of the value (null for NULL); json as jsonb. */
async function columnTexts(url: string, table: string, names: string[]): Promise<Record<string, string | null>[]> {
  const type = new Map(COLUMNS.map(([name, t]) => [name, t]));
  return withSession(url, async (client) => {
    const list = names.map((n) => `${type.get(n) === 'json' ? `${n}::jsonb` : n}::text AS ${n}`);
    const result = await client.query<Record<string, string | null>>(`SELECT id::text, ${list.join(', ')} FROM ${table} ORDER BY id`);
    return result.rows;
  });
}

function run<I, O>(activity: (input: I) => Promise<O>, input: I): Promise<O> {
  return new MockActivityEnvironment().run(activity, input);
}

async function verifyAll(databases: Databases, migrationId: string, plan: Plan, pass: number): Promise<VerifyShardResult> {
  const verifier = createVerifier(databases);
  const examples: Mismatch[] = [];
  let cursor: string | null = null;
  let result: VerifyShardResult;
  do {
    result = await run(verifier.verifyShard, {
      migrationId, plan, pass, cursor, chunkSize: 7, inFlightDelayMs: 10, shard: { range: wholeKeySpace, partitionValue: null },
    });
    cursor = result.cursor;
    examples.push(...result.examples);
  } while (!result.done);
  return { ...result, examples };
}

describe('exact values through a module transform', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let serverVersion: number;
  let databases: Databases;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-exact-'));
  const identity = path.join(dir, 'identity.ts');

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('exact_src'), createTestDatabase('exact_tgt')]);
    serverVersion = Number((await sql<{ server_version_num: string }>(sourceUrl, 'SHOW server_version_num'))[0]!.server_version_num);
    // Each database prints times in its own zone (Amsterdam's 1900 offset has seconds), and
    // lists dates day first: only the values may count.
    const dbName = (url: string) => new URL(url).pathname.slice(1);
    await sql(sourceUrl, `ALTER DATABASE ${dbName(sourceUrl)} SET timezone = 'Europe/Amsterdam'; ALTER DATABASE ${dbName(sourceUrl)} SET datestyle = 'SQL, DMY'; ALTER DATABASE ${dbName(sourceUrl)} SET extra_float_digits = 0;`);
    await sql(targetUrl, `ALTER DATABASE ${dbName(targetUrl)} SET timezone = 'Asia/Kolkata'; ALTER DATABASE ${dbName(targetUrl)} SET intervalstyle = 'sql_standard';`);
    for (const url of [sourceUrl, targetUrl]) await sql(url, TYPES_DDL);
    await sql(sourceUrl, `${tableDdl('nasty')}; ${rowsSql('nasty', serverVersion)}`);
    await sql(targetUrl, `${tableDdl('nasty')}; ${tableDdl('nasty_refused')}`);
    writeFileSync(identity, 'export default (row: Record<string, unknown>) => row;');
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
  });
  afterAll(async () => {
    await databases?.close();
    await stopTransformThreads();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (table = 'nasty', module = identity): Plan =>
    validatePlan({
      name: `exact-${table.replace(/_/g, '-')}`,
      source: { connection: 'SOURCE_URL', table: 'nasty', key: 'id' },
      target: { connection: 'TARGET_URL', table },
      transform: { module, columns: ['id', ...NAMES] },
    });

  it('reads every value into JavaScript and writes it back as the same value, by the text Postgres prints', async () => {
    const kinds: ColumnKinds = await targetColumnKinds(databases.pool('TARGET_URL'), { schema: 'public', table: 'nasty' });
    const source = databases.pool('SOURCE_URL');
    // Postgres's text of each value as Ferry's sessions print it, and each type's oid as described.
    const read = await source.query({ text: `SELECT ${NAMES.join(', ')} FROM nasty ORDER BY id`, types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig });
    const oids = new Map(read.fields.map((f) => [f.name, f.dataTypeID]));
    const target = databases.pool('TARGET_URL');
    let checked = 0;
    for (const row of read.rows as Record<string, string | null>[]) {
      for (const [name, type] of COLUMNS) {
        const text = row[name] ?? null;
        if (text === null) continue;
        const decoded = sourceValueParser(oids.get(name)!)(text);
        const written = postgresInputText(decoded, name, kinds[name]);
        // The written text, read by the target as the column's type, is the same value: equal text.
        const canonical = type === 'json' ? 'jsonb' : type;
        const same = await target.query<{ equal: boolean; source: string; written: string }>(
          `SELECT $1::${canonical}::text = $2::${type}::${canonical}::text AS equal, $1::${canonical}::text AS source, $2::${type}::${canonical}::text AS written`,
          [text, written],
        );
        expect(same.rows[0], `${name}: ${text}`).toMatchObject({ equal: true });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(150);
  });

  it('gives the transform exact JavaScript values: numbers where they are exact, LosslessNumber, jsonNull, and text', async () => {
    const source = databases.pool('SOURCE_URL');
    const read = await source.query({ text: `SELECT * FROM nasty ORDER BY id`, types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig });
    const oids = new Map(read.fields.map((f) => [f.name, f.dataTypeID]));
    const value = (id: number, name: string) => {
      const text = (read.rows[id - 1] as Record<string, string | null>)[name] ?? null;
      return text === null ? null : sourceValueParser(oids.get(name)!)(text);
    };
    const big = value(1, 'jb') as { big: unknown };
    expect(isLosslessNumber(big.big) && big.big.toString()).toBe('12345678901234567890123');
    expect(String((value(2, 'jb') as { pi: unknown }).pi)).toBe('3.14159265358979323846264338327950288');
    expect(String(value(3, 'jb'))).toBe('123456789012345678901234567890123456789012345678901');
    expect(isJsonNull(value(4, 'jb'))).toBe(true);
    expect(value(ROWS, 'jb')).toBeNull();
    const mixed = value(5, 'jb') as { a: unknown; b: unknown[] };
    expect(mixed.a).toBeNull();
    expect(mixed.b.map((v) => (isLosslessNumber(v) ? `L${v.toString()}` : v))).toEqual([null, 'L1.0', 'L1.50', 0, 'L0.0', 100, 100, 0.1, 'L0.0000001', 'L' + '15'.padEnd(301, '0')]);
    expect(value(11, 'jb')).toBe(true);
    expect(value(12, 'jb')).toBe('just a string');
    expect(Object.keys(value(9, 'jb') as object)).toContain('__proto__');
    expect(value(1, 'n')).toBe('NaN');
    expect(value(2, 'i8')).toBe('9223372036854775807');
    expect([1, 2, 3, 4].map((id) => value(id, 'f8'))).toEqual([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0]);
    expect(Object.is(value(4, 'f4'), -0)).toBe(true);
    expect(value(1, 'ts')).toBe('infinity');
    expect(value(1, 'a_int')).toEqual([[1, null], [null, 4]]);
    expect(value(3, 'a_int')).toBe('[0:1]={1,2}');
    expect(value(1, 'a_text')).toEqual([null, 'NULL', 'a,b', 'q"', 'back\\slash', '', ' ', 'tab\tnl\n', '{x}', 'é🚀']);
    const jsonbs = value(1, 'a_jsonb') as unknown[];
    expect(isJsonNull(jsonbs[0]) && jsonbs[1] === null && String((jsonbs[2] as { big: unknown }).big)).toBe('123456789012345678901234567890');
    expect(jsonbs.slice(5)).toEqual([[1, { a: null }], []]);
    expect(value(3, 'a_jsonb')).toBe('{{[1],NULL},{"null","{\\"a\\": [2]}"}}');
    // Arrays of types Ferry does not parse (enums, domains, composites) are Postgres's text, as are multi-dimensional json arrays.
    expect(value(1, 'a_mood')).toBe('{happy,"a,b","NULL",NULL,"quote\\"d"}');
    expect(value(1, 'pt')).toBe('(1.5,-0)');
    expect(Buffer.isBuffer(value(3, 'b')) && (value(3, 'b') as Buffer).length).toBe(256);
    expect(isJsonNull(value(1, 'doc'))).toBe(true);
  });

  /** Copies the whole table with the copier activity, as a migration's backfill does. */
  async function copyAll(p: Plan): Promise<{ rowsWritten: number; failures: { key: string; error: string }[] }> {
    const copier = createCopier(databases);
    const failures: { key: string; error: string }[] = [];
    let cursor: string | null = null;
    let rowsWritten = 0;
    for (;;) {
      const result: CopyBatchesResult = await run(copier.copyBatches, {
        migrationId: p.name, plan: p, shard: { range: wholeKeySpace, partitionValue: null }, cursor,
        batchSize: 5, maxBatchSize: 5, rowsPerSecond: null, failureBudget: 1000,
      });
      rowsWritten += result.rowsWritten;
      failures.push(...result.failures.map((f) => ({ key: f.key, error: f.error })));
      cursor = result.cursor;
      if (result.done) return { rowsWritten, failures };
    }
  }

  /** The target's unresolved mismatches of a pass, as recorded. */
  async function recorded(migrationId: string, pass: number): Promise<Mismatch[]> {
    return sql<Mismatch>(
      targetUrl,
      `SELECT key, category, columns FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL ORDER BY key::int8`,
      [migrationId, pass],
    );
  }

  /** One changed value per column, in a row where the source holds something: each must be found. */
  const CORRUPTIONS: [string, number, string][] = [
    ['jb', 1, `'{"big": 12345678901234567890124}'`],
    ['js', 1, `'{"a": 2, "z": [100, 0.01, 0, 12345678901234567891]}'`],
    ['n', 5, `'-123456789012345678901234567890.123456789012345678901234567891'`],
    ['n_scaled', 2, `'-99999999999999999999.99999999999999999998'`],
    ['i2', 1, '-32767'],
    ['i4', 2, '2147483646'],
    ['i8', 2, '9223372036854775806'],
    ['f4', 4, `'0'`],
    ['f8', 6, `'1e-323'`],
    ['ts', 4, `'294276-12-31 23:59:59.999998'`],
    ['tstz', 5, `'1900-01-01 00:00:00.000001+00'`],
    ['d', 1, `'-infinity'`],
    ['tm', 1, `'23:59:59.999999'`],
    ['tmtz', 3, `'12:00:00.000001+05:30:16'`],
    ['iv', 3, `'1 mon -1 days 00:00:00.000002'`],
    ['t', 2, 'NULL'],
    ['vc', 1, `'  spaced '`],
    ['ch', 1, `'ac'`],
    ['b', 3, `'\\x00'::bytea`],
    ['u', 2, `'ffffffff-ffff-ffff-ffff-fffffffffffe'`],
    ['bo', 1, 'false'],
    ['mood', 1, `'NULL'`],
    ['amount', 1, `'0.002'`],
    ['doc', 1, 'NULL'],
    ['pt', 1, `'(1.5,0)'`],
    ['rng', 2, `'[1,6)'`],
    ['tr', 1, `'[2000-01-01 00:00:00.000001+00,infinity)'`],
    ['ip', 1, `'::ffff:1.2.3.4/127'`],
    ['pr', 1, `ROW('a "q", (x)', 1)::pair`],
    ['a_int', 3, `'{1,2}'`],
    ['a_text', 3, `'{only}'`],
    ['a_jsonb', 2, `'{NULL}'`],
    ['a_num', 1, `'{NaN,1.5,-0.0001,NULL,Infinity}'`],
    ['a_f8', 1, `'{NaN,Infinity,-Infinity,0,5e-324,0.1}'`],
    ['a_f4', 1, `'{NaN,-0,3.4028235e+38,1.1000001}'`],
    ['a_i8', 2, `'{1}'`],
    ['a_bool', 1, `'{t,f,f}'`],
    ['a_bytea', 1, `ARRAY['\\x00'::bytea, ''::bytea, ''::bytea, '\\x5c22'::bytea]`],
    ['a_tstz', 1, `'{infinity,-infinity,NULL,"2000-01-01 00:00:00.000002+00","1900-01-01 00:00:00+00"}'`],
    ['a_mood', 1, `'{happy,"a,b",NULL,NULL,"quote\\"d"}'`],
    ['a_uuid', 1, `'{00000000-0000-0000-0000-000000000000}'`],
    ['a_date', 1, `'{infinity,infinity,"4714-11-24 BC",2024-02-29}'`],
    ['a_iv', 1, `'{"-178000000 years","1 mon -1 days 00:00:00.000001"}'`],
  ];

  /** Changes one value per column in the target, and the mismatches the verifier must report for them. */
  async function corrupt(table: string, names: string[]): Promise<Mismatch[]> {
    const chosen = CORRUPTIONS.filter(([name]) => names.includes(name));
    await sql(targetUrl, chosen.map(([name, id, value]) => `UPDATE ${table} SET ${name} = ${value} WHERE id = ${id};`).join('\n'));
    const byRow = new Map<number, string[]>();
    for (const [name, id] of chosen) byRow.set(id, [...(byRow.get(id) ?? []), name]);
    return [...byRow.entries()]
      .sort(([a], [b]) => a - b)
      .map(([id, columns]) => ({ key: String(id), category: 'value' as const, columns: names.filter((n) => columns.includes(n)) }));
  }

  it('covers every column with a corruption', () => {
    expect(CORRUPTIONS.map(([name]) => name).sort()).toEqual([...NAMES].sort());
  });

  it('copies every row through an identity transform with the same text on both sides; verification is clean, finds a changed value of every type, and repairs it', async () => {
    const p = plan();
    const copied = await copyAll(p);
    expect(copied.failures).toEqual([]);
    const expected = await rowDigests(sourceUrl, 'nasty');
    expect(Object.keys(expected).length).toBeGreaterThanOrEqual(ROWS);
    expect(copied.rowsWritten).toBe(Object.keys(expected).length);
    // Column by column first, so that a failure names the value; then whole rows.
    expect(await columnTexts(targetUrl, 'nasty', NAMES)).toEqual(await columnTexts(sourceUrl, 'nasty', NAMES));
    expect(await rowDigests(targetUrl, 'nasty')).toEqual(expected);

    const clean = await verifyAll(databases, 'exact-clean', p, 1);
    expect(clean.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(clean.rowsChecked).toBe(Object.keys(expected).length);

    const changed = await corrupt('nasty', NAMES);
    const found = await verifyAll(databases, 'exact-corrupt', p, 1);
    expect(found.mismatches).toEqual({ missing: 0, extra: 0, value: changed.length });
    expect(await recorded('exact-corrupt', 1)).toEqual(changed);

    const repair = await run(createVerifier(databases).repairMismatches, { migrationId: 'exact-corrupt', plan: p, pass: 1 });
    expect(repair).toMatchObject({ repaired: changed.length, unresolved: 0 });
    expect(await rowDigests(targetUrl, 'nasty')).toEqual(expected);
    expect((await verifyAll(databases, 'exact-corrupt', p, 2)).mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
  });

  /** Types whose canonical text the worker computes itself: verification hashes them on transform threads. */
  const WORKER_COLUMNS = ['jb', 'js', 'n', 'n_scaled', 'i2', 'i4', 'i8', 'ts', 'tstz', 'd', 't', 'vc', 'b', 'u', 'bo', 'amount', 'doc'];

  it('verifies in the worker with the same verdicts: clean when equal, every changed value found', async () => {
    const module = path.join(dir, 'worker-columns.ts');
    writeFileSync(module, `const names = ${JSON.stringify(WORKER_COLUMNS)};
      export default (row: Record<string, unknown>) => Object.fromEntries(['id', ...names].map((n) => [n, row[n]]));`);
    await sql(targetUrl, `CREATE TABLE nasty_worker (id int8 PRIMARY KEY, ${WORKER_COLUMNS.map((n) => `${n} ${COLUMNS.find(([c]) => c === n)![1]}`).join(', ')})`);
    const p = validatePlan({
      name: 'exact-worker',
      source: { connection: 'SOURCE_URL', table: 'nasty', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'nasty_worker' },
      transform: { module, columns: ['id', ...WORKER_COLUMNS] },
    });
    expect((await copyAll(p)).failures).toEqual([]);
    const expected = await rowDigests(sourceUrl, 'nasty', WORKER_COLUMNS);
    expect(await rowDigests(targetUrl, 'nasty_worker', WORKER_COLUMNS)).toEqual(expected);

    // The worker's own canonical text of every value it claims to know is Postgres's, field by field.
    const types = await sql<ColumnType>(targetUrl, columnTypesSql({ schema: 'public', table: 'nasty_worker' }, WORKER_COLUMNS).text, columnTypesSql({ schema: 'public', table: 'nasty_worker' }, WORKER_COLUMNS).values);
    const source = await databases.pool('SOURCE_URL').query({ text: `SELECT ${WORKER_COLUMNS.join(', ')} FROM nasty ORDER BY id`, types: sourceRowTypes });
    const fields = await withSession(targetUrl, (client) =>
      client.query<Record<string, string>>(`SELECT ${types.map((c) => `${rowText([canonicalText(`r.${c.name}`, c)])} AS ${c.name}`).join(', ')} FROM nasty_worker AS r ORDER BY id`),
    );
    let known = 0;
    source.rows.forEach((row: Record<string, unknown>, i) => {
      for (const column of types) {
        const field = workerFieldOf(column)!(row[column.name]);
        if (field === undefined) continue;
        expect(`(${field})`, `row ${i + 1}, ${column.name}`).toBe(fields.rows[i]![column.name]);
        known++;
      }
    });
    expect(known).toBeGreaterThan(120);
    const clean = await verifyAll(databases, 'exact-worker-clean', p, 1);
    expect(clean.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });

    const changed = await corrupt('nasty_worker', WORKER_COLUMNS);
    const found = await verifyAll(databases, 'exact-worker-corrupt', p, 1);
    expect(found.mismatches).toEqual({ missing: 0, extra: 0, value: changed.length });
    expect(await recorded('exact-worker-corrupt', 1)).toEqual(changed);
  });

  it('copies every row through the SQL path across databases with the same text on both sides', async () => {
    await sql(targetUrl, tableDdl('nasty_sql'));
    const p = validatePlan({
      name: 'exact-sql',
      source: { connection: 'SOURCE_URL', table: 'nasty', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'nasty_sql' },
      transform: { sql: Object.fromEntries(['id', ...NAMES].map((n) => [n, n])) },
    });
    expect((await copyAll(p)).failures).toEqual([]);
    expect(await columnTexts(targetUrl, 'nasty_sql', NAMES)).toEqual(await columnTexts(sourceUrl, 'nasty', NAMES));
    expect(await rowDigests(targetUrl, 'nasty_sql')).toEqual(await rowDigests(sourceUrl, 'nasty'));
    const verified = await verifyAll(databases, 'exact-sql', p, 1);
    expect(verified.examples).toEqual([]);
    expect(verified.rowsChecked).toBe(Object.keys(await rowDigests(sourceUrl, 'nasty')).length);
  });

  it('fails a row whose returned value cannot be written exactly, with the reason, and writes the others', async () => {
    const module = path.join(dir, 'inexact.ts');
    writeFileSync(module, `import { jsonNull } from ${JSON.stringify(path.resolve(__dirname, '../../lib/json-values.ts'))};
      const inexact: Record<string, Record<string, unknown>> = {
        '1': { i4: 1.5 },
        '2': { i8: 2 ** 70 },
        '3': { jb: { x: Number.NaN } },
        '4': { t: jsonNull },
        '5': { n: 2 ** 60 },
        '6': { jb: { at: new Date(Number.NaN) } },
        '7': { a_int: [1, 2.5] },
        '8': { js: [Number.POSITIVE_INFINITY] },
        '9': { a_jsonb: [Number.NaN] },
        '10': { a_i8: [[2 ** 64]] },
      };
      export default (row: { id: string }) => ({ id: row.id, n: 2 ** 52, i8: -(2 ** 53 - 1), jb: jsonNull, a_jsonb: [jsonNull, null], ...inexact[row.id] });`);
    const p = plan('nasty_refused', module);
    const copied = await copyAll(p);
    const reasons: Record<string, RegExp> = {
      '1': /column "i4" is an integer column, and 1\.5 is not an integer/,
      '2': /column "i8" is 1\.1805916207174113e\+21, an integer beyond 2\^53/,
      '3': /column "jb" cannot be written as JSON: NaN/,
      '4': /column "t" is not json or jsonb/,
      '5': /column "n" is 1152921504606847000, an integer beyond 2\^53/,
      '6': /column "jb" cannot be written as JSON: an invalid Date/,
      '7': /column "a_int" is an integer column, and 2\.5 is not an integer/,
      '8': /column "js" cannot be written as JSON: Infinity/,
      '9': /column "a_jsonb" cannot be written as JSON: NaN/,
      '10': /column "a_i8" is 18446744073709552000, an integer beyond 2\^53/,
    };
    expect(copied.failures.map((f) => f.key).sort()).toEqual(Object.keys(reasons).sort());
    for (const failure of copied.failures) expect(failure.error, failure.key).toMatch(reasons[failure.key]!);
    const rows = await sql<{ id: string; n: string; i8: string; jb: string; a_jsonb: string }>(
      targetUrl, `SELECT id::text, n::text, i8::text, jb::text, a_jsonb::text FROM nasty_refused ORDER BY id`,
    );
    expect(rows.map((r) => r.id)).toEqual(Object.keys(await rowDigests(sourceUrl, 'nasty')).filter((id) => !(id in reasons)));
    expect(rows[0]).toMatchObject({ n: '4503599627370496', i8: '-9007199254740991', jb: 'null', a_jsonb: '{"null",NULL}' });
  });
});

/** Generated values of each type, as Postgres input text: Postgres parses them, Ferry decodes and encodes its text, Postgres compares. */
describe('generated values through the decoder and encoder', () => {
  let url: string;
  let pool: pg.Pool;
  beforeAll(async () => {
    url = await createTestDatabase('exact_gen');
    pool = new pg.Pool({ connectionString: url, max: 1, options: '-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3 -c timezone=Europe/Amsterdam' });
  });
  afterAll(() => pool?.end());

  const digits = (min: number, max: number) => fc.stringMatching(new RegExp(`^[0-9]{${min},${max}}$`));
  const decimal = fc.tuple(fc.constantFrom('', '-'), digits(1, 40), fc.option(digits(1, 40), { nil: undefined })).map(([sign, whole, fraction]) => `${sign}${whole.replace(/^0+(?=\d)/, '')}${fraction === undefined ? '' : '.' + fraction}`);
  const jsonNumber = fc.oneof(decimal, fc.double({ noNaN: true, noDefaultInfinity: true }).map(String), fc.tuple(decimal, fc.integer({ min: -300, max: 300 })).map(([d, e]) => `${d}e${e}`));
  const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      jsonNumber,
      fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0') && !/[\ud800-\udfff]/.test(s)).map((s) => JSON.stringify(s)),
      fc.constantFrom('true', 'false', 'null'),
      fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
      fc.array(fc.tuple(fc.string(), tie('value')), { maxLength: 4 }).map((members) => `{${members.map(([k, v]) => `${JSON.stringify(k.replace(/\0/g, ''))}:${v}`).join(',')}}`),
    ),
  })).value;
  const text = fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0') && !/[\ud800-\udfff]/.test(s));
  const GENERATORS: [string, fc.Arbitrary<string>][] = [
    ['jsonb', jsonText],
    ['json', jsonText],
    ['numeric', fc.oneof(decimal, fc.constantFrom('NaN', 'Infinity', '-Infinity'))],
    ['float8', fc.oneof(fc.double().map((d) => (Object.is(d, -0) ? '-0' : String(d))), decimal.filter((d) => d.replace(/^-/, '').split('.')[0]!.length < 300))],
    ['float4', fc.float().map((d) => (Object.is(d, -0) ? '-0' : String(d)))],
    ['int8', fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String)],
    ['int4', fc.integer().map(String)],
    ['text', text],
    ['bytea', fc.uint8Array({ maxLength: 64 }).map((b) => `\\x${Buffer.from(b).toString('hex')}`)],
    ['timestamptz', fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).chain((d) => fc.integer({ min: 0, max: 999 }).map((us) => d.toISOString().replace('Z', `${String(us).padStart(3, '0')}+00`)))],
    ['interval', fc.tuple(fc.integer({ min: -10000, max: 10000 }), fc.integer({ min: -100000, max: 100000 }), fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n })).map(([m, d, us]) => `${m} mons ${d} days ${us} microseconds`)],
    ['text[]', fc.array(fc.option(text, { nil: null }), { maxLength: 5 }).map((items) => `{${items.map((i) => (i === null ? 'NULL' : `"${i.replace(/["\\]/g, '\\$&')}"`)).join(',')}}`)],
    ['float8[]', fc.array(fc.array(fc.option(fc.double(), { nil: null }), { minLength: 2, maxLength: 2 }), { maxLength: 3 }).map((rows) => `{${rows.map((r) => `{${r.map((v) => (v === null ? 'NULL' : Object.is(v, -0) ? '-0' : String(v))).join(',')}}`).join(',')}}`)],
    ['jsonb[]', fc.array(fc.option(jsonText, { nil: null }), { maxLength: 4 }).map((items) => `{${items.map((i) => (i === null ? 'NULL' : `"${i.replace(/["\\]/g, '\\$&')}"`)).join(',')}}`)],
  ];

  it.each(GENERATORS)('%s: every generated value reads back as the same value', async (type, generator) => {
    const inputs = fc.sample(generator, { numRuns: 300, seed: 42 });
    const kinds = await pool.query<{ oid: number; kind: string; base: string; is_array: boolean }>(
      `SELECT t.oid::int AS oid, coalesce(e.typname, t.typname) AS base, t.typcategory = 'A' AS is_array FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' WHERE t.oid = $1::regtype`,
      [type],
    );
    const { oid, base, is_array: isArray } = kinds.rows[0]!;
    // Postgres parses each input; its own text is what the source gives a transform.
    const printed = await pool.query<{ text: string }>({ text: `SELECT (v::${type})::text AS text FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n`, values: [inputs] });
    const texts = printed.rows.map((r) => r.text);
    const written = texts.map((t) => postgresInputText(sourceValueParser(oid)(t), 'v', columnKindOf(base, isArray)));
    const canonical = type === 'json' ? 'jsonb' : type;
    const differing = await pool.query<{ source: string; written: string }>({
      text: `SELECT s AS source, w AS written FROM unnest($1::text[], $2::text[]) AS u(s, w) WHERE (s::${type})::${canonical}::text IS DISTINCT FROM (w::${type})::${canonical}::text`,
      values: [texts, written],
    });
    expect(differing.rows).toEqual([]);
  });
});
