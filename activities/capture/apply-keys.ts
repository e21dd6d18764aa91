/**
 * Key applier makes the target rows of changed keys what the transform makes of the source rows
 * now: each key's source row is read again and written over the target's, through the plan's
 * transform (SQL or module); a key the source no longer holds, or whose row a module transform
 * now skips, is deleted on the target. Safe to run twice: it writes state, never a difference.
 */
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { setTimeout as delay } from 'node:timers/promises';
import { wholeKeySpace } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import { inCopyTransaction, writeBatch } from '../copy/batch-writer';
import { withClient, type Databases } from '../connections';
import { copyOutSql, copySpecOf, copyWithinDatabaseSql, type CopySpec } from '../copy/copy-statements';
import { recordFailures, refusedRow, type FailedRecord } from '../state/ferry-schema';
import { copyRangeThroughModule } from '../transform/module-copy';
import { isRowError } from '../../lib/errors';
import { oneStatement, readOnly, readOnlyQuery } from '../plan-sql';
import { allConditions, deleteTargetKeysSql, loggedKeysPresentSql, sourceKeysCondition } from '../verify/verify-statements';
import { sql } from '../sql';

/** First key of the advisory lock that orders the writes of re-read rows of one migration. */
export const CAPTURE_LOCK_CLASS = 0x46455243; // "FERC"
/** How often a waiter tries the apply lock. */
export const LOCK_POLL_MS = 20;

export interface KeysApplied {
  written: number;
  deleted: number;
  /** Keys the transform or the target refused; recorded in ferry.failed_records. */
  failed: FailedRecord[];
  /** Of `failed`, those that were no unresolved failure before: new to the migration's counts. */
  newlyFailed: FailedRecord[];
}

/**
 * Runs `work` holding the migration's apply lock on the target: a transaction lock, in an open
 * transaction on a connection of its own that ends however `work` ends (a dead worker's lock goes
 * with its connection). A transaction-mode pooler keeps one server connection for an open
 * transaction, so the lock holds through it too. Every write of re-read rows holds it from
 * before its source read until its target commit, so such writes land in the order of their
 * reads: the last one to commit read the latest row. It is only tried, never waited on, so a
 * waiter holds no connection a holder may need.
 */
export async function withApplyLock<T>(targetPool: pg.Pool, migrationId: string, work: () => Promise<T>): Promise<T> {
  for (;;) {
    const outcome = await withClient(targetPool, async (client) => {
      await client.query('BEGIN');
      // The transaction idles while `work` runs on other connections: a server-wide idle timeout must not end it.
      const got = await client.query<{ got: boolean }>(
        sql`SELECT set_config('idle_in_transaction_session_timeout', '0', true) IS NOT NULL AND pg_try_advisory_xact_lock(${CAPTURE_LOCK_CLASS}, hashtext(${migrationId})) AS got`,
      );
      if (!got.rows[0]?.got) {
        await client.query('ROLLBACK');
        return { held: false as const };
      }
      try {
        return { held: true as const, value: await work() };
      } finally {
        // A failed commit fails withClient, which then discards the connection, and the lock with it.
        await client.query('COMMIT');
      }
    });
    if (outcome.held) return outcome.value;
    await delay(LOCK_POLL_MS);
  }
}

/**
 * Deletes the target rows of `keys`; a key whose delete the target refuses (a foreign key of
 * another table still points at its row) stands alone and is returned as failed, so the others
 * are deleted and the refusal is recorded against its own key, not retried for ever.
 */
export async function deleteTargetRows(targetPool: pg.Pool, base: CopySpec, keys: string[]): Promise<{ deleted: number; failed: FailedRecord[] }> {
  if (keys.length === 0) return { deleted: 0, failed: [] };
  try {
    return { deleted: await inCopyTransaction(targetPool, base, async (c) => (await c.query(deleteTargetKeysSql(base.target, keys))).rowCount ?? 0), failed: [] };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!isRowError(code)) throw error;
    if (keys.length === 1) return { deleted: 0, failed: [refusedRow(keys[0]!, error, 'deleting its target row')] };
    const half = Math.ceil(keys.length / 2);
    const [left, right] = [await deleteTargetRows(targetPool, base, keys.slice(0, half)), await deleteTargetRows(targetPool, base, keys.slice(half))];
    return { deleted: left.deleted + right.deleted, failed: [...left.failed, ...right.failed] };
  }
}

export function createKeyApplier(databases: Databases, transformDir: string | null) {
  /**
   * Writes the source rows of `keys` over the target's; a row the target or transform refuses
   * stands alone. `skipped` are the keys (as the source's key text) whose row a module transform skipped.
   */
  async function copyKeys(plan: Plan, base: CopySpec, keys: string[]): Promise<{ written: number; failed: FailedRecord[]; skipped: string[] }> {
    if (keys.length === 0) return { written: 0, failed: [], skipped: [] };
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const spec: CopySpec = { ...base, filter: allConditions(base.filter, sourceKeysCondition(plan.source.key, keys)) };
    try {
      if (plan.transform.module) {
        const outcome = await copyRangeThroughModule(sourcePool, targetPool, spec, wholeKeySpace, plan.transform.module, transformDir);
        return { written: outcome.written, failed: outcome.failed.map((f) => ({ key: f.key, code: null, error: f.error })), skipped: outcome.skipped };
      }
      if (databases.sameDatabase(plan.source.connection, plan.target.connection)) {
        const statement = copyWithinDatabaseSql(spec, wholeKeySpace);
        return { written: await inCopyTransaction(targetPool, spec, async (c) => (await c.query(oneStatement(statement))).rowCount ?? 0), failed: [], skipped: [] };
      }
      const out = copyOutSql(spec, wholeKeySpace);
      return { written: await writeBatch(targetPool, spec, wholeKeySpace, (send) => readOnly(sourcePool, (s) => send(s.query(copyTo(out))))), failed: [], skipped: [] };
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (!isRowError(code)) throw error;
      if (keys.length === 1) return { written: 0, failed: [refusedRow(keys[0]!, error)], skipped: [] };
      const half = Math.ceil(keys.length / 2);
      const left = await copyKeys(plan, base, keys.slice(0, half));
      const right = await copyKeys(plan, base, keys.slice(half));
      return { written: left.written + right.written, failed: [...left.failed, ...right.failed], skipped: [...left.skipped, ...right.skipped] };
    }
  }

  /**
   * Applies `keys` (source keys as writers logged them; `keyType` is the key column's type, as
   * keyTypeSql reads it): under the apply lock, their source rows are read now
   * and written over the target's, and target rows of keys the source no longer holds (or that
   * left the plan's subset, or whose row the module transform now skips) are deleted.
   */
  /** `record` false leaves the failed keys to the caller to record (a backfill chunk records its own). */
  return async function applyKeys(migrationId: string, plan: Plan, keys: string[], keyType: string, record = true): Promise<KeysApplied> {
    if (keys.length === 0) return { written: 0, deleted: 0, failed: [], newlyFailed: [] };
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const base: CopySpec = { ...copySpecOf(plan), conflict: { policy: 'overwrite' } };
    const applied = await withApplyLock(targetPool, migrationId, async (): Promise<Omit<KeysApplied, 'newlyFailed'>> => {
      const present = await readOnlyQuery<{ key: string }>(sourcePool, loggedKeysPresentSql(base.source, base.filter ?? null, keys, keyType));
      const held = new Set(present.rows.map((r) => r.key));
      const gone = keys.filter((k) => !held.has(k));
      const removed = await deleteTargetRows(targetPool, base, gone);
      const copied = await copyKeys(plan, base, keys.filter((k) => held.has(k)));
      // A row the transform now skips leaves no target row: delete the one an earlier read wrote,
      // still under the lock, so a later change of the key is applied after this.
      const skipped = await deleteTargetRows(targetPool, base, copied.skipped);
      return { written: copied.written, deleted: removed.deleted + skipped.deleted, failed: [...removed.failed, ...copied.failed, ...skipped.failed] };
    });
    if (!record) return { ...applied, newlyFailed: applied.failed };
    const fresh = new Set(await recordFailures(targetPool, migrationId, applied.failed));
    return { ...applied, newlyFailed: applied.failed.filter((f) => fresh.has(f.key)) };
  };
}

export type KeyApplier = ReturnType<typeof createKeyApplier>;
