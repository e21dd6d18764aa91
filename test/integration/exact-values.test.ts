/**
 * Exact values through a module transform, proved against PostgreSQL's own text. A table of
 * every supported type, full of extreme values, goes through an identity transform between two
 * databases whose sessions print times in different zones: each row's text must be the same on
 * both sides (md5 computed by this test's own SQL); the decoder and encoder are checked value by
 * value against the text Postgres prints; a value changed in the target is reported by the
 * verifier for every type; and values a transform returns that cannot be written exactly fail
 * their rows, with the reason.
 */
import { runActivity } from '../support/activities';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesResult } from '../../activities/copy/copier';
import { postgresInputText, sourceRowTypes, sourceValueParser } from '../../activities/transform/exact-values';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { targetColumnKinds } from '../../activities/transform/copy-text';
import { type ColumnKinds } from '../../activities/transform/exact-values';
import { stopTransformThreads } from '../../activities/transform/transform-threads';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { canonicalText, columnTypesSql, rowText, type ColumnType } from '../../activities/verify/verify-statements';
import { workerFieldOf } from '../../activities/transform/worker-checksum';
import { isJsonNull, isLosslessNumber } from '../../lib/json-values';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';
import {
  columnTexts, COLUMNS, CORRUPTIONS, NAMES, rowDigests, rowsSql, ROWS, tableDdl, TYPES_DDL, withSession,
} from '../support/nasty-values';


async function verifyAll(databases: Databases, migrationId: string, plan: Plan, pass: number): Promise<VerifyShardResult> {
  const verifier = createVerifier(databases);
  const examples: Mismatch[] = [];
  let cursor: string | null = null;
  let result: VerifyShardResult;
  do {
    result = await runActivity(verifier.verifyShard, {
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
      const result: CopyBatchesResult = await runActivity(copier.copyBatches, {
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

    const repair = await runActivity(createVerifier(databases).repairMismatches, { migrationId: 'exact-corrupt', plan: p, pass: 1 });
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
      '1': /column "i4" is an integer column, and is given a number with a fraction/,
      '2': /column "i8" is given an integer beyond 2\^53/,
      '3': /column "jb" cannot be written as JSON: NaN/,
      '4': /column "t" is not json or jsonb/,
      '5': /column "n" is given an integer beyond 2\^53/,
      '6': /column "jb" cannot be written as JSON: an invalid Date/,
      '7': /column "a_int" is an integer column, and is given a number with a fraction/,
      '8': /column "js" cannot be written as JSON: Infinity/,
      '9': /column "a_jsonb" cannot be written as JSON: NaN/,
      '10': /column "a_i8" is given an integer beyond 2\^53/,
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
