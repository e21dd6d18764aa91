/**
 * Row-level security on the source that applies to Ferry's role: the role sees only the rows its
 * policies show, so a copy and its verification through that role would both see the same subset
 * and agree. Doctor and the migration must say so, never "ready" or "clean" over missing rows.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import type { DoctorReport } from '../../lib/doctor';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';

const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-rls-'));

describe('row-level security on the source', () => {
  let ownerUrl: string;
  let worker: TestWorker;
  let role: string;
  let planFile: string;

  beforeAll(async () => {
    ownerUrl = await createTestDatabase('rls');
    role = uniqueName('ferry_rls').toLowerCase();
    const database = new URL(ownerUrl).pathname.slice(1);
    await sql(ownerUrl, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);
      CREATE ROLE ${role} LOGIN PASSWORD 'rls-pass';
      GRANT SELECT ON items TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON items_v2 TO ${role};
      GRANT CREATE, TEMPORARY ON DATABASE ${database} TO ${role};
      GRANT pg_read_all_stats TO ${role};
      ALTER TABLE items ENABLE ROW LEVEL SECURITY;
      CREATE POLICY even_only ON items FOR SELECT TO ${role} USING (id % 2 = 0);`);
    const url = new URL(ownerUrl);
    url.username = role;
    url.password = 'rls-pass';
    worker = await startWorker({ RLS_DB: url.toString() });
    planFile = path.join(planDir, 'rls.yaml');
    writeFileSync(planFile, 'name: rls\nsource: { connection: RLS_DB, table: items, key: id }\ntarget: { connection: RLS_DB, table: items_v2 }\ntransform:\n  sql: { id: id, label: label }\n');
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('doctor fails, naming the table and the role the policies apply to', async () => {
    const result = await ferry(['doctor', planFile, '--json'], worker.temporal);
    const report = JSON.parse(result.stdout) as DoctorReport;
    const check = report.checks.find((c) => c.name === 'row-level security on public.items');
    expect(check?.status).toBe('fail');
    expect(check?.detail).toContain(role);
    expect(report.ok).toBe(false);
    expect(result.code).toBe(ExitCode.failed);
    expect(report.checks.find((c) => c.name === 'row-level security on public.items_v2')?.status).toBe('ok');
  });

  it('a migration refuses to start, rather than copy and verify half the rows as clean', async () => {
    const run = await ferry(['start', planFile, '--execute', '--wait'], worker.temporal);
    // The truth, by the test's own SQL as the table's owner: every source row must be in the target.
    const missing = await sqlRow(ownerUrl, 'SELECT count(*)::int AS n FROM items s WHERE NOT EXISTS (SELECT 1 FROM items_v2 t WHERE t.id = s.id)');
    expect({ code: run.code, missing: missing.n }).toEqual({ code: ExitCode.failed, missing: 100 });
    expect(`${run.stdout}${run.stderr}`).toContain(`row-level security on public.items applies to ${role}`);
  });
});
