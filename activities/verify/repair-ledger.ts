/**
 * The repair ledger (ferry.repair_ledger): the rows a pass's current repair call has repaired and
 * deleted, added in the transaction that resolves each batch's mismatches. A retried attempt
 * starts over from the mismatches still open, so without it the batches the lost attempt resolved
 * were missing from "repaired". A batch repaired but not yet resolved when the worker died is
 * repaired again by the retry and counted once, by it.
 */
import type pg from 'pg';
import { sql, type Sql } from '../sql';

/** Whose counts a batch adds to: a pass of a migration, and the one scheduled repair call of it (every attempt of that call). */
export interface RepairLedger {
  migrationId: string;
  pass: number;
  call: string;
}

export interface RepairCounts {
  repaired: number;
  deleted: number;
}

/** The ledger of the running repair call, from its activity info; none outside a workflow. */
export function repairLedgerOfCall(
  info: { activityId: string; workflowExecution?: { workflowId: string; runId: string } },
  migrationId: string,
  pass: number,
): RepairLedger | undefined {
  const execution = info.workflowExecution;
  return execution ? { migrationId, pass, call: `${execution.workflowId}/${execution.runId}/${info.activityId}` } : undefined;
}

/** Adds a batch's counts to its call's, starting them anew for a new call. */
export function repairLedgerEntrySql(ledger: RepairLedger, batch: RepairCounts): Sql {
  return sql`INSERT INTO ferry.repair_ledger AS l (migration_id, pass, repair_call, rows_repaired, rows_deleted)
      VALUES (${ledger.migrationId}, ${ledger.pass}, ${ledger.call}, ${batch.repaired}, ${batch.deleted})
    ON CONFLICT (migration_id, pass) DO UPDATE
      SET repair_call = EXCLUDED.repair_call, updated_at = now(),
          rows_repaired = CASE WHEN l.repair_call = EXCLUDED.repair_call THEN l.rows_repaired + EXCLUDED.rows_repaired ELSE EXCLUDED.rows_repaired END,
          rows_deleted = CASE WHEN l.repair_call = EXCLUDED.repair_call THEN l.rows_deleted + EXCLUDED.rows_deleted ELSE EXCLUDED.rows_deleted END`;
}

/** What the call's earlier attempts repaired and resolved; zero when none of them resolved a batch. */
export async function repairLedgerCounts(pool: pg.Pool, ledger: RepairLedger): Promise<RepairCounts> {
  const { rows } = await pool.query<{ repaired: string; deleted: string }>(
    sql`SELECT rows_repaired::text AS repaired, rows_deleted::text AS deleted FROM ferry.repair_ledger
         WHERE migration_id = ${ledger.migrationId} AND pass = ${ledger.pass} AND repair_call = ${ledger.call}`,
  );
  return rows[0] ? { repaired: Number(rows[0].repaired), deleted: Number(rows[0].deleted) } : { repaired: 0, deleted: 0 };
}

/** The migration's counts go once its verification run is recorded, or the migration ends. */
export function forgetRepairCountsSql(migrationId: string): Sql {
  return sql`DELETE FROM ferry.repair_ledger WHERE migration_id = ${migrationId}`;
}
