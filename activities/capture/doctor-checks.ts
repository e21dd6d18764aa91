/**
 * What `ferry doctor` checks for trigger capture on the source: the role may create and drop the
 * trigger (dropping takes the table's owner) and may keep the change log in a schema ferry there.
 */
import type pg from 'pg';
import type { DoctorCheck } from '../../lib/doctor';
import { displayName, qualifiedName, quoteIdent, sql, type TableName } from '../sql';

export async function captureChecks(pool: pg.Pool, source: TableName, user: string, database: string): Promise<DoctorCheck[]> {
  const table = qualifiedName(source);
  const { rows } = await pool.query<{ owner: string | null; owns: boolean | null; schema_exists: boolean; schema_owned: boolean; can_create_schema: boolean }>(
    sql`SELECT (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(${table})) AS owner,
            (SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(${table})) AS owns,
            to_regnamespace('ferry') IS NOT NULL AS schema_exists,
            coalesce((SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'ferry'), false) AS schema_owned,
            has_database_privilege(current_database(), 'CREATE') AS can_create_schema`,
  );
  const r = rows[0]!;
  const shown = displayName(source);
  const checks: DoctorCheck[] = [];
  if (r.owns !== null) {
    checks.push({
      side: 'source',
      name: `capture trigger on ${shown}`,
      status: r.owns ? 'ok' : 'fail',
      detail: r.owns
        ? `${user} may create and drop it (it owns the table, or belongs to ${r.owner})`
        : `${user} may not: creating a trigger takes the TRIGGER privilege, dropping it the table's owner (${r.owner})`,
      ...(r.owns ? {} : { fix: `GRANT ${quoteIdent(r.owner!)} TO ${quoteIdent(user)};` }),
    });
  }
  if (r.schema_exists) {
    checks.push({
      side: 'source',
      name: 'schema ferry (change log)',
      status: r.schema_owned ? 'ok' : 'fail',
      detail: r.schema_owned ? `exists, owned by ${user} (or a role it belongs to)` : 'exists but another role owns it; Ferry keeps the change log there',
      ...(r.schema_owned ? {} : { fix: `ALTER SCHEMA ferry OWNER TO ${quoteIdent(user)};` }),
    });
  } else {
    checks.push({
      side: 'source',
      name: 'CREATE on the database (for the change log)',
      status: r.can_create_schema ? 'ok' : 'fail',
      detail: r.can_create_schema ? 'Ferry can create schema ferry and its change log' : `${user} cannot create schema ferry, where the change log lives`,
      ...(r.can_create_schema ? {} : { fix: `GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(user)};` }),
    });
  }
  return checks;
}
