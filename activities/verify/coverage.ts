/**
 * The final check of a verification pass: every source row in scope is accounted for, and every
 * target row is owned. Shards compare what their key ranges and partition values reach; this
 * counts the whole scope on the source in one snapshot against what the shards reach, compares
 * the rows none reaches (a partition value that appeared after planning), and walks the target
 * for rows whose source key the source no longer holds, which a shard selected by partition
 * value or by a `where` cannot see. Rows with a NULL key can be neither reached nor compared:
 * they make the pass unclean.
 */
import { CancelledFailure, Context, heartbeat, sleep } from '@temporalio/activity';
import type pg from 'pg';
import { coverageOf, type ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { nullTargetKeysSql, reachedBySql, scopeCountSql, sourceKeysHeldSql, targetKeysHeldSql, targetPageSql, unreachedKeysSql } from './coverage-statements';
import { recordMismatches, type Mismatch } from '../state/ferry-schema';
import { captureSettle, keysToReadAgain } from './capture-settle';
import { qualifiedName, quoteIdent, sql, SOURCE_ALIAS } from '../sql';
import { allConditions, diffRows, TARGET_ALIAS, type RowHashes, type VerifyShape } from './verify-statements';

export interface CoverageInput {
  migrationId: string;
  plan: Plan;
  /** Every shard of the migration, as planned. */
  shards: ShardSpec[];
  /** The verification pass: mismatches are recorded under it. */
  pass: number;
  /** Keys per page of rows compared or looked up. */
  chunkSize: number;
  /** The deterministic sample the pass compares (0 to 100); all rows when absent. */
  samplePercent?: number;
  /** How long a difference is given to settle before it is checked again. (Default: 2000) */
  inFlightDelayMs?: number;
}

export interface CoverageResult {
  /**
   * Source rows in scope, counted in one snapshot with the next two; null when not counted, as
   * every row is reached by construction (key ranges over the whole key space of a NOT NULL key).
   */
  scopeRows: number | null;
  /** Of them, rows no shard reaches (compared here instead), NULL keys left out. */
  unreachedRows: number;
  /** Of them, rows with a NULL key: nothing can reach or compare them. */
  nullKeyRows: number;
  /** Target rows looked at for a source key the source no longer holds. */
  targetRowsChecked: number;
  mismatches: { missing: number; extra: number; value: number };
  /** At most MAX_EXAMPLES, keys and categories only. */
  examples: Mismatch[];
  /** Why the pass cannot be clean whatever the mismatches, or null. */
  problem: string | null;
}

/** What the verifier lends this check: its view of both sides. */
export interface CoverageComparison {
  shapeOf(plan: Plan, samplePercent: number | undefined, migrationId: string): Promise<VerifyShape>;
  /** Both sides' rows of some source keys, for diffRows. */
  bothSides(plan: Plan, keys: string[], samplePercent: number | undefined, migrationId: string): Promise<[RowHashes[], RowHashes[]]>;
}

const MAX_EXAMPLES = 20;

async function keyIsNotNull(pool: pg.Pool, table: VerifyShape['source']): Promise<boolean> {
  const found = await pool.query<{ not_null: boolean }>(
    sql`SELECT attnotnull AS not_null FROM pg_attribute WHERE attrelid = to_regclass(${qualifiedName(table)}) AND attname = ${table.key} AND attnum > 0 AND NOT attisdropped`,
  );
  return found.rows[0]?.not_null === true;
}

/** A target row's key and the source key it came from (the lineage column's, or the key's), as text. */
interface TracedRow {
  key: string;
  source_key: string | null;
}

export function createCoverageCheck(databases: Databases, comparison: CoverageComparison) {
  return {
    /**
     * The final check of a pass (see the module comment), recording what differs in
     * ferry.mismatches like verifyShard. Reads only, except for that record; safe to run twice.
     */
    async verifyCoverage(input: CoverageInput): Promise<CoverageResult> {
      const { plan, migrationId, samplePercent } = input;
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      const shape = await comparison.shapeOf(plan, samplePercent, migrationId);
      const pageRows = Math.max(100, input.chunkSize);
      const delayMs = input.inFlightDelayMs ?? 2000;
      const settle = captureSettle(sourcePool, targetPool, plan, migrationId, !!shape.lineage);
      const columnNames = shape.types.map((c) => c.name);
      const result: CoverageResult = {
        scopeRows: null,
        unreachedRows: 0,
        nullKeyRows: 0,
        targetRowsChecked: 0,
        mismatches: { missing: 0, extra: 0, value: 0 },
        examples: [],
        problem: null,
      };
      const record = async (found: Mismatch[]) => {
        await recordMismatches(targetPool, migrationId, input.pass, found);
        for (const m of found) {
          result.mismatches[m.category] += 1;
          if (result.examples.length < MAX_EXAMPLES) result.examples.push(m);
        }
        heartbeat(result.mismatches);
      };

      // Source: the whole scope against what the shards reach, in one statement (one snapshot).
      const partitionSql = plan.shards.partitionColumn ? `${SOURCE_ALIAS}.${quoteIdent(plan.shards.partitionColumn)}` : null;
      const reached = reachedBySql(input.shards, `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`, partitionSql);
      // A count that could only agree would cost a read of the whole scope on every pass.
      const everyRowReached = coverageOf(input.shards).some((c) => c.partitionValue === null && c.ranges.some((r) => r.after === null && r.upTo === null));
      if (!(everyRowReached && (await keyIsNotNull(sourcePool, shape.source)))) {
        const counted = (await sourcePool.query<{ scope: string; reached: string; null_keys: string }>(scopeCountSql(shape.source, shape.sourceFilter, reached))).rows[0]!;
        result.scopeRows = Number(counted.scope);
        result.nullKeyRows = Number(counted.null_keys);
        result.unreachedRows = result.scopeRows - Number(counted.reached) - result.nullKeyRows;
      }
      if (result.nullKeyRows > 0) {
        result.problem =
          `${result.nullKeyRows} source rows in scope have a NULL key "${plan.source.key}": no key range reaches them, so they were ` +
          `neither copied nor compared; add NOT NULL to the key column (after giving those rows a key) or choose another key`;
      }
      for (let after: string | null = null; result.unreachedRows > 0; ) {
        const page: pg.QueryResult<{ key: string }> = await sourcePool.query(unreachedKeysSql(shape.source, shape.sourceFilter, reached, after, pageRows));
        if (page.rows.length === 0) break;
        const keys = page.rows.map((r) => r.key);
        after = keys[keys.length - 1]!;
        await record(await settledDifferences(keys));
        heartbeat({ unreachedAfter: after });
      }

      // Target: rows whose source key the source does not hold at all. A shard by key range sees
      // them in its own range; one selected by partition value or a `where` cannot, so then every
      // target row is looked at. Otherwise only rows outside every shard's range (or with no
      // source key) need looking at, which for planned shards is none.
      const selectedBy = `${TARGET_ALIAS}.${quoteIdent(shape.lineage ?? shape.target.key)}`;
      // A target ordering keys otherwise than the source is compared by the source's keys alone:
      // its rows no source key reaches are found only here, so every target row is looked at.
      const rowDependent = !!plan.subset?.where || !!plan.shards.partitionColumn || !!shape.keyOrderDiffers;
      const outside = rowDependent ? null : everyRowReached ? `${selectedBy} IS NULL` : `NOT (${reachedBySql(input.shards, selectedBy, null)})`;
      const condition = allConditions(shape.targetFilter, outside);
      const nullTargetKeys = Number((await targetPool.query<{ rows: string }>(nullTargetKeysSql(shape.target))).rows[0]?.rows ?? 0);
      if (nullTargetKeys > 0) {
        result.problem = [
          result.problem,
          `${nullTargetKeys} target rows have a NULL key "${shape.target.key}": no source row can match them; delete them or give them their keys`,
        ]
          .filter(Boolean)
          .join('; ');
      }
      for (let after: string | null = null; ; ) {
        const page: pg.QueryResult<TracedRow> = await targetPool.query(targetPageSql(shape.target, shape.lineage ?? null, condition, after, pageRows));
        if (page.rows.length === 0) break;
        after = page.rows[page.rows.length - 1]!.key;
        result.targetRowsChecked += page.rows.length;
        heartbeat({ targetRowsChecked: result.targetRowsChecked });
        if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('verification cancelled');
        const orphans = await untracedRows(page.rows);
        if (orphans.length > 0) {
          // A row the application deletes from both sides may be caught between the two reads.
          await sleep(delayMs);
          const still = await targetPool.query<TracedRow>(targetKeysHeldSql(shape.target, shape.lineage ?? null, orphans.map((r) => r.key)));
          const confirmed = await untracedRows(still.rows);
          await record(
            confirmed.map((r) => ({ key: r.key, category: 'extra' as const, columns: [], ...(shape.lineage ? { sourceKey: r.source_key } : {}) })),
          );
        }
        if (page.rows.length < pageRows) break;
      }
      return result;

      /** Differences among some source keys' rows that remain after in-flight writes had time to land (and, under capture, were applied). */
      async function settledDifferences(keys: string[]): Promise<Mismatch[]> {
        const first = diffRows(columnNames, ...(await comparison.bothSides(plan, keys, samplePercent, migrationId)));
        if (first.length === 0) return [];
        await sleep(delayMs);
        const reread = async (earlier: Mismatch[]) => {
          const seen = new Set(earlier.map((d) => d.key));
          const again = keysToReadAgain(earlier, !!shape.lineage);
          return diffRows(columnNames, ...(await comparison.bothSides(plan, again, samplePercent, migrationId))).filter((d) => seen.has(d.key));
        };
        return settle(await reread(first), reread);
      }

      /** The target rows of a list whose source key is NULL, or one the source does not hold. */
      async function untracedRows(rows: TracedRow[]): Promise<TracedRow[]> {
        const sourceKeys = [...new Set(rows.flatMap((r) => (r.source_key === null ? [] : [r.source_key])))];
        const held = sourceKeys.length
          ? new Set((await sourcePool.query<{ key: string }>(sourceKeysHeldSql(shape.source, sourceKeys))).rows.map((r) => r.key))
          : new Set<string>();
        return rows.filter((r) => r.source_key === null || !held.has(r.source_key));
      }
    },
  };
}
