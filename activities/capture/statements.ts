/**
 * The SQL of trigger capture on the source database: the change log, a migration's trigger,
 * and the reads of the log by snapshot, built with the sql`` template: names quoted, values
 * bound as parameters, and (in DDL, which takes none) written as quoted literals.
 */
import { createHash } from 'node:crypto';
import type { KeyRange } from '../../lib/key-range';
import { ferrySql, ident, join, literal, qualifiedName, sql, tableName, type Sql, type TableName } from '../sql';

export const CHANGE_LOG = 'ferry.change_log';
const LOG = ferrySql(CHANGE_LOG);

/**
 * One row per changed key per writing statement, written by the trigger in the writer's own
 * transaction with its transaction id. Shared by every migration capturing on this database.
 * Safe to run twice.
 */
export const CHANGE_LOG_SQL = sql`
  CREATE SCHEMA IF NOT EXISTS ferry;
  CREATE TABLE IF NOT EXISTS ferry.change_log (
    migration_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    key text NOT NULL,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    logged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, seq)
  );
  CREATE INDEX IF NOT EXISTS change_log_by_xid ON ferry.change_log (migration_id, xid);
  COMMENT ON TABLE ferry.change_log IS
    'Keys changed in a source table that Ferry captures with a trigger, with the writing transaction; applied to the target, then removed.';`;

/**
 * The name of a migration's trigger and of its function: from the migration id alone, so an
 * abort, a retry or another worker finds them again. Readable, and unique by a digest.
 */
export function captureObjectName(migrationId: string, role: 'capture' | 'truncate' = 'capture'): string {
  const readable = migrationId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30)
    .replace(/^_+|_+$/g, '');
  const digest = createHash('sha256').update(migrationId).digest('hex').slice(0, 12);
  return `ferry_${role}_${readable ? `${readable}_` : ''}${digest}`;
}

/** The statement-level trigger that refuses a TRUNCATE of the source while capturing. */
export function truncateGuardName(migrationId: string): string {
  return captureObjectName(migrationId, 'truncate');
}

function captureFunctionName(migrationId: string): Sql {
  return sql`ferry.${ident(captureObjectName(migrationId))}`;
}

/**
 * The trigger function: logs the key an insert or delete touches, and for an update the old key
 * and, when the key changed, the new one too. SECURITY DEFINER, so writers need no grant on the
 * log; the settings make a key's text the same whatever the writer's session uses.
 * The body is DDL text that Postgres stores and runs later, so it can take no bind parameters:
 * the migration id goes in as a quoted literal and the key column as a quoted name, inside a
 * dollar quote whose tag neither holds (a workflow id is anyone's text, `$ferry$` included).
 */
export function createCaptureFunctionSql(migrationId: string, key: string): string {
  const id = literal(migrationId);
  const column = ident(key);
  let tag = '$ferry$';
  while (migrationId.includes(tag) || key.includes(tag)) tag = `${tag.slice(0, -1)}_$`;
  const quote = ferrySql(tag);
  return sql`CREATE OR REPLACE FUNCTION ${captureFunctionName(migrationId)}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres' SET extra_float_digits = 3
    AS ${quote}
    BEGIN
      -- A TRUNCATE logs no row, so its deletes could never reach the target: refuse it.
      IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'TRUNCATE of %.% is refused while Ferry captures its changes for migration %', TG_TABLE_SCHEMA, TG_TABLE_NAME, ${id}
          USING ERRCODE = 'feature_not_supported',
                HINT = 'A TRUNCATE cannot be captured key by key: delete the rows instead, or abort the migration first.';
      END IF;
      IF TG_OP <> 'INSERT' THEN
        INSERT INTO ferry.change_log (migration_id, key) VALUES (${id}, (OLD.${column})::text);
      END IF;
      IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.${column} IS DISTINCT FROM OLD.${column}) THEN
        INSERT INTO ferry.change_log (migration_id, key) VALUES (${id}, (NEW.${column})::text);
      END IF;
      RETURN NULL;
    END
    ${quote}`.text;
}

/**
 * Whether the migration's trigger exists (`present`), fires in ordinary sessions (`enabled`: not
 * disabled by hand) and in every session (`always`, see fireAlwaysSql).
 */
export function triggerExistsSql(migrationId: string, source: TableName, role: 'capture' | 'truncate' = 'capture'): Sql {
  // An aggregate: one row whether the trigger is there or not.
  return sql`SELECT count(*) > 0 AS present, COALESCE(bool_or(tgenabled IN ('O', 'A')), false) AS enabled, COALESCE(bool_or(tgenabled = 'A'), false) AS always
               FROM pg_trigger WHERE tgrelid = to_regclass(${qualifiedName(source)}) AND tgname = ${captureObjectName(migrationId, role)}`;
}

/**
 * Makes the trigger fire in sessions with `session_replication_role = replica` too (a restore,
 * a bulk loader, a subscription's apply worker), which skip ordinary triggers: their writes and
 * TRUNCATEs would otherwise never reach the log, and the target would silently keep old rows.
 */
export function fireAlwaysSql(migrationId: string, source: TableName, role: 'capture' | 'truncate' = 'capture'): string {
  return sql`ALTER TABLE ${tableName(source)} ENABLE ALWAYS TRIGGER ${ident(captureObjectName(migrationId, role))}`.text;
}

/** AFTER ... FOR EACH ROW: it runs once the row is written, in the writer's transaction. */
export function createTriggerSql(migrationId: string, source: TableName): string {
  return sql`CREATE TRIGGER ${ident(captureObjectName(migrationId))} AFTER INSERT OR UPDATE OR DELETE ON ${tableName(source)} FOR EACH ROW EXECUTE FUNCTION ${captureFunctionName(migrationId)}()`
    .text;
}

/** BEFORE TRUNCATE ... FOR EACH STATEMENT, through the same function, which refuses it. */
export function createTruncateGuardSql(migrationId: string, source: TableName): string {
  return sql`CREATE TRIGGER ${ident(truncateGuardName(migrationId))} BEFORE TRUNCATE ON ${tableName(source)} FOR EACH STATEMENT EXECUTE FUNCTION ${captureFunctionName(migrationId)}()`
    .text;
}

export function dropTriggerSql(migrationId: string, source: TableName, role: 'capture' | 'truncate' = 'capture'): string {
  return sql`DROP TRIGGER IF EXISTS ${ident(captureObjectName(migrationId, role))} ON ${tableName(source)}`.text;
}

/**
 * CASCADE: the migration's triggers go with their function wherever they are, also on a table
 * renamed aside (and replaced) since they were made, which the drops by the plan's name miss.
 */
export function dropCaptureFunctionSql(migrationId: string): string {
  return sql`DROP FUNCTION IF EXISTS ${captureFunctionName(migrationId)}() CASCADE`.text;
}

/** Whether a table (or the change log) exists, by its qualified name as text. */
export function relationExistsSql(qualified: string): Sql {
  return sql`SELECT to_regclass(${qualified}) IS NOT NULL AS present`;
}

/** The current snapshot as text: what a transaction starting now would see. */
export const CURRENT_SNAPSHOT_SQL = sql`SELECT pg_current_snapshot()::text AS snapshot`;

/** Every key the log holds for the migration, once each, in text order. */
export function loggedKeysSql(migrationId: string): Sql {
  return sql`SELECT DISTINCT key FROM ${LOG} WHERE migration_id = ${migrationId} ORDER BY 1`;
}

/** Removes every entry of the migration from the log. */
export function removeLoggedKeysSql(migrationId: string): Sql {
  return sql`DELETE FROM ${LOG} WHERE migration_id = ${migrationId}`;
}

/** The key column's type as SQL, so keys logged as text compare in the key's own order. */
export function keyTypeSql(source: TableName, key: string): Sql {
  return sql`SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = to_regclass(${qualifiedName(source)}) AND attname = ${key} AND NOT attisdropped`;
}

/**
 * The key column's type as keyTypeSql read it from the catalog (format_type quotes what needs
 * it): Postgres's text, not a plan's, so it enters the statement as SQL.
 */
function keyTypeName(keyType: string): Sql {
  return ferrySql(keyType);
}

/**
 * Entries not visible in `snapshot` (all of them when it is null): committed after it, or in
 * progress when it was taken. The snapshot is bound once per use, as the same value each time.
 */
function notVisibleIn(snapshot: string | null): Sql {
  return sql`(${snapshot}::pg_snapshot IS NULL OR (l.xid >= pg_snapshot_xmin(${snapshot}::pg_snapshot) AND NOT pg_visible_in_snapshot(l.xid, ${snapshot}::pg_snapshot)))`;
}

/** Entries visible in `snapshot`: committed before it was taken. */
function visibleIn(snapshot: string): Sql {
  return sql`l.xid < pg_snapshot_xmax(${snapshot}::pg_snapshot) AND pg_visible_in_snapshot(l.xid, ${snapshot}::pg_snapshot)`;
}

/**
 * The keys of a chunk's range changed by transactions its read could not see (not visible in
 * `snapshot`, taken before the read), in key order: they are applied again after the chunk is
 * written, so a change wins over the chunk's older row.
 */
export function changedKeysInRangeSql(migrationId: string, keyType: string, snapshot: string, range: KeyRange): Sql {
  const type = keyTypeName(keyType);
  const parts = [sql`l.migration_id = ${migrationId}`, notVisibleIn(snapshot)];
  if (range.after !== null) parts.push(sql`l.key::${type} > (${range.after}::text)::${type}`);
  if (range.upTo !== null) parts.push(sql`l.key::${type} <= (${range.upTo}::text)::${type}`);
  return sql`SELECT l.key FROM ${LOG} AS l WHERE ${join(parts, sql` AND `)} GROUP BY l.key ORDER BY l.key::${type}`;
}

/**
 * A page of the keys a round of the applier applies: changed by transactions visible in
 * `round` and not in `appliedThrough`, in key order after `afterKey`.
 */
export function roundKeysSql(
  migrationId: string,
  keyType: string,
  cursor: { appliedThrough: string | null; round: string; afterKey: string | null },
  limit: number,
): Sql {
  const type = keyTypeName(keyType);
  const { appliedThrough, round, afterKey } = cursor;
  return sql`SELECT l.key FROM ${LOG} AS l WHERE l.migration_id = ${migrationId} AND ${notVisibleIn(appliedThrough)} AND ${visibleIn(round)} AND (${afterKey}::text IS NULL OR l.key::${type} > (${afterKey}::text)::${type}) GROUP BY l.key ORDER BY l.key::${type} LIMIT ${limit}`;
}

/** Entries committed and not yet applied (not visible in `appliedThrough`), and the age of the oldest. */
export function lagSql(migrationId: string, appliedThrough: string | null): Sql {
  return sql`SELECT count(*)::float8 AS waiting, COALESCE(EXTRACT(epoch FROM clock_timestamp() - min(l.logged_at)), 0)::float8 AS oldest FROM ${LOG} AS l WHERE l.migration_id = ${migrationId} AND ${notVisibleIn(appliedThrough)}`;
}

/** The migration's last entry in the log so far (text of its seq; null for none). */
export function lastLogSeqSql(migrationId: string): Sql {
  return sql`SELECT max(l.seq)::text AS last FROM ${LOG} AS l WHERE l.migration_id = ${migrationId}`;
}

/** How many of the migration's entries came after `afterSeq`, and the last of them. */
export function logArrivalsSql(migrationId: string, afterSeq: string): Sql {
  return sql`SELECT count(*)::float8 AS arrived, max(l.seq)::text AS last FROM ${LOG} AS l WHERE l.migration_id = ${migrationId} AND l.seq > ${afterSeq}::bigint`;
}

/**
 * Which of `keys` have changes in the log visible in `snapshot` (committed before it was taken):
 * after the backfill the applier prunes what it applied, so these are changes not yet applied.
 */
export function keysWithChangesSql(migrationId: string, keys: string[], snapshot: string): Sql {
  return sql`SELECT DISTINCT l.key FROM ${LOG} AS l WHERE l.migration_id = ${migrationId} AND l.key = ANY(${keys}::text[]) AND ${visibleIn(snapshot)}`;
}

/**
 * Removes the entries the applier has applied (visible in `appliedThrough`). Only once no chunk
 * of the backfill can still be in flight: a chunk looks for entries its read could not see.
 */
export function pruneAppliedSql(migrationId: string, appliedThrough: string): Sql {
  return sql`DELETE FROM ${LOG} AS l WHERE l.migration_id = ${migrationId} AND ${visibleIn(appliedThrough)}`;
}
