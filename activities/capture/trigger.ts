/**
 * Capture trigger installs and removes a migration's trigger on the source table (with a guard
 * that refuses a TRUNCATE, which no row trigger sees), and the change log it writes to in
 * Ferry's schema on the source database. Both are safe to run twice.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { inTransactionWithLockTimeout } from '../transaction';
import { displayName, qualifiedName, sql } from '../sql';
import { CAPTURE_LOCK_CLASS } from './apply-keys';
import {
  captureObjectName,
  CHANGE_LOG,
  CHANGE_LOG_SQL,
  createCaptureFunctionSql,
  createTriggerSql,
  createTruncateGuardSql,
  dropCaptureFunctionSql,
  dropTriggerSql,
  fireAlwaysSql,
  relationExistsSql,
  removeLoggedKeysSql,
  triggerExistsSql,
} from './statements';

/**
 * Creating or dropping a trigger takes a lock that waits for the table's writers and holds new
 * ones behind it: give up soon and let the activity's retry try again, rather than stall them.
 */
const TRIGGER_LOCK_TIMEOUT = '2s';
const INSUFFICIENT_PRIVILEGE = '42501';

export interface CaptureInput {
  migrationId: string;
  plan: Plan;
}

/**
 * Creates the change log on the source when missing. Safe to run twice, and beside another:
 * installs take turns under a lock, since CREATE ... IF NOT EXISTS is not safe beside itself (two
 * at once failed on a deadlock, or on the relation the other had just made).
 */
export async function installChangeLog(pool: pg.Pool): Promise<void> {
  const present = await pool.query<{ present: boolean }>(relationExistsSql(CHANGE_LOG));
  if (present.rows[0]?.present) return;
  await inTransactionWithLockTimeout(pool, TRIGGER_LOCK_TIMEOUT, async (client) => {
    await client.query(sql`SELECT pg_advisory_xact_lock(${CAPTURE_LOCK_CLASS}, hashtext(${CHANGE_LOG}))`);
    await client.query(CHANGE_LOG_SQL);
  });
}

/** Creates the change log, then the function and the trigger in one transaction; nothing when they exist. */
async function install(pool: pg.Pool, migrationId: string, plan: Plan): Promise<{ installed: boolean }> {
  await installChangeLog(pool);
  return inTransactionWithLockTimeout(pool, TRIGGER_LOCK_TIMEOUT, async (client) => {
    const table = await client.query<{ present: boolean }>(relationExistsSql(qualifiedName(plan.source)));
    if (!table.rows[0]?.present) {
      throw ApplicationFailure.nonRetryable(`the source table ${displayName(plan.source)} does not exist; capture needs it`, 'CaptureSourceMissing');
    }
    const state = async (role: 'capture' | 'truncate') =>
      (await client.query<{ present: boolean; always: boolean }>(triggerExistsSql(migrationId, plan.source, role))).rows[0]!;
    const capturing = await state('capture');
    const guarded = await state('truncate');
    if (capturing.always && guarded.always) return { installed: false };
    // A capture installed by an older worker has no TRUNCATE guard, or one that a replica-role session skips: both are mended.
    await client.query(createCaptureFunctionSql(migrationId, plan.source.key));
    if (!capturing.present) await client.query(createTriggerSql(migrationId, plan.source));
    if (!guarded.present) await client.query(createTruncateGuardSql(migrationId, plan.source));
    await client.query(fireAlwaysSql(migrationId, plan.source, 'capture'));
    await client.query(fireAlwaysSql(migrationId, plan.source, 'truncate'));
    return { installed: !capturing.present };
  });
}

/**
 * The TRUNCATE guard alone, for logical capture: a TRUNCATE sends no row's key through the
 * publication either. Safe to run twice.
 */
export async function installTruncateGuard(pool: pg.Pool, migrationId: string, plan: Plan): Promise<void> {
  await inTransactionWithLockTimeout(pool, TRIGGER_LOCK_TIMEOUT, async (client) => {
    const guard = (await client.query<{ present: boolean; always: boolean }>(triggerExistsSql(migrationId, plan.source, 'truncate'))).rows[0]!;
    if (guard.always) return;
    await client.query(createCaptureFunctionSql(migrationId, plan.source.key));
    if (!guard.present) await client.query(createTruncateGuardSql(migrationId, plan.source));
    await client.query(fireAlwaysSql(migrationId, plan.source, 'truncate'));
  });
}

/** Removes the TRUNCATE guard and its function. Safe to run twice, and when the table is gone. */
export async function removeTruncateGuard(pool: pg.Pool, migrationId: string, plan: Plan): Promise<void> {
  await inTransactionWithLockTimeout(pool, TRIGGER_LOCK_TIMEOUT, async (client) => {
    if ((await client.query<{ present: boolean }>(triggerExistsSql(migrationId, plan.source, 'truncate'))).rows[0]?.present) {
      await client.query(dropTriggerSql(migrationId, plan.source, 'truncate'));
    }
    await client.query(dropCaptureFunctionSql(migrationId));
  });
}

/** What an install answers: whether it created the capture, and the name of the function its triggers run (for a removal by hand). */
export interface CaptureInstalled {
  installed: boolean;
  functionName: string;
}

export function createCaptureTrigger(databases: Databases) {
  return {
    /**
     * Installs the change log and the migration's trigger on the source table, in one
     * transaction: from its commit on, every write to the table logs its keys. Safe to run twice.
     */
    async installCapture({ migrationId, plan }: CaptureInput): Promise<CaptureInstalled> {
      const pool = databases.pool(plan.source.connection);
      try {
        return { ...(await install(pool, migrationId, plan)), functionName: captureObjectName(migrationId) };
      } catch (error) {
        if ((error as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw error;
        // Waiting cannot fix a missing grant: say what to grant, and stop.
        throw ApplicationFailure.nonRetryable(
          `the source role may not install capture on ${displayName(plan.source)}: ${(error as Error).message}; ` +
            'it needs to own the table (or belong to its owner role: dropping a trigger takes the owner) and CREATE on the database ' +
            '(for the ferry schema); `ferry doctor` prints the GRANTs',
          'CaptureNotAllowed',
        );
      }
    },
    /**
     * Removes the migration's trigger, its function and its entries in the change log. The log
     * table itself stays for other migrations. Safe to run twice, and when the table is gone.
     */
    async removeCapture({ migrationId, plan }: CaptureInput): Promise<{ removedEntries: number }> {
      const pool = databases.pool(plan.source.connection);
      return inTransactionWithLockTimeout(pool, TRIGGER_LOCK_TIMEOUT, async (client) => {
        // DROP TRIGGER IF EXISTS still needs the table: asked first, so a table gone is no error.
        for (const role of ['capture', 'truncate'] as const) {
          if ((await client.query<{ present: boolean }>(triggerExistsSql(migrationId, plan.source, role))).rows[0]?.present) {
            await client.query(dropTriggerSql(migrationId, plan.source, role));
          }
        }
        await client.query(dropCaptureFunctionSql(migrationId));
        const log = await client.query<{ present: boolean }>(relationExistsSql(CHANGE_LOG));
        if (!log.rows[0]?.present) return { removedEntries: 0 };
        const removed = await client.query(removeLoggedKeysSql(migrationId));
        return { removedEntries: removed.rowCount ?? 0 };
      });
    },
  };
}
