/**
 * Shard planner splits a source table into shards the copier can run side by side: one per
 * partition value, even widths of an integer key, or quantiles of a sample for any other key.
 */
import { ApplicationFailure } from '@temporalio/activity';
import os from 'node:os';
import pg from 'pg';
import { splitAtBounds, splitIntegerRange, wholeKeySpace, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import { redactErrorText } from '../../lib/errors';
import type { Databases } from '../connections';
import { assertPlanSqlIsSafe, oneStatement, readOnly } from '../plan-sql';
import { column, displayName, ferrySql, ident, join, planSql, qualifiedName, sql, tableName, type Sql } from '../sql';

export interface PlanShardsInput {
  plan: Plan;
}

/** Each partition shard is a child workflow; beyond this many, partitioning is the wrong tool. */
export const MAX_PARTITION_SHARDS = 1024;

/** Key types split by arithmetic on min and max instead of by a sample. */
const INTEGER_KEY_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** Below this many (estimated) rows, reading every key costs less than sampling pages. */
const FULL_READ_BELOW_ROWS = 100_000;

/**
 * Sampled keys to aim for. TABLESAMPLE SYSTEM picks whole pages, and keys inserted in order sit
 * together on a page, so a quantile is only as good as the number of pages behind it.
 */
const MIN_SAMPLE_KEYS = 50_000;
const SAMPLE_KEYS_PER_SHARD = 500;

/** A sample smaller than this share of the aim is retried with more pages. */
const ENOUGH_OF_AIM = 0.5;

const SOURCE_ALIAS = 's';
/** Rows per shard when the plan leaves shards.count out: a smaller table copies as one shard. */
export const ROWS_PER_AUTO_SHARD = 250_000;

/** Shards for a table of `estimatedRows` when the plan names no count: by size, at most the worker's cores (2 at least). */
export function autoShardCount(estimatedRows: number, cores = os.availableParallelism()): number {
  return Math.max(1, Math.min(Math.floor(estimatedRows / ROWS_PER_AUTO_SHARD), Math.max(2, cores)));
}

const whole = (): KeyRange => ({ ...wholeKeySpace });

/**
 * The plan's subset as conditions on the source row. `where` is a SQL expression from the plan,
 * so statements that carry it run in a read-only transaction. The ranges planned from a narrowed
 * read still cover every key: the copier applies the subset itself.
 */
function subsetConditions(plan: Plan, { withWhere }: { withWhere: boolean }): Sql[] {
  const key = column(SOURCE_ALIAS, plan.source.key);
  const conditions: Sql[] = [];
  const { from, to } = plan.subset?.keyRange ?? {};
  if (from !== undefined) conditions.push(sql`${key} >= ${from}`);
  if (to !== undefined) conditions.push(sql`${key} <= ${to}`);
  if (withWhere && plan.subset?.where) conditions.push(planSql(plan.subset.where, 'subset.where'));
  return conditions;
}

const whereClause = (conditions: Sql[]) => (conditions.length ? sql` WHERE ${join(conditions, sql` AND `)}` : sql``);
const source = (plan: Plan) => sql`${tableName(plan.source)} AS ${ferrySql(SOURCE_ALIAS)}`;

/**
 * Mistakes in the plan or the schema (a missing table or column, a `where` that does not parse or
 * tries to write, a key range bound of the wrong type) fail the same way on every attempt: fail
 * once, and say so. A missing privilege (42501) stays retryable: a GRANT fixes it mid-run.
 */
function failFastOnPlanMistakes(plan: Plan, error: unknown): never {
  if (!(error instanceof pg.DatabaseError)) throw error;
  const code = error.code ?? '';
  if ((/^(22|42)/.test(code) && code !== '42501') || code === '25006') {
    throw ApplicationFailure.nonRetryable(
      `cannot plan shards of ${displayName(plan.source)}: ${redactErrorText(error)} [${code}]; fix the plan (source, shards or subset) or the table`,
      'ShardPlanningFailed',
    );
  }
  throw error;
}

async function keyType(client: pg.PoolClient, plan: Plan): Promise<string> {
  const table = qualifiedName(plan.source);
  const result = await client.query<{ table_exists: boolean; key_type: string | null }>(
    oneStatement(
      sql`SELECT to_regclass(${table}) IS NOT NULL AS table_exists,
            (SELECT format_type(a.atttypid, NULL) FROM pg_attribute a
              WHERE a.attrelid = to_regclass(${table}) AND a.attname = ${plan.source.key} AND a.attnum > 0 AND NOT a.attisdropped) AS key_type`,
    ),
  );
  const row = result.rows[0];
  if (!row?.table_exists) {
    throw ApplicationFailure.nonRetryable(`source table ${displayName(plan.source)} does not exist`, 'ShardPlanningFailed');
  }
  if (!row.key_type) {
    throw ApplicationFailure.nonRetryable(
      `source key column "${plan.source.key}" is not a column of ${displayName(plan.source)}`,
      'ShardPlanningFailed',
    );
  }
  return row.key_type;
}

/** Given values are taken as they are, unqueried: the plan chose them. */
function partitionShardsOf(values: readonly string[], column: string): ShardSpec[] {
  const distinct = [...new Set(values)];
  if (distinct.length > MAX_PARTITION_SHARDS) {
    throw ApplicationFailure.nonRetryable(
      `partition column "${column}" has more than ${MAX_PARTITION_SHARDS} distinct values, one shard each; ` +
        `list the ones to copy in subset.partitionValues, or shard by key range (shards.count) instead`,
      'TooManyPartitions',
    );
  }
  return distinct.map((partitionValue) => ({ range: whole(), partitionValue }));
}

/** The column's distinct values in the column's own order (so tenant 2 comes before tenant 10). */
async function partitionValues(client: pg.PoolClient, plan: Plan, column: string): Promise<string[]> {
  const conditions = subsetConditions(plan, { withWhere: true });
  // NULLS FIRST, so the LIMIT that caps the read never hides a NULL.
  const result = await client.query<{ partition_value: string | null }>(
    oneStatement(
      sql`SELECT d.value::text AS partition_value
       FROM (SELECT DISTINCT ${ferrySql(SOURCE_ALIAS)}.${ident(column)} AS value
               FROM ${source(plan)}${whereClause(conditions)}) AS d
      ORDER BY d.value NULLS FIRST
      LIMIT ${MAX_PARTITION_SHARDS + 2}`,
    ),
  );
  const values = result.rows.map((row) => row.partition_value);
  if (values.includes(null)) {
    throw ApplicationFailure.nonRetryable(
      `partition column "${column}" of ${displayName(plan.source)} has NULLs, and rows with NULL there would not be copied ` +
        `by any partition shard; fill them in, narrow subset.where to exclude them, or shard by key range (shards.count) instead`,
      'NullPartitionValues',
    );
  }
  return values as string[];
}

async function integerKeyShards(client: pg.PoolClient, plan: Plan, count: number): Promise<KeyRange[]> {
  const key = column(SOURCE_ALIAS, plan.source.key);
  // Only the key range narrows min and max: both walk the key's index, a `where` would not.
  const conditions = subsetConditions(plan, { withWhere: false });
  const result = await client.query<{ min: string | null; max: string | null }>(
    oneStatement(sql`SELECT min(${key})::text AS min, max(${key})::text AS max FROM ${source(plan)}${whereClause(conditions)}`),
  );
  const { min, max } = result.rows[0] ?? { min: null, max: null };
  if (min === null || max === null) return [whole()];
  return splitIntegerRange(min, max, count);
}

/** The planner's estimate of the rows the subset selects; cheap, and right within a factor or so. */
async function estimateRows(client: pg.PoolClient, plan: Plan): Promise<number> {
  const conditions = subsetConditions(plan, { withWhere: true });
  const result = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    oneStatement(sql`EXPLAIN (FORMAT JSON) SELECT FROM ${source(plan)}${whereClause(conditions)}`),
  );
  return result.rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0;
}

interface Quantiles {
  /** Keys the quantiles were taken from. */
  sampled: number;
  /** Key at each fraction, in key order, as text; empty when nothing was sampled. */
  keys: string[];
}

/** Quantiles of the keys the subset selects, from about `percent` of the table's pages (all at 100). */
async function keyQuantiles(client: pg.PoolClient, plan: Plan, fractions: number[], percent: number): Promise<Quantiles> {
  const key = column(SOURCE_ALIAS, plan.source.key);
  // Without TABLESAMPLE a narrow key range reads through the key's index instead of every page.
  // REPEATABLE: a retried attempt reads the same pages and plans the same shards.
  const sample = percent < 100 ? sql` TABLESAMPLE SYSTEM (${percent}) REPEATABLE (0)` : sql``;
  const conditions = [sql`${key} IS NOT NULL`, ...subsetConditions(plan, { withWhere: true })];
  const result = await client.query<{ sampled: string; keys: string[] | null }>(
    oneStatement(
      sql`SELECT count(*)::text AS sampled,
            (percentile_disc(${fractions}::float8[]) WITHIN GROUP (ORDER BY ${key}))::text[] AS keys
       FROM ${source(plan)}${sample}${whereClause(conditions)}`,
    ),
  );
  const row = result.rows[0];
  return { sampled: Number(row?.sampled ?? 0), keys: row?.keys ?? [] };
}

/**
 * Splits at quantiles of a sample of the keys, so shards hold about as many rows each however
 * the keys are distributed (a common prefix, uuids, timestamps in bursts).
 */
async function sampledKeyShards(client: pg.PoolClient, plan: Plan, count: number): Promise<KeyRange[]> {
  // The last fraction, 1, is the largest key seen: a bound there would only end the last shard early.
  const fractions = [...Array.from({ length: count - 1 }, (_, i) => (i + 1) / count), 1];
  const aim = Math.max(MIN_SAMPLE_KEYS, count * SAMPLE_KEYS_PER_SHARD);
  const estimate = await estimateRows(client, plan);
  let percent = estimate < FULL_READ_BELOW_ROWS ? 100 : Math.min(100, (100 * aim) / estimate);
  let quantiles = await keyQuantiles(client, plan, fractions, percent);
  // The estimate can be off (no statistics yet, a selective `where`): read more pages until the
  // sample is big enough, ending with a read of every key.
  while (percent < 100 && quantiles.sampled < aim * ENOUGH_OF_AIM) {
    percent = quantiles.sampled === 0 ? 100 : Math.min(100, (percent * aim) / quantiles.sampled);
    quantiles = await keyQuantiles(client, plan, fractions, percent);
  }
  if (quantiles.sampled === 0) return [whole()];
  const largestSampled = quantiles.keys.at(-1);
  return splitAtBounds(quantiles.keys.slice(0, -1).filter((bound) => bound !== largestSampled));
}

export function createShardPlanner(databases: Databases) {
  return {
    /**
     * The shards of the plan's source table. Key-range shards cover every key between them, with
     * no gaps or overlaps, whatever the subset: the copier applies the subset itself. Reads only.
     */
    async planShards({ plan }: PlanShardsInput): Promise<ShardSpec[]> {
      const { partitionColumn, count } = plan.shards;
      const given = plan.subset?.partitionValues;
      if (partitionColumn && given) return partitionShardsOf(given, partitionColumn);
      if (!partitionColumn && count === 1) return [{ range: whole(), partitionValue: null }];

      assertPlanSqlIsSafe(plan);
      const pool = databases.pool(plan.source.connection);
      // Read-only: subset.where is SQL from the plan and must not be able to write here.
      return readOnly(pool, async (client) => {
        try {
          let shards: ShardSpec[];
          if (partitionColumn) {
            shards = partitionShardsOf(await partitionValues(client, plan, partitionColumn), partitionColumn);
          } else {
            const shardCount = count ?? autoShardCount(await estimateRows(client, plan));
            if (shardCount === 1) return [{ range: whole(), partitionValue: null }];
            const ranges = INTEGER_KEY_TYPES.has(await keyType(client, plan))
              ? await integerKeyShards(client, plan, shardCount)
              : await sampledKeyShards(client, plan, shardCount);
            shards = ranges.map((range) => ({ range, partitionValue: null }));
          }
          return shards;
        } catch (error) {
          if (error instanceof ApplicationFailure) throw error;
          failFastOnPlanMistakes(plan, error);
        }
      });
    },
  };
}
