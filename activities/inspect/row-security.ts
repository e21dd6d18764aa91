/**
 * Row-level security that applies to Ferry's own role: through it, reads see only the rows the
 * table's policies show that role, so a copy would miss the others and its verification, reading
 * through the same role, would find nothing missing.
 */
import type pg from 'pg';
import { displayName, qualifiedName, quoteIdent, sql, type TableName } from '../sql';

/** Why a table's row-level security makes a migration through this pool untrue; null when none applies. Read-only. */
export async function rowSecurityProblem(pool: pg.Pool, table: TableName): Promise<string | null> {
  const { rows } = await pool.query<{ active: boolean | null; user: string }>(
    sql`SELECT CASE WHEN to_regclass(${qualifiedName(table)}) IS NULL THEN NULL ELSE row_security_active(to_regclass(${qualifiedName(table)})) END AS active,
               current_user AS user`,
  );
  const found = rows[0];
  if (!found?.active) return null;
  return (
    `row-level security on ${displayName(table)} applies to ${found.user}: Ferry would read and write only the rows its policies show ${found.user}, ` +
    `and verify those alone; run Ferry as the table's owner or a role with BYPASSRLS (ALTER ROLE ${quoteIdent(found.user)} BYPASSRLS, as a superuser)`
  );
}
