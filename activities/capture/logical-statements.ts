/**
 * The SQL of logical capture on the source database: what the checks read, the publication and
 * the replication slot a migration owns, the keys the reader logs, and the slot's position.
 */
import { CHANGE_LOG } from './statements';
import { ferrySql, ident, qualifiedName, sql, tableName, type Sql, type TableName } from '../sql';

/** What the checks before logical capture need to know of the source, in one row. */
export function logicalCaptureSettingsSql(name: string, source: TableName): Sql {
  const regclass = sql`to_regclass(${qualifiedName(source)})`;
  return sql`SELECT current_setting('wal_level') AS wal_level,
      current_setting('max_replication_slots')::int AS max_slots,
      (SELECT count(*)::int FROM pg_replication_slots) AS slots_used,
      EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${name}) AS slot_exists,
      EXISTS (SELECT 1 FROM pg_publication WHERE pubname = ${name}) AS publication_exists,
      coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS may_replicate,
      current_user AS role,
      ${regclass} IS NOT NULL AS table_exists,
      (SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = ${regclass}) AS owns_table,
      (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = ${regclass}) AS owner,
      has_database_privilege(current_database(), 'CREATE') AS may_create,
      (SELECT relreplident::text FROM pg_class WHERE oid = ${regclass}) AS replica_identity,
      coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
         FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
        WHERE c.oid = ${regclass} AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}') AS identity_columns`;
}

/** Inserts, updates and deletes only: a TRUNCATE is not captured, as no row trigger sees one either. */
export function createPublicationSql(name: string, source: TableName): Sql {
  return sql`CREATE PUBLICATION ${ident(name)} FOR TABLE ${tableName(source)} WITH (publish = 'insert, update, delete')`;
}

/** Whether the publication still holds the table now known by the source's name (not renamed and replaced, not dropped from it). */
export function publishesTableSql(name: string, source: TableName): Sql {
  return sql`SELECT EXISTS (SELECT 1 FROM pg_publication_rel AS r JOIN pg_publication AS p ON p.oid = r.prpubid
                              WHERE p.pubname = ${name} AND r.prrelid = to_regclass(${qualifiedName(source)})) AS published`;
}

export function dropPublicationSql(name: string): Sql {
  return sql`DROP PUBLICATION IF EXISTS ${ident(name)}`;
}

export function createSlotSql(name: string): Sql {
  return sql`SELECT pg_create_logical_replication_slot(${name}, 'pgoutput') IS NOT NULL AS created`;
}

export function slotExistsSql(name: string): Sql {
  return sql`SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${name}) AS present`;
}

/** Ends the session reading the slot (a reader whose worker died, or one an abort must stop). */
export function terminateSlotReaderSql(name: string): Sql {
  return sql`SELECT pg_terminate_backend(active_pid) AS ended FROM pg_replication_slots
    WHERE slot_name = ${name} AND active_pid IS NOT NULL AND active_pid <> pg_backend_pid()`;
}

/** The slot's state; no row when it does not exist. */
export function slotStateSql(name: string): Sql {
  return sql`SELECT active, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = ${name}`;
}

export function slotActiveSql(name: string): Sql {
  return sql`SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = ${name}), false) AS active`;
}

export function dropSlotSql(name: string): Sql {
  return sql`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${name}`;
}

export const changeLogExistsSql: Sql = sql`SELECT to_regclass(${CHANGE_LOG}) IS NOT NULL AS present`;

export function removeLogEntriesSql(migrationId: string): Sql {
  return sql`DELETE FROM ${ferrySql(CHANGE_LOG)} WHERE migration_id = ${migrationId}`;
}

/**
 * First key of the advisory lock between the reader's writes to the change log and the removal's
 * delete of the migration's entries. The reader holds it shared and logs only while the slot
 * exists; the removal takes it alone after dropping the slot, so a write begun before the drop
 * commits before the delete, and one begun after it logs nothing.
 */
export const LOG_LOCK_CLASS = 0x4645524c; // "FERL"

export function logWriteLockSql(migrationId: string): Sql {
  return sql`SELECT pg_advisory_xact_lock_shared(${LOG_LOCK_CLASS}, hashtext(${migrationId}))`;
}

export function logRemovalLockSql(migrationId: string): Sql {
  return sql`SELECT pg_advisory_xact_lock(${LOG_LOCK_CLASS}, hashtext(${migrationId}))`;
}

/**
 * Logs changed keys with the transaction that changed them. The stream gives a 32-bit xid; the
 * log keeps the full xid8 the trigger records, so the snapshot watermarks read both alike: the
 * epoch is the one that puts the xid at or below the next xid to be assigned (a decoded
 * transaction is committed, so it is older, and by less than 2^31). Nothing is logged once the
 * slot is gone (see LOG_LOCK_CLASS).
 */
export function logKeysSql(migrationId: string, slot: string, keys: string[], xids: number[]): Sql {
  return sql`WITH next AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS x)
    INSERT INTO ${ferrySql(CHANGE_LOG)} (migration_id, key, xid)
    SELECT ${migrationId}, c.key, (next.x - (((next.x & 4294967295) - c.xid) & 4294967295))::text::xid8
    FROM unnest(${keys}::text[], ${xids}::bigint[]) AS c(key, xid), next
    WHERE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = ${slot})`;
}

/**
 * A watermark: the current snapshot, and a WAL position at or after the commit of every
 * transaction visible in it (the snapshot is the statement's, taken before the position is read;
 * the insert position, as an asynchronous commit may not be written yet).
 */
export const snapshotAndPositionSql: Sql = sql`SELECT pg_current_snapshot()::text AS snapshot, pg_current_wal_insert_lsn()::text AS lsn`;

export const walPositionSql: Sql = sql`SELECT pg_current_wal_insert_lsn()::text AS lsn`;

/** Whether the reader has logged every change up to `lsn`, and whether the WAL is flushed that far (only flushed WAL is decoded). */
export function readThroughSql(name: string, lsn: string): Sql {
  return sql`SELECT (SELECT confirmed_flush_lsn >= ${lsn}::pg_lsn FROM pg_replication_slots WHERE slot_name = ${name}) AS read,
    pg_current_wal_flush_lsn() >= ${lsn}::pg_lsn AS flushed,
    (SELECT pg_wal_lsn_diff(${lsn}::pg_lsn, confirmed_flush_lsn)::float8 FROM pg_replication_slots WHERE slot_name = ${name}) AS behind`;
}

/**
 * An xid assigned and committed: its commit record is flushed soon after (by the WAL writer at
 * the latest), and with it every WAL record before, so a quiet server's last records reach the
 * reader too.
 */
/** A WAL record of no consequence, for a transaction that must write one to flush the WAL at its commit. */
export const flushWalSql: Sql = sql`SELECT pg_logical_emit_message(true, 'ferry', '') IS NOT NULL AS written`;

export const nudgeWalFlushSql: Sql = sql`SELECT pg_current_xact_id()::text AS xid`;

/** Bytes of WAL the slot holds back: from the position the reader confirmed to the current one. */
export function walBytesHeldSql(name: string): Sql {
  return sql`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS held FROM pg_replication_slots WHERE slot_name = ${name}`;
}
