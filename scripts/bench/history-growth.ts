/**
 * How a migration's history grows with its work: the same-database path run once more over a
 * fifth of the table (plan subset.keyRange), so that two sizes give the fixed events of a
 * migration (start, inspection, shard planning, children, the end) apart from the slope, the
 * events each additional million rows adds. The budget (50 per million rows) is read
 * against the slope: the fixed part does not grow with the table.
 */
import { startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { awaitMigration, type Bench } from './ferry-run';
import { countRows, resetTarget, TARGET_TABLE } from './dataset';
import { historyCost, type HistoryCost } from './histories';

export interface HistoryPoint {
  rows: number;
  events: number;
  migrationEvents: number;
  /** Mean events of one shard. */
  shardEvents: number;
}

export interface HistoryGrowth {
  small: HistoryPoint;
  full: HistoryPoint;
  /** Events of a migration that copied nothing, extrapolated. */
  fixedEvents: number;
  /** Events per additional million rows: the whole migration, and one shard's (per million rows it copies). */
  eventsPerMillion: number;
  shardEventsPerMillion: number;
  problems: string[];
}

export function pointOf(rows: number, cost: HistoryCost): HistoryPoint {
  const shards = Object.values(cost.shardEvents);
  return {
    rows,
    events: cost.events,
    migrationEvents: cost.migrationEvents,
    shardEvents: shards.length ? shards.reduce((a, b) => a + b, 0) / shards.length : 0,
  };
}

/** Runs `plan` over keys up to `rows` (the bench's keys are 1..N) and counts its history. */
export async function smallRunHistory(bench: Bench, plan: PlanInput, targetUrl: string, rows: number): Promise<{ cost: HistoryCost; problems: string[] }> {
  await resetTarget(targetUrl);
  const subsetPlan: PlanInput = { ...plan, name: `${plan.name}-part`, subset: { keyRange: { to: String(rows) } } };
  const handle = await startMigration(bench.client, bench.temporal, validatePlan(subsetPlan, subsetPlan.name), { execute: true, rerun: true });
  const status = await awaitMigration(bench, handle);
  const [copied, cost] = await Promise.all([countRows(targetUrl, TARGET_TABLE), historyCost(bench.client, handle.workflowId)]);
  const problems: string[] = [];
  if (copied !== rows || status.rowsRead !== rows) problems.push(`the run over ${rows} keys copied ${copied} rows and read ${status.rowsRead}`);
  await resetTarget(targetUrl);
  return { cost, problems };
}

/** The fixed part and the slope from two sizes; with shards copying equal halves, a shard's slope is per million rows it copied. */
export function growthOf(small: HistoryPoint, full: HistoryPoint, shards: number, problems: string[]): HistoryGrowth {
  const millions = (full.rows - small.rows) / 1e6;
  const eventsPerMillion = (full.events - small.events) / millions;
  const shardEventsPerMillion = (full.shardEvents - small.shardEvents) / (millions / shards);
  return {
    small,
    full,
    fixedEvents: small.events - eventsPerMillion * (small.rows / 1e6),
    eventsPerMillion,
    shardEventsPerMillion,
    problems,
  };
}
