/**
 * `ferry init` through the real CLI and a worker: from a source table of awkward names and types
 * it writes a plan Ferry accepts and DDL Postgres runs, and that plan then copies every row
 * exactly (md5 of each row's text on both sides).
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { parsePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

describe('ferry init', () => {
  let url: string;
  let worker: TestWorker;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-init-'));

  beforeAll(async () => {
    url = await createTestDatabase('init');
    await sql(url, `
      CREATE SCHEMA app;
      CREATE TABLE app."Orders" (
        "Order Id" bigint PRIMARY KEY,
        customer varchar(80) NOT NULL,
        total numeric(12, 2),
        placed_at timestamptz NOT NULL,
        tags text[],
        payload jsonb
      );
      INSERT INTO app."Orders"
      SELECT i, 'customer ' || i, i * 1.25, timestamptz '2026-03-01 10:00:00.654321+00' + i * interval '1 hour',
             ARRAY['a', NULL, 'c ' || i], jsonb_build_object('n', i, 'big', 12345678901234567890123)
        FROM generate_series(1, 500) i;`);
    worker = await startWorker({ INIT_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('scaffolds a plan and DDL that copy the table exactly', async () => {
    const planFile = path.join(dir, 'orders.yaml');
    const ddlFile = path.join(dir, 'orders.sql');
    const result = await ferry(['init', 'app.Orders', '--connection', 'INIT_DB', '--target-table', 'app.orders_v2', '--out', planFile, '--ddl-out', ddlFile], worker.temporal);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(ExitCode.ok);
    const plan = parsePlan(readFileSync(planFile, 'utf8'), planFile);
    expect(plan.source).toMatchObject({ schema: 'app', table: 'Orders', key: 'Order Id' });
    expect(plan.target).toMatchObject({ schema: 'app', table: 'orders_v2' });
    await sql(url, readFileSync(ddlFile, 'utf8'));

    const run = await ferry(['start', planFile, '--execute', '--wait'], worker.temporal);
    expect(run.code).toBe(ExitCode.ok);
    const differing = await sqlRow(
      url,
      `SELECT count(*)::int AS n FROM (SELECT "Order Id" AS id, md5(o::text) h FROM app."Orders" o) s
         FULL JOIN (SELECT "Order Id" AS id, md5(t::text) h FROM app.orders_v2 t) t USING (id) WHERE s.h IS DISTINCT FROM t.h`,
    );
    expect(differing).toEqual({ n: 0 });
  });

  it('refuses a missing table and a file in the way, writing nothing', async () => {
    const missing = await ferry(['init', 'app.nope', '--connection', 'INIT_DB'], worker.temporal);
    expect(missing.code).toBe(ExitCode.badInput);
    expect(missing.stderr).toContain('table app.nope does not exist in INIT_DB');
    const planFile = path.join(dir, 'orders.yaml');
    const before = readFileSync(planFile, 'utf8');
    const again = await ferry(['init', 'app.Orders', '--connection', 'INIT_DB', '--out', planFile], worker.temporal);
    expect(again.code).toBe(ExitCode.badInput);
    expect(again.stderr).toContain('exists; choose another path, or --force');
    expect(readFileSync(planFile, 'utf8')).toBe(before);
    expect(existsSync(path.join(dir, 'other.sql'))).toBe(false);

    // A new plan path beside a DDL path in the way: neither is written, not the plan alone.
    const ddlFile = path.join(dir, 'in-the-way.sql');
    writeFileSync(ddlFile, '-- mine\n');
    const fresh = path.join(dir, 'fresh.yaml');
    const pair = await ferry(['init', 'app.Orders', '--connection', 'INIT_DB', '--out', fresh, '--ddl-out', ddlFile], worker.temporal);
    expect(pair.code).toBe(ExitCode.badInput);
    expect(pair.stderr).toContain(`${ddlFile} exists; choose another path, or --force to overwrite it; nothing was written`);
    expect(existsSync(fresh)).toBe(false);
    expect(readFileSync(ddlFile, 'utf8')).toBe('-- mine\n');
  });
});
