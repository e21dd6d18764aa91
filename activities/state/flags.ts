/**
 * Flags, the worker's side: the migration sets them (only ever through here) and waits for the
 * applications to follow. Applications read them with Ferry's client library.
 */
import { sleep } from '@temporalio/activity';
import { flagsColumns, flagsFromRow, type Flags, type FlagsRow } from '../../lib/flags';
import type { FlagSettings } from '../../lib/lifecycle';
import type { Plan } from '../../lib/plan';
import type { GateFigures } from '../../lib/status';
import type { Databases } from '../connections';
import { withHeartbeats } from '../heartbeats';
import { sourceHealth, standbysStreaming } from '../copy/backoff';
import { ferrySql, sql } from '../sql';

/** An application process counts as live if it acknowledged any version this recently. */
const LIVE_CLIENT_SECONDS = 120;

export interface FlagAcks {
  /** Live processes that follow the version. */
  confirmed: string[];
  /** Live processes still on an older version when the soak time ran out. */
  lagging: string[];
}

/** Application processes that reported dual-read comparisons this recently count, with all they compared since they started. */
const LIVE_COMPARISONS_SECONDS = 3600;

export function createFlagSetter(databases: Databases) {
  return {
    /** What a person approving a gate should look at: dual-read results and the source's health. */
    async gateFigures({ plan }: { plan: Plan }): Promise<GateFigures> {
      const [reads, health, streaming] = await Promise.all([
        databases.pool(plan.target.connection).query<{ compared: string; mismatched: string }>(
          sql`SELECT coalesce(sum(compared), 0)::text AS compared, coalesce(sum(mismatched), 0)::text AS mismatched
                FROM ferry.read_comparisons WHERE migration = ${plan.name} AND updated_at > now() - make_interval(secs => ${LIVE_COMPARISONS_SECONDS})`,
        ),
        sourceHealth(databases.pool(plan.source.connection)),
        standbysStreaming(databases.pool(plan.source.connection)),
      ]);
      const compared = Number(reads.rows[0]?.compared ?? 0);
      const mismatched = Number(reads.rows[0]?.mismatched ?? 0);
      return {
        readsCompared: compared,
        readsMismatched: mismatched,
        replicaLagSeconds: health.replicaLagSeconds,
        longestQuerySeconds: health.longestQuerySeconds,
        standbysStreaming: streaming,
        inactiveSlots: health.unreadSlot?.count ?? 0,
        inactiveSlotWalBytes: health.unreadSlot?.walBytes ?? 0,
        at: new Date().toISOString(),
      };
    },

    /** Sets the migration's flags and bumps their version; returns them as stored. */
    async setFlags({ plan, flags, by }: { plan: Plan; flags: FlagSettings; by: string }): Promise<Flags> {
      const result = await databases.pool(plan.target.connection).query<FlagsRow>(
        sql`INSERT INTO ferry.flags AS f (migration, write_old, write_new, read_from, compare_percent, version, set_by)
            VALUES (${plan.name}, ${flags.writeOld}, ${flags.writeNew}, ${flags.readFrom}, ${flags.comparePercent}, 1, ${by})
            ON CONFLICT (migration) DO UPDATE
              SET write_old = EXCLUDED.write_old, write_new = EXCLUDED.write_new, read_from = EXCLUDED.read_from,
                  compare_percent = EXCLUDED.compare_percent, version = f.version + 1, set_by = EXCLUDED.set_by, updated_at = now()
            RETURNING ${ferrySql(flagsColumns)}`,
      );
      return flagsFromRow(result.rows[0]!);
    },

    /**
     * Waits until every live application process has applied `version`, or `soakSeconds` pass.
     * With no live process known, it waits the soak time: a process that reads flags without
     * acknowledging them still gets that long to follow.
     */
    async awaitFlagAcks({ plan, version, soakSeconds }: { plan: Plan; version: number; soakSeconds: number }): Promise<FlagAcks> {
      const pool = databases.pool(plan.target.connection);
      const deadline = Date.now() + soakSeconds * 1000;
      const seen = { confirmed: 0, lagging: 0 };
      return withHeartbeats(async (heartbeats) => {
        heartbeats.follow(() => seen);
        for (;;) {
          const acks = await pool.query<{ client_id: string; version: string }>(
            sql`SELECT client_id, version::text FROM ferry.flag_acks
                 WHERE migration = ${plan.name} AND seen_at > now() - make_interval(secs => ${LIVE_CLIENT_SECONDS})`,
          );
          const confirmed = acks.rows.filter((a) => Number(a.version) >= version).map((a) => a.client_id);
          const lagging = acks.rows.filter((a) => Number(a.version) < version).map((a) => a.client_id);
          const allFollow = acks.rows.length > 0 && lagging.length === 0;
          if (allFollow || Date.now() >= deadline) return { confirmed, lagging };
          Object.assign(seen, { confirmed: confirmed.length, lagging: lagging.length });
          await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
        }
      });
    },
  };
}
