/**
 * The audit of a migration's decisions in Ferry's schema on the target (ferry.audit): written by
 * the migration as it records them, read by `ferry report` once Temporal has forgotten the run.
 */
import type pg from 'pg';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { installFerrySchema } from './ferry-schema';
import { sql } from '../sql';

/** One row: a decision, or the migration's start or end. */
export interface AuditEntry {
  /** Names the row within its migration ('start', 'event 12', 'end'): writing it twice adds nothing. */
  entry: string;
  at: string;
  kind: string;
  by: string | null;
  detail: string;
}

export function createAuditLog(databases: Databases) {
  return {
    /** Safe to run twice: rows already written stay as they are. */
    async recordAudit({ plan, migrationId, entries }: { plan: Plan; migrationId: string; entries: AuditEntry[] }): Promise<void> {
      if (entries.length === 0) return;
      const pool = databases.pool(plan.target.connection);
      const insert = () =>
        pool.query(
          sql`INSERT INTO ferry.audit (migration_id, entry, plan_name, at, kind, by, detail)
              SELECT ${migrationId}, r.entry, ${plan.name}, r.at, r.kind, r.by, r.detail
                FROM jsonb_to_recordset(${JSON.stringify(entries)}::jsonb) AS r(entry text, at timestamptz, kind text, by text, detail text)
              ON CONFLICT (migration_id, entry) DO NOTHING`,
        );
      try {
        await insert();
      } catch (error) {
        // A target prepared by an older Ferry has no audit table yet.
        if ((error as { code?: string }).code !== '42P01') throw error;
        await installFerrySchema(pool);
        await insert();
      }
    },
  };
}

export interface AuditRecord {
  migrationId: string;
  planName: string;
  entries: AuditEntry[];
}

/** A migration's audit rows in the order they happened; null when it has none. */
export async function readAudit(db: pg.ClientBase | pg.Pool, migrationId: string): Promise<AuditRecord | null> {
  const exists = await db.query<{ present: boolean }>(sql`SELECT to_regclass('ferry.audit') IS NOT NULL AS present`);
  if (!exists.rows[0]?.present) return null;
  const { rows } = await db.query<AuditEntry & { plan_name: string }>(
    sql`SELECT entry, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at, kind, by, detail, plan_name
          FROM ferry.audit WHERE migration_id = ${migrationId}
         ORDER BY at, CASE WHEN entry = 'start' THEN 0 WHEN entry = 'end' THEN 2 ELSE 1 END,
                  NULLIF(regexp_replace(entry, '\\D', '', 'g'), '')::int`,
  );
  if (rows.length === 0) return null;
  return {
    migrationId,
    planName: rows[0]!.plan_name,
    entries: rows.map(({ entry, at, kind, by, detail }) => ({ entry, at, kind, by, detail })),
  };
}
