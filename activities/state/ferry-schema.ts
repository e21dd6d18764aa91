/**
 * Ferry's own schema in the target database: tombstones that applications write on hard
 * deletes, the records a migration could not copy, the mismatches verification found, and the
 * audit of every decision: how it is installed, and how rows are recorded in it.
 */
import type pg from 'pg';
import { isRaisedError } from '../../lib/errors';
import { sql } from '../sql';
import { upgradeFerrySchema } from './schema-version';

export { COPY_LOCK_CLASS } from './schema-migrations';

/**
 * Brings Ferry's schema on this database to the version this worker knows (see
 * schema-version.ts). Safe to run any number of times, from any number of workers at once;
 * after the first call it is one read.
 */
export async function installFerrySchema(pool: pg.Pool): Promise<void> {
  await upgradeFerrySchema(pool);
}

/** Failed rows one call reports to the workflow (the rest are in ferry.failed_records). */
export const MAX_REPORTED_FAILURES = 20;

export interface FailedRecord {
  key: string;
  /** SQLSTATE, when the database refused the row. */
  code: string | null;
  error: string;
  /** Raised by a trigger or function (PL/pgSQL's RAISE, whatever its SQLSTATE): its text is withheld from reports. */
  raised?: true;
}

/** The failure of the row of `key` that the database refused with `error`; `doing` says what was refused, when not the write. */
export function refusedRow(key: string, error: unknown, doing?: string): FailedRecord {
  const code = (error as { code?: string }).code ?? null;
  const message = error instanceof Error ? error.message : String(error);
  return { key, code, error: doing ? `${doing}: ${message}` : message, ...(isRaisedError(error) ? { raised: true as const } : {}) };
}

/**
 * Records failed rows, or a failure again; returns the keys that were no unresolved failure
 * before (new, or resolved once and failing again): those a migration's counts have not met.
 */
export async function recordFailures(pool: pg.Pool, migrationId: string, failures: FailedRecord[]): Promise<string[]> {
  if (failures.length === 0) return [];
  const { rows } = await pool.query<{ key: string }>(
    sql`WITH incoming AS (
          SELECT r.key, r.code, r.error FROM jsonb_to_recordset(${JSON.stringify(failures)}::jsonb) AS r(key text, code text, error text)
        ), unresolved AS (
          SELECT f.key FROM ferry.failed_records AS f JOIN incoming USING (key) WHERE f.migration_id = ${migrationId} AND f.resolved_at IS NULL
        ), written AS (
          INSERT INTO ferry.failed_records AS f (migration_id, key, error_code, error)
          SELECT ${migrationId}, key, code, error FROM incoming
          ON CONFLICT (migration_id, key) DO UPDATE
            SET attempts = f.attempts + 1, error_code = EXCLUDED.error_code, error = EXCLUDED.error,
                last_failed_at = now(), resolved_at = NULL
          RETURNING f.key
        )
        SELECT key FROM written WHERE key NOT IN (SELECT key FROM unresolved)`,
  );
  return rows.map((r) => r.key);
}

/** Keys of a migration's failed records not resolved yet, in key order; none before Ferry's schema is installed. */
export async function unresolvedFailedKeys(pool: pg.Pool, migrationId: string): Promise<string[]> {
  try {
    const { rows } = await pool.query<{ key: string }>(
      sql`SELECT key FROM ferry.failed_records WHERE migration_id = ${migrationId} AND resolved_at IS NULL ORDER BY key`,
    );
    return rows.map((r) => r.key);
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return [];
    throw error;
  }
}

/** Marks a failed record resolved: its row was copied after all. */
export async function resolveFailedRecord(pool: pg.Pool, migrationId: string, key: string): Promise<void> {
  await pool.query(sql`UPDATE ferry.failed_records SET resolved_at = now() WHERE migration_id = ${migrationId} AND key = ${key}`);
}

export async function unresolvedFailedCount(pool: pg.Pool, migrationId: string): Promise<number> {
  const { rows } = await pool.query<{ count: number }>(
    sql`SELECT count(*)::int AS count FROM ferry.failed_records WHERE migration_id = ${migrationId} AND resolved_at IS NULL`,
  );
  return rows[0]?.count ?? 0;
}

export type MismatchCategory = 'missing' | 'extra' | 'value';

export interface Mismatch {
  key: string;
  category: MismatchCategory;
  /** With `value`: the target columns that differ. Empty for missing and extra rows. */
  columns: string[];
  /**
   * With a lineage column (target.sourceKey): the source key the row belongs to, whose group a
   * repair rewrites; null for a target row with no source key. Absent otherwise.
   */
  sourceKey?: string | null;
}

/** Records (or re-records, unresolved again) mismatches of one verification pass; keys and names only. */
export async function recordMismatches(pool: pg.Pool, migrationId: string, pass: number, mismatches: Mismatch[]): Promise<void> {
  if (mismatches.length === 0) return;
  // One record a key: a key found twice (under two source keys) keeps both source keys.
  const byKey = new Map<string, Mismatch & { sourceKeys: string[] | null }>();
  for (const m of mismatches) {
    const known = byKey.get(m.key);
    const sourceKeys = m.sourceKey == null ? null : [m.sourceKey];
    if (!known) byKey.set(m.key, { ...m, sourceKeys });
    else if (sourceKeys) known.sourceKeys = [...new Set([...(known.sourceKeys ?? []), ...sourceKeys])];
  }
  await pool.query(
    sql`INSERT INTO ferry.mismatches AS m (migration_id, pass, key, category, columns, source_keys)
        SELECT ${migrationId}, ${pass}, r.key, r.category, r.columns, r."sourceKeys"
          FROM jsonb_to_recordset(${JSON.stringify([...byKey.values()])}::jsonb) AS r(key text, category text, columns text[], "sourceKeys" text[])
        ON CONFLICT (migration_id, pass, key) DO UPDATE
          SET category = EXCLUDED.category, columns = EXCLUDED.columns, detected_at = now(), resolved_at = NULL, found_values = NULL,
              source_keys = CASE WHEN m.source_keys IS NULL OR EXCLUDED.source_keys IS NULL THEN EXCLUDED.source_keys
                                 ELSE ARRAY(SELECT DISTINCT k FROM unnest(m.source_keys || EXCLUDED.source_keys) AS k ORDER BY k) END`,
  );
}

/** Keeps the values of mismatches of a pass as they were found (canonical text per column). */
export async function recordFoundValues(
  pool: pg.Pool,
  migrationId: string,
  pass: number,
  found: { key: string; values: Record<string, { source: string | null; target: string | null }> }[],
): Promise<void> {
  if (found.length === 0) return;
  await pool.query(
    sql`UPDATE ferry.mismatches AS m SET found_values = r.values
          FROM jsonb_to_recordset(${JSON.stringify(found)}::jsonb) AS r(key text, values jsonb)
         WHERE m.migration_id = ${migrationId} AND m.pass = ${pass} AND m.key = r.key`,
  );
}
