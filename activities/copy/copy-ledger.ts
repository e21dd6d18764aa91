/**
 * The copy ledger (ferry.copy_ledger): the rows a shard's current copy call has written, added in
 * each batch's own transaction. Heartbeats reach the server only every few seconds, so an attempt
 * retried after its worker died resumes from a checkpoint behind what the lost attempt wrote: it
 * copies those batches again and finds their rows present. The ledger gives it the lost
 * attempt's count, so that the call reports the rows Ferry wrote as written, not as found.
 */
import type pg from 'pg';
import { sql, type Sql } from '../sql';

/** Whose count a batch adds to: a shard, and the one scheduled copy call of it (every attempt of that call). */
export interface CopyLedger {
  shard: string;
  call: string;
}

/** The ledger of the running copy call, from its activity info; none outside a workflow. */
export function ledgerOfCall(info: { activityId: string; workflowExecution?: { workflowId: string; runId: string } }): CopyLedger | undefined {
  const execution = info.workflowExecution;
  return execution ? { shard: execution.workflowId, call: `${execution.runId}/${info.activityId}` } : undefined;
}

/** Adds a batch's written rows to its call's count, starting the count anew for a new call. */
export function ledgerEntrySql(ledger: CopyLedger, written: number): Sql {
  return sql`INSERT INTO ferry.copy_ledger AS l (shard_workflow_id, copy_call, rows_written) VALUES (${ledger.shard}, ${ledger.call}, ${written})
    ON CONFLICT (shard_workflow_id) DO UPDATE
      SET copy_call = EXCLUDED.copy_call, updated_at = now(),
          rows_written = CASE WHEN l.copy_call = EXCLUDED.copy_call THEN l.rows_written + EXCLUDED.rows_written ELSE EXCLUDED.rows_written END`;
}

/** The rows the call's earlier attempts committed, or null when none of them wrote a batch. */
export async function ledgerWritten(pool: pg.Pool, ledger: CopyLedger): Promise<number | null> {
  const { rows } = await pool.query<{ rows_written: string }>(
    sql`SELECT rows_written FROM ferry.copy_ledger WHERE shard_workflow_id = ${ledger.shard} AND copy_call = ${ledger.call}`,
  );
  return rows[0] ? Number(rows[0].rows_written) : null;
}
