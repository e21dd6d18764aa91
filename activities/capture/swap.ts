/**
 * Table swap is the cutover of an application that cannot change: in one transaction under a
 * short lock timeout, the last captured changes are applied, the capture trigger goes, the old
 * table is renamed aside and the new one takes its name (and a view of the old shape is made,
 * when the plan asks). All of it commits or none of it does.
 */
import { createHash } from 'node:crypto';
import { activityInfo, ApplicationFailure, heartbeat } from '@temporalio/activity';
import type pg from 'pg';
import { captureOf } from '../../lib/capture';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { inTransactionWithLockTimeout } from '../transaction';
import { copySpecOf, copyWithinDatabaseSql, type CopySpec } from '../copy/copy-statements';
import { displayName, qualifiedName, type TableName } from '../sql';
import { allConditions, deleteTargetKeysSql, loggedKeysPresentSql, sourceKeysCondition } from '../verify/verify-statements';
import { wholeKeySpace } from '../../lib/key-range';
import { CURRENT_SNAPSHOT_SQL, dropCaptureFunctionSql, dropTriggerSql, keyTypeSql, loggedKeysSql, relationExistsSql, removeLoggedKeysSql } from './statements';
import { createOldShapeViewSql, dropTableSql, lockBothTablesSql, moveTableSql, renameTableSql } from './swap-statements';

/**
 * The writers queue behind the swap's lock request: give up soon, so they wait at most this
 * long, and let the activity's retry try again with a backoff.
 */
export const SWAP_LOCK_TIMEOUT = '2s';
const LOCK_NOT_AVAILABLE = '55P03';
/** Keys applied per statement while the lock is held. */
const DRAIN_BATCH = 1000;

export interface SwapInput {
  migrationId: string;
  plan: Plan;
}

export interface SwapResult {
  /** schema.table of the old table kept aside. */
  oldTableAside: string;
  newName: string;
  keysDrained: number;
  /** The tables were found swapped already (a retried attempt whose commit got through). */
  alreadySwapped: boolean;
  /** The attempt that swapped (earlier ones did not get the locks in time). */
  attempts: number;
  /** A snapshot taken under the locks: writers' transactions visible in it wrote the old table, the others the new one. Null when found swapped. */
  snapshot: string | null;
}

/** The name the old table takes aside: from the migration id, so a retry finds it again. */
export function oldTableAsideName(table: string, migrationId: string): string {
  const digest = createHash('sha256').update(migrationId).digest('hex').slice(0, 8);
  // Postgres cuts names at 63 bytes: keep the suffix whole.
  return `${table.slice(0, 63 - '_ferry_old_'.length - digest.length)}_ferry_old_${digest}`;
}

const exists = async (client: pg.PoolClient, table: TableName) =>
  (await client.query<{ present: boolean }>(relationExistsSql(qualifiedName(table)))).rows[0]!.present;

/** Applies every key the change log holds for the migration, on the connection holding the locks. */
async function drain(client: pg.PoolClient, migrationId: string, plan: Plan): Promise<number> {
  const keyType = (await client.query<{ type: string }>(keyTypeSql(plan.source, plan.source.key))).rows[0]?.type;
  if (!keyType) throw ApplicationFailure.nonRetryable(`the source key column ${plan.source.key} was not found`, 'SwapNotPossible');
  const keys = (await client.query<{ key: string }>(loggedKeysSql(migrationId))).rows.map((r) => r.key);
  const base: CopySpec = { ...copySpecOf(plan), conflict: { policy: 'overwrite' } };
  for (let i = 0; i < keys.length; i += DRAIN_BATCH) {
    const batch = keys.slice(i, i + DRAIN_BATCH);
    const present = loggedKeysPresentSql(base.source, base.filter ?? null, batch, keyType);
    const held = new Set((await client.query<{ key: string }>(present)).rows.map((r) => r.key));
    const gone = batch.filter((k) => !held.has(k));
    if (gone.length > 0) await client.query(deleteTargetKeysSql(base.target, gone));
    const written = batch.filter((k) => held.has(k));
    if (written.length > 0) {
      const spec: CopySpec = { ...base, filter: allConditions(base.filter, sourceKeysCondition(plan.source.key, written)) };
      await client.query(copyWithinDatabaseSql(spec, wholeKeySpace));
    }
    heartbeat();
  }
  return keys.length;
}

export function createTableSwap(databases: Databases) {
  return {
    /**
     * Swaps the tables, or finds them swapped. Fails with LockNotAvailable (retryable) when a
     * lock is not had within SWAP_LOCK_TIMEOUT; nothing is changed then.
     */
    async swapTables({ migrationId, plan }: SwapInput): Promise<SwapResult> {
      if (!databases.sameDatabase(plan.source.connection, plan.target.connection)) {
        throw ApplicationFailure.nonRetryable('the swap needs the source and the target in the same database', 'SwapNotPossible');
      }
      const pool = databases.pool(plan.source.connection);
      const aside: TableName = { schema: plan.source.schema, table: oldTableAsideName(plan.source.table, migrationId) };
      const renamed: TableName = { schema: plan.source.schema, table: plan.source.table };
      const result = { oldTableAside: displayName(aside), newName: displayName(renamed), attempts: activityInfo().attempt };
      try {
        return await inTransactionWithLockTimeout(pool, SWAP_LOCK_TIMEOUT, async (client) => {
          if ((await exists(client, aside)) && !(await exists(client, plan.target))) {
            return { ...result, keysDrained: 0, alreadySwapped: true, snapshot: null };
          }
          for (const table of [plan.source, plan.target]) {
            if (!(await exists(client, table))) throw ApplicationFailure.nonRetryable(`${qualifiedName(table)} does not exist; nothing was swapped`, 'SwapNotPossible');
          }
          const view = captureOf(plan).oldShapeView;
          if (view && (await exists(client, { schema: plan.source.schema, table: view.name }))) {
            throw ApplicationFailure.nonRetryable(
              `capture.oldShapeView.name: ${displayName({ schema: plan.source.schema, table: view.name })} exists already; nothing was swapped`,
              'SwapNotPossible',
            );
          }
          // Both locks in the order of every swap; from here no writer changes the source until the commit.
          await client.query(lockBothTablesSql(plan.source, plan.target));
          const snapshot = await client.query<{ snapshot: string }>(CURRENT_SNAPSHOT_SQL);
          const keysDrained = await drain(client, migrationId, plan);
          await client.query(dropTriggerSql(migrationId, plan.source));
          await client.query(dropTriggerSql(migrationId, plan.source, 'truncate'));
          await client.query(dropCaptureFunctionSql(migrationId));
          await client.query(removeLoggedKeysSql(migrationId));
          await client.query(renameTableSql(plan.source, aside.table));
          let target = plan.target;
          if (target.schema !== plan.source.schema) {
            await client.query(moveTableSql(target, plan.source.schema));
            target = { ...target, schema: plan.source.schema };
          }
          await client.query(renameTableSql(target, plan.source.table));
          if (view) await client.query(createOldShapeViewSql(view, renamed));
          return { ...result, keysDrained, alreadySwapped: false, snapshot: snapshot.rows[0]!.snapshot };
        });
      } catch (error) {
        if ((error as { code?: string }).code === LOCK_NOT_AVAILABLE) {
          throw ApplicationFailure.retryable(`the swap's locks were not had within ${SWAP_LOCK_TIMEOUT}; tried again`, 'LockNotAvailable');
        }
        throw error;
      }
    },
    /** Drops the old table kept aside by a swap (capture.dropOldTable, at the cleanup gate). Safe to run twice. */
    async dropOldTable({ migrationId, plan }: SwapInput): Promise<{ dropped: string }> {
      const pool = databases.pool(plan.source.connection);
      const aside: TableName = { schema: plan.source.schema, table: oldTableAsideName(plan.source.table, migrationId) };
      await pool.query(dropTableSql(aside));
      return { dropped: qualifiedName(aside) };
    },
  };
}
