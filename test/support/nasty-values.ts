/**
 * A table of every type Ferry supports, full of extreme values, for the exact-value tests, and
 * this test's own comparator: Postgres's text of each row (md5) and of each value, read in a
 * session whose settings are fixed, sharing no code with Ferry.
 */
import pg from 'pg';

export const TYPES_DDL = `
  CREATE TYPE mood AS ENUM ('happy', 'a,b', 'NULL', 'quote"d', 'sp ace', 'ünï');
  CREATE DOMAIN positive_amount AS numeric(12, 3) CHECK (VALUE > 0);
  CREATE DOMAIN document AS jsonb;
  CREATE TYPE pair AS (label text, n int4);`;

/** Column, type, and the SQL literals of its values, one per row (rows past the end are NULL). */
export const COLUMNS: [string, string, string[]][] = [
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
export const NEWER: [string, string, number][] = [
  ['iv', `'infinity'`, 170000],
  ['iv', `'-infinity'`, 170000],
];

export const NAMES = COLUMNS.map(([name]) => name);
export const ROWS = Math.max(...COLUMNS.map(([, , values]) => values.length)) + 1;

export function tableDdl(table: string): string {
  return `CREATE TABLE ${table} (id int8 PRIMARY KEY, ${COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')})`;
}

/** One INSERT per row: row k holds the k-th value of each column; the last row is all NULL. */
export function rowsSql(table: string, serverVersion: number): string {
  const values = COLUMNS.map(([name, , list]) => [...list, ...NEWER.filter(([n, , v]) => n === name && serverVersion >= v).map(([, value]) => value)]);
  const rows = Math.max(ROWS, ...values.map((v) => v.length + 1));
  return Array.from({ length: rows }, (_, k) =>
    `INSERT INTO ${table} (id, ${NAMES.join(', ')}) VALUES (${k + 1}, ${values.map((v, c) => `(${v[k] ?? 'NULL'})::${COLUMNS[c]![1]}`).join(', ')});`,
  ).join('\n');
}

/** A session that prints every value the same way, whatever the database's settings. */
export async function withSession<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, options: '-c timezone=UTC -c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Per row, the md5 of its text, computed by Postgres; json compared as jsonb (its formatting is not a value). */
export async function rowDigests(url: string, table: string, names = NAMES): Promise<Record<string, string>> {
  const type = new Map(COLUMNS.map(([name, t]) => [name, t]));
  const list = names.map((name) => (type.get(name) === 'json' ? `${name}::jsonb` : name)).join(', ');
  return withSession(url, async (client) => {
    const result = await client.query<{ id: string; digest: string }>(`SELECT id::text, md5(ROW(${list})::text) AS digest FROM ${table} ORDER BY id`);
    return Object.fromEntries(result.rows.map((r) => [r.id, r.digest]));
  });
}

/** Per row and column, Postgres's own text of the value (null for NULL); json as jsonb. */
export async function columnTexts(url: string, table: string, names: string[]): Promise<Record<string, string | null>[]> {
  const type = new Map(COLUMNS.map(([name, t]) => [name, t]));
  return withSession(url, async (client) => {
    const list = names.map((n) => `${type.get(n) === 'json' ? `${n}::jsonb` : n}::text AS ${n}`);
    const result = await client.query<Record<string, string | null>>(`SELECT id::text, ${list.join(', ')} FROM ${table} ORDER BY id`);
    return result.rows;
  });
}

/** One changed value per column, in a row where the source holds something: each must be found. */
export const CORRUPTIONS: [string, number, string][] = [
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

/**
 * Two new databases whose sessions print values differently by default (`settings` per side, e.g.
 * timezone and datestyle), so that only the values may count; and the server's version number.
 */
export async function databasesPrintingApart(
  create: (name: string) => Promise<string>,
  names: [string, string],
  settings: [Record<string, string>, Record<string, string>],
): Promise<{ sourceUrl: string; targetUrl: string; serverVersion: number }> {
  const urls = await Promise.all(names.map((name) => create(name)));
  for (const [i, url] of urls.entries()) {
    const database = pg.escapeIdentifier(new URL(url).pathname.slice(1));
    const statements = Object.entries(settings[i]!).map(([name, value]) => `ALTER DATABASE ${database} SET ${name} = ${pg.escapeLiteral(value)};`);
    await withSession(url, (client) => client.query(statements.join(' ')));
  }
  const version = await withSession(urls[0]!, (client) => client.query<{ server_version_num: string }>('SHOW server_version_num'));
  return { sourceUrl: urls[0]!, targetUrl: urls[1]!, serverVersion: Number(version.rows[0]!.server_version_num) };
}
