/**
 * Brings Ferry's own schema in a database to the version this worker knows, one numbered
 * migration at a time, and refuses a schema newer than that. Safe to run any number of times,
 * from any number of workers at once.
 */
import type pg from 'pg';
import { inTransaction } from '../transaction';
import { sql } from '../sql';
import { FERRY_SCHEMA_MIGRATIONS, FERRY_SCHEMA_VERSION, migrationListProblem } from './schema-migrations';

/**
 * The lock every installer of Ferry's schema takes for its transaction, the unversioned script
 * of earlier releases included: workers of both kinds starting together never interleave DDL.
 */
const SCHEMA_LOCK_KEY = 'ferry schema';

/** What a database holds of Ferry's schema. */
export type InstalledFerrySchema =
  | { kind: 'none' }
  /** Made by a release from before versions: its tables, no ferry.schema_version. */
  | { kind: 'unversioned' }
  | { kind: 'versioned'; version: number };

export interface FerrySchemaUpgrade {
  found: InstalledFerrySchema;
  /** The version the database is at now. */
  version: number;
  /** The migrations this call applied, by number; empty when the schema was current. */
  applied: number[];
}

/** The database's Ferry schema is newer than this worker: only a newer worker may use it. */
export class FerrySchemaTooNewError extends Error {
  override name = 'FerrySchemaTooNew';
  constructor(
    readonly databaseVersion: number,
    readonly workerVersion: number,
  ) {
    super(
      `Ferry's schema in this database is at version ${databaseVersion}, newer than version ${workerVersion} that this worker knows: ` +
        `upgrade this worker (and every worker on its task queue) to the Ferry release that installed version ${databaseVersion}. Nothing was changed.`,
    );
  }
}

const UNDEFINED_TABLE = '42P01';

/** Reads what a database holds of Ferry's schema; never writes. */
export async function installedFerrySchema(db: pg.ClientBase | pg.Pool): Promise<InstalledFerrySchema> {
  const { rows } = await db.query<{ versioned: boolean; unversioned: boolean }>(
    sql`SELECT to_regclass('ferry.schema_version') IS NOT NULL AS versioned, to_regclass('ferry.tombstones') IS NOT NULL AS unversioned`,
  );
  if (rows[0]!.versioned) {
    const version = await db.query<{ version: number | null }>(sql`SELECT max(version) AS version FROM ferry.schema_version`);
    return { kind: 'versioned', version: version.rows[0]?.version ?? 0 };
  }
  return rows[0]!.unversioned ? { kind: 'unversioned' } : { kind: 'none' };
}

function versionOf(found: InstalledFerrySchema): number {
  return found.kind === 'versioned' ? found.version : 0;
}

/** The version recorded, or null when there is none to read (no schema, or one from before versions). */
async function recordedVersion(pool: pg.Pool): Promise<number | null> {
  try {
    const { rows } = await pool.query<{ version: number | null }>(sql`SELECT max(version) AS version FROM ferry.schema_version`);
    return rows[0]?.version ?? null;
  } catch (error) {
    if ((error as { code?: string }).code === UNDEFINED_TABLE) return null;
    throw error;
  }
}

/**
 * Applies the migrations the database lacks, all in one transaction under one lock: a worker
 * that started with it waits, then finds the work done. An install from before versions runs
 * migration 001 (which fits over any older layout) and is recorded as baselined. A schema newer
 * than this worker throws FerrySchemaTooNewError and changes nothing.
 */
export async function upgradeFerrySchema(pool: pg.Pool, migrations = FERRY_SCHEMA_MIGRATIONS): Promise<FerrySchemaUpgrade> {
  const listProblem = migrationListProblem(migrations);
  if (listProblem) throw new Error(`Ferry's schema migrations are out of order: ${listProblem}`);
  const known = migrations[migrations.length - 1]!.version;
  // The common case, every later call: one read and no lock.
  const recorded = await recordedVersion(pool);
  if (recorded !== null && recorded > known) throw new FerrySchemaTooNewError(recorded, known);
  if (recorded === known) return { found: { kind: 'versioned', version: known }, version: known, applied: [] };

  return inTransaction(pool, async (client) => {
    await client.query(sql`SELECT pg_advisory_xact_lock(hashtext(${SCHEMA_LOCK_KEY}))`);
    const found = await installedFerrySchema(client);
    const from = versionOf(found);
    if (from > known) throw new FerrySchemaTooNewError(from, known);
    const applied: number[] = [];
    for (const migration of migrations.filter((m) => m.version > from)) {
      await client.query(migration.sql);
      const note = found.kind === 'unversioned' && applied.length === 0 ? 'baseline of an install made before versions' : null;
      await client.query(sql`INSERT INTO ferry.schema_version (version, name, note) VALUES (${migration.version}, ${migration.name}, ${note})`);
      applied.push(migration.version);
    }
    return { found, version: Math.max(from, known), applied };
  });
}

export { FERRY_SCHEMA_VERSION };
