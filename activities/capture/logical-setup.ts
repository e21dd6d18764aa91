/**
 * Logical capture's setup on the source: the checks that must pass first (they name each problem
 * and change nothing), the migration's publication and replication slot, and their removal.
 * Every step is safe to run twice.
 */
import { ApplicationFailure, sleep } from '@temporalio/activity';
import type pg from 'pg';
import { describeCaptureProblem, type CaptureProblem, type DoctorCheck } from '../../lib/doctor';
import { logicalCaptureName } from '../../lib/ids';
import type { Databases } from '../connections';
import { displayName, quoteIdent, sql, type TableName } from '../sql';
import { inTransaction } from '../transaction';
import {
  changeLogExistsSql,
  createPublicationSql,
  createSlotSql,
  dropPublicationSql,
  dropSlotSql,
  logicalCaptureSettingsSql,
  logRemovalLockSql,
  removeLogEntriesSql,
  slotActiveSql,
  slotExistsSql,
  terminateSlotReaderSql,
} from './logical-statements';
import { captureObjectName } from './statements';
import { installChangeLog, installTruncateGuard, removeTruncateGuard, type CaptureInput, type CaptureInstalled } from './trigger';

const DUPLICATE_OBJECT = '42710';
/** How long the removal waits for an ended reader's session to let go of the slot. */
const RELEASE_WAIT_MS = 15_000;

/** What the checks read from the source. */
export interface LogicalCaptureSettings {
  walLevel: string;
  maxSlots: number;
  slotsUsed: number;
  /** The migration's slot exists already (a retried setup): it needs no free slot. */
  slotExists: boolean;
  publicationExists: boolean;
  mayReplicate: boolean;
  role: string;
  tableExists: boolean;
  ownsTable: boolean | null;
  owner: string | null;
  mayCreate: boolean;
  /** pg_class.relreplident: d(efault), n(othing), f(ull), i(ndex). */
  replicaIdentity: string | null;
  identityColumns: string[];
}

export type LogicalCaptureProblem = CaptureProblem;

/** One SELECT of settings and catalogs: it writes nothing, and runs inside the inspection's READ ONLY transaction too. */
export async function readLogicalCaptureSettings(db: pg.Pool | pg.ClientBase, name: string, source: TableName): Promise<LogicalCaptureSettings> {
  const r = (await db.query(logicalCaptureSettingsSql(name, source))).rows[0] as Record<string, unknown>;
  return {
    walLevel: String(r.wal_level),
    maxSlots: Number(r.max_slots),
    slotsUsed: Number(r.slots_used),
    slotExists: r.slot_exists === true,
    publicationExists: r.publication_exists === true,
    mayReplicate: r.may_replicate === true,
    role: String(r.role),
    tableExists: r.table_exists === true,
    ownsTable: r.owns_table === null ? null : r.owns_table === true,
    owner: (r.owner as string | null) ?? null,
    mayCreate: r.may_create === true,
    replicaIdentity: (r.replica_identity as string | null) ?? null,
    identityColumns: (r.identity_columns as string[] | null) ?? [],
  };
}

/**
 * Why logical capture of `source` (keyed by `key`) cannot start on this server, one problem each,
 * with what fixes it; empty when it can. Pure, so each refusal is tested from a setting alone.
 */
export function logicalCaptureProblems(s: LogicalCaptureSettings, source: TableName, key: string): LogicalCaptureProblem[] {
  const problems: LogicalCaptureProblem[] = [];
  const table = displayName(source);
  if (s.walLevel !== 'logical') {
    problems.push({
      name: 'wal_level',
      detail: `wal_level is ${s.walLevel} on the source; logical capture needs wal_level = logical`,
      fix: 'ALTER SYSTEM SET wal_level = logical; -- then restart the server',
    });
  }
  if (!s.mayReplicate) {
    problems.push({
      name: 'REPLICATION privilege',
      detail: `the role ${s.role} lacks the REPLICATION attribute, which a replication slot needs`,
      fix: `ALTER ROLE ${quoteIdent(s.role)} REPLICATION;`,
    });
  }
  if (!s.slotExists && s.slotsUsed >= s.maxSlots) {
    problems.push({
      name: 'free replication slot',
      detail: `no free replication slot: ${s.slotsUsed} of max_replication_slots = ${s.maxSlots} are in use`,
      fix: `ALTER SYSTEM SET max_replication_slots = ${s.maxSlots + 1}; -- then restart the server (or drop a slot no one reads)`,
    });
  }
  if (s.tableExists) {
    if (s.replicaIdentity === 'n' || (s.replicaIdentity !== 'f' && !s.identityColumns.includes(key))) {
      const has =
        s.replicaIdentity === 'n'
          ? 'REPLICA IDENTITY NOTHING'
          : s.identityColumns.length === 0
            ? 'no primary key and no replica identity index'
            : `a replica identity of (${s.identityColumns.join(', ')})`;
      problems.push({
        name: 'replica identity',
        detail:
          `${table} has ${has}, which does not cover the key ${key}: the old key of an update or a delete would not be in the WAL` +
          (s.replicaIdentity === 'n' || s.identityColumns.length === 0 ? ', and the table\'s updates and deletes would fail once it is published' : ''),
        fix: `ALTER TABLE ${quoteIdent(source.schema)}.${quoteIdent(source.table)} REPLICA IDENTITY FULL; -- or USING INDEX a unique index on ${quoteIdent(key)}`,
      });
    }
    if (!s.publicationExists && s.ownsTable === false) {
      problems.push({
        name: 'publication',
        detail: `${s.role} may not create a publication for ${table}: that takes the table's owner (${s.owner})`,
        fix: `GRANT ${quoteIdent(s.owner ?? '')} TO ${quoteIdent(s.role)};`,
      });
    }
  }
  if (!s.publicationExists && !s.mayCreate) {
    problems.push({ name: 'CREATE on the database', detail: `${s.role} may not create a publication (it needs CREATE on the database)`, fix: 'GRANT CREATE ON DATABASE <source database> TO <role>;' });
  }
  return problems;
}

/** What `ferry doctor` prints for a plan with `capture: logical`. */
export async function logicalCaptureChecks(pool: pg.Pool, source: TableName, key: string): Promise<DoctorCheck[]> {
  const settings = await readLogicalCaptureSettings(pool, logicalCaptureName('doctor'), source);
  const problems = logicalCaptureProblems(settings, source, key);
  const retention = walRetentionCheck((await pool.query<{ keep: string }>(sql`SELECT current_setting('max_slot_wal_keep_size') AS keep`)).rows[0]?.keep ?? '-1');
  if (problems.length === 0) {
    return [
      {
        side: 'source',
        name: 'logical capture',
        status: 'ok',
        detail: `wal_level = logical, ${settings.role} may replicate, ${settings.maxSlots - settings.slotsUsed} of ${settings.maxSlots} replication slots free, the replica identity covers ${key}`,
      },
      retention,
    ];
  }
  return [...problems.map((p) => ({ side: 'source' as const, name: `logical capture: ${p.name}`, status: 'fail' as const, detail: p.detail, fix: p.fix })), retention];
}

/**
 * A slot keeps the WAL its reader has not confirmed: with no worker reading (all down, or a
 * migration left for days), without a cap it keeps WAL until the source's disk fills.
 */
export function walRetentionCheck(maxSlotWalKeepSize: string): DoctorCheck {
  if (maxSlotWalKeepSize === '-1') {
    return {
      side: 'source',
      name: 'logical capture: WAL kept by the slot',
      status: 'warn',
      detail: 'max_slot_wal_keep_size = -1: while no worker reads the migration\'s slot, it keeps every WAL segment until the disk fills',
      fix: "ALTER SYSTEM SET max_slot_wal_keep_size = '20GB'; SELECT pg_reload_conf();  -- a slot past it is invalidated: the migration fails, the source stays up",
    };
  }
  return { side: 'source', name: 'logical capture: WAL kept by the slot', status: 'ok', detail: `max_slot_wal_keep_size = ${maxSlotWalKeepSize}: a slot never keeps more` };
}

const codeOf = (error: unknown) => (error as { code?: string }).code;

/** Drops the slot, first ending a session still reading it; waits for that session to let go. */
async function dropSlot(pool: pg.Pool, name: string): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (!(await pool.query<{ present: boolean }>(slotExistsSql(name))).rows[0]?.present) return false;
    await pool.query(terminateSlotReaderSql(name));
    if (!(await pool.query<{ active: boolean }>(slotActiveSql(name))).rows[0]?.active) {
      try {
        await pool.query(dropSlotSql(name));
        return true;
      } catch (error) {
        // 55006: taken again by a reader in the meantime; end it once more.
        if (codeOf(error) !== '55006') throw error;
      }
    }
    if (Date.now() - started > RELEASE_WAIT_MS) throw ApplicationFailure.retryable(`the replication slot ${name} is still read by another session; tried again`, 'SlotBusy');
    await sleep(200);
  }
}

export function createLogicalCaptureSetup(databases: Databases) {
  return {
    /**
     * Checks the source, then creates the change log, the TRUNCATE guard, the migration's
     * publication and its logical replication slot (pgoutput). From the slot's creation on, every committed change
     * to the table is kept for the reader. Refused with every problem named and nothing created.
     */
    async installLogicalCapture({ migrationId, plan }: CaptureInput): Promise<CaptureInstalled> {
      const pool = databases.pool(plan.source.connection);
      const name = logicalCaptureName(migrationId);
      const settings = await readLogicalCaptureSettings(pool, name, plan.source);
      if (!settings.tableExists) {
        throw ApplicationFailure.nonRetryable(`the source table ${displayName(plan.source)} does not exist; capture needs it`, 'CaptureSourceMissing');
      }
      const problems = logicalCaptureProblems(settings, plan.source, plan.source.key);
      if (problems.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `logical capture is not possible on the source: ${problems.map(describeCaptureProblem).join('; ')}; nothing was created; \`ferry doctor\` checks this`,
          'LogicalCaptureNotPossible',
        );
      }
      await installChangeLog(pool);
      await installTruncateGuard(pool, migrationId, plan);
      if (settings.slotExists && settings.publicationExists) return { installed: false, functionName: captureObjectName(migrationId) };
      // The publication first: the slot decodes what committed after its creation, and every such change must find the table published.
      if (!settings.publicationExists) {
        await pool.query(createPublicationSql(name, plan.source)).catch((error: unknown) => {
          if (codeOf(error) !== DUPLICATE_OBJECT) throw error;
        });
      }
      try {
        // Outside any transaction: the slot waits for the transactions running now to end, then is consistent.
        await pool.query(createSlotSql(name));
      } catch (error) {
        if (codeOf(error) === DUPLICATE_OBJECT) return { installed: true, functionName: captureObjectName(migrationId) };
        // Slots ran out meanwhile, or the server refuses: leave no publication behind.
        if (codeOf(error) === '53400' || codeOf(error) === '55000' || codeOf(error) === '42501') {
          await pool.query(dropPublicationSql(name));
          await removeTruncateGuard(pool, migrationId, plan);
          throw ApplicationFailure.nonRetryable(`the replication slot could not be created: ${(error as Error).message}; nothing was left behind`, 'LogicalCaptureNotPossible');
        }
        throw error;
      }
      return { installed: true, functionName: captureObjectName(migrationId) };
    },
    /**
     * Drops the migration's slot (ending a reader still on it) and its publication, and its
     * entries in the change log. Safe to run twice, and when nothing was created.
     */
    async removeLogicalCapture({ migrationId, plan }: CaptureInput): Promise<{ slotDropped: boolean; removedEntries: number }> {
      const pool = databases.pool(plan.source.connection);
      const name = logicalCaptureName(migrationId);
      const slotDropped = await dropSlot(pool, name);
      await pool.query(dropPublicationSql(name));
      await removeTruncateGuard(pool, migrationId, plan);
      const log = await pool.query<{ present: boolean }>(changeLogExistsSql);
      // After the slot is gone, and once a reader's write under way has committed (LOG_LOCK_CLASS).
      const removed = log.rows[0]?.present
        ? await inTransaction(pool, async (client) => {
            await client.query(logRemovalLockSql(migrationId));
            return client.query(removeLogEntriesSql(migrationId));
          })
        : null;
      return { slotDropped, removedEntries: removed?.rowCount ?? 0 };
    },
  };
}
