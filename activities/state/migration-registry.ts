/**
 * The registry of migrations per target table, in Ferry's schema: it refuses a second migration
 * on a table while one runs, and a re-run over a finished one unless asked for. A claim that takes
 * a table over from an ended run forgets that run's tombstones.
 */
import { ApplicationFailure, getClient } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Plan } from '../../lib/plan';
import { shardWorkflowIdPrefix, tableKey } from '../../lib/ids';
import type { Databases } from '../connections';
import { inTransaction } from '../transaction';
import { sql } from '../sql';
import { COPY_LOCK_CLASS, installFerrySchema } from './ferry-schema';
import { clearTombstonesSql, copyLockSql } from '../copy/copy-statements';
import { forgetApplyTurnSql } from '../verify/capture-settle';
import { forgetRepairCountsSql } from '../verify/repair-ledger';

function targetName(plan: Plan): string {
  return tableKey(plan.target);
}

/** Whether a migration workflow is still running; a registry row can outlive a terminated one. */
async function stillRunning(migrationId: string): Promise<boolean> {
  try {
    return (await getClient().workflow.getHandle(migrationId).describe()).status.name === 'RUNNING';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

export function createMigrationRegistry(databases: Databases) {
  return {
    /**
     * Takes the target table for this migration, or refuses with the reason (non-retryable). With
     * `prepare`, first brings Ferry's schema (the registry's home) up to date, as prepareTarget
     * does: one call instead of two before the copy starts. Safe to run twice.
     */
    async claimTarget({ plan, migrationId, rerun, prepare }: { plan: Plan; migrationId: string; rerun: boolean; prepare?: boolean }): Promise<void> {
      const target = targetName(plan);
      const pool = databases.pool(plan.target.connection);
      if (prepare) await installFerrySchema(pool);
      await inTransaction(pool, async (client) => {
        // The audit opens after the claim, so no row of this run is there yet (a retried claim
        // included): a row means an earlier run used this id, and two runs' records would mix.
        const used = await client.query(sql`SELECT 1 FROM ferry.audit WHERE migration_id = ${migrationId} LIMIT 1`);
        if (used.rows.length > 0) {
          throw ApplicationFailure.nonRetryable(
            `migration id ${migrationId} was used by an earlier run (its record is in ferry.audit on the target); start with another id`,
            'MigrationIdUsed',
          );
        }
        // Insert first: a claim of a target no one holds waits here for a concurrent one to
        // commit and then finds its row, where a row read FOR UPDATE would lock nothing.
        const taken = await client.query(
          sql`INSERT INTO ferry.migrations (target_table, migration_id, plan_name, state) VALUES (${target}, ${migrationId}, ${plan.name}, 'running')
              ON CONFLICT (target_table) DO NOTHING`,
        );
        if (taken.rowCount === 1) return;
        const held = await client.query<{ migration_id: string; state: string }>(
          sql`SELECT migration_id, state FROM ferry.migrations WHERE target_table = ${target} FOR UPDATE`,
        );
        const holder = held.rows[0]!;
        // Held by this id and running: a retry of this run's own claim (a run continued as new
        // does not claim again), or an earlier run of the id that never released it.
        if (holder.state === 'running' && holder.migration_id !== migrationId && (await stillRunning(holder.migration_id))) {
          throw ApplicationFailure.nonRetryable(
            `target ${target} is being migrated by ${holder.migration_id}; wait for it to end or abort it (ferry abort)`,
            'TargetBusy',
          );
        }
        // A finished migration refuses every new claim without --rerun, by its own id too.
        if (holder.state === 'completed' && !rerun) {
          throw ApplicationFailure.nonRetryable(
            `target ${target} already holds a finished migration (${holder.migration_id}); start with --rerun to migrate into it again`,
            'TargetFinished',
          );
        }
        // Taken over from a run that ended (not a retry of this run's own claim): that run's
        // tombstones guarded its copies against deletes made while they ran, and kept they would
        // stop this run's backfill and repair from copying a key the source holds again.
        if (holder.state !== 'running' || holder.migration_id !== migrationId) {
          await client.query(copyLockSql(plan.target, COPY_LOCK_CLASS, 'exclusive'));
          await client.query(clearTombstonesSql(plan.target));
        }
        await client.query(
          sql`UPDATE ferry.migrations
                 SET migration_id = ${migrationId}, plan_name = ${plan.name}, state = 'running', started_at = now(), finished_at = NULL
               WHERE target_table = ${target}`,
        );
      });
    },

    /** Records how the migration ended; only the holder can release the table. */
    async releaseTarget({ plan, migrationId, state }: { plan: Plan; migrationId: string; state: 'completed' | 'aborted' | 'failed' }): Promise<void> {
      const pool = databases.pool(plan.target.connection);
      // The copy and repair ledgers came with schema migrations 002 and 003: a migration started
      // under an older worker may end under this one with no copy or repair call in between.
      await installFerrySchema(pool);
      const shards = shardWorkflowIdPrefix(migrationId);
      await inTransaction(pool, async (client) => {
        await client.query(sql`UPDATE ferry.migrations SET state = ${state}, finished_at = now() WHERE target_table = ${targetName(plan)} AND migration_id = ${migrationId}`);
        // The shards' copy counts and the passes' repair counts serve retried calls only, and the
        // change apply's turn serves verification's looks: none runs past the end.
        await client.query(sql`DELETE FROM ferry.copy_ledger WHERE left(shard_workflow_id, ${shards.length}) = ${shards}`);
        await client.query(forgetRepairCountsSql(migrationId));
        await client.query(forgetApplyTurnSql(migrationId));
      });
    },
  };
}
