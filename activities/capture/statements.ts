/**
 * The SQL of trigger capture on the source database: the change log, a migration's trigger,
 * and the reads of the log by snapshot. Pure string building; identifiers quoted here.
 */
import { createHash } from 'node:crypto';
import type { KeyRange } from '../../lib/key-range';
import { qualifiedName, quoteIdent, quoteLiteral, type TableName } from '../sql';

export const CHANGE_LOG = 'ferry.change_log';

/**
 * One row per changed key per writing statement, written by the trigger in the writer's own
 * transaction with its transaction id. Shared by every migration capturing on this database.
 * Safe to run twice.
 */
export const CHANGE_LOG_SQL = `
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
export function captureObjectName(migrationId: string): string {
  const readable = migrationId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30)
    .replace(/^_+|_+$/g, '');
  const digest = createHash('sha256').update(migrationId).digest('hex').slice(0, 12);
  return `ferry_capture_${readable ? `${readable}_` : ''}${digest}`;
}

export function captureFunctionName(migrationId: string): string {
  return `ferry.${quoteIdent(captureObjectName(migrationId))}`;
}

/**
 * The trigger function: logs the key an insert or delete touches, and for an update the old key
 * and, when the key changed, the new one too. SECURITY DEFINER, so writers need no grant on the
 * log; the settings make a key's text the same whatever the writer's session uses.
 */
export function createCaptureFunctionSql(migrationId: string, key: string): string {
  const id = quoteLiteral(migrationId);
  const column = quoteIdent(key);
  return `CREATE OR REPLACE FUNCTION ${captureFunctionName(migrationId)}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres' SET extra_float_digits = 3
    AS $ferry$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        INSERT INTO ferry.change_log (migration_id, key) VALUES (${id}, (OLD.${column})::text);
      END IF;
      IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.${column} IS DISTINCT FROM OLD.${column}) THEN
        INSERT INTO ferry.change_log (migration_id, key) VALUES (${id}, (NEW.${column})::text);
      END IF;
      RETURN NULL;
    END
    $ferry$`;
}

export function triggerExistsSql(migrationId: string, source: TableName): { text: string; values: unknown[] } {
  return {
    text: `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2) AS present`,
    values: [qualifiedName(source), captureObjectName(migrationId)],
  };
}

/** AFTER ... FOR EACH ROW: it runs once the row is written, in the writer's transaction. */
export function createTriggerSql(migrationId: string, source: TableName): string {
  return (
    `CREATE TRIGGER ${quoteIdent(captureObjectName(migrationId))} AFTER INSERT OR UPDATE OR DELETE ON ${qualifiedName(source)} ` +
    `FOR EACH ROW EXECUTE FUNCTION ${captureFunctionName(migrationId)}()`
  );
}

export function dropTriggerSql(migrationId: string, source: TableName): string {
  return `DROP TRIGGER IF EXISTS ${quoteIdent(captureObjectName(migrationId))} ON ${qualifiedName(source)}`;
}

export function dropCaptureFunctionSql(migrationId: string): string {
  return `DROP FUNCTION IF EXISTS ${captureFunctionName(migrationId)}()`;
}

/** The key column's type as SQL, so keys logged as text compare in the key's own order. */
export function keyTypeSql(source: TableName, key: string): { text: string; values: unknown[] } {
  return {
    text: `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped`,
    values: [qualifiedName(source), key],
  };
}

/** Entries not visible in `snapshot` (all of them when it is null): committed after it, or in progress when it was taken. */
function notVisibleIn(snapshotParam: string): string {
  return `(${snapshotParam}::pg_snapshot IS NULL OR (l.xid >= pg_snapshot_xmin(${snapshotParam}::pg_snapshot) AND NOT pg_visible_in_snapshot(l.xid, ${snapshotParam}::pg_snapshot)))`;
}

/**
 * The keys of a chunk's range changed by transactions its read could not see (not visible in
 * `snapshot`, taken before the read), in key order: they are applied again after the chunk is
 * written, so a change wins over the chunk's older row.
 */
export function changedKeysInRangeSql(migrationId: string, keyType: string, snapshot: string, range: KeyRange): { text: string; values: unknown[] } {
  const values: unknown[] = [migrationId, snapshot];
  const parts = [`l.migration_id = $1`, notVisibleIn('$2')];
  if (range.after !== null) parts.push(`l.key::${keyType} > ($${values.push(range.after)}::text)::${keyType}`);
  if (range.upTo !== null) parts.push(`l.key::${keyType} <= ($${values.push(range.upTo)}::text)::${keyType}`);
  return { text: `SELECT l.key FROM ${CHANGE_LOG} AS l WHERE ${parts.join(' AND ')} GROUP BY l.key ORDER BY l.key::${keyType}`, values };
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
): { text: string; values: unknown[] } {
  return {
    text:
      `SELECT l.key FROM ${CHANGE_LOG} AS l WHERE l.migration_id = $1 AND ${notVisibleIn('$2')} ` +
      `AND l.xid < pg_snapshot_xmax($3::pg_snapshot) AND pg_visible_in_snapshot(l.xid, $3::pg_snapshot) ` +
      `AND ($4::text IS NULL OR l.key::${keyType} > ($4::text)::${keyType}) GROUP BY l.key ORDER BY l.key::${keyType} LIMIT $5`,
    values: [migrationId, cursor.appliedThrough, cursor.round, cursor.afterKey, limit],
  };
}

/** Entries committed and not yet applied (not visible in `appliedThrough`), and the age of the oldest. */
export function lagSql(migrationId: string, appliedThrough: string | null): { text: string; values: unknown[] } {
  return {
    text:
      `SELECT count(*)::float8 AS waiting, COALESCE(EXTRACT(epoch FROM clock_timestamp() - min(l.logged_at)), 0)::float8 AS oldest ` +
      `FROM ${CHANGE_LOG} AS l WHERE l.migration_id = $1 AND ${notVisibleIn('$2')}`,
    values: [migrationId, appliedThrough],
  };
}

/**
 * Removes the entries the applier has applied (visible in `appliedThrough`). Only once no chunk
 * of the backfill can still be in flight: a chunk looks for entries its read could not see.
 */
export function pruneAppliedSql(migrationId: string, appliedThrough: string): { text: string; values: unknown[] } {
  return {
    text:
      `DELETE FROM ${CHANGE_LOG} AS l WHERE l.migration_id = $1 AND l.xid < pg_snapshot_xmax($2::pg_snapshot) ` +
      `AND pg_visible_in_snapshot(l.xid, $2::pg_snapshot)`,
    values: [migrationId, appliedThrough],
  };
}
