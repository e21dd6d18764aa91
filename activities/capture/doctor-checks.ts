/**
 * What trigger capture needs of the role on the source: to create and drop the trigger (dropping
 * takes the table's owner, and so does making it fire always) and to keep the change log in a
 * schema ferry there. `ferry doctor` prints these checks; the inspection refuses a start on the
 * same problems. Logical capture installs the change log and a TRUNCATE trigger too.
 */
import type pg from 'pg';
import type { CaptureProblem, DoctorCheck } from '../../lib/doctor';
import { displayName, qualifiedName, quoteIdent, sql, type TableName } from '../sql';

/** What the checks read from the source. */
export interface TriggerCaptureSettings {
  role: string;
  database: string;
  /** The table's owner; null when there is no such table. */
  owner: string | null;
  owns: boolean | null;
  schemaExists: boolean;
  schemaOwned: boolean;
  canCreateSchema: boolean;
}

/** One SELECT of the catalogs: it writes nothing, and runs inside the inspection's READ ONLY transaction too. */
export async function readTriggerCaptureSettings(db: pg.Pool | pg.ClientBase, source: TableName): Promise<TriggerCaptureSettings> {
  const table = qualifiedName(source);
  const { rows } = await db.query<{ role: string; database: string; owner: string | null; owns: boolean | null; schema_exists: boolean; schema_owned: boolean; can_create_schema: boolean }>(
    sql`SELECT current_user AS role, current_database() AS database,
            (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(${table})) AS owner,
            (SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(${table})) AS owns,
            to_regnamespace('ferry') IS NOT NULL AS schema_exists,
            coalesce((SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'ferry'), false) AS schema_owned,
            has_database_privilege(current_database(), 'CREATE') AS can_create_schema`,
  );
  const r = rows[0]!;
  return { role: r.role, database: r.database, owner: r.owner, owns: r.owns, schemaExists: r.schema_exists, schemaOwned: r.schema_owned, canCreateSchema: r.can_create_schema };
}

/** The names of the checks, as `ferry doctor` prints them. */
export function triggerCheckNames(source: TableName) {
  return { trigger: `capture trigger on ${displayName(source)}`, schema: 'schema ferry (change log)', create: 'CREATE on the database (for the change log)' };
}

/**
 * Why the trigger (or the TRUNCATE guard) and the change log could not be installed on `source`,
 * one problem each, with what fixes it; empty when they can. Pure.
 */
export function triggerCaptureProblems(s: TriggerCaptureSettings, source: TableName): CaptureProblem[] {
  const names = triggerCheckNames(source);
  const problems: CaptureProblem[] = [];
  if (s.owns === false) {
    problems.push({
      name: names.trigger,
      detail: `${s.role} may not create and drop a trigger on ${displayName(source)}: creating one takes the TRIGGER privilege, dropping it (and making it fire always) the table's owner (${s.owner})`,
      fix: `GRANT ${quoteIdent(s.owner!)} TO ${quoteIdent(s.role)};`,
    });
  }
  if (s.schemaExists && !s.schemaOwned) {
    problems.push({ name: names.schema, detail: 'schema ferry exists on the source but another role owns it; Ferry keeps the change log there', fix: `ALTER SCHEMA ferry OWNER TO ${quoteIdent(s.role)};` });
  }
  if (!s.schemaExists && !s.canCreateSchema) {
    problems.push({ name: names.create, detail: `${s.role} cannot create schema ferry on the source, where the change log lives`, fix: `GRANT CREATE ON DATABASE ${quoteIdent(s.database)} TO ${quoteIdent(s.role)};` });
  }
  return problems;
}

export async function captureChecks(pool: pg.Pool, source: TableName): Promise<DoctorCheck[]> {
  const s = await readTriggerCaptureSettings(pool, source);
  const problems = triggerCaptureProblems(s, source);
  const names = triggerCheckNames(source);
  const failed = (name: string): DoctorCheck | null => {
    const p = problems.find((problem) => problem.name === name);
    return p ? { side: 'source', name, status: 'fail', detail: p.detail, fix: p.fix } : null;
  };
  const checks: DoctorCheck[] = [];
  if (s.owns !== null) {
    checks.push(failed(names.trigger) ?? { side: 'source', name: names.trigger, status: 'ok', detail: `${s.role} may create and drop it (it owns the table, or belongs to ${s.owner})` });
  }
  if (s.schemaExists) {
    checks.push(failed(names.schema) ?? { side: 'source', name: names.schema, status: 'ok', detail: `exists, owned by ${s.role} (or a role it belongs to)` });
  } else {
    checks.push(failed(names.create) ?? { side: 'source', name: names.create, status: 'ok', detail: 'Ferry can create schema ferry and its change log' });
  }
  return checks;
}
