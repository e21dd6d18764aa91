/** The shard planner on real Postgres: shards cover every key once, and hold similar numbers of rows. */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createShardPlanner, type PlanShardsInput } from '../../activities/inspect/shard-planner';
import { quoteIdent } from '../../activities/sql';
import type { KeyRange, ShardSpec } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, sql, sqlRow } from '../support/harness';

function planFor(table: string, key: string, settings: Pick<PlanInput, 'shards' | 'subset'>) {
  return validatePlan({
    name: 'shards',
    source: { connection: 'SRC', table, key },
    target: { connection: 'SRC', table: `${table}_v2` },
    transform: { sql: { [key]: quoteIdent(key) } },
    ...settings,
  });
}

/** Contiguous and complete: open at both ends, each range starting where the last one ended. */
function expectCoversKeySpace(shards: ShardSpec[]): void {
  expect(shards[0]!.range.after).toBeNull();
  expect(shards.at(-1)!.range.upTo).toBeNull();
  for (let i = 1; i < shards.length; i++) expect(shards[i]!.range.after).toBe(shards[i - 1]!.range.upTo);
  expect(shards.every((s) => s.partitionValue === null)).toBe(true);
}

/** Rows of `table` in each range, counted by Postgres with the copier's (after, upTo] comparisons. */
async function rowsPerRange(url: string, table: string, key: string, ranges: KeyRange[], filter = 'true'): Promise<number[]> {
  const column = quoteIdent(key);
  return Promise.all(
    ranges.map(async ({ after, upTo }) => {
      const row = await sqlRow<{ rows: number }>(
        url,
        `SELECT count(*)::int AS rows FROM ${quoteIdent(table)}
          WHERE (${filter}) AND ($1::text IS NULL OR ${column} > $2) AND ($3::text IS NULL OR ${column} <= $4)`,
        [after, after, upTo, upTo],
      );
      return row.rows;
    }),
  );
}

function spread(counts: number[]): number {
  return Math.max(...counts) / Math.max(1, Math.min(...counts));
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApplicationFailure);
  return error as ApplicationFailure;
}

describe('shard planner', () => {
  let url: string;
  let databases: Databases;
  let planShards: ReturnType<typeof createShardPlanner>['planShards'];
  // Failures are what some tests expect: the SDK need not log them as warnings.
  const quiet = { logger: new DefaultLogger('ERROR') };
  const run = (plan: Plan) =>
    new MockActivityEnvironment(undefined, quiet).run<[PlanShardsInput], ShardSpec[], typeof planShards>(planShards, { plan });

  beforeAll(async () => {
    url = await createTestDatabase('shards');
    databases = createDatabases({ env: { SRC: url } });
    planShards = createShardPlanner(databases).planShards;
  });
  afterAll(async () => {
    await databases?.close();
  });

  it('splits integer keys into even ranges by min and max, keeping bigint precision', async () => {
    // Keys beyond 2^53, where a JavaScript number would round them.
    await sql(url, `
      CREATE TABLE big_ids (id bigint PRIMARY KEY, note text);
      INSERT INTO big_ids SELECT 1152921504606846976 + i, 'n' || i FROM generate_series(1, 10000) AS i;`);
    const shards = await run(planFor('big_ids', 'id', { shards: { count: 4 } }));
    expect(shards.map((s) => s.range.upTo)).toEqual(['1152921504606849476', '1152921504606851976', '1152921504606854476', null]);
    expectCoversKeySpace(shards);
    expect(await rowsPerRange(url, 'big_ids', 'id', shards.map((s) => s.range))).toEqual([2500, 2500, 2500, 2500]);
  });

  it('narrows integer ranges to subset.keyRange and still covers every key', async () => {
    await sql(url, `
      CREATE TABLE small_ids (id integer PRIMARY KEY);
      INSERT INTO small_ids SELECT i FROM generate_series(-5000, 5000) AS i;`);
    const shards = await run(planFor('small_ids', 'id', { shards: { count: 4 }, subset: { keyRange: { from: '1001', to: '2000' } } }));
    expectCoversKeySpace(shards);
    expect(shards.map((s) => s.range.upTo)).toEqual(['1250', '1500', '1750', null]);
  });

  it('splits a heavily skewed text key by quantiles of a sample, into shards of similar size', async () => {
    // 90% of the keys share a long prefix, so splitting the key space by its first characters (or
    // evenly between min and max) would put nearly every row into one shard. More rows than the
    // planner reads in full, so this goes through TABLESAMPLE; inserted in key order, so sampled
    // pages hold runs of neighbouring keys, the hard case for page sampling.
    await sql(url, `
      CREATE TABLE documents (path text PRIMARY KEY, body text);
      INSERT INTO documents
      SELECT path, 'body ' || path FROM (
        SELECT 'tenants/acme-corporation/projects/apollo/documents/archive/' || lpad(i::text, 8, '0') AS path
          FROM generate_series(1, 270000) AS i
        UNION ALL
        SELECT md5(i::text) FROM generate_series(1, 30000) AS i
      ) AS keys ORDER BY path;
      ANALYZE documents;`);
    const shards = await run(planFor('documents', 'path', { shards: { count: 8 } }));
    expectCoversKeySpace(shards);
    expect(shards.length).toBe(8);
    const counts = await rowsPerRange(url, 'documents', 'path', shards.map((s) => s.range));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(300_000);
    expect(spread(counts), `rows per shard: ${counts.join(', ')}`).toBeLessThan(2);
  });

  it('reads more of the table when subset.where selects fewer rows than the planner estimated', async () => {
    // Postgres guesses a third of the rows for a comparison on an expression; this one keeps a
    // sixteenth, so the first sample comes back too small.
    const where = "md5(path) < '1'";
    const shards = await run(planFor('documents', 'path', { shards: { count: 4 }, subset: { where } }));
    expectCoversKeySpace(shards);
    expect(shards.length).toBe(4);
    const counts = await rowsPerRange(url, 'documents', 'path', shards.map((s) => s.range), where);
    expect(spread(counts), `rows per shard: ${counts.join(', ')}`).toBeLessThan(1.01);
  });

  it('splits by quantiles of the rows subset.where selects', async () => {
    await sql(url, `
      CREATE TABLE events (id text PRIMARY KEY, kind text NOT NULL);
      INSERT INTO events SELECT 'e' || lpad(i::text, 6, '0'), CASE WHEN i <= 20000 THEN 'old' ELSE 'new' END
        FROM generate_series(1, 30000) AS i;
      ANALYZE events;`);
    const shards = await run(planFor('events', 'id', { shards: { count: 5 }, subset: { where: "kind = 'new'" } }));
    expectCoversKeySpace(shards);
    const counts = await rowsPerRange(url, 'events', 'id', shards.map((s) => s.range), "kind = 'new'");
    expect(counts).toEqual([2000, 2000, 2000, 2000, 2000]);
  });

  it('splits uuid keys by quantiles', async () => {
    await sql(url, `
      CREATE TABLE sessions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int);
      INSERT INTO sessions (n) SELECT i FROM generate_series(1, 20000) AS i;`);
    const shards = await run(planFor('sessions', 'id', { shards: { count: 6 } }));
    expectCoversKeySpace(shards);
    expect(shards.length).toBe(6);
    const counts = await rowsPerRange(url, 'sessions', 'id', shards.map((s) => s.range));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(spread(counts), `rows per shard: ${counts.join(', ')}`).toBeLessThan(1.01);
  });

  it('quotes every name and keeps every key character, however hostile', async () => {
    await sql(url, `
      CREATE TABLE "we""ird; DROP TABLE sessions; --" ("the ""key""" text PRIMARY KEY);
      INSERT INTO "we""ird; DROP TABLE sessions; --" SELECT E'k "q", {b} \\\\ NULL ' || lpad(i::text, 3, '0') FROM generate_series(1, 300) AS i;`);
    const table = 'we"ird; DROP TABLE sessions; --';
    const shards = await run(planFor(table, 'the "key"', { shards: { count: 3 } }));
    expectCoversKeySpace(shards);
    expect(shards[1]!.range).toEqual({ after: 'k "q", {b} \\ NULL 100', upTo: 'k "q", {b} \\ NULL 200' });
    expect(await rowsPerRange(url, table, 'the "key"', shards.map((s) => s.range))).toEqual([100, 100, 100]);
    expect(await sqlRow(url, `SELECT count(*)::int AS rows FROM sessions`)).toEqual({ rows: 20_000 });
  });

  it('plans one whole-range shard for an empty table or a single shard', async () => {
    await sql(url, `
      CREATE TABLE empty_ints (id bigint PRIMARY KEY);
      CREATE TABLE empty_texts (id text PRIMARY KEY);`);
    const whole = [{ range: { after: null, upTo: null }, partitionValue: null }];
    expect(await run(planFor('empty_ints', 'id', { shards: { count: 8 } }))).toEqual(whole);
    expect(await run(planFor('empty_texts', 'id', { shards: { count: 8 } }))).toEqual(whole);
    expect(await run(planFor('big_ids', 'id', { shards: { count: 1 } }))).toEqual(whole);
  });

  describe('by partition column', () => {
    beforeAll(async () => {
      await sql(url, `
        CREATE TABLE orders (id bigint PRIMARY KEY, tenant_id integer, region text);
        INSERT INTO orders SELECT i, (ARRAY[2, 10, 1])[i % 3 + 1], (ARRAY['us', 'eu'])[i % 2 + 1]
          FROM generate_series(1, 3000) AS i;`);
    });

    it('plans one whole-range shard per distinct value, in the column order', async () => {
      const shards = await run(planFor('orders', 'id', { shards: { count: 4, partitionColumn: 'tenant_id' } }));
      expect(shards).toEqual(
        ['1', '2', '10'].map((partitionValue) => ({ range: { after: null, upTo: null }, partitionValue })),
      );
    });

    it('takes subset.partitionValues as given, in order and deduplicated, without reading the table', async () => {
      // The table does not exist: the planner must not need it.
      const plan = planFor('no_such_table', 'id', {
        shards: { partitionColumn: 'region' },
        subset: { partitionValues: ['us', 'eu', 'us', 'apac'] },
      });
      expect((await run(plan)).map((s) => s.partitionValue)).toEqual(['us', 'eu', 'apac']);
    });

    it('refuses a partition column with NULLs, whose rows no shard would copy', async () => {
      await sql(url, `
        CREATE TABLE orders_with_nulls (id bigint PRIMARY KEY, tenant_id integer);
        INSERT INTO orders_with_nulls VALUES (1, 1), (2, NULL), (3, 2);`);
      const failure = await failureOf(run(planFor('orders_with_nulls', 'id', { shards: { partitionColumn: 'tenant_id' } })));
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toMatch(/"tenant_id".*NULL.*would not be copied/);
    });

    it('refuses more partition values than it can run shards for', async () => {
      await sql(url, `
        CREATE TABLE many_tenants (id bigint PRIMARY KEY, tenant_id integer NOT NULL);
        INSERT INTO many_tenants SELECT i, i FROM generate_series(1, 1100) AS i;`);
      const failure = await failureOf(run(planFor('many_tenants', 'id', { shards: { partitionColumn: 'tenant_id' } })));
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toMatch(/more than 1024 distinct values/);
    });
  });

  it('fails once, not forever, on mistakes in the plan', async () => {
    const missingTable = await failureOf(run(planFor('no_such_table', 'id', { shards: { count: 2 } })));
    expect(missingTable.nonRetryable).toBe(true);
    expect(missingTable.message).toMatch(/no_such_table does not exist/);

    const missingKey = await failureOf(run(planFor('big_ids', 'no_such_key', { shards: { count: 2 } })));
    expect(missingKey.message).toMatch(/"no_such_key" is not a column/);

    const badWhere = await failureOf(run(planFor('sessions', 'id', { shards: { count: 2 }, subset: { where: 'no_such_column > 1' } })));
    expect(badWhere.nonRetryable).toBe(true);
    expect(badWhere.message).toMatch(/no_such_column/);

    const badBound = await failureOf(run(planFor('big_ids', 'id', { shards: { count: 2 }, subset: { keyRange: { from: 'abc' } } })));
    expect(badBound.nonRetryable).toBe(true);
  });

  it('cannot write through subset.where', async () => {
    await sql(url, `CREATE TABLE audit (id text PRIMARY KEY)`);
    const where = `(SELECT count(*) FROM (INSERT INTO audit VALUES ('x') RETURNING 1) AS w) >= 0`;
    // A data-modifying statement is not allowed in a subquery at all; a function that writes is
    // stopped by the read-only transaction.
    await sql(url, `CREATE FUNCTION sneaky_write() RETURNS boolean LANGUAGE sql AS $$ INSERT INTO audit VALUES ('x') RETURNING true $$`);
    await failureOf(run(planFor('sessions', 'id', { shards: { count: 2 }, subset: { where } })));
    await expect(run(planFor('sessions', 'id', { shards: { count: 2 }, subset: { where: 'sneaky_write()' } }))).rejects.toThrow(/read-only/);
    expect(await sqlRow(url, `SELECT count(*)::int AS rows FROM audit`)).toEqual({ rows: 0 });
  });
});
