/**
 * The record of verification runs in ferry.verification_runs on the target: each run gets its
 * number and a block of pass numbers for ferry.mismatches when it begins, and its outcome when
 * it ends.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { Plan } from '../../lib/plan';
import { tableKey } from '../../lib/ids';
import type { VerificationKind, VerificationRun } from '../../lib/verification-runs';
import type { Databases } from '../connections';
import { installFerrySchema } from '../state/ferry-schema';
import { inTransaction } from '../transaction';
import { sql } from '../sql';
import { forgetRepairCountsSql } from './repair-ledger';

export interface BeginRunInput {
  plan: Plan;
  migrationId: string;
  /** Unique per run request: a retried activity finds the run it already began. */
  requestId: string;
  kind: VerificationKind;
  by: string | null;
  samplePercent: number | null;
  repair: boolean;
  maxPasses: number;
  /** Pass numbers up to this one are taken (the caller's own count); the run's passes come after. */
  afterPass: number;
}

export interface BegunRun {
  run: number;
  /** The pass number of the run's pass 1 in ferry.mismatches. */
  firstPass: number;
  startedAt: string;
  /**
   * The verdict of the migration's last finished run before this one: whether it was clean;
   * false when there is none. A sampled check can keep it, never make it.
   */
  previousClean: boolean;
}

export interface FinishRunInput {
  plan: Plan;
  migrationId: string;
  outcome: Pick<VerificationRun, 'run' | 'passes' | 'rowsChecked' | 'missing' | 'extra' | 'value' | 'repaired' | 'clean' | 'problem'>;
}

/** The run and pass within it that a pass number of ferry.mismatches belongs to; null for passes no run recorded. */
export async function runOfPass(pool: pg.Pool, migrationId: string, pass: number): Promise<{ run: number; pass: number } | null> {
  const found = await pool
    .query<{ run: number; first_pass: number }>(
      sql`SELECT run, first_pass FROM ferry.verification_runs
           WHERE migration_id = ${migrationId} AND ${pass} BETWEEN first_pass AND first_pass + max_passes - 1 ORDER BY run DESC LIMIT 1`,
    )
    .catch((error: { code?: string }) => {
      // Installed before runs were recorded: no pass belongs to one.
      if (error.code === '42P01') return { rows: [] };
      throw error;
    });
  const row = found.rows[0];
  return row ? { run: row.run, pass: pass - row.first_pass + 1 } : null;
}

/**
 * A check after a migration ended compares and repairs the target as it is now: refused once
 * another migration has taken the target table, whose rows are no longer this migration's.
 */
async function refuseTargetTaken(client: pg.PoolClient, input: BeginRunInput): Promise<void> {
  const target = tableKey(input.plan.target);
  const held = await client.query<{ migration_id: string; state: string }>(sql`SELECT migration_id, state FROM ferry.migrations WHERE target_table = ${target}`);
  const holder = held.rows[0];
  if (holder && holder.migration_id !== input.migrationId) {
    throw ApplicationFailure.nonRetryable(
      `target ${target} now holds migration ${holder.migration_id} (${holder.state}); checking ${input.migrationId} would compare and repair rows that are no longer its own`,
      'TargetTaken',
    );
  }
}

export function createVerificationRecord(databases: Databases) {
  return {
    /**
     * Records that a verification run begins and numbers it. Safe to run twice: the same
     * requestId answers with the run already begun.
     */
    async beginVerificationRun(input: BeginRunInput): Promise<BegunRun> {
      const pool = databases.pool(input.plan.target.connection);
      await installFerrySchema(pool);
      return inTransaction(pool, async (client) => {
        // Runs of one migration are numbered one after the other.
        await client.query(sql`SELECT pg_advisory_xact_lock(hashtext(${`ferry verification ${input.migrationId}`}))`);
        const existing = await client.query<{ run: number; first_pass: number; started_at: Date }>(
          sql`SELECT run, first_pass, started_at FROM ferry.verification_runs WHERE request_id = ${input.requestId}`,
        );
        let row = existing.rows[0];
        if (!row && input.kind === 'after-finish') await refuseTargetTaken(client, input);
        if (!row) {
          const id = input.migrationId;
          const inserted = await client.query<{ run: number; first_pass: number; started_at: Date }>(
            sql`INSERT INTO ferry.verification_runs
                  (migration_id, run, request_id, kind, requested_by, sample_percent, repair, first_pass, max_passes)
                SELECT ${id},
                       coalesce((SELECT max(run) FROM ferry.verification_runs WHERE migration_id = ${id}), 0) + 1,
                       ${input.requestId}, ${input.kind}, ${input.by}, ${input.samplePercent}, ${input.repair},
                       greatest(${input.afterPass}::int,
                                coalesce((SELECT max(pass) FROM ferry.mismatches WHERE migration_id = ${id}), 0),
                                coalesce((SELECT max(first_pass + max_passes - 1) FROM ferry.verification_runs WHERE migration_id = ${id}), 0)) + 1,
                       ${Math.max(1, input.maxPasses)}
                RETURNING run, first_pass, started_at`,
          );
          row = inserted.rows[0]!;
        }
        const previous = await client.query<{ clean: boolean | null }>(
          sql`SELECT clean FROM ferry.verification_runs WHERE migration_id = ${input.migrationId} AND run < ${row.run} AND finished_at IS NOT NULL ORDER BY run DESC LIMIT 1`,
        );
        return { run: row.run, firstPass: row.first_pass, startedAt: row.started_at.toISOString(), previousClean: previous.rows[0]?.clean === true };
      });
    },

    /** Records what a run found. Safe to run twice. */
    async finishVerificationRun(input: FinishRunInput): Promise<{ finishedAt: string }> {
      const pool = databases.pool(input.plan.target.connection);
      const o = input.outcome;
      // A worker older than the repair ledger may have begun the run.
      await installFerrySchema(pool);
      const result = await inTransaction(pool, async (client) => {
        // The run's repair counts are in its record now; a retried repair call cannot follow it.
        await client.query(forgetRepairCountsSql(input.migrationId));
        return client.query<{ finished_at: Date }>(
        sql`UPDATE ferry.verification_runs
               SET finished_at = coalesce(finished_at, now()), passes = ${o.passes}, rows_checked = ${o.rowsChecked}, missing = ${o.missing},
                   extra = ${o.extra}, value = ${o.value}, repaired = ${o.repaired}, clean = ${o.clean}, problem = ${o.problem}
             WHERE migration_id = ${input.migrationId} AND run = ${o.run}
             RETURNING finished_at`,
        );
      });
      return { finishedAt: (result.rows[0]?.finished_at ?? new Date()).toISOString() };
    },
  };
}
