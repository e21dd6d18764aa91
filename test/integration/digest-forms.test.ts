/**
 * The native form of a chunk digest (verification of a SQL transform) against the canonical
 * form (shared with the worker): for every column of the nasty-values table, over its values,
 * the changed values the exact-value tests use and the same values written another way, two
 * rows are equal in one form exactly when they are equal in the other, read through Ferry's own
 * sessions on databases that print times in other zones. End to end, the SQL path finds a
 * changed value of every type, and nothing on equal data.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { columnTypesSql, digestValues, rowDigestSum, rowText, type ColumnType } from '../../activities/verify/verify-statements';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';
import { COLUMNS, CORRUPTIONS, databasesPrintingApart, NAMES, rowsSql, tableDdl, TYPES_DDL } from '../support/nasty-values';

/** Values equal to a nasty row's, written another way: [column, that row's id, literal]. */
const RESPELLED: [string, number, string][] = [
  ['tstz', 6, `'2024-03-31 00:30:00.000001+00'`],
  ['tstz', 5, `'1899-12-31 22:00:00-02'`],
  ['ts', 5, `'2000-01-01 00:00:00.0000010'`],
  ['d', 5, `'20240229'`],
  ['js', 5, `'{"a": {"y": true}, "b": 1}'`],
  ['tm', 2, `'00:00:00.0000010'`],
  ['a_tstz', 1, `'{infinity,-infinity,NULL,"2000-01-01 01:00:00.000001+01","1900-01-01 00:00:00+00"}'`],
  ['tr', 1, `'[2000-01-01 05:30:00.000001+05:30,infinity]'`],
];

/** Types whose native form is their text in ISO, not to_char's: the only record texts that differ. */
const RESHAPED = new Set(['timestamptz', 'timestamp', 'date']);

describe('digest forms', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  let types: ColumnType[];

  beforeAll(async () => {
    const created = await databasesPrintingApart(createTestDatabase, ['forms_src', 'forms_tgt'], [
      { timezone: 'Pacific/Chatham', datestyle: 'SQL, DMY' },
      { timezone: 'America/St_Johns', datestyle: 'German' },
    ]);
    ({ sourceUrl, targetUrl } = created);
    const serverVersion = created.serverVersion;
    for (const url of [sourceUrl, targetUrl]) await sql(url, `${TYPES_DDL}; ${tableDdl('nasty')}; ${rowsSql('nasty', serverVersion)}`);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    const query = columnTypesSql({ schema: 'public', table: 'nasty' }, NAMES);
    const found = await sql<ColumnType>(sourceUrl, query.text, query.values);
    const byName = new Map(found.map((c) => [c.name, c]));
    types = NAMES.map((n) => byName.get(n)!);
  });
  afterAll(async () => {
    await databases?.close();
  });

  it('tells apart exactly the values the canonical form does, with the same record text but for times and dates', async () => {
    // The nasty rows, then a copy of a row per changed value and per value written another way.
    const variants = [...CORRUPTIONS, ...RESPELLED];
    await sql(
      sourceUrl,
      `CREATE TABLE forms AS SELECT * FROM nasty;\n` +
        variants.map(([name, id, value], i) => `INSERT INTO forms SELECT ${1000 + i}, ${NAMES.map((n) => (n === name ? `(${value})::${COLUMNS.find(([c]) => c === n)![1]}` : n)).join(', ')} FROM nasty WHERE id = ${id};`).join('\n'),
    );
    const pool = databases.pool('SOURCE_URL');
    let equalPairs = 0;
    for (const column of types) {
      const { rows } = await pool.query<{ id: string; native: string; canonical: string }>(
        `SELECT id::text, ${rowText(digestValues([column], 'native'))} AS native, ${rowText(digestValues([column], 'canonical'))} AS canonical FROM forms AS r ORDER BY id`,
      );
      for (const a of rows) {
        if (!RESHAPED.has(column.base)) expect(a.native, `${column.name}, row ${a.id}`).toBe(a.canonical);
        for (const b of rows) {
          if (Number(a.id) >= Number(b.id)) continue;
          expect(a.native === b.native, `${column.name}: rows ${a.id} and ${b.id} (${a.canonical} / ${b.canonical})`).toBe(a.canonical === b.canonical);
          if (RESHAPED.has(column.base) && a.canonical === b.canonical && a.canonical !== '()') equalPairs += 1;
        }
      }
    }
    // The values written another way are equal: the check above saw equal non-NULL times.
    expect(equalPairs).toBeGreaterThanOrEqual(4);
  });

  const plan = (table: string): Plan =>
    validatePlan({
      name: `forms-${table.replace(/_/g, '-')}`,
      source: { connection: 'SOURCE_URL', table: 'nasty', key: 'id' },
      target: { connection: 'TARGET_URL', table },
      transform: { sql: Object.fromEntries(['id', ...NAMES].map((n) => [n, n])) },
    });

  async function verifyAll(migrationId: string, p: Plan): Promise<VerifyShardResult> {
    const verifier = createVerifier(databases);
    const examples: Mismatch[] = [];
    let cursor: string | null = null;
    let result: VerifyShardResult;
    do {
      result = await new MockActivityEnvironment().run(verifier.verifyShard, {
        migrationId, plan: p, pass: 1, cursor, chunkSize: 7, inFlightDelayMs: 10, shard: { range: wholeKeySpace, partitionValue: null },
      });
      cursor = result.cursor;
      examples.push(...result.examples);
    } while (!result.done);
    return { ...result, examples };
  }

  it('verifies a SQL transform clean on equal data and finds a changed value of every type, naming its column', async () => {
    const clean = await verifyAll('forms-clean', plan('nasty'));
    expect(clean.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(clean.chunksDiffering).toBe(0);
    // Equal digests, not only a clean verdict after reading differing chunks row by row.
    const digest = async (connection: string) => {
      const list = rowText(digestValues(types, 'native'));
      return (await databases.pool(connection).query(`SELECT count(*)::text AS rows, ${rowDigestSum(list)} AS digest FROM nasty AS r`)).rows[0];
    };
    expect(await digest('TARGET_URL')).toEqual(await digest('SOURCE_URL'));

    // One table per changed value, so that no other change in the row can hide it.
    for (const [name, id, value] of CORRUPTIONS) {
      const table = `changed_${name}`;
      await sql(targetUrl, `CREATE TABLE ${table} AS SELECT * FROM nasty; ALTER TABLE ${table} ADD PRIMARY KEY (id); UPDATE ${table} SET ${name} = ${value} WHERE id = ${id};`);
      const found = await verifyAll(`forms-${name}`, plan(table));
      expect(found.examples, name).toEqual([{ key: String(id), category: 'value', columns: [name] }]);
    }
  }, 120_000);
});
