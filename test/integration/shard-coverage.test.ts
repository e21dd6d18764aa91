/**
 * Every shard kind finds every difference: key ranges, quantile ranges (a text key), partition
 * values and subsets each find missing, extra (deleted in the source, with a tombstone or
 * without), differing, key-changed and partition-changed rows, and rows outside every shard, and
 * repair makes the target equal to the source in scope. Proved with the test's own SQL (md5 of
 * each row's text on both sides), not with Ferry's verifier.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mismatches, startMigration, verifyMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { statusQuery } from '../../workflows/messages';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 1200;

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

interface Kind {
  name: string;
  key: 'id' | 'code';
  plan: Partial<PlanInput>;
  /** The source rows in scope, as SQL over the source table `s`. */
  scope: string;
  /** A tenant outside every planned partition is in scope. */
  newTenantInScope: boolean;
}

const kinds: Kind[] = [
  { name: 'key ranges', key: 'id', plan: { shards: { count: 3 } }, scope: 'true', newTenantInScope: true },
  { name: 'quantile ranges', key: 'code', plan: { shards: { count: 3 } }, scope: 'true', newTenantInScope: true },
  { name: 'partition values', key: 'id', plan: { shards: { partitionColumn: 'tenant' } }, scope: 'true', newTenantInScope: true },
  { name: 'a subset by where', key: 'code', plan: { shards: { count: 2 }, subset: { where: "tenant <> 'c'" } }, scope: "s.tenant <> 'c'", newTenantInScope: true },
  {
    name: 'a subset of partition values',
    key: 'id',
    plan: { shards: { partitionColumn: 'tenant' }, subset: { partitionValues: ['a', 'b'] } },
    scope: "s.tenant IN ('a', 'b')",
    newTenantInScope: false,
  },
];

describe('every shard kind finds every difference', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('cover_src'), createTestDatabase('cover_tgt')]);
    worker = await startWorker({ SRC: sourceUrl, TGT: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each(kinds.map((k, i) => [k.name, k, i] as const))('%s', async (_, kind, index) => {
    const source = `items_${index}`;
    const target = `items_v2_${index}`;
    await sql(sourceUrl, `
      CREATE TABLE ${source} (id bigint NOT NULL UNIQUE, code text PRIMARY KEY, tenant text NOT NULL, name text);
      INSERT INTO ${source} SELECT i, md5(i::text), (ARRAY['a', 'b', 'c'])[i % 3 + 1], 'name ' || i FROM generate_series(1, ${ROWS}) AS i;`);
    await sql(targetUrl, `CREATE TABLE ${target} (id bigint NOT NULL, code text NOT NULL, tenant text NOT NULL, name text, PRIMARY KEY (${kind.key}));`);
    const plan = validatePlan({
      name: `cover-${index}`,
      source: { connection: 'SRC', table: source, key: kind.key },
      target: { connection: 'TGT', table: target },
      transform: { sql: { id: 'id', code: 'code', tenant: 'tenant', name: 'name' } },
      verify: { chunkSize: 100, maxPasses: 3, inFlightDelaySeconds: 0.05 },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0 },
      ...kind.plan,
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const atGate = await eventually(async () => {
      const status = await handle.query(statusQuery);
      return status.gate?.name === 'cutover-reads' ? status : undefined;
    }, 60_000, 'the cutover gate');
    expect((atGate as MigrationStatus).verification).toMatchObject({ clean: true, missing: 0, extra: 0, value: 0 });

    // All in tenant a (i % 3 = 0), so in every kind's scope.
    const keyOf = (id: number) => (kind.key === 'id' ? String(id) : md5(String(id)));
    await sql(sourceUrl, `
      DELETE FROM ${source} WHERE id IN (3, 6);
      UPDATE ${source} SET name = 'renamed' WHERE id = 9;
      UPDATE ${source} SET id = 100015, code = md5('100015') WHERE id = 15;
      UPDATE ${source} SET tenant = 'b' WHERE id = 18;
      UPDATE ${source} SET tenant = 'new' WHERE id = 21;`);
    await sql(targetUrl, `
      SELECT ferry.record_delete('public.${target}', '${keyOf(6)}');
      DELETE FROM ${target} WHERE id = 12;
      INSERT INTO ${target} VALUES (500001, md5('500001'), 'a', 'stray');`);

    const summary = await verifyMigration(worker.client, handle.workflowId, { by: 'test' });
    expect(summary).toMatchObject({ clean: true });

    const found = await sql<{ key: string; category: string }>(
      targetUrl,
      `SELECT key, category FROM ferry.mismatches
        WHERE migration_id = $1 AND pass = (SELECT min(pass) FROM ferry.mismatches WHERE migration_id = $1) ORDER BY key`,
      [handle.workflowId],
    );
    const expected = [
      { key: keyOf(3), category: 'extra' },
      { key: keyOf(6), category: 'extra' },
      { key: keyOf(9), category: 'value' },
      { key: keyOf(12), category: 'missing' },
      { key: keyOf(15), category: 'extra' },
      { key: keyOf(100015), category: 'missing' },
      { key: keyOf(18), category: 'value' },
      ...(kind.newTenantInScope ? [{ key: keyOf(21), category: 'value' }] : []),
      { key: keyOf(500001), category: 'extra' },
    ].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    expect(found).toEqual(expected);
    const report = await mismatches(worker.client, handle.workflowId, { showValues: false, limit: 50 });
    expect(report.unresolved).toEqual({ missing: 0, extra: 0, value: 0 });

    // The test's own comparison: md5 of each row's text, the source's in scope against the target's.
    const rowsOf = async (url: string, query: string) => (await sql<{ h: string }>(url, query)).map((r) => r.h);
    const [sourceRows, targetRows] = await Promise.all([
      rowsOf(sourceUrl, `SELECT md5(ROW(s.id, s.code, s.tenant, s.name)::text) AS h FROM ${source} AS s WHERE ${kind.scope} ORDER BY 1`),
      rowsOf(targetUrl, `SELECT md5(ROW(t.id, t.code, t.tenant, t.name)::text) AS h FROM ${target} AS t ORDER BY 1`),
    ]);
    if (kind.newTenantInScope) {
      expect(targetRows).toEqual(sourceRows);
    } else {
      // Row 21 left the subset's partitions: it is out of scope, so its target row is neither judged nor deleted.
      const stale = await rowsOf(targetUrl, `SELECT md5(ROW(t.id, t.code, t.tenant, t.name)::text) AS h FROM ${target} AS t WHERE id = 21`);
      expect(stale).toHaveLength(1);
      expect(targetRows.filter((h) => h !== stale[0])).toEqual(sourceRows);
    }
    await handle.terminate('test done');
  });

  it('partition shards: rows the application hard-deletes during the backfill, with a tombstone or without, are all gone after verification', async () => {
    const ROWS_LIVE = 20_000;
    await sql(sourceUrl, `
      CREATE TABLE live (id bigint PRIMARY KEY, tenant text NOT NULL, name text);
      INSERT INTO live SELECT i, 't' || (i % 4), 'name ' || i FROM generate_series(1, ${ROWS_LIVE}) AS i;`);
    await sql(targetUrl, `CREATE TABLE live_v2 (id bigint PRIMARY KEY, tenant text NOT NULL, name text);`);
    const plan = validatePlan({
      name: 'cover-live',
      source: { connection: 'SRC', table: 'live', key: 'id' },
      target: { connection: 'TGT', table: 'live_v2' },
      transform: { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      shards: { partitionColumn: 'tenant' },
      throttle: { rowsPerSecond: 4000, batchSize: 200, concurrency: 2, targetBatchSeconds: 0 },
      verify: { chunkSize: 500, maxPasses: 3, inFlightDelaySeconds: 0.05 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    // Ferry's schema (ferry.record_delete) is installed once the migration executes.
    await eventually(async () => (await handle.query(statusQuery)).phase === 'backfilling' || undefined, 60_000, 'the backfill');
    let deletes = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const id = 1 + Math.floor(Math.random() * ROWS_LIVE);
        if (deletes % 2 === 0) {
          // As the client library deletes: a tombstone and the target row, in one transaction.
          await sql(targetUrl, `BEGIN; SELECT ferry.record_delete('public.live_v2', '${id}'); DELETE FROM live_v2 WHERE id = ${id}; COMMIT;`);
        }
        await sql(sourceUrl, `DELETE FROM live WHERE id = $1`, [id]);
        deletes += 1;
      }
    })();
    try {
      await eventually(async () => (await handle.query(statusQuery)).phase !== 'backfilling' || undefined, 120_000, 'the end of the backfill');
    } finally {
      writing = false;
      await writer;
    }
    const status = await handle.result();
    expect(deletes).toBeGreaterThan(50);
    expect(status.phase).toBe('completed');
    expect(status.verification).toMatchObject({ clean: true });
    // Source-only deletes of rows already copied: found as extra (by the final check) and deleted.
    expect(status.verification!.repaired).toBeGreaterThan(0);
    const rowsOf = async (url: string, table: string) => (await sql<{ h: string }>(url, `SELECT md5(ROW(id, tenant, name)::text) AS h FROM ${table} ORDER BY 1`)).map((r) => r.h);
    const [sourceRows, targetRows] = await Promise.all([rowsOf(sourceUrl, 'live'), rowsOf(targetUrl, 'live_v2')]);
    expect(sourceRows.length).toBeLessThan(ROWS_LIVE);
    expect(targetRows).toEqual(sourceRows);
  });
});
