/** What the backfill copies: shards, partitions, subsets, tombstones, conflict policies. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

describe('what the backfill copies', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('data');
    await sql(url, `
      CREATE TABLE events (
        id text PRIMARY KEY,
        tenant int NOT NULL,
        body text NOT NULL,
        updated_at timestamptz NOT NULL
      );
      -- Skewed text keys: nine in ten share one long prefix.
      INSERT INTO events
      SELECT CASE WHEN i % 10 = 0 THEN 'b-' || lpad(i::text, 8, '0') ELSE 'a-common-prefix-' || lpad(i::text, 8, '0') END,
             i % 3, 'body ' || i, timestamptz '2025-01-01 00:00:00.000001+00' + i * interval '1 second'
        FROM generate_series(1, 30000) i;
      ANALYZE events;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function target(): Promise<string> {
    table += 1;
    const name = `events_${table}`;
    await sql(url, `CREATE TABLE ${name} (id text PRIMARY KEY, tenant int NOT NULL, body text NOT NULL, updated_at timestamptz NOT NULL)`);
    return name;
  }
  function planFor(targetTable: string, extra: Partial<PlanInput> = {}) {
    return validatePlan({
      name: `data-${table}`,
      source: { connection: 'DB', table: 'events', key: 'id' },
      target: { connection: 'DB', table: targetTable },
      transform: { sql: { id: 'id', tenant: 'tenant', body: 'body', updated_at: 'updated_at' } },
      ...extra,
    });
  }
  const differences = async (targetTable: string, where = 'true') =>
    (await sqlRow(url, `
      SELECT count(*)::int AS n FROM (SELECT * FROM events WHERE ${where}) e FULL JOIN (SELECT * FROM ${targetTable} WHERE ${where}) t USING (id)
       WHERE e.id IS NULL OR t.id IS NULL OR (e.tenant, e.body, e.updated_at) IS DISTINCT FROM (t.tenant, t.body, t.updated_at)`)).n as number;

  it('splits skewed text keys into even shards and copies them two at a time', async () => {
    const name = await target();
    const plan = planFor(name, { shards: { count: 4 }, throttle: { concurrency: 2, batchSize: 1000 } });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.shards).toHaveLength(4);
    const perShard = status.shards.map((s) => s.rowsRead);
    expect(Math.max(...perShard) / Math.min(...perShard)).toBeLessThan(2);
    expect(status.rowsWritten).toBe(30000);
    expect(await differences(name)).toBe(0);
  });

  it('copies one shard per partition value, or only the values asked for', async () => {
    const name = await target();
    const plan = planFor(name, { shards: { partitionColumn: 'tenant' }, throttle: { concurrency: 3 } });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.shards.map((s) => s.partitionValue)).toEqual(['0', '1', '2']);
    expect(await differences(name)).toBe(0);

    const subset = await target();
    const only = await (
      await startMigration(worker.client, worker.temporal, planFor(subset, { shards: { partitionColumn: 'tenant' }, subset: { partitionValues: ['2'] } }), {
        execute: true,
      })
    ).result();
    expect(only.shards.map((s) => s.partitionValue)).toEqual(['2']);
    expect(await differences(subset, 'tenant = 2')).toBe(0);
  });

  it('tries a migration on a slice: --where, --key-range, --sample, --partition-values', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-subset-'));
    const cases: [string[], string][] = [
      [['--where', `body LIKE '%7'`], `body LIKE '%7'`],
      [['--key-range', 'b-00010000..b-00020000'], `id BETWEEN 'b-00010000' AND 'b-00020000'`],
      [['--sample', '5'], `abs(hashtext(id)::bigint) % 10000 < 500`],
    ];
    for (const [flags, where] of cases) {
      const name = await target();
      const file = path.join(dir, `${name}.yaml`);
      writeFileSync(file, JSON.stringify({ ...planFor(name), name: `slice-${table}` }));
      const result = await ferry(['start', file, '--execute', '--wait', ...flags], worker.temporal);
      expect(result.code, result.stderr).toBe(ExitCode.ok);
      const { n } = await sqlRow(url, `SELECT count(*)::int AS n FROM ${name}`);
      const { expected } = await sqlRow(url, `SELECT count(*)::int AS expected FROM events WHERE ${where}`);
      expect(n).toBe(expected);
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThan(30000);
      expect(await differences(name, where)).toBe(0);
    }
    const bad = await ferry(['start', path.join(dir, `events_${table}.yaml`), '--partition-values', '1'], worker.temporal);
    expect(bad.code).toBe(ExitCode.badInput);
    expect(bad.stderr).toContain('subset.partitionValues: needs shards.partitionColumn');
  });

  it('never brings back a row the application deleted during the backfill', async () => {
    const name = await target();
    const plan = planFor(name, { throttle: { rowsPerSecond: 6000, batchSize: 200, checkpointSeconds: 0.5 } });
    await sql(url, 'CREATE TABLE IF NOT EXISTS deleted_keys (id text PRIMARY KEY)');
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    // The application, dual-writing: records the delete with Ferry (tombstone and lock), then
    // deletes from both tables, in one transaction, over keys the copier has and has not reached.
    const app = new pg.Client({ connectionString: url });
    await app.connect();
    const deletions = (async () => {
      for (let round = 0; round < 40; round += 1) {
        const victims = (await app.query(`SELECT id FROM events WHERE id NOT IN (SELECT id FROM deleted_keys) ORDER BY md5(id || ${round}) LIMIT 10`)).rows.map((r) => r.id as string);
        await app.query('BEGIN');
        for (const id of victims) await app.query('SELECT ferry.record_delete($1, $2)', [`public.${name}`, id]);
        await app.query('DELETE FROM events WHERE id = ANY($1)', [victims]);
        await app.query(`DELETE FROM ${name} WHERE id = ANY($1)`, [victims]);
        await app.query('INSERT INTO deleted_keys SELECT unnest($1::text[])', [victims]);
        await app.query('COMMIT');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const [status] = await Promise.all([handle.result(), deletions]);
    await app.end();
    expect(status.phase).toBe('completed');
    const { resurrected } = await sqlRow(url, `SELECT count(*)::int AS resurrected FROM ${name} WHERE id IN (SELECT id FROM deleted_keys)`);
    const { deleted } = await sqlRow(url, 'SELECT count(*)::int AS deleted FROM deleted_keys');
    expect(deleted).toBe(400);
    expect(resurrected).toBe(0);
    expect(await differences(name)).toBe(0);
  });

  it('lets the newer row win under newer-wins, and keeps the app\'s row under ignore', async () => {
    const name = await target();
    await sql(url, `
      INSERT INTO ${name} SELECT id, tenant, 'newer in target', updated_at + interval '1 hour' FROM events WHERE id LIKE 'b-00001%';
      INSERT INTO ${name} SELECT id, tenant, 'older in target', updated_at - interval '1 hour' FROM events WHERE id LIKE 'b-00002%';`);
    // The target's newer rows differ from the source on purpose: no verification to repair them.
    const plan = planFor(name, { conflict: { policy: 'newer-wins', newerBy: 'updated_at' }, verify: { enabled: false } });
    await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    const rows = await sql(url, `SELECT left(id, 7) AS prefix, body FROM ${name} WHERE id LIKE 'b-00001%' OR id LIKE 'b-00002%' ORDER BY id`);
    const { expected } = await sqlRow(url, `SELECT count(*)::int AS expected FROM events WHERE id LIKE 'b-00001%' OR id LIKE 'b-00002%'`);
    expect(rows.length).toBe(expected);
    expect(expected).toBeGreaterThan(150);
    expect(rows.filter((r) => r.prefix === 'b-00001').every((r) => r.body === 'newer in target')).toBe(true);
    expect(rows.filter((r) => r.prefix === 'b-00002').every((r) => r.body.startsWith('body '))).toBe(true);
    expect(await differences(name, `id NOT LIKE 'b-00001%'`)).toBe(0);
  });

  it('ends equal to the source when the application changes keys during the backfill (verification repairs it)', async () => {
    const name = await target();
    const plan = planFor(name, { throttle: { rowsPerSecond: 8000, batchSize: 200, checkpointSeconds: 0.5 }, verify: { maxPasses: 3, inFlightDelaySeconds: 0.2 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    // Keys renamed on both sides of the cursor, in the old table only: the copy alone would
    // leave the old keys behind in the target and miss the new ones.
    for (let round = 0; round < 10; round += 1) {
      await sql(url, `UPDATE events SET id = 'renamed-' || id WHERE id IN (SELECT id FROM events WHERE id NOT LIKE 'renamed-%' ORDER BY md5(id || ${round}) LIMIT 5)`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    expect(status.verification!.clean).toBe(true);
    expect(await differences(name)).toBe(0);
    const { renamed } = await sqlRow(url, `SELECT count(*)::int AS renamed FROM ${name} WHERE id LIKE 'renamed-%'`);
    expect(renamed).toBe(50);
  });
});
