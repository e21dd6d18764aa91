/**
 * Text keys the source and the target order differently (another collation on the column, or
 * another database default): a key range `(after, upTo]` holds other keys on each side. The copy
 * ranges over source keys only; verification compares each chunk's source keys with the target's
 * rows of the same keys, so its verdict, category for category, is what the test's own md5 of
 * every row's text says. subset.keyRange, whose bounds would select other target rows, is refused
 * before anything is written.
 */
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabases } from '../../activities/connections';
import { keyOrdersDiffer } from '../../activities/inspect/key-order';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { noChangeWaitingSince } from '../support/capture-lag';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';

/** Mixed case, accents, punctuation, spaces, digits and the empty key: they sort apart in "C" and in ICU. */
const KEYS = [
  ...new Set([
    'a', 'B', 'a-b', 'ab', 'É', '10', '9', '', 'A', 'b', 'e', 'é', 'Z', 'z', ' a', 'a b', '_x', '-', 'Ab', 'aB',
    ...fc.sample(fc.string({ maxLength: 4, unit: fc.constantFrom('a', 'A', 'b', 'B', 'é', 'É', 'e', '-', ' ', '1', '9', '0', '_', 'z') }), { numRuns: 400, seed: 42 }),
  ]),
];
const VALUES = KEYS.map((k, i) => `('${k.replace(/'/g, "''")}', 'v${i}')`).join(', ');

/**
 * A target the copy must not overwrite (conflict policy ignore): some source rows already there,
 * a few of them with another value, and rows the source never had. Keys as mixed as the source's.
 */
const SEED_TARGET = (table: string) => `
  INSERT INTO ${table} SELECT k, CASE WHEN md5(k) < '3' THEN 'wrong' ELSE v END FROM (VALUES ${VALUES}) AS w(k, v) WHERE md5(k) < '8';
  INSERT INTO ${table} VALUES ('extra-1', 'x'), ('Extra-2', 'x'), ('éx', 'x'), ('A-extra', 'x');`;

/** Each row's md5, by key: the test's own view of both sides, independent of Ferry's verifier. */
async function rowHashes(url: string, table: string): Promise<Map<string, string>> {
  return new Map((await sql<{ k: string; h: string }>(url, `SELECT k, md5(ROW(k, v)::text) AS h FROM ${table}`)).map((r) => [r.k, r.h]));
}

/** What verification must find after the copy: rows it kept with another value, and rows the source lacks. */
async function expectedVerdict(source: Map<string, string>, target: Map<string, string>) {
  const value = [...target.keys()].filter((k) => source.has(k) && source.get(k) !== target.get(k)).length;
  const extra = [...target.keys()].filter((k) => !source.has(k)).length;
  return { value, extra };
}

function differing(a: Map<string, string>, b: Map<string, string>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
}

describe('keys the source and the target order differently', () => {
  let url: string;
  let icuUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    const admin = inject('postgresUrl');
    const icu = await sqlRow<{ n: number }>(admin, `SELECT count(*)::int AS n FROM pg_collation WHERE collname = 'und-x-icu'`);
    if (icu.n === 0) throw new Error('this test needs a PostgreSQL built with ICU (collation "und-x-icu")');
    url = await createTestDatabase('collation');
    // A source database whose default orders text by ICU's en-US, as many production databases do.
    const name = uniqueName('ferry_collation_icu');
    await sql(admin, `CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
    const at = new URL(admin);
    at.pathname = `/${name}`;
    icuUrl = at.toString();
    worker = await startWorker({ DB: url, ICU: icuUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const migrate = async (name: string, source: { connection: string; table: string }, target: { connection: string; table: string }, module: boolean) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-collation-'));
    writeFileSync(path.join(dir, 'same.ts'), `export default (row: { k: string; v: string }) => ({ k: row.k, v: row.v });`);
    const plan = validatePlan({
      name,
      source: { ...source, key: 'k' },
      target,
      transform: module ? { module: path.join(dir, 'same.ts'), columns: ['k', 'v'] } : { sql: { k: 'k', v: 'v' } },
      shards: { count: 4 },
      throttle: { batchSize: 10 },
      verify: { chunkSize: 10, maxPasses: 3, inFlightDelaySeconds: 0.05 },
    });
    return (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
  };

  it.each([
    ['within one database, the source column in "und-x-icu" and the target column (varchar) in "C"', 'DB', 'DB', false],
    ['across two databases, the source database ordering by ICU en-US and the target by "C"', 'ICU', 'DB', false],
    ['across two databases, through a module transform', 'ICU', 'DB', true],
  ] as const)('%s: copies every row once and verifies exactly what differs', async (_, sourceEnv, targetEnv, module) => {
    const table = uniqueName('words');
    const sourceUrl = sourceEnv === 'DB' ? url : icuUrl;
    const sourceCollation = sourceEnv === 'DB' ? ' COLLATE "und-x-icu"' : '';
    await sql(sourceUrl, `CREATE TABLE ${table} (k text${sourceCollation} PRIMARY KEY, v text); INSERT INTO ${table} VALUES ${VALUES};`);
    const targetType = sourceEnv === 'DB' ? 'varchar(40)' : 'text';
    await sql(url, `CREATE TABLE ${table}_c (k ${targetType} COLLATE "C" PRIMARY KEY, v text); ${SEED_TARGET(`${table}_c`)}`);
    // The orders really differ, over these very keys.
    const order = (at: string, t: string) => sql<{ k: string }>(at, `SELECT k FROM ${t} WHERE k IN (SELECT k FROM (VALUES ${VALUES}) AS w(k, v)) ORDER BY k`);
    expect((await order(sourceUrl, table)).map((r) => r.k)).not.toEqual((await order(url, `${table}_c`)).map((r) => r.k));

    const source = await rowHashes(sourceUrl, table);
    const { value, extra } = await expectedVerdict(source, await rowHashes(url, `${table}_c`));
    expect(value).toBeGreaterThan(10);
    expect(extra).toBe(4);

    const status = await migrate(`collation-${sourceEnv.toLowerCase()}${module ? '-module' : ''}`, { connection: sourceEnv, table }, { connection: targetEnv, table: `${table}_c` }, module);
    expect(status.phase).toBe('completed');
    const passes = status.events.filter((e) => e.kind === 'verify').map((e) => e.detail);
    expect(passes).toEqual([
      `pass 1: ${KEYS.length} rows checked, 0 missing, ${extra} extra, ${value} differing, 0 in flight`,
      `pass 1 repaired: ${value} rows written, ${extra} deleted, 0 unresolved`,
      `pass 2: ${KEYS.length} rows checked, 0 missing, 0 extra, 0 differing, 0 in flight`,
    ]);
    expect(status.verification).toMatchObject({ clean: true, rowsChecked: KEYS.length, inFlight: 0 });
    expect(differing(source, await rowHashes(url, `${table}_c`))).toEqual([]);
  });

  it('by lineage: target rows found by the source key they name, in a column of another collation', async () => {
    await sql(url, `CREATE TABLE traced (k text COLLATE "und-x-icu" PRIMARY KEY, v text); INSERT INTO traced VALUES ${VALUES};
                    CREATE TABLE traced_c (id text COLLATE "C" PRIMARY KEY, src text COLLATE "C" NOT NULL, v text);
                    CREATE INDEX ON traced_c (src);
                    INSERT INTO traced_c SELECT k || '#', k, CASE WHEN md5(k) < '3' THEN 'wrong' ELSE v END FROM traced WHERE md5(k) < '8';
                    INSERT INTO traced_c VALUES ('extra#', 'extra', 'x'), ('Extra#', 'Extra', 'x');`);
    const hashes = async (query: string) => new Map((await sql<{ k: string; h: string }>(url, query)).map((r) => [r.k, r.h]));
    const source = await hashes(`SELECT k || '#' AS k, md5(ROW(k || '#', k, v)::text) AS h FROM traced`);
    const target = () => hashes(`SELECT id AS k, md5(ROW(id, src, v)::text) AS h FROM traced_c`);
    const { value, extra } = await expectedVerdict(source, await target());
    const plan = validatePlan({
      name: 'collation-lineage',
      source: { connection: 'DB', table: 'traced', key: 'k' },
      target: { connection: 'DB', table: 'traced_c', key: 'id', sourceKey: 'src' },
      transform: { sql: { id: "k || '#'", src: 'k', v: 'v' } },
      shards: { count: 4 },
      throttle: { batchSize: 10 },
      verify: { chunkSize: 10, maxPasses: 3, inFlightDelaySeconds: 0.05 },
    });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.phase).toBe('completed');
    expect(status.events.filter((e) => e.kind === 'verify').map((e) => e.detail)).toEqual([
      `pass 1: ${KEYS.length} rows checked, 0 missing, ${extra} extra, ${value} differing, 0 in flight`,
      `pass 1 repaired: ${value} rows written, ${extra} deleted, 0 unresolved`,
      `pass 2: ${KEYS.length} rows checked, 0 missing, 0 extra, 0 differing, 0 in flight`,
    ]);
    expect(differing(source, await target())).toEqual([]);
  });

  it('with capture: trigger, changes by text key written during the migration reach the target, and verification agrees', async () => {
    await sql(url, `CREATE TABLE captured (k text COLLATE "und-x-icu" PRIMARY KEY, v text); INSERT INTO captured VALUES ${VALUES};
                    CREATE TABLE captured_c (k text COLLATE "C" PRIMARY KEY, v text);`);
    const plan = validatePlan({
      name: 'collation-capture',
      source: { connection: 'DB', table: 'captured', key: 'k' },
      target: { connection: 'DB', table: 'captured_c' },
      transform: { sql: { k: 'k', v: 'v' } },
      capture: 'trigger',
      shards: { count: 3 },
      throttle: { rowsPerSecond: 200, batchSize: 10, checkpointSeconds: 0.5 },
      verify: { chunkSize: 10, inFlightDelaySeconds: 0.2 },
    });
    // Writes by text key while the copy, the change apply and verification run: updates,
    // deletes, inserts and key changes, to keys that sort apart in the two collations.
    const operations = fc.sample(
      fc.record({ kind: fc.constantFrom('update', 'delete', 'insert', 'rekey'), at: fc.nat(KEYS.length - 1), fresh: fc.string({ minLength: 1, maxLength: 3, unit: fc.constantFrom('q', 'Q', 'é', 'É', '-', ' ', '7') }) }),
      { numRuns: 300, seed: 7 },
    );
    const quote = (text: string) => `'${text.replace(/'/g, "''")}'`;
    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; writing; i = (i + 1) % operations.length) {
        const { kind, at, fresh } = operations[i]!;
        const key = quote(KEYS[at]!);
        const statement = {
          update: `UPDATE captured SET v = v || '+' WHERE k = ${key}`,
          delete: `DELETE FROM captured WHERE k = ${key}`,
          insert: `INSERT INTO captured VALUES (${quote(`new ${fresh}`)}, 'n') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v || '!'`,
          rekey: `UPDATE captured SET k = ${quote(`moved ${fresh} ${i}`)} WHERE k = ${key}`,
        }[kind];
        await sql(url, statement).catch(() => {}); // a key changed twice to the same name is refused; the next one goes on
        written += 1;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const statusOf = async () => (await migrationReport(worker.client, handle.workflowId)).status!;
    try {
      await eventually(async () => ((await statusOf()).gate?.name === 'cleanup' ? true : undefined), 150_000, 'the cleanup gate');
    } finally {
      writing = false;
      await writer;
    }
    expect(written).toBeGreaterThan(100);
    await noChangeWaitingSince(worker, handle.workflowId, new Date().toISOString());
    expect(differing(await rowHashes(url, 'captured'), await rowHashes(url, 'captured_c'))).toEqual([]);
    const verified = await ferry(['verify', handle.workflowId, '--json'], worker.temporal);
    expect(verified.code, verified.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(verified.stdout)).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0, inFlight: 0 });
    await handle.terminate('test done');
  });

  it('refuses subset.keyRange before writing anything, naming the table, the key and both orders', async () => {
    await sql(url, `CREATE TABLE ranged (k text COLLATE "und-x-icu" PRIMARY KEY, v text); INSERT INTO ranged VALUES ${VALUES};
                    CREATE TABLE ranged_c (k text COLLATE "C" PRIMARY KEY, v text); INSERT INTO ranged_c VALUES ('zz-app', 'kept');`);
    const fingerprint = () =>
      sqlRow(url, `SELECT (SELECT md5(string_agg(ROW(k, v)::text, ',' ORDER BY k COLLATE "C")) FROM ranged_c) AS target,
                          (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ranged'::regclass)::int AS triggers,
                          (SELECT count(*) FROM ferry.migrations)::int AS claims,
                          (SELECT json_agg(f ORDER BY migration) FROM ferry.flags f)::text AS flags`);
    const databases = createDatabases({ env: { DB: url } });
    await installFerrySchema(databases.pool('DB')).finally(() => databases.close());
    const before = await fingerprint();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-collation-'));
    const file = path.join(dir, 'ranged.yaml');
    writeFileSync(file, `name: ranged\nsource: { connection: DB, table: ranged, key: k }\ntarget: { connection: DB, table: ranged_c }\ntransform: { sql: { k: k, v: v } }\nsubset: { keyRange: { from: a, to: b } }\n`);
    const message =
      'subset.keyRange cannot be used: source key column "k" of public.ranged sorts by collation "und-x-icu", target column "k" of public.ranged_c by collation "C", ' +
      'so one key range holds other keys on each side; give both columns the same collation, or migrate without subset.keyRange';
    for (const args of [['start', file], ['start', file, '--execute', '--wait']]) {
      const result = await ferry(args, worker.temporal);
      expect(result.code, result.stdout + result.stderr).toBe(ExitCode.failed);
      expect(result.stdout + result.stderr).toContain(message);
    }
    expect(await fingerprint()).toEqual(before);

    // Without the key range the plan runs, and its dry run says how verification will compare.
    writeFileSync(file, `name: ranged\nsource: { connection: DB, table: ranged, key: k }\ntarget: { connection: DB, table: ranged_c }\ntransform: { sql: { k: k, v: v } }\n`);
    const dryRun = await ferry(['start', file], worker.temporal);
    expect(dryRun.code, dryRun.stdout + dryRun.stderr).toBe(ExitCode.ok);
    expect(dryRun.stdout).toContain(
      `source key column "k" sorts by collation "und-x-icu", the target's by collation "C": verification selects target rows by the source's keys, and reads the whole target once a pass for rows no source key reaches`,
    );
    expect(await fingerprint()).toEqual(before);
  });

  it('refuses a target key in a nondeterministic collation, which takes keys the source holds apart for one', async () => {
    await sql(url, `CREATE COLLATION IF NOT EXISTS ignore_case (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
                    CREATE TABLE cased (k text COLLATE "C" PRIMARY KEY, v text); INSERT INTO cased VALUES ${VALUES};
                    CREATE TABLE cased_ci (k text COLLATE ignore_case PRIMARY KEY, v text);`);
    // 'a' and 'A', 'ab' and 'AB': the source holds both, the target can hold one.
    const lumped = await sqlRow<{ n: number }>(url, `SELECT count(*) - count(DISTINCT k COLLATE ignore_case) AS n FROM cased`);
    expect(Number(lumped.n)).toBeGreaterThan(10);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-collation-'));
    const file = path.join(dir, 'cased.yaml');
    writeFileSync(file, `name: cased\nsource: { connection: DB, table: cased, key: k }\ntarget: { connection: DB, table: cased_ci }\ntransform: { sql: { k: k, v: v } }\nverify: { chunkSize: 10, inFlightDelaySeconds: 0.05 }\n`);
    const result = await ferry(['start', file, '--execute', '--wait'], worker.temporal);
    expect(result.code, result.stdout + result.stderr).toBe(ExitCode.failed);
    expect(result.stdout + result.stderr).toContain(
      'target column "k" of public.cased_ci sorts by collation "ignore_case", which is nondeterministic: it takes keys that source key column "k" ' +
        `(collation "C") holds apart, such as keys differing only in case, for one key; give the target column the source's collation or a deterministic one`,
    );
    expect(await sql(url, `SELECT * FROM cased_ci`)).toEqual([]);
  });

  it('tells orders apart by what they sort by, not by name', async () => {
    await sql(url, `CREATE TABLE orders_of (c text COLLATE "C", posix text COLLATE "POSIX", ucs text COLLATE ucs_basic, plain text, icu text COLLATE "und-x-icu", icu2 text COLLATE "und-x-icu", n int)`);
    const databases = createDatabases({ env: { DB: url, ICU: icuUrl } });
    try {
      const at = (env: string, column: string, table = 'orders_of') => ({ pool: databases.pool(env), table: { schema: 'public', table }, column });
      // The test database's default is "C": these all sort by bytes.
      for (const [a, b] of [['c', 'posix'], ['c', 'ucs'], ['c', 'plain'], ['icu', 'icu2'], ['n', 'c'], ['n', 'icu']]) {
        expect(await keyOrdersDiffer(at('DB', a!), at('DB', b!)), `${a} and ${b}`).toBeNull();
      }
      expect(await keyOrdersDiffer(at('DB', 'icu'), at('DB', 'c'))).toMatchObject({ source: { name: 'collation "und-x-icu"' }, target: { name: 'collation "C"' } });
      await sql(icuUrl, `CREATE TABLE orders_of (plain text)`);
      expect(await keyOrdersDiffer(at('ICU', 'plain'), at('DB', 'plain'))).toMatchObject({ source: { name: `the database's default collation "en-US"` }, target: { name: `the database's default collation "C"` } });
    } finally {
      await databases.close();
    }
  });
});
