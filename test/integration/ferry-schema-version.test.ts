/**
 * Ferry's own schema, versioned, against a real Postgres: a fresh install, an install made by
 * the script from before versions (baselined and upgraded, its rows kept), workers applying at
 * once, a newer worker's migration, and an older worker refusing a newer schema untouched.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabases } from '../../activities/connections';
import { createDoctor } from '../../activities/inspect/doctor';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { FERRY_SCHEMA_MIGRATIONS, FERRY_SCHEMA_VERSION, type FerrySchemaMigration } from '../../activities/state/schema-migrations';
import { FerrySchemaTooNewError, installedFerrySchema, upgradeFerrySchema } from '../../activities/state/schema-version';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, sql, sqlRow } from '../support/harness';

const UNVERSIONED_SCRIPT = readFileSync(path.join(__dirname, '..', 'fixtures', 'ferry-schema-unversioned.sql'), 'utf8');

/** Every column, constraint, function and trigger in schema ferry, as the catalog describes them. */
async function layoutOf(url: string): Promise<string[]> {
  const rows = await sql<{ line: string }>(
    url,
    `SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, data_type, is_nullable, column_default) AS line
       FROM information_schema.columns WHERE table_schema = 'ferry'
     UNION ALL
     SELECT format('constraint %s %s', conrelid::regclass, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace = 'ferry'::regnamespace
     UNION ALL
     SELECT format('function %s %s', proname, md5(prosrc)) FROM pg_proc WHERE pronamespace = 'ferry'::regnamespace
     UNION ALL
     SELECT format('trigger %s on %s', tgname, tgrelid::regclass) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'ferry.%'
     ORDER BY 1`,
  );
  return rows.map((r) => r.line);
}

/** md5 of each of Ferry's tables' rows (schema_version aside), as the test reads them itself. */
async function contentsOf(url: string): Promise<Record<string, string>> {
  const tables = ['tombstones', 'failed_records', 'mismatches', 'verification_runs', 'flags', 'flag_acks', 'read_comparisons', 'migrations', 'audit'];
  const sums: Record<string, string> = {};
  for (const table of tables) {
    const row = await sqlRow<{ sum: string }>(url, `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum FROM ferry.${table} t`);
    sums[table] = row.sum;
  }
  return sums;
}

async function versionRows(url: string) {
  return sql<{ version: number; name: string; note: string | null }>(url, 'SELECT version, name, note FROM ferry.schema_version ORDER BY version');
}

describe("Ferry's schema, versioned", () => {
  const pools: pg.Pool[] = [];
  const poolFor = (url: string) => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pools.push(pool);
    return pool;
  };
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
  });

  it('installs a fresh database at the current version, and a second call changes nothing', async () => {
    const url = await createTestDatabase('schema_fresh');
    const pool = poolFor(url);
    expect(await installedFerrySchema(pool)).toEqual({ kind: 'none' });
    const first = await upgradeFerrySchema(pool);
    expect(first).toEqual({ found: { kind: 'none' }, version: FERRY_SCHEMA_VERSION, applied: FERRY_SCHEMA_MIGRATIONS.map((m) => m.version) });
    expect(await versionRows(url)).toEqual(FERRY_SCHEMA_MIGRATIONS.map((m) => ({ version: m.version, name: m.name, note: null })));
    const layout = await layoutOf(url);
    expect(layout).toContain('trigger notify_flags on ferry.flags');
    expect(layout.some((line) => line.startsWith('column mismatches.found_values jsonb'))).toBe(true);

    const second = await upgradeFerrySchema(pool);
    expect(second.applied).toEqual([]);
    expect(await layoutOf(url)).toEqual(layout);
    expect(await installedFerrySchema(pool)).toEqual({ kind: 'versioned', version: FERRY_SCHEMA_VERSION });
  });

  it('baselines and upgrades an install made by the script from before versions, keeping its rows', async () => {
    const fresh = await createTestDatabase('schema_reference');
    await upgradeFerrySchema(poolFor(fresh));
    const url = await createTestDatabase('schema_unversioned');
    await sql(url, UNVERSIONED_SCRIPT);
    await sql(
      url,
      `INSERT INTO ferry.tombstones (target_table, key) VALUES ('public.items', '42');
       INSERT INTO ferry.flags (migration, write_new) VALUES ('split-name', true);
       INSERT INTO ferry.failed_records (migration_id, key, error) VALUES ('m-1', '7', 'bad value');
       INSERT INTO ferry.mismatches (migration_id, pass, key, category, columns, found_values) VALUES ('m-1', 1, '9', 'value', '{name}', '{"name": {"source": "a", "target": "b"}}');
       INSERT INTO ferry.audit (migration_id, entry, plan_name, at, kind, by, detail) VALUES ('m-1', 'start', 'split-name', now(), 'start', 'alice', 'started');
       INSERT INTO ferry.migrations (target_table, migration_id, plan_name, state) VALUES ('public.items', 'm-1', 'split-name', 'running');`,
    );
    const before = await contentsOf(url);
    const pool = poolFor(url);
    expect(await installedFerrySchema(pool)).toEqual({ kind: 'unversioned' });

    const upgrade = await upgradeFerrySchema(pool);
    expect(upgrade.found).toEqual({ kind: 'unversioned' });
    expect(upgrade.applied).toEqual(FERRY_SCHEMA_MIGRATIONS.map((m) => m.version));
    expect((await versionRows(url))[0]).toEqual({ version: 1, name: 'layout', note: 'baseline of an install made before versions' });
    expect(await contentsOf(url)).toEqual(before);
    expect(await layoutOf(url)).toEqual(await layoutOf(fresh));
    // The delete protocol still works on the kept rows.
    await sql(url, `SELECT ferry.record_delete('public.items', '42')`);
    expect((await sql(url, `SELECT key FROM ferry.tombstones`)).map((r) => r.key)).toEqual(['42']);
  });

  it('brings an install from an earlier script (no audit, no verification runs, no found values) to the full layout', async () => {
    const fresh = await createTestDatabase('schema_reference2');
    await upgradeFerrySchema(poolFor(fresh));
    const url = await createTestDatabase('schema_older');
    await sql(url, UNVERSIONED_SCRIPT);
    await sql(
      url,
      `DROP TABLE ferry.audit, ferry.verification_runs;
       ALTER TABLE ferry.mismatches DROP COLUMN found_values, DROP COLUMN source_keys;
       INSERT INTO ferry.mismatches (migration_id, pass, key, category) VALUES ('m-0', 1, '3', 'missing');`,
    );
    await upgradeFerrySchema(poolFor(url));
    expect(await layoutOf(url)).toEqual(await layoutOf(fresh));
    expect(await sql(url, `SELECT key, category, found_values FROM ferry.mismatches`)).toEqual([{ key: '3', category: 'missing', found_values: null }]);
  });

  it('lets workers that start together apply it once: one applies, the others wait and find it done', async () => {
    const url = await createTestDatabase('schema_concurrent');
    const results = await Promise.all([poolFor(url), poolFor(url), poolFor(url), poolFor(url)].map((pool) => upgradeFerrySchema(pool)));
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    expect(results.every((r) => r.version === FERRY_SCHEMA_VERSION)).toBe(true);
    expect(await versionRows(url)).toHaveLength(FERRY_SCHEMA_MIGRATIONS.length);
  });

  it('upgrades an older versioned install with a newer worker, and an older worker then refuses it, changing nothing', async () => {
    const url = await createTestDatabase('schema_newer');
    const olderWorker = poolFor(url);
    await upgradeFerrySchema(olderWorker);
    await sql(url, `INSERT INTO ferry.flags (migration) VALUES ('split-name')`);
    const next: FerrySchemaMigration = {
      version: FERRY_SCHEMA_VERSION + 1,
      name: 'change log',
      sql: `CREATE TABLE ferry.change_log (id bigserial PRIMARY KEY, target_table text NOT NULL, key text NOT NULL);
            ALTER TABLE ferry.flags ADD COLUMN note text;`,
    };
    const newer = await upgradeFerrySchema(poolFor(url), [...FERRY_SCHEMA_MIGRATIONS, next]);
    expect(newer).toEqual({ found: { kind: 'versioned', version: FERRY_SCHEMA_VERSION }, version: next.version, applied: [next.version] });
    expect(await sql(url, `SELECT migration, note FROM ferry.flags`)).toEqual([{ migration: 'split-name', note: null }]);

    const layout = await layoutOf(url);
    const contents = await contentsOf(url);
    const versions = await versionRows(url);
    const refusal = await installFerrySchema(olderWorker).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(FerrySchemaTooNewError);
    expect((refusal as Error).message).toBe(
      `Ferry's schema in this database is at version ${next.version}, newer than version ${FERRY_SCHEMA_VERSION} that this worker knows: ` +
        `upgrade this worker (and every worker on its task queue) to the Ferry release that installed version ${next.version}. Nothing was changed.`,
    );
    expect(await layoutOf(url)).toEqual(layout);
    expect(await contentsOf(url)).toEqual(contents);
    expect(await versionRows(url)).toEqual(versions);
  });

  it('refuses, inside the lock too, a schema that a newer worker upgraded after this one last looked', async () => {
    const url = await createTestDatabase('schema_race');
    // An install from before versions: the fast path cannot read a version and takes the lock.
    await sql(url, UNVERSIONED_SCRIPT);
    const newerWorker = new pg.Client({ connectionString: url });
    await newerWorker.connect();
    try {
      await newerWorker.query(`BEGIN; SELECT pg_advisory_xact_lock(hashtext('ferry schema'))`);
      const older = upgradeFerrySchema(poolFor(url));
      // It may refuse before the newer worker's commit below returns: handled now, checked after.
      older.catch(() => {});
      await newerWorker.query(
        `CREATE TABLE ferry.schema_version (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), note text);
         INSERT INTO ferry.schema_version (version, name) VALUES (${FERRY_SCHEMA_VERSION}, 'layout'), (${FERRY_SCHEMA_VERSION + 1}, 'from the future');
         COMMIT`,
      );
      await expect(older).rejects.toThrow(`at version ${FERRY_SCHEMA_VERSION + 1}, newer than version ${FERRY_SCHEMA_VERSION}`);
    } finally {
      await newerWorker.end();
    }
    expect(await versionRows(url)).toHaveLength(2);
  });
  it('shows the version in ferry doctor: current, to be upgraded, or too new for this worker', async () => {
    const url = await createTestDatabase('schema_doctor');
    await sql(url, `CREATE TABLE items (id int PRIMARY KEY, name text); CREATE TABLE items_v2 (id int PRIMARY KEY, name text)`);
    const databases = createDatabases({ env: { DB: url } });
    const plan = validatePlan({ name: 'doctor', source: { connection: 'DB', table: 'items', key: 'id' }, target: { connection: 'DB', table: 'items_v2' }, transform: { sql: { id: 'id', name: 'name' } } });
    const versionLine = async () => (await createDoctor(databases).doctor({ plan })).checks.find((c) => c.name === 'ferry schema version');
    try {
      expect(await versionLine()).toBeUndefined();
      await sql(url, UNVERSIONED_SCRIPT);
      expect(await versionLine()).toMatchObject({ status: 'ok', detail: `none (installed before versions); the migration upgrades it to ${FERRY_SCHEMA_VERSION} (this worker knows ${FERRY_SCHEMA_VERSION})` });
      await upgradeFerrySchema(databases.pool('DB'));
      expect(await versionLine()).toMatchObject({ status: 'ok', detail: `${FERRY_SCHEMA_VERSION}, current (this worker knows ${FERRY_SCHEMA_VERSION})` });
      await sql(url, `INSERT INTO ferry.schema_version (version, name) VALUES (${FERRY_SCHEMA_VERSION + 1}, 'from the future')`);
      expect(await versionLine()).toMatchObject({ status: 'fail', detail: new FerrySchemaTooNewError(FERRY_SCHEMA_VERSION + 1, FERRY_SCHEMA_VERSION).message });
    } finally {
      await databases.close();
    }
  });
});
