/**
 * `ferry doctor` through the real CLI and a worker: a role with no privileges gets every missing
 * GRANT printed, and once a database owner runs exactly those statements the plan is ready; a
 * transform column that cannot go into its target column is named with its expression.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import type { DoctorReport } from '../../lib/doctor';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';

const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-doctor-'));

function writePlan(name: string, connection: string, columns: Record<string, string>): string {
  const file = path.join(planDir, `${name}.yaml`);
  const sqlColumns = Object.entries(columns).map(([column, expression]) => `    ${column}: ${JSON.stringify(expression)}`).join('\n');
  writeFileSync(file, `name: ${name}\nsource: { connection: ${connection}, table: items, key: id }\ntarget: { connection: ${connection}, table: items_v2 }\ntransform:\n  sql:\n${sqlColumns}\n`);
  return file;
}

describe('ferry doctor', () => {
  let ownerUrl: string;
  let limitedUrl: string;
  let role: string;
  let worker: TestWorker;

  beforeAll(async () => {
    ownerUrl = await createTestDatabase('doctor');
    role = uniqueName('ferry_role').toLowerCase();
    await sql(ownerUrl, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL, n int);
      INSERT INTO items SELECT i, 'item ' || i, i FROM generate_series(1, 100) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL, n bigint, city int);
      CREATE ROLE ${role} LOGIN PASSWORD 'doctor-pass';
      REVOKE CREATE, TEMPORARY ON DATABASE ${new URL(ownerUrl).pathname.slice(1)} FROM PUBLIC;`);
    const url = new URL(ownerUrl);
    url.username = role;
    url.password = 'doctor-pass';
    limitedUrl = url.toString();
    worker = await startWorker({ OWNER_DB: ownerUrl, LIMITED_DB: limitedUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const fits = { id: 'id', label: 'label', n: 'n' };

  it('prints every GRANT a role without privileges lacks; run as printed, they make the plan ready', async () => {
    const plan = writePlan('doctor-limited', 'LIMITED_DB', fits);
    const before = await ferry(['doctor', plan, '--json'], worker.temporal);
    expect(before.code).toBe(ExitCode.failed);
    const report = JSON.parse(before.stdout) as DoctorReport;
    const failing = report.checks.filter((c) => c.status === 'fail').map((c) => c.name);
    expect(failing).toEqual(
      expect.arrayContaining(['SELECT on public.items', 'INSERT on public.items_v2', 'UPDATE on public.items_v2', 'DELETE on public.items_v2', 'CREATE on the database (for schema ferry)', 'TEMPORARY on the database']),
    );
    expect(report.checks.find((c) => c.name === 'pg_read_all_stats')?.status).toBe('warn');
    const fixes = report.checks.flatMap((c) => (c.fix ? [c.fix] : []));
    expect(fixes.every((fix) => fix.startsWith('GRANT '))).toBe(true);

    const text = await ferry(['doctor', plan], worker.temporal);
    expect(text.stdout).toContain('Run as a database owner');
    for (const fix of fixes) expect(text.stdout).toContain(fix);

    await sql(ownerUrl, fixes.join('\n'));
    const after = await ferry(['doctor', plan, '--json'], worker.temporal);
    const afterReport = JSON.parse(after.stdout) as DoctorReport;
    expect(afterReport.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(after.code).toBe(ExitCode.ok);

    // "Ready" is only true if the role can now migrate: the run, checked by the test's own SQL.
    const run = await ferry(['start', plan, '--execute', '--wait'], worker.temporal);
    expect(run.code).toBe(ExitCode.ok);
    const differing = await sqlRow(
      ownerUrl,
      `SELECT count(*)::int AS n FROM (SELECT id, md5(row(id, label, n)::text) h FROM items) s
         FULL JOIN (SELECT id, md5(row(id, label, n::int)::text) h FROM items_v2) t USING (id) WHERE s.h IS DISTINCT FROM t.h`,
    );
    expect(differing).toEqual({ n: 0 });
  });

  it('names a transform column that cannot go into its target column, and writes nothing', async () => {
    const fingerprint = `SELECT (SELECT count(*) FROM items_v2)::int AS target_rows, (SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry')::int AS ferry_schema`;
    const before = await sqlRow(ownerUrl, fingerprint);
    const plan = writePlan('doctor-types', 'OWNER_DB', { ...fits, city: "label || ' city'" });
    const result = await ferry(['doctor', plan], worker.temporal);
    expect(result.code).toBe(ExitCode.failed);
    expect(result.stdout).toMatch(/FAIL\s+target\s+column city\s+label \|\| ' city' gives text: column "city" is of type integer but expression is of type text/);
    expect(result.stdout).toMatch(/ok\s+target\s+column n\s+integer fits/);
    expect(await sqlRow(ownerUrl, fingerprint)).toEqual(before);
  });

  it('says which variable is not set on the worker', async () => {
    const plan = writePlan('doctor-unset', 'UNSET_DB', fits);
    const result = await ferry(['doctor', plan], worker.temporal);
    expect(result.code).toBe(ExitCode.failed);
    expect(result.stdout).toMatch(/FAIL\s+source\s+connect \(UNSET_DB\)\s+environment variable UNSET_DB is not set on this worker/);
  });
});
