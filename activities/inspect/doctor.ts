/**
 * The doctor checks, before a migration, what would stop it or blind it: both databases reached
 * with the worker's own variables, the tables and key, each transform column against its target
 * column's type, every privilege Ferry needs, with the GRANT statements that are missing, and
 * replication slots nothing reads, for which the copy's WAL would pile up.
 * Read-only: it runs catalog queries and EXPLAIN, never the statements themselves.
 */
import type pg from 'pg';
import type { DoctorCheck, DoctorReport } from '../../lib/doctor';
import { targetColumns, targetKey, type Plan } from '../../lib/plan';
import { rootMessage } from '../../lib/errors';
import { capturesLogically, capturesWithTrigger, formatBytes } from '../../lib/capture';
import { logicalCaptureChecks } from '../capture/logical-setup';
import { captureChecks } from '../capture/doctor-checks';
import { rowSecurityProblem } from './row-security';
import { inheritanceProblem } from './inheritance';
import { partitionKeyAdvice } from './partition-key';
import type { Databases } from '../connections';
import { sourceHealth, unreadSlotHold } from '../copy/backoff';
import { maxUnreadSlotWalMb } from '../../lib/throttle';
import { oneStatement, readOnly } from '../plan-sql';
import { ferrySql, ident, join, planSql, qualifiedName, quoteIdent, sql, tableName } from '../sql';
import { FERRY_SCHEMA_VERSION, FerrySchemaTooNewError, installedFerrySchema, type InstalledFerrySchema } from '../state/schema-version';

interface Side {
  role: 'source' | 'target';
  pool: pg.Pool;
  schema: string;
  table: string;
}

async function whoAmI(pool: pg.Pool): Promise<{ user: string; database: string; version: string }> {
  const { rows } = await pool.query<{ user: string; database: string; version: string }>(
    sql`SELECT current_user AS user, current_database() AS database, current_setting('server_version') AS version`,
  );
  return rows[0]!;
}

/** Table privileges Ferry uses on one side, each with the GRANT that gives it. */
async function tablePrivileges(side: Side, needed: string[], user: string): Promise<DoctorCheck[]> {
  const regclass = qualifiedName({ schema: side.schema, table: side.table });
  const { rows } = await side.pool.query<{ privilege: string; granted: boolean | null }>(
    sql`SELECT p AS privilege, CASE WHEN to_regclass(${regclass}) IS NULL THEN NULL ELSE has_table_privilege(to_regclass(${regclass}), p) END AS granted
          FROM unnest(${needed}::text[]) p`,
  );
  const namespace = quoteIdent(side.schema);
  const schemaUsage = await side.pool.query<{ granted: boolean | null }>(
    sql`SELECT CASE WHEN to_regnamespace(${namespace}) IS NULL THEN NULL ELSE has_schema_privilege(to_regnamespace(${namespace}), 'USAGE') END AS granted`,
  );
  const checks: DoctorCheck[] = [];
  if (schemaUsage.rows[0]?.granted === false) {
    checks.push({ side: side.role, name: `USAGE on schema ${side.schema}`, status: 'fail', detail: `${user} cannot see into schema ${side.schema}`, fix: `GRANT USAGE ON SCHEMA ${quoteIdent(side.schema)} TO ${quoteIdent(user)};` });
  }
  for (const row of rows) {
    if (row.granted === null) continue; // the table is missing: reported on its own
    checks.push({
      side: side.role,
      name: `${row.privilege} on ${side.schema}.${side.table}`,
      status: row.granted ? 'ok' : 'fail',
      detail: row.granted ? `${user} has it` : `${user} lacks it`,
      ...(row.granted ? {} : { fix: `GRANT ${row.privilege} ON ${qualifiedName({ schema: side.schema, table: side.table })} TO ${quoteIdent(user)};` }),
    });
  }
  return checks;
}

async function tableExists(side: Side): Promise<DoctorCheck> {
  const { rows } = await side.pool.query<{ present: boolean }>(sql`SELECT to_regclass(${qualifiedName({ schema: side.schema, table: side.table })}) IS NOT NULL AS present`);
  const present = rows[0]?.present ?? false;
  return {
    side: side.role,
    name: `table ${side.schema}.${side.table}`,
    status: present ? 'ok' : 'fail',
    detail: present ? 'exists' : side.role === 'target' ? 'does not exist: create it first (Ferry never creates or drops your tables)' : 'does not exist',
  };
}

/** The source key: there, NOT NULL, and unique on its own. */
async function keyCheck(side: Side, key: string): Promise<DoctorCheck> {
  const { rows } = await side.pool.query<{ not_null: boolean; is_unique: boolean }>(
    sql`SELECT a.attnotnull AS not_null,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indnkeyatts = 1
                        AND i.indkey[0] = a.attnum AND i.indpred IS NULL AND i.indexprs IS NULL) AS is_unique
          FROM pg_attribute a WHERE a.attrelid = to_regclass(${qualifiedName({ schema: side.schema, table: side.table })}) AND a.attname = ${key} AND NOT a.attisdropped`,
  );
  const found = rows[0];
  const name = `${side.role} key ${key}`;
  if (!found) return { side: side.role, name, status: 'fail', detail: `no column ${key} in ${side.schema}.${side.table}` };
  const advice = found.is_unique ? null : await partitionKeyAdvice(side.pool, { schema: side.schema, table: side.table }, key, side.role);
  const notUnique = `has no unique index of its own${advice ? `; ${advice}` : ''}`;
  const problems = [found.not_null ? null : 'allows NULL (rows with a NULL key would never be copied)', found.is_unique ? null : notUnique].filter(Boolean);
  return { side: side.role, name, status: problems.length ? 'fail' : 'ok', detail: problems.length ? problems.join('; ') : 'NOT NULL and unique' };
}

/** A check that fails with the inspection's own problem for this side's table, or passes saying `okDetail`. */
function tableProblemCheck(side: Side, name: string, problem: string | null, okDetail: string): DoctorCheck {
  return { side: side.role, name: `${name} ${side.schema}.${side.table}`, status: problem ? 'fail' : 'ok', detail: problem ?? okDetail };
}

/** Row-level security that would hide rows from Ferry's role, and inheritance children whose rows a read would take in. */
async function tableShapeChecks(side: Side): Promise<DoctorCheck[]> {
  const table = { schema: side.schema, table: side.table };
  return [
    tableProblemCheck(side, 'row-level security on', await rowSecurityProblem(side.pool, table), 'none applies to this role'),
    tableProblemCheck(side, 'inheritance children of', await inheritanceProblem(side.pool, table, side.role), 'none'),
  ];
}

/** What the source role needs beyond its table: seeing other sessions and replicas, for the holds. */
async function statsVisibility(side: Side, user: string): Promise<DoctorCheck> {
  const { rows } = await side.pool.query<{ member: boolean; superuser: boolean }>(
    sql`SELECT pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS member, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser`,
  );
  const sees = rows[0]?.member || rows[0]?.superuser;
  return {
    side: 'source',
    name: 'pg_read_all_stats',
    status: sees ? 'ok' : 'warn',
    detail: sees
      ? 'the replica-lag and long-query holds can see every session'
      : `${user} sees only its own sessions and no replica: the replica-lag and long-query holds would never hold`,
    ...(sees ? {} : { fix: `GRANT pg_read_all_stats TO ${quoteIdent(user)};` }),
  };
}

/**
 * Replication slots nothing reads (a standby or consumer that is down): the WAL the copy writes
 * piles up on the source's disk behind them, and past backoff.maxUnreadSlotWalMb the copy holds.
 * A warning only when it would hold from its start; a slot under the limit is named, not warned of.
 */
async function unreadSlotsCheck(side: Side, backoff: Plan['backoff']): Promise<DoctorCheck> {
  const name = 'replication slots nothing reads';
  const slot = (await sourceHealth(side.pool)).unreadSlot;
  const hold = unreadSlotHold(slot, backoff);
  if (hold) return { side: 'source', name, status: 'warn', detail: `the copy would hold from its start: ${hold}` };
  if (!slot) return { side: 'source', name, status: 'ok', detail: 'none: no WAL piles up for a standby or consumer that is down' };
  const maxMb = maxUnreadSlotWalMb(backoff);
  const count = slot.count;
  return {
    side: 'source',
    name,
    status: 'ok',
    detail:
      (count === 1 ? `1: "${slot.name}" holds ${formatBytes(slot.walBytes)} of WAL` : `${count}: "${slot.name}" holds the most WAL, ${formatBytes(slot.walBytes)}`) +
      `, and the WAL the copy writes piles up behind ${count === 1 ? 'it' : 'them'}` +
      (maxMb === null ? ', with no limit (backoff.maxUnreadSlotWalMb: null)' : `; the copy holds past backoff.maxUnreadSlotWalMb (${maxMb} MB)`),
  };
}

/** The version of Ferry's schema on the target against the one this worker knows. */
async function ferrySchemaVersionCheck(pool: pg.Pool): Promise<DoctorCheck> {
  const name = 'ferry schema version';
  let found: InstalledFerrySchema;
  try {
    found = await installedFerrySchema(pool);
  } catch (error) {
    // A schema another role owns may not be readable: the owner check above says what to do.
    return { side: 'target', name, status: 'fail', detail: `cannot be read: ${rootMessage(error)}` };
  }
  const known = `this worker knows ${FERRY_SCHEMA_VERSION}`;
  if (found.kind === 'versioned' && found.version > FERRY_SCHEMA_VERSION) {
    return { side: 'target', name, status: 'fail', detail: new FerrySchemaTooNewError(found.version, FERRY_SCHEMA_VERSION).message };
  }
  if (found.kind === 'versioned' && found.version === FERRY_SCHEMA_VERSION) return { side: 'target', name, status: 'ok', detail: `${found.version}, current (${known})` };
  const at = found.kind === 'versioned' ? `${found.version}` : found.kind === 'unversioned' ? 'none (installed before versions)' : 'none';
  return { side: 'target', name, status: 'ok', detail: `${at}; the migration upgrades it to ${FERRY_SCHEMA_VERSION} (${known})` };
}

/** Ferry's own schema on the target: created by Ferry's role, or usable by it. */
async function ferrySchemaCheck(side: Side, user: string, database: string): Promise<DoctorCheck[]> {
  const { rows } = await side.pool.query<{ exists: boolean; owner: boolean; can_create_schema: boolean; temp: boolean }>(
    sql`SELECT to_regnamespace('ferry') IS NOT NULL AS exists,
               coalesce((SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'ferry'), false) AS owner,
               has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
               has_database_privilege(current_database(), 'TEMPORARY') AS temp`,
  );
  const r = rows[0]!;
  const checks: DoctorCheck[] = [];
  if (r.exists) {
    checks.push({
      side: 'target',
      name: 'schema ferry',
      status: r.owner ? 'ok' : 'fail',
      detail: r.owner ? `exists, owned by ${user} (or a role it belongs to)` : `exists but another role owns it; Ferry installs and upgrades its tables there`,
      ...(r.owner ? {} : { fix: `ALTER SCHEMA ferry OWNER TO ${quoteIdent(user)};  -- and its tables: ALTER TABLE ferry.<table> OWNER TO ${quoteIdent(user)};` }),
    });
    checks.push(await ferrySchemaVersionCheck(side.pool));
  } else {
    checks.push({
      side: 'target',
      name: 'CREATE on the database (for schema ferry)',
      status: r.can_create_schema ? 'ok' : 'fail',
      detail: r.can_create_schema ? 'Ferry can create its schema' : `${user} cannot create schema ferry, where flags, tombstones and failed rows live`,
      ...(r.can_create_schema ? {} : { fix: `GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(user)};` }),
    });
  }
  checks.push({
    side: 'target',
    name: 'TEMPORARY on the database',
    status: r.temp ? 'ok' : 'fail',
    detail: r.temp ? 'staging tables can be made' : 'copies across databases stage rows in temporary tables',
    ...(r.temp ? {} : { fix: `GRANT TEMPORARY ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(user)};` }),
  });
  return checks;
}

/**
 * Each SQL transform column against its target column: the types the expressions produce, read
 * from the source with LIMIT 0, must be assignable to the target's columns. EXPLAIN of the insert
 * is parse-analysed (which is where a mismatch is found) and never run.
 */
async function transformFits(plan: Plan, source: Side, target: Side): Promise<DoctorCheck[]> {
  if (!plan.transform.sql) {
    return [{ side: 'target', name: 'transform columns', status: 'warn', detail: 'a module transform: its values are checked row by row in the dry run, not here' }];
  }
  const columns = targetColumns(plan);
  let typeIds: number[];
  try {
    const expressions = join(columns.map((column) => sql`${planSql(plan.transform.sql![column]!, `transform.sql.${column}`)} AS ${ident(column)}`));
    const probe = await readOnly(source.pool, (client) => client.query(oneStatement(sql`SELECT ${expressions} FROM ${tableName(source)} LIMIT 0`)));
    typeIds = probe.fields.map((f) => f.dataTypeID);
  } catch (error) {
    return [{ side: 'source', name: 'transform expressions', status: 'fail', detail: rootMessage(error) }];
  }
  const typed = await source.pool.query<{ column: string; type: string }>(
    sql`SELECT c AS column, format_type(t.oid, NULL) AS type FROM unnest(${columns}::text[], ${typeIds}::oid[]) AS u(c, o) JOIN pg_type t ON t.oid = u.o`,
  );
  const checks: DoctorCheck[] = [];
  for (const { column, type } of typed.rows) {
    try {
      await readOnly(target.pool, (client) =>
        // The type's name as the catalog wrote it (format_type), not anything from the plan.
        client.query(sql`EXPLAIN INSERT INTO ${tableName(target)} (${ident(column)}) SELECT NULL::${ferrySql(type)}`),
      );
      checks.push({ side: 'target', name: `column ${column}`, status: 'ok', detail: `${type} fits` });
    } catch (error) {
      checks.push({ side: 'target', name: `column ${column}`, status: 'fail', detail: `${plan.transform.sql[column]} gives ${type}: ${rootMessage(error)}` });
    }
  }
  return checks;
}

export function createDoctor(databases: Databases) {
  return {
    /** Checks a plan against both databases, as this worker sees them. Never writes. */
    async doctor({ plan }: { plan: Plan }): Promise<DoctorReport> {
      const checks: DoctorCheck[] = [];
      const sides: Side[] = [];
      for (const role of ['source', 'target'] as const) {
        const ref = plan[role];
        const variable = ref.connection;
        try {
          const pool = databases.pool(variable);
          const who = await whoAmI(pool);
          checks.push({ side: role, name: `connect (${variable})`, status: 'ok', detail: `as ${who.user} to database ${who.database}, PostgreSQL ${who.version}` });
          sides.push({ role, pool, schema: ref.schema, table: ref.table });
        } catch (error) {
          checks.push({ side: role, name: `connect (${variable})`, status: 'fail', detail: rootMessage(error) });
        }
      }
      const source = sides.find((s) => s.role === 'source');
      const target = sides.find((s) => s.role === 'target');
      if (source) {
        const { user } = await whoAmI(source.pool);
        const exists = await tableExists(source);
        checks.push(exists);
        if (exists.status === 'ok') checks.push(await keyCheck(source, plan.source.key), ...(await tablePrivileges(source, ['SELECT'], user)), ...(await tableShapeChecks(source)));
        checks.push(await statsVisibility(source, user), await unreadSlotsCheck(source, plan.backoff));
        if (capturesWithTrigger(plan)) checks.push(...(await captureChecks(source.pool, plan.source)));
        if (capturesLogically(plan)) checks.push(...(await logicalCaptureChecks(source.pool, plan.source, plan.source.key)));
      }
      if (target) {
        const { user, database } = await whoAmI(target.pool);
        const exists = await tableExists(target);
        checks.push(exists);
        if (exists.status === 'ok') {
          checks.push(await keyCheck({ ...target }, targetKey(plan)));
          checks.push(...(await tablePrivileges(target, ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], user)), ...(await tableShapeChecks(target)));
        }
        checks.push(...(await ferrySchemaCheck(target, user, database)));
        // The expressions' types are read from the source, which takes SELECT on it.
        const sourceReadable = checks.find((c) => c.name === `SELECT on ${plan.source.schema}.${plan.source.table}`)?.status === 'ok';
        if (source && exists.status === 'ok' && sourceReadable) {
          checks.push(...(await transformFits(plan, source, target)));
        }
      }
      return { checks, ok: checks.every((c) => c.status !== 'fail') };
    },
  };
}
