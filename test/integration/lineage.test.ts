/**
 * One-to-many through a module transform (customers with a jsonb array of subscriptions, moved
 * to a table of subscriptions keyed by their own id): verification compares each customer's
 * group of subscriptions by the lineage column, finds what differs, and repair rewrites groups
 * without deleting a correctly copied row. Proved with the test's own SQL on both sides.
 */
import { runActivity } from '../support/activities';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import type { Mismatch } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { startMigration } from '../../operator';
import { wholeKeySpace } from '../../lib/key-range';
import { InvalidPlanError, validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const CUSTOMERS = 400;

/** Subscriptions of customer i: i % 4 of them, with ids made from (i, n) so both sides can compute them. */
const sourceDdl = `
  CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, subscriptions jsonb NOT NULL);
  INSERT INTO customers
  SELECT i, 'customer ' || i,
         coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'id', md5(i || '/' || n)::uuid, 'plan', CASE WHEN n % 2 = 0 THEN 'pro' ELSE 'basic' END,
                     'status', 'active', 'seats', n * 3) ORDER BY n)
                     FROM generate_series(1, i % 4) AS n), '[]'::jsonb)
    FROM generate_series(1, ${CUSTOMERS}) AS i;`;

const targetDdl = (table: string) => `
  CREATE TABLE ${table} (id uuid PRIMARY KEY, customer_id bigint, plan text NOT NULL, status text NOT NULL, seats int);
  CREATE INDEX ON ${table} (customer_id);`;

/** The test's own view of both sides: one line per subscription, hashed together. */
const sourceDigest = `
  SELECT count(*)::int AS rows, md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) AS digest FROM (
    SELECT concat_ws('|', (s->>'id')::uuid, c.id, s->>'plan', s->>'status', s->>'seats') AS line
      FROM customers c, jsonb_array_elements(c.subscriptions) AS s) AS l`;
const targetDigest = (table: string) => `
  SELECT count(*)::int AS rows, md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) AS digest FROM (
    SELECT concat_ws('|', id, customer_id, plan, status, seats) AS line FROM ${table}) AS l`;

const TRANSFORM = `
export default (customer: { id: string; subscriptions: { id: string; plan: string; status: string; seats: number }[] }) =>
  customer.subscriptions.map((s) => ({ id: s.id, customer_id: customer.id, plan: s.plan, status: s.status, seats: s.seats }));
`;

describe('verification by lineage (one-to-many)', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let databases: Databases;
  let dir: string;

  const planFor = (table: string, extra: Partial<PlanInput> = {}, target: Partial<PlanInput['target']> = { key: 'id', sourceKey: 'customer_id' }): Plan =>
    validatePlan({
      name: `lineage-${table.replace(/_/g, '-')}`,
      source: { connection: 'SRC', table: 'customers', key: 'id' },
      target: { connection: 'TGT', table, ...target },
      transform: { module: path.join(dir, 'subscriptions.ts'), columns: ['id', 'customer_id', 'plan', 'status', 'seats'] },
      shards: { count: 3 },
      verify: { chunkSize: 50, maxPasses: 2, inFlightDelaySeconds: 0.1 },
      ...extra,
    });

  const equal = async (table: string) => {
    const [source, target] = await Promise.all([sqlRow(sourceUrl, sourceDigest), sqlRow(targetUrl, targetDigest(table))]);
    return { source, target };
  };

  type Found = Mismatch & { sourceKeys: string[] };
  async function verifyAll(plan: Plan, migrationId: string, pass: number): Promise<VerifyShardResult & { found: Found[] }> {
    const verifier = createVerifier(databases);
    let cursor: string | null = null;
    const total = { rowsChecked: 0, mismatches: { missing: 0, extra: 0, value: 0 } };
    for (;;) {
      const result: VerifyShardResult = await runActivity(verifier.verifyShard, {
        migrationId, plan, shard: { range: wholeKeySpace, partitionValue: null }, cursor, chunkSize: 50, pass, inFlightDelayMs: 10,
      });
      total.rowsChecked += result.rowsChecked;
      for (const c of ['missing', 'extra', 'value'] as const) total.mismatches[c] += result.mismatches[c];
      cursor = result.cursor;
      if (result.done) break;
    }
    const found = await sql<Found>(
      targetUrl,
      `SELECT key, category, columns, source_keys AS "sourceKeys" FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL ORDER BY key`,
      [migrationId, pass],
    );
    return { ...(total as VerifyShardResult), found };
  }

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('lineage_src'), createTestDatabase('lineage_tgt')]);
    await sql(sourceUrl, sourceDdl);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-lineage-'));
    writeFileSync(path.join(dir, 'subscriptions.ts'), TRANSFORM);
    worker = await startWorker({ SRC: sourceUrl, TGT: targetUrl });
    databases = createDatabases({ env: { SRC: sourceUrl, TGT: targetUrl } });
  });
  afterAll(async () => {
    await worker?.stop();
    await databases?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the plan without target.sourceKey: at validation when the keys differ, at inspection when only the rows tell', async () => {
    expect(() => planFor('subs_refused', {}, { key: 'sub_id' })).toThrow(InvalidPlanError);
    expect(() => planFor('subs_refused', {}, { key: 'sub_id' })).toThrow(/target.sourceKey: is required with a module transform/);
    // Stripe's plan: both keys are named id, so only the transform's rows show it is one-to-many.
    await sql(targetUrl, targetDdl('subs_refused'));
    const handle = await startMigration(worker.client, worker.temporal, planFor('subs_refused', {}, { key: 'id' }), { execute: true });
    await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/migration cannot start:[^]*set target.sourceKey/) } });
    expect(await sql(targetUrl, 'SELECT count(*)::int AS n FROM subs_refused')).toEqual([{ n: 0 }]);
  });

  it('refuses it under capture with verification off too: the change apply would write and delete by the wrong key', async () => {
    await sql(targetUrl, targetDdl('subs_captured'));
    const plan = planFor('subs_captured', { capture: 'trigger', verify: { enabled: false } }, { key: 'id' });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await expect(handle.result()).rejects.toMatchObject({ cause: { message: expect.stringMatching(/migration cannot start:[^]*capture: trigger writes and deletes a changed key's target row by the source key/) } });
    expect(await sql(targetUrl, 'SELECT count(*)::int AS n FROM subs_captured')).toEqual([{ n: 0 }]);
    expect(await sql(sourceUrl, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'customers'::regclass AND NOT tgisinternal`)).toEqual([]);
  });

  it('copies, verifies clean and deletes nothing; then finds and repairs a removed, an extra, a changed and a moved subscription', async () => {
    await sql(targetUrl, targetDdl('subs'));
    const plan = planFor('subs');
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.phase).toBe('completed');
    expect(status.verification).toMatchObject({ clean: true, passes: 1, missing: 0, extra: 0, value: 0, repaired: 0 });
    const copied = await equal('subs');
    expect(copied.target).toEqual(copied.source);
    expect(copied.source.rows).toBe(600);

    // The source changes: customer 5 drops its subscription, 9 gets one more, 14's second changes
    // plan, 13's first moves to customer 350 (another chunk), customer 11 is deleted.
    await sql(sourceUrl, `
      UPDATE customers SET subscriptions = subscriptions - 0 WHERE id = 5;
      UPDATE customers SET subscriptions = subscriptions || jsonb_build_array(jsonb_build_object('id', md5('new')::uuid, 'plan', 'pro', 'status', 'trial', 'seats', 1)) WHERE id = 9;
      UPDATE customers SET subscriptions = jsonb_set(subscriptions, '{1,plan}', '"enterprise"') WHERE id = 14;
      UPDATE customers SET subscriptions = subscriptions || (SELECT subscriptions -> 0 FROM customers WHERE id = 13) WHERE id = 350;
      UPDATE customers SET subscriptions = subscriptions - 0 WHERE id = 13;
      DELETE FROM customers WHERE id = 11;`);
    // The target gains a subscription customer 7 never had, and one nobody can trace.
    await sql(targetUrl, `
      INSERT INTO subs VALUES (md5('stray')::uuid, 7, 'basic', 'active', 1), (md5('orphan')::uuid, NULL, 'basic', 'active', 1);`);

    const first = await verifyAll(plan, 'lineage-1', 1);
    const id = async (text: string) => (await sqlRow(targetUrl, `SELECT md5($1)::uuid::text AS id`, [text])).id as string;
    // 13's first subscription is one target key found twice: missing under 350, extra under 13.
    const moved = await id('13/1');
    expect(first.found.map((m) => `${m.key} ${m.key === moved ? 'moved' : m.category} ${m.sourceKeys.join(',')}`).sort()).toEqual(
      [
        `${await id('5/1')} extra 5`,
        `${await id('new')} missing 9`,
        `${await id('14/2')} value 14`,
        `${moved} moved 13,350`,
        `${await id('11/1')} extra 11`,
        `${await id('11/2')} extra 11`,
        `${await id('11/3')} extra 11`,
        `${await id('stray')} extra 7`,
      ].sort(),
    );
    expect(first.found.find((m) => m.category === 'value')!.columns).toEqual(['plan']);
    expect(first.mismatches).toEqual({ missing: 2, extra: 6, value: 1 });

    const verifier = createVerifier(databases);
    // The final check of the pass finds the row with no source key; nothing can say where it belongs.
    const coverage = await runActivity(verifier.verifyCoverage, {
      migrationId: 'lineage-1', plan, shards: [{ range: wholeKeySpace, partitionValue: null }], pass: 1, chunkSize: 50, inFlightDelayMs: 10,
    });
    expect(coverage.examples).toEqual([{ key: await id('orphan'), category: 'extra', columns: [], sourceKey: null }]);
    const shown = await runActivity(verifier.mismatchReport, { migrationId: 'lineage-1', plan, showValues: true, limit: 50 });
    expect(shown.examples.find((e) => e.category === 'value')!.values).toEqual({ plan: { source: 'enterprise', target: 'pro' } });
    const repair = await runActivity(verifier.repairMismatches, { migrationId: 'lineage-1', plan, pass: 1 });
    expect(repair.unresolved).toBe(1); // the orphan
    // 5/1, 11/1..3 and the stray are gone; 13/1 now belongs to 350; nothing else was deleted.
    expect(repair.deleted).toBe(5);

    const second = await verifyAll(plan, 'lineage-1', 2);
    expect(second.found).toEqual([]);
    // The orphan stays: repair deletes only what it can trace to a source key that no longer makes it.
    expect(await sql(targetUrl, `SELECT customer_id FROM subs WHERE id = md5('orphan')::uuid`)).toEqual([{ customer_id: null }]);
    await sql(targetUrl, `DELETE FROM subs WHERE id = md5('orphan')::uuid`);
    const repaired = await equal('subs');
    expect(repaired.target).toEqual(repaired.source);
  });

  it('verifies a SQL transform with a renamed key by its lineage column, and repairs by group', async () => {
    await sql(sourceUrl, `
      CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 500) AS i;`);
    await sql(targetUrl, `
      CREATE TABLE accounts (code text PRIMARY KEY, user_id bigint NOT NULL, name text NOT NULL);
      INSERT INTO accounts SELECT 'u' || i, i, 'user ' || i FROM generate_series(1, 500) AS i;`);
    const plan = validatePlan({
      name: 'lineage-sql',
      source: { connection: 'SRC', table: 'users', key: 'id' },
      target: { connection: 'TGT', table: 'accounts', key: 'code', sourceKey: 'user_id' },
      transform: { sql: { code: "'u' || id", user_id: 'id', name: 'name' } },
    });
    const clean = await verifyAll(plan, 'lineage-sql-0', 1);
    expect(clean.found).toEqual([]);
    expect(clean.rowsChecked).toBe(500);
    await sql(sourceUrl, `DELETE FROM users WHERE id = 5; UPDATE users SET name = 'renamed' WHERE id = 7;`);
    await sql(targetUrl, `DELETE FROM accounts WHERE code = 'u9'`);
    const first = await verifyAll(plan, 'lineage-sql-1', 1);
    expect(first.found.map((m) => `${m.key} ${m.category} ${m.sourceKeys.join(',')}`)).toEqual(['u5 extra 5', 'u7 value 7', 'u9 missing 9']);
    const repair = await runActivity(createVerifier(databases).repairMismatches, { migrationId: 'lineage-sql-1', plan, pass: 1 });
    expect(repair).toEqual({ repaired: 2, deleted: 1, unresolved: 0 });
    expect((await verifyAll(plan, 'lineage-sql-1', 2)).found).toEqual([]);
    const [source, target] = await Promise.all([
      sql(sourceUrl, `SELECT md5(ROW('u' || id, id, name)::text) AS h FROM users ORDER BY 1`),
      sql(targetUrl, `SELECT md5(ROW(code, user_id, name)::text) AS h FROM accounts ORDER BY 1`),
    ]);
    expect(target).toEqual(source);
  });

  it('compares again what an earlier pass left open by the source keys of its target keys, so a pass that did not read them keeps them open', async () => {
    await sql(sourceUrl, `
      CREATE TABLE notes (id bigint PRIMARY KEY, note text NOT NULL);
      INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 200) AS i;`);
    await sql(targetUrl, `
      CREATE TABLE order_notes (id bigint PRIMARY KEY, order_id bigint, note text NOT NULL);
      INSERT INTO order_notes SELECT i + 100000, i, 'note ' || i FROM generate_series(1, 200) AS i;`);
    const plan = validatePlan({
      name: 'lineage-recheck',
      source: { connection: 'SRC', table: 'notes', key: 'id' },
      target: { connection: 'TGT', table: 'order_notes', key: 'id', sourceKey: 'order_id' },
      transform: { sql: { id: 'id + 100000', order_id: 'id', note: 'note' } },
      verify: { inFlightDelaySeconds: 0.1 },
    });
    const migrationId = 'lineage-recheck';
    // A changed value, a row the source never made, and one nothing traces.
    await sql(targetUrl, `
      UPDATE order_notes SET note = 'damaged' WHERE id = 100007;
      INSERT INTO order_notes VALUES (109999, 9999, 'stray'), (200000, NULL, 'orphan');`);
    const first = await verifyAll(plan, migrationId, 1);
    expect(first.found.map((m) => `${m.key} ${m.category} ${m.sourceKeys.join(',')}`)).toEqual(['100007 value 7', '109999 extra 9999']);
    const verifier = createVerifier(databases);
    const coverage = await runActivity(verifier.verifyCoverage, {
      migrationId, plan, shards: [{ range: wholeKeySpace, partitionValue: null }], pass: 1, chunkSize: 50, inFlightDelayMs: 10,
    });
    expect(coverage.examples).toEqual([{ key: '200000', category: 'extra', columns: [], sourceKey: null }]);

    const open = () =>
      sql(targetUrl, `SELECT pass, key, category, source_keys AS "sourceKeys" FROM ferry.mismatches WHERE migration_id = $1 AND resolved_at IS NULL ORDER BY pass, key`, [migrationId]);
    // Pass 2 compared none of those rows itself (a sample, say): carried, each is still found.
    expect(await runActivity(verifier.recheckOpenMismatches, { migrationId, plan, pass: 2 })).toEqual({ missing: 0, extra: 2, value: 1 });
    expect(await open()).toEqual([
      { pass: 2, key: '100007', category: 'value', sourceKeys: ['7'] },
      { pass: 2, key: '109999', category: 'extra', sourceKeys: ['9999'] },
      { pass: 2, key: '200000', category: 'extra', sourceKeys: null },
    ]);

    // Put right by hand: the next carry finds them equal, and resolves them.
    await sql(targetUrl, `UPDATE order_notes SET note = 'note 7' WHERE id = 100007; DELETE FROM order_notes WHERE id IN (109999, 200000);`);
    expect(await runActivity(verifier.recheckOpenMismatches, { migrationId, plan, pass: 3 })).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(await open()).toEqual([]);
    const [source, target] = await Promise.all([
      rowsDigest(sourceUrl, 'SELECT id + 100000 AS id, id AS order_id, note FROM notes'),
      rowsDigest(targetUrl, 'SELECT id, order_id, note FROM order_notes'),
    ]);
    expect(target).toEqual(source);
  });

  it('with partition shards: the subscriptions of a deleted customer are found by the final check and deleted by group', async () => {
    await sql(sourceUrl, `ALTER TABLE customers ADD COLUMN region text; UPDATE customers SET region = 'r' || (id % 2); ALTER TABLE customers ALTER region SET NOT NULL;`);
    const plan = planFor('subs', { shards: { partitionColumn: 'region' } });
    const shards = ['r0', 'r1'].map((partitionValue) => ({ range: wholeKeySpace, partitionValue }));
    const verifier = createVerifier(databases);
    const check = async (migrationId: string, pass: number) => {
      const found: string[] = [];
      for (const shard of shards) {
        for (let cursor: string | null = null; ; ) {
          const result: VerifyShardResult = await runActivity(verifier.verifyShard, { migrationId, plan, shard, cursor, chunkSize: 50, pass, inFlightDelayMs: 10 });
          found.push(...result.examples.map((m) => `${m.key} ${m.category} ${m.sourceKey}`));
          cursor = result.cursor;
          if (result.done) break;
        }
      }
      const coverage = await runActivity(verifier.verifyCoverage, { migrationId, plan, shards, pass, chunkSize: 50, inFlightDelayMs: 10 });
      found.push(...coverage.examples.map((m) => `${m.key} ${m.category} ${m.sourceKey}`));
      return { found: found.sort(), coverage };
    };
    expect((await check('lineage-part', 1)).found).toEqual([]);
    // Customer 22 (two subscriptions) is deleted; 26's region changes, which moves it to the other shard.
    await sql(sourceUrl, `DELETE FROM customers WHERE id = 22; UPDATE customers SET region = 'r1' WHERE id = 26;`);
    const { found, coverage } = await check('lineage-part', 2);
    const id = async (text: string) => (await sqlRow(targetUrl, `SELECT md5($1)::uuid::text AS id`, [text])).id as string;
    expect(found).toEqual([`${await id('22/1')} extra 22`, `${await id('22/2')} extra 22`].sort());
    expect(coverage.targetRowsChecked).toBe(Number((await sqlRow(targetUrl, 'SELECT count(*) AS n FROM subs')).n));
    const repair = await runActivity(verifier.repairMismatches, { migrationId: 'lineage-part', plan, pass: 2 });
    expect(repair).toMatchObject({ deleted: 2, unresolved: 0 });
    expect((await check('lineage-part', 3)).found).toEqual([]);
    const after = await equal('subs');
    expect(after.target).toEqual(after.source);
  });
});
