/**
 * Every source row is accounted for: a key column that can hold NULL is refused before anything
 * is written, and the final check of a verification pass counts the whole scope against what the
 * shards reach, so a row none reaches never passes unseen.
 */
import { runActivity } from '../support/activities';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createVerifier } from '../../activities/verify/verifier';
import { ExitCode } from '../../cli/exit-codes';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-null-keys-'));

describe('rows no range reaches', () => {
  let url: string;
  let worker: TestWorker;
  let databases: Databases;
  const fingerprint = () =>
    sqlRow(url, `SELECT (SELECT count(*) FROM accounts_v2)::int AS target_rows,
                        (SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry')::int AS ferry_schema`);

  beforeAll(async () => {
    url = await createTestDatabase('null_keys');
    // 5,000 rows, 50 of them with a NULL key: unique, but nullable.
    await sql(url, `
      CREATE TABLE accounts (id int UNIQUE, name text NOT NULL);
      INSERT INTO accounts SELECT CASE WHEN i % 100 = 0 THEN NULL ELSE i END, 'account ' || i FROM generate_series(1, 5000) AS i;
      CREATE TABLE nullable_but_full (id int UNIQUE, name text NOT NULL);
      INSERT INTO nullable_but_full SELECT i, 'n' FROM generate_series(1, 10) AS i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, name text NOT NULL);`);
    worker = await startWorker({ DB: url });
    databases = createDatabases({ env: { DB: url } });
  });
  afterAll(async () => {
    await worker?.stop();
    await databases?.close();
  });

  const planFile = (name: string, table: string) => {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, `name: ${name}\nsource: { connection: DB, table: ${table}, key: id }\ntarget: { connection: DB, table: accounts_v2 }\ntransform: { sql: { id: id, name: name } }\n`);
    return file;
  };

  it('refuses a key with NULLs, in the dry run and with --execute, and writes nothing', async () => {
    const before = await fingerprint();
    const file = planFile('null-keys', 'accounts');
    const message = 'source key column "id" allows NULL; 50 rows have a NULL key and would never be copied; add NOT NULL to it or choose another key';
    const dryRun = await ferry(['start', file], worker.temporal);
    expect(dryRun.code, dryRun.stdout + dryRun.stderr).toBe(ExitCode.failed);
    expect(dryRun.stdout + dryRun.stderr).toContain(message);
    const executed = await ferry(['start', file, '--execute', '--wait'], worker.temporal);
    expect(executed.code, executed.stdout + executed.stderr).toBe(ExitCode.failed);
    expect(executed.stdout + executed.stderr).toContain(message);
    expect(await fingerprint()).toEqual(before);
    expect(before).toEqual({ target_rows: 0, ferry_schema: 0 });
  });

  it('refuses a key that merely allows NULL', async () => {
    const executed = await ferry(['start', planFile('nullable-key', 'nullable_but_full'), '--execute', '--wait'], worker.temporal);
    expect(executed.code).toBe(ExitCode.failed);
    expect(executed.stdout + executed.stderr).toContain('source key column "id" allows NULL; no row has a NULL key now');
  });

  it('the final check counts NULL keys as rows nothing reached, and compares rows of a partition no shard has', async () => {
    await installFerrySchema(databases.pool('DB'));
    await sql(url, `
      CREATE TABLE late (id int UNIQUE, tenant text NOT NULL, name text);
      INSERT INTO late SELECT i, CASE WHEN i <= 90 THEN 'a' ELSE 'b' END, 'n' || i FROM generate_series(1, 100) AS i;
      INSERT INTO late VALUES (NULL, 'a', 'no key');
      CREATE TABLE late_v2 (id int PRIMARY KEY, tenant text NOT NULL, name text);
      INSERT INTO late_v2 SELECT id, tenant, name FROM late WHERE id IS NOT NULL AND id <> 95;
      UPDATE late_v2 SET name = 'stale' WHERE id = 96;`);
    const plan = validatePlan({
      name: 'late',
      source: { connection: 'DB', table: 'late', key: 'id' },
      target: { connection: 'DB', table: 'late_v2' },
      transform: { sql: { id: 'id', tenant: 'tenant', name: 'name' } },
      shards: { partitionColumn: 'tenant' },
    });
    const verifier = createVerifier(databases);
    // Planned when only tenant a existed: tenant b's ten rows are reached by no shard.
    const result = await runActivity(verifier.verifyCoverage, {
      migrationId: 'late-1', plan, shards: [{ range: { after: null, upTo: null }, partitionValue: 'a' }], pass: 1, chunkSize: 100, inFlightDelayMs: 10,
    });
    expect(result).toMatchObject({ scopeRows: 101, unreachedRows: 10, nullKeyRows: 1, mismatches: { missing: 1, extra: 0, value: 1 } });
    expect(result.problem).toContain('1 source rows in scope have a NULL key "id"');
    expect(result.examples.map((m) => `${m.key} ${m.category}`).sort()).toEqual(['95 missing', '96 value']);
  });
});
