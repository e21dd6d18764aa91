/** The module-transform copy path between two real databases: every value arrives exactly. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CopySpec } from '../../activities/copy/copy-statements';
import { copyRangeThroughModule } from '../../activities/transform/module-copy';
import { decodeSourceRows } from '../../activities/transform/rows';
import { sourceRowTypes } from '../../activities/transform/exact-values';
import { describeSourceRows, digestOnThread, readSourceRows } from '../../activities/transform/transform-threads';
import { createDatabases } from '../../activities/connections';
import { createBothSides } from '../../activities/verify/both-sides';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 60;
const THROWS = 7;
/** What is said of the row the transform throws on: its own message (which names the row) is withheld. */
const CURSED = 'Error thrown by the transform (its message is withheld: it may carry row values)';

/** Rows with the values that break naive copiers, and the types the transform reports seeing. */
const sourceDdl = `
  CREATE TABLE people (
    id bigint PRIMARY KEY,
    full_name text,
    note text,
    created_at timestamptz NOT NULL,
    seen_at timestamp,
    born date,
    profile jsonb,
    balance numeric(30, 9),
    ratio float8,
    visits int4,
    active bool,
    avatar bytea,
    extra jsonb,
    tags text[],
    amounts numeric[],
    stamps timestamptz[]
  );
  INSERT INTO people
  SELECT i,
         CASE i % 11 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'Cher' WHEN 3 THEN 'Trailing ' ELSE 'Ann Marie ' || i || ' O''Neil-"Ünïcødé" ☃' END,
         CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE E'tab\\there\\nnew line\\r\\\\back\\\\slash ''single'' "double" \\\\N 𝄞 ' || i END,
         timestamptz '2024-02-29 23:59:59.999999+00' - i * interval '1.000001 seconds',
         CASE WHEN i % 4 = 0 THEN NULL ELSE timestamp '1999-12-31 23:59:59.123456' + i * interval '1 day 1 microsecond' END,
         date '2000-02-29' + i,
         CASE WHEN i % 9 = 0 THEN NULL
              ELSE jsonb_build_object('i', i, 'f', 0.1, 'nested', jsonb_build_object('s', E'x\\ty\\\\z"\\n', 'u', '☃'), 'list', jsonb_build_array(1, 'two', NULL, true)) END,
         CASE WHEN i % 6 = 0 THEN NULL ELSE 123456789012345678901.123456789 + i END,
         i / 3.0::float8,
         i * 1000,
         i % 2 = 0,
         CASE i % 5 WHEN 1 THEN NULL WHEN 2 THEN ''::bytea ELSE decode(md5(i::text), 'hex') END,
         CASE i % 4 WHEN 0 THEN '"just a string"'::jsonb WHEN 1 THEN 'true'::jsonb WHEN 2 THEN '[1, "a\\tb"]'::jsonb END,
         CASE WHEN i % 3 = 0 THEN NULL
              ELSE ARRAY['a b', 'q"uote', E'back\\slash', NULL, '', 'NULL', '{x,y}', E'tab\tand\nline', 'n' || i] END,
         ARRAY[0.10, 123456789012345678901.000000001 * i]::numeric[],
         ARRAY[timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1 microsecond', NULL]
    FROM generate_series(1, ${ROWS}) AS i;`;

const targetDdl = (table: string) => `
  CREATE TABLE ${table} (
    id bigint PRIMARY KEY,
    first_name text,
    last_name text,
    note text,
    created_at timestamptz NOT NULL,
    created_text text,
    seen_at timestamp,
    born date,
    profile jsonb,
    balance numeric(30, 9),
    ratio float8,
    visits int4,
    active bool,
    avatar bytea,
    extra jsonb,
    tags text[],
    amounts numeric[],
    stamps timestamptz[],
    seen_types text
  )`;

const columns = [
  'id', 'first_name', 'last_name', 'note', 'created_at', 'created_text', 'seen_at', 'born',
  'profile', 'balance', 'ratio', 'visits', 'active', 'avatar', 'extra', 'tags', 'amounts', 'stamps', 'seen_types',
];

/** The transform body, the same for .ts and .js: splits the name, skips every fifth row, throws for one. */
const body = `
  const kind = (v) => (v === null ? 'null' : Buffer.isBuffer(v) ? 'buffer' : Array.isArray(v) ? 'array' : typeof v);
  if (row.id === '${THROWS}') throw new Error('row ${THROWS} is cursed');
  if (Number(row.id) % 5 === 0) return null;
  const [first, ...rest] = row.full_name === null ? [null] : row.full_name.split(' ');
  const { full_name, ...others } = row;
  return {
    ...others,
    first_name: first,
    last_name: rest.join(' ') || null,
    created_text: row.created_at,
    seen_types: ['id', 'created_at', 'seen_at', 'born', 'profile', 'balance', 'ratio', 'visits', 'active', 'avatar', 'amounts', 'stamps']
      .map((c) => c + ':' + kind(row[c])).join(',') + ',amount:' + typeof row.amounts[1] + ',stamp:' + typeof row.stamps[0],
  };`;

const modules = {
  'transform.ts': `
    type Row = Record<string, any>;
    export default function transform(row: Row): Row | null {${body}
    }`,
  'transform.js': `
    module.exports.transform = async function transform(row) {${body}
    };`,
};

/** What the target must hold, computed by SQL on the source: names split, fifth rows and the throwing row absent. */
const expectedSql = `
  SELECT id::text, CASE WHEN full_name IS NULL THEN NULL ELSE split_part(full_name, ' ', 1) END AS first_name,
         nullif(substr(full_name, length(split_part(full_name, ' ', 1)) + 2), '') AS last_name,
         note, created_at::text, created_at::text AS created_text, seen_at::text, born::text, profile::text,
         balance::text, ratio::text, visits::text, active::text, avatar::text,
         extra::text, tags::text, amounts::text, stamps::text,
         'id:string,created_at:string,seen_at:' || CASE WHEN seen_at IS NULL THEN 'null' ELSE 'string' END ||
         ',born:string,profile:' || CASE WHEN profile IS NULL THEN 'null' ELSE 'object' END ||
         ',balance:' || CASE WHEN balance IS NULL THEN 'null' ELSE 'string' END ||
         ',ratio:number,visits:number,active:boolean,avatar:' || CASE WHEN avatar IS NULL THEN 'null' ELSE 'buffer' END ||
         ',amounts:array,stamps:array,amount:string,stamp:string' AS seen_types
    FROM people WHERE id % 5 <> 0 AND id <> ${THROWS} ORDER BY id`;

const actualSql = (table: string) => `
  SELECT id::text, first_name, last_name, note, created_at::text, created_text, seen_at::text, born::text, profile::text,
         balance::text, ratio::text, visits::text, active::text, avatar::text,
         extra::text, tags::text, amounts::text, stamps::text, seen_types
    FROM ${table} ORDER BY id`;

describe('copyRangeThroughModule', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let sourcePool: pg.Pool;
  let targetPool: pg.Pool;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-transform-'));

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('mt_source'), createTestDatabase('mt_target')]);
    await sql(sourceUrl, sourceDdl);
    await sql(targetUrl, [targetDdl('people_ts'), targetDdl('people_js'), targetDdl('people_where'), targetDdl('people_refused'), targetDdl('people_sets')].join(';'));
    for (const [name, text] of Object.entries(modules)) writeFileSync(path.join(dir, name), text);
    sourcePool = new pg.Pool({ connectionString: sourceUrl, max: 2 });
    targetPool = new pg.Pool({ connectionString: targetUrl, max: 2 });
  });
  afterAll(async () => {
    await Promise.all([sourcePool?.end(), targetPool?.end()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const specFor = (table: string, filter?: string): CopySpec => ({
    source: { schema: 'public', table: 'people', key: 'id' },
    target: { schema: 'public', table, key: 'id' },
    columns: Object.fromEntries(columns.map((c) => [c, c])),
    filter: filter ?? null,
  });

  it.each([
    ['transform.ts', 'people_ts'],
    ['transform.js', 'people_js'],
  ])('copies through %s with every value exact, and a second run writes nothing', async (file, table) => {
    const transform = path.join(dir, file);
    const spec = specFor(table);
    const skipped = Math.floor(ROWS / 5);
    const expectedWritten = ROWS - skipped - 1;

    // Two adjacent ranges, as two batches would copy them.
    const first = await copyRangeThroughModule(sourcePool, targetPool, spec, { after: null, upTo: '30' }, transform, dir);
    const second = await copyRangeThroughModule(sourcePool, targetPool, spec, { after: '30', upTo: null }, transform, dir);
    expect(first.read + second.read).toBe(ROWS);
    expect(first.written + second.written).toBe(expectedWritten);
    expect(first.failed).toEqual([{ key: String(THROWS), error: CURSED }]);
    expect(second.failed).toEqual([]);

    const expected = await sql(sourceUrl, expectedSql);
    const actual = await sql(targetUrl, actualSql(table));
    expect(expected).toHaveLength(expectedWritten);
    expect(actual).toEqual(expected);
    // Spot-check that the awkward values really are in the data.
    expect(actual.some((r) => r.note?.includes('\t') && r.note.includes('\\') && r.note.includes('\r'))).toBe(true);
    expect(actual.some((r) => r.note === '')).toBe(true);
    expect(actual.some((r) => r.avatar === '\\x')).toBe(true);
    expect(actual.find((r) => r.id === '3')?.created_at).toMatch(/\.999996\+00$/);

    const again = await copyRangeThroughModule(sourcePool, targetPool, spec, { after: null, upTo: null }, transform, dir);
    expect(again).toEqual({ read: ROWS, written: 0, failed: [{ key: String(THROWS), error: CURSED }], skipped: first.skipped.concat(second.skipped) });
    expect(again.skipped).toEqual(Array.from({ length: skipped }, (_, i) => String((i + 1) * 5)));
    expect(await sql(targetUrl, actualSql(table))).toEqual(expected);
  });

  it('reads only rows inside the extra filter', async () => {
    const transform = path.join(dir, 'transform.ts');
    const result = await copyRangeThroughModule(
      sourcePool, targetPool, specFor('people_where', 's.note IS NULL'), { after: '10', upTo: '50' }, transform, dir,
    );
    // Keys 14, 21, 28, 35, 42, 49 have a NULL note; 35 is a fifth row and is skipped.
    expect(result).toEqual({ read: 6, written: 5, failed: [], skipped: ['35'] });
    expect((await sql(targetUrl, 'SELECT id::text FROM people_where ORDER BY id')).map((r) => r.id)).toEqual(['14', '21', '28', '42', '49']);
  });

  it('reports a row whose value the target refuses, and writes the others', async () => {
    const file = path.join(dir, 'bad-value.ts');
    writeFileSync(file, `
      export default (row: { id: string; visits: number; created_at: string }) => [
        { id: row.id, created_at: row.created_at, visits: row.id === '4' ? 'lots' : row.visits },
      ];`);
    const transform = file;
    const result = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_refused'), { after: null, upTo: '6' }, transform, dir);
    expect(result.read).toBe(6);
    expect(result.written).toBe(5);
    expect(result.failed).toEqual([{ key: '4', error: 'the target refused a value of column visits: invalid input syntax for type integer: "lots"' }]);
    expect((await sql(targetUrl, 'SELECT id::text FROM people_refused ORDER BY id')).map((r) => r.id)).toEqual(['1', '2', '3', '5', '6']);
  });

  it('fails a row whose value JSON would write without its contents (a Set), and writes the others', async () => {
    const file = path.join(dir, 'set-value.ts');
    writeFileSync(file, `
      export default (row: { id: string; created_at: string }) => ({
        id: row.id, created_at: row.created_at, profile: row.id === '3' ? { tags: new Set(['a', 'b']) } : { tags: ['a', 'b'] },
      });`);
    const result = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_sets'), { after: null, upTo: '5' }, file, dir);
    expect(result.read).toBe(5);
    expect(result.written).toBe(4);
    expect(result.failed).toEqual([{ key: '3', error: expect.stringContaining('column "profile" cannot be written as JSON: a Set') }]);
    const expected = await sql(sourceUrl, `SELECT id::text, created_at::text, '{"tags": ["a", "b"]}' AS profile FROM people WHERE id <= 5 AND id <> 3 ORDER BY id`);
    expect(await sql(targetUrl, 'SELECT id::text, created_at::text, profile::text FROM people_sets ORDER BY id')).toEqual(expected);
  });

  it('writes each target row exactly across parts, with rows that become two and keys that need escaping, and isolates refused rows', async () => {
    // Enough rows for several parts of source text, so keys and line counts are joined across parts.
    await sql(sourceUrl, `
      CREATE TABLE labels (k text PRIMARY KEY, n int NOT NULL, doc jsonb NOT NULL, at timestamptz NOT NULL, amount numeric(12, 3) NOT NULL);
      INSERT INTO labels
      SELECT CASE i % 4 WHEN 0 THEN E'tab\\t' WHEN 1 THEN E'back\\\\slash ' WHEN 2 THEN E'new\\nline\\r ' ELSE 'plain ' END || lpad(i::text, 5, '0'),
             i,
             jsonb_build_object('name', 'label ' || i, 'text', E'quote " tab \\t slash \\\\ ☃ 𝄞', 'score', i / 8.0,
                                'list', CASE WHEN i % 10 = 0 THEN jsonb_build_array(i, 1.50, NULL) ELSE jsonb_build_array(i) END),
             timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1.000001 seconds',
             i * 1.005
        FROM generate_series(1, 2500) AS i`);
    await sql(targetUrl, 'CREATE TABLE labels_out (k text, part int, n int, doc jsonb, at timestamptz, amount numeric(12, 3), PRIMARY KEY (k, part))');
    const file = path.join(dir, 'two-parts.ts');
    // Rows whose n is a multiple of 3 become two target rows; n 12 (two rows) and 2002 (one row) carry a value the target refuses.
    writeFileSync(file, `
      type Row = Record<string, any>;
      export default (row: Row) => {
        const one = (part: number) => ({ k: row.k, part, n: row.n === 12 || row.n === 2002 ? 'lots' : row.n, doc: { ...row.doc, p: part }, at: row.at, amount: row.amount });
        return row.n % 3 === 0 ? [one(1), one(2)] : one(1);
      };`);
    const spec: CopySpec = {
      source: { schema: 'public', table: 'labels', key: 'k' },
      target: { schema: 'public', table: 'labels_out', key: 'k' },
      columns: Object.fromEntries(['k', 'part', 'n', 'doc', 'at', 'amount'].map((c) => [c, c])),
    };
    const read = await readSourceRows(sourcePool, spec, { after: null, upTo: null });
    expect(read.text.length).toBeGreaterThan(256 * 1024);

    const result = await copyRangeThroughModule(sourcePool, targetPool, spec, { after: null, upTo: null }, file, dir);
    const refused = 'the target refused a value of column n: invalid input syntax for type integer: "lots"';
    expect(result.read).toBe(2500);
    expect([...result.failed].sort((a, b) => (a.key < b.key ? -1 : 1))).toEqual([
      { key: 'new\nline\r 02002', error: refused },
      { key: 'tab\t00012', error: refused },
    ]);
    const expected = await sql<{ k: string; part: number; md5: string }>(sourceUrl, `
      SELECT k, part, md5(ROW(k, part, n, doc || jsonb_build_object('p', part), at, amount)::text) AS md5
        FROM labels CROSS JOIN (VALUES (1), (2)) AS p (part)
       WHERE (part = 1 OR n % 3 = 0) AND n NOT IN (12, 2002)
       ORDER BY k COLLATE "C", part`);
    const actual = await sql<{ k: string; part: number; md5: string }>(targetUrl, `
      SELECT k, part, md5(ROW(k, part, n, doc, at, amount)::text) AS md5 FROM labels_out ORDER BY k COLLATE "C", part`);
    expect(expected).toHaveLength(2500 - 2 + Math.floor(2500 / 3) - 1);
    expect(result.written).toBe(expected.length);
    expect(actual).toEqual(expected);
  });

  it('reports a row the transform cannot shape, and keeps the others', async () => {
    const bad = path.join(dir, 'extra-key.ts');
    writeFileSync(bad, `export default (row: { id: string }) => (row.id === '2' ? { id: row.id, colour: 'red' } : null);`);
    const transform = bad;
    const result = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_where'), { after: null, upTo: '3' }, transform, dir);
    expect(result.read).toBe(3);
    expect(result.written).toBe(0);
    expect(result.failed).toEqual([{ key: '2', error: expect.stringContaining('"colour"') }]);
  });

  it('reads source rows as COPY text into the same values a query gives the transform', async () => {
    const spec = specFor('people_ts');
    const viaQuery = await sourcePool.query({ text: 'SELECT id::text AS key, * FROM people ORDER BY id', rowMode: 'array', types: sourceRowTypes });
    const names = viaQuery.fields.slice(1).map((f) => f.name);
    const expected = viaQuery.rows.map((values: unknown[]) => ({ key: values[0], row: Object.fromEntries(names.map((n, i) => [n, values[i + 1]])) }));
    const read = await readSourceRows(sourcePool, spec, { after: null, upTo: null });
    expect(read.fields).toEqual(await describeSourceRows(sourcePool, spec));
    expect(decodeSourceRows(Buffer.from(read.text).toString('utf8'), read.fields)).toEqual(expected);
  });

  it('fails a batch whose transform module does not load, for good, and says why', async () => {
    const broken = path.join(dir, 'broken.ts');
    writeFileSync(broken, 'export default (row => ;');
    await expect(copyRangeThroughModule(sourcePool, targetPool, specFor('people_where'), { after: null, upTo: '3' }, broken, dir)).rejects.toMatchObject({
      type: 'TransformModuleInvalid',
      nonRetryable: true,
      message: expect.stringContaining('failed to load'),
    });
  });

  it('fails a batch whose transform ends its thread, and the next batch gets a new thread', async () => {
    const exits = path.join(dir, 'exits.ts');
    writeFileSync(exits, `export default () => process.exit(3);`);
    await expect(copyRangeThroughModule(sourcePool, targetPool, specFor('people_where'), { after: null, upTo: '3' }, exits, dir)).rejects.toThrow(
      /transform thread exited \(code 3\)/,
    );
    const result = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_where', 's.id = 1'), { after: null, upTo: '3' }, path.join(dir, 'transform.ts'), dir);
    expect(result.read).toBe(1);
  });

  it("withholds the text of an error a transform throws outside its return path, which ends its thread", async () => {
    // Thrown from a microtask, or an unawaited rejection: nothing catches it but the thread.
    const throwsLater = {
      'throws-in-microtask.ts': `queueMicrotask(() => { throw new Error('bad card 4111-' + row.full_name); });`,
      'rejects-unawaited.ts': `void Promise.reject(new Error('bad card 4111-' + row.full_name));`,
    };
    for (const [file, throwing] of Object.entries(throwsLater)) {
      writeFileSync(
        path.join(dir, file),
        `import real from './transform';\nexport default async (row: { full_name: string }) => { ${throwing} await new Promise((resolve) => setTimeout(resolve, 200)); return real(row as never); };`,
      );
      const failure = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_where', 's.id = 4'), { after: null, upTo: '5' }, path.join(dir, file), dir).then(
        () => null,
        (error: unknown) => error as Error,
      );
      expect(failure?.message, file).toMatch(/transform thread failed/);
      expect(failure?.message, file).toContain('withheld');
      expect(failure?.message, file).not.toMatch(/4111|Ann Marie|bad card/);
    }
  });

  /** Verification's plan of people into people_where through a module of this test's directory. */
  const peoplePlan = (module: string) =>
    validatePlan({
      name: `rows-${module.replace(/\W/g, '-')}`,
      source: { connection: 'SRC', table: 'people', key: 'id' },
      target: { connection: 'TGT', table: 'people_where' },
      transform: { module: path.join(dir, module), columns },
    });

  it('keeps the event loop free while verification compares row by row through a slow transform', async () => {
    // 40 ms of CPU a row, for 40 rows: 1.6 s that the event loop, and with it every heartbeat, would wait.
    writeFileSync(path.join(dir, 'slow.ts'), `import real from './transform';\nexport default (row: { id: string }) => { const until = Date.now() + 40; while (Date.now() < until); return real(row as never); };`);
    const databases = createDatabases({ env: { SRC: sourceUrl, TGT: targetUrl } });
    const delay = monitorEventLoopDelay({ resolution: 10 });
    try {
      const v = await createBothSides(databases, dir).verificationOf(peoplePlan('slow.ts'), null);
      const keys = Array.from({ length: 40 }, (_, i) => String(i + 1));
      delay.enable();
      const rows = await v.moduleRows!({ keys });
      delay.disable();
      expect(rows.filter((r) => !r.unwritable).length).toBeGreaterThan(30);
      expect(delay.max / 1e6, 'the longest the event loop waited, ms').toBeLessThan(400);
    } finally {
      delay.disable();
      await databases.close();
    }
  });

  it('ends a thread whose transform never returns, fails its copy and its digest for good, and goes on with a new thread', async () => {
    // Row 2 holds its thread: a loop that never yields, or a promise that never settles.
    writeFileSync(path.join(dir, 'spins.ts'), `import real from './transform';\nexport default (row: { id: string }) => { if (row.id === '2') for (;;) {} return real(row as never); };`);
    writeFileSync(path.join(dir, 'waits.ts'), `import real from './transform';\nexport default (row: { id: string }) => (row.id === '2' ? new Promise(() => {}) : real(row as never));`);
    const before = await sql(targetUrl, 'SELECT count(*)::int AS n FROM people_where');
    process.env.FERRY_TRANSFORM_STUCK_SECONDS = '1';
    try {
      for (const module of ['spins.ts', 'waits.ts']) {
        const started = Date.now();
        await expect(copyRangeThroughModule(sourcePool, targetPool, specFor('people_where'), { after: null, upTo: '3' }, path.join(dir, module), dir)).rejects.toMatchObject({
          type: 'TransformStuck',
          nonRetryable: true,
          message: expect.stringContaining('returned nothing for 1 s on its thread'),
        });
        expect(Date.now() - started).toBeLessThan(30_000);
        const rows = await readSourceRows(sourcePool, { source: specFor('people_where').source, filter: null }, { after: null, upTo: '3' });
        await expect(digestOnThread(path.join(dir, module), rows, [{ name: 'id', type: 'bigint', base: 'int8', category: 'N' }])).rejects.toMatchObject({ type: 'TransformStuck' });
      }
    } finally {
      delete process.env.FERRY_TRANSFORM_STUCK_SECONDS;
    }
    // Verification's row-by-row read runs the transform on a thread too: a loop that never ends,
    // or a promise that never settles, fails it for good, and the next read gets a new thread.
    const databases = createDatabases({ env: { SRC: sourceUrl, TGT: targetUrl } });
    try {
      const verifications = await Promise.all(['spins.ts', 'waits.ts'].map((module) => createBothSides(databases, dir).verificationOf(peoplePlan(module), null)));
      process.env.FERRY_TRANSFORM_STUCK_SECONDS = '1';
      try {
        for (const v of verifications) {
          await expect(v.moduleRows!({ keys: ['1', '2', '3'] })).rejects.toMatchObject({
            type: 'TransformStuck',
            nonRetryable: true,
            message: expect.stringContaining('returned nothing for 1 s on its thread'),
          });
        }
      } finally {
        // A new thread's start counts toward the watchdog: the next reads have the usual time.
        delete process.env.FERRY_TRANSFORM_STUCK_SECONDS;
      }
      for (const v of verifications) expect(await v.moduleRows!({ keys: ['1', '3'] })).toHaveLength(2);
    } finally {
      await databases.close();
    }
    // Nothing of the stuck batches was written, and a new thread copies the next one.
    expect(await sql(targetUrl, 'SELECT count(*)::int AS n FROM people_where')).toEqual(before);
    const result = await copyRangeThroughModule(sourcePool, targetPool, specFor('people_where', 's.id = 1'), { after: null, upTo: '3' }, path.join(dir, 'transform.ts'), dir);
    expect(result.read).toBe(1);
  });
});
