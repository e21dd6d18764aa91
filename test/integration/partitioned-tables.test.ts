/**
 * Partitioned and inherited tables, as sources and as targets. A partitioned table is one table
 * to Ferry: every partition's rows are copied and verified, and its size is its partitions'. A
 * table with inheritance children is not: a read of it takes in the children's rows, which its
 * unique key does not cover, so a migration from or into it is refused, naming the children.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import pg from 'pg';
import { runDoctor } from '../../operator/doctor';
import { estimateRows } from '../../activities/inspect/row-estimate';
import { validatePlan, type Plan } from '../../lib/plan';
import { progressLine } from '../../cli/render';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

/** The table's rows as Postgres prints them, digested: the test's own truth, not Ferry's verifier. */
const digest = (url: string, table: string) =>
  sqlRow(url, `SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS md5 FROM ${table} AS t`);

describe('partitioned and inherited tables', () => {
  let url: string;
  let worker: TestWorker;

  const planFor = (name: string, source: string, target: string, extra: Record<string, unknown> = {}): Plan =>
    validatePlan({
      name,
      source: { connection: 'DB', table: source, key: 'id' },
      target: { connection: 'DB', table: target },
      transform: { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      ...extra,
    });

  beforeAll(async () => {
    url = await createTestDatabase('partitions');
    await sql(url, `
      -- Range partitions with a DEFAULT one, the parent analyzed once while empty (as a deploy
      -- script's ANALYZE leaves it) and never again: autovacuum analyzes partitions, not parents.
      CREATE TABLE orders (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL) PARTITION BY RANGE (id);
      CREATE TABLE orders_1 PARTITION OF orders FOR VALUES FROM (1) TO (1001);
      CREATE TABLE orders_2 PARTITION OF orders FOR VALUES FROM (1001) TO (2001);
      CREATE TABLE orders_rest PARTITION OF orders DEFAULT;
      ANALYZE orders;
      INSERT INTO orders SELECT i, i % 3, 'order ' || i FROM generate_series(1, 3000) AS i;
      ANALYZE orders_1; ANALYZE orders_2; ANALYZE orders_rest;
      CREATE TABLE orders_v2 (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);

      -- Analyzed partitions and ones made ahead of time, empty and so never analyzed.
      CREATE TABLE readings (id bigint PRIMARY KEY, at int NOT NULL) PARTITION BY RANGE (id);
      CREATE TABLE readings_1 PARTITION OF readings FOR VALUES FROM (1) TO (1001);
      CREATE TABLE readings_2 PARTITION OF readings FOR VALUES FROM (1001) TO (2001);
      CREATE TABLE readings_3 PARTITION OF readings FOR VALUES FROM (2001) TO (3001);
      CREATE TABLE readings_4 PARTITION OF readings FOR VALUES FROM (3001) TO (4001);
      INSERT INTO readings SELECT i, i FROM generate_series(1, 2000) AS i;
      ANALYZE readings_1; ANALYZE readings_2;

      -- Hash partitions never analyzed, into a range-partitioned target with a DEFAULT partition.
      CREATE TABLE events (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL) PARTITION BY HASH (id);
      CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 0);
      CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 1);
      CREATE TABLE events_2 PARTITION OF events FOR VALUES WITH (MODULUS 3, REMAINDER 2);
      INSERT INTO events SELECT i, i % 5, 'event ' || i FROM generate_series(1, 2000) AS i;
      CREATE TABLE events_v2 (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL) PARTITION BY RANGE (id);
      CREATE TABLE events_v2_low PARTITION OF events_v2 FOR VALUES FROM (1) TO (501);
      CREATE TABLE events_v2_rest PARTITION OF events_v2 DEFAULT;
      INSERT INTO events_v2 VALUES (7, 0, 'event 7'), (1500, 0, 'written by the application');

      -- List partitions on another column: the key is unique only with it.
      CREATE TABLE visits (id bigint NOT NULL, tenant int NOT NULL, name text NOT NULL, PRIMARY KEY (id, tenant)) PARTITION BY LIST (tenant);
      CREATE TABLE visits_0 PARTITION OF visits FOR VALUES IN (0);
      CREATE TABLE visits_rest PARTITION OF visits DEFAULT;
      INSERT INTO visits SELECT i, i % 3, 'visit ' || i FROM generate_series(1, 300) AS i;
      CREATE UNIQUE INDEX visits_0_id ON visits_0 (id);
      CREATE TABLE visits_v2 (LIKE visits) PARTITION BY LIST (tenant);
      ALTER TABLE visits_v2 ADD PRIMARY KEY (id, tenant);
      CREATE TABLE visits_0_v2 (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);

      -- Inheritance: the child's keys repeat the parent's.
      CREATE TABLE accounts (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
      CREATE TABLE accounts_archive () INHERITS (accounts);
      INSERT INTO accounts SELECT i, 0, 'account ' || i FROM generate_series(1, 100) AS i;
      INSERT INTO accounts_archive SELECT i, 1, 'archived ' || i FROM generate_series(51, 150) AS i;
      CREATE TABLE accounts_v2 (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);

      -- A target with an inheritance child holding a row whose key the source also has.
      CREATE TABLE ledger (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
      INSERT INTO ledger SELECT i, 0, 'entry ' || i FROM generate_series(1, 300) AS i;
      CREATE TABLE ledger_v2 (id bigint PRIMARY KEY, tenant int NOT NULL, name text NOT NULL);
      CREATE TABLE ledger_v2_old () INHERITS (ledger_v2);
      INSERT INTO ledger_v2_old VALUES (7, 9, 'kept in the child'), (5000, 9, 'also kept');`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('sizes a partitioned source by its partitions, whose parent was analyzed empty, and copies every partition', async () => {
    const handle = await startMigration(worker.client, worker.temporal, planFor('orders', 'orders', 'orders_v2', { shards: { count: 3 } }), { execute: true });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.inspection?.source.estimatedRows).toBe(3000);
    expect(progressLine(status)).toContain('3,000 of ~3,000 rows read (100.0%)');
    expect(status.shards).toHaveLength(3);
    expect(status.verification?.clean).toBe(true);
    expect(await digest(url, 'orders_v2')).toEqual(await digest(url, 'orders'));
  });

  it('sizes a partitioned table with partitions made ahead of time without counting all of it', { timeout: 30_000 }, async () => {
    // A lock on an analyzed partition stands in for a table too big to count in the few seconds
    // the estimate is given: only the partitions never analyzed are counted.
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    const pool = new pg.Pool({ connectionString: url });
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE readings_1 IN ACCESS EXCLUSIVE MODE');
      expect(await estimateRows(pool, 'public.readings')).toBe(2000);
    } finally {
      await locker.end();
      await pool.end();
    }
  });

  it('copies a hash-partitioned source into a partitioned target, through the staging path where the target has rows', async () => {
    const handle = await startMigration(worker.client, worker.temporal, planFor('events', 'events', 'events_v2', { shards: { count: 2 } }), { execute: true });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.inspection?.source.estimatedRows).toBe(2000);
    expect(status.verification?.clean).toBe(true);
    expect(await digest(url, 'events_v2')).toEqual(await digest(url, 'events'));
    const placed = await sqlRow(url, `SELECT (SELECT count(*) FROM events_v2_low)::int AS low, (SELECT count(*) FROM events_v2_rest)::int AS rest`);
    expect(placed).toEqual({ low: 500, rest: 1500 });
  });

  it('says why a key partitioned on another column is not unique, and the partition alone is a source', async () => {
    const dry = await (await startMigration(worker.client, worker.temporal, planFor('visits', 'visits', 'visits_v2'), { execute: false })).result();
    expect(dry.inspection?.problems).toEqual([
      'source key column "id" has no unique index on it alone; keyset batches need a unique key; public.visits is partitioned by LIST (tenant), so a unique index on it must hold those columns; migrate each partition as a source of its own, with a unique index on "id" there',
      expect.stringMatching(/^target key column "id" has no unique index on it alone; copies could not be made idempotent; public\.visits_v2 is partitioned by LIST \(tenant\)/),
    ]);
    const doctor = await runDoctor(worker.client, worker.temporal, planFor('visits-doctor', 'visits', 'visits_0_v2'));
    expect(doctor.checks.find((c) => c.name === 'source key id')).toMatchObject({ status: 'fail', detail: expect.stringContaining('public.visits is partitioned by LIST (tenant)') });
    const partition = await startMigration(worker.client, worker.temporal, planFor('visits-0', 'visits_0', 'visits_0_v2'), { execute: true });
    expect((await partition.result()).verification?.clean).toBe(true);
    expect(await digest(url, 'visits_0_v2')).toEqual(await digest(url, 'visits_0'));
  });

  it('refuses a source with inheritance children, naming them, and writes nothing', async () => {
    const dry = await (await startMigration(worker.client, worker.temporal, planFor('accounts-dry', 'accounts', 'accounts_v2'), { execute: false })).result();
    const refusal = /^source table public\.accounts has inheritance children \(public\.accounts_archive\): a read of it returns their rows too/;
    expect(dry.inspection?.problems).toEqual([expect.stringMatching(refusal)]);
    const handle = await startMigration(worker.client, worker.temporal, planFor('accounts', 'accounts', 'accounts_v2'), { execute: true });
    await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/migration cannot start:\n {2}- source table public\.accounts has inheritance children/) } });
    expect(await digest(url, 'accounts_v2')).toEqual({ rows: 0, md5: 'd41d8cd98f00b204e9800998ecf8427e' });
    const claims = await sqlRow(url, `SELECT CASE WHEN to_regclass('ferry.migrations') IS NULL THEN 0 ELSE (SELECT count(*) FROM ferry.migrations WHERE plan_name = 'accounts') END::int AS n`).catch(() => ({ n: -1 }));
    expect(claims.n).toBe(0);
  });

  it('refuses a target with inheritance children, and leaves the child and the target as they were', async () => {
    const before = { target: await digest(url, 'ONLY ledger_v2'), child: await digest(url, 'ledger_v2_old') };
    const handle = await startMigration(worker.client, worker.temporal, planFor('ledger', 'ledger', 'ledger_v2'), { execute: true });
    await expect(handle.result()).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/target table public\.ledger_v2 has inheritance children \(public\.ledger_v2_old\): Ferry's reads and deletes of it reach their rows too/) },
    });
    expect({ target: await digest(url, 'ONLY ledger_v2'), child: await digest(url, 'ledger_v2_old') }).toEqual(before);
  });

  it('doctor fails the inherited sides, naming the children, and passes a partitioned one', async () => {
    const inherited = await runDoctor(worker.client, worker.temporal, planFor('doctor-inherited', 'accounts', 'ledger_v2'));
    const check = (name: string) => inherited.checks.find((c) => c.name === name);
    expect(check('inheritance children of public.accounts')).toMatchObject({ side: 'source', status: 'fail', detail: expect.stringContaining('public.accounts_archive') });
    expect(check('inheritance children of public.ledger_v2')).toMatchObject({ side: 'target', status: 'fail', detail: expect.stringContaining('public.ledger_v2_old') });
    expect(inherited.ok).toBe(false);
    const partitioned = await runDoctor(worker.client, worker.temporal, planFor('doctor-partitioned', 'events', 'events_v2'));
    expect(partitioned.checks.filter((c) => c.name.startsWith('inheritance children of')).map((c) => c.status)).toEqual(['ok', 'ok']);
  });
});
