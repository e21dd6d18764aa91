/**
 * Shard planner splits a source table into shards the copier can run side by side: one per
 * partition value, even widths of an integer key, or quantiles of a sample for any other key.
 */
import { ApplicationFailure } from '@temporalio/activity';
import pg from 'pg';
import { splitAtBounds, splitIntegerRange, wholeKeySpace, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import { redactErrorText } from '../../lib/errors';
import type { Databases } from '../connections';
import { assertPlanSqlIsSafe, oneStatement, readOnly } from '../plan-sql';
import { displayName, qualifiedName, quoteIdent } from '../sql';

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

/** The bind parameters of one statement, numbered in the order they are bound. */
class Bindings {
  readonly params: unknown[] = [];

  bind(value: unknown): string {
    this.params.push(value);
    return `$${this.params.length}`;
  }
}

const whole = (): KeyRange => ({ ...wholeKeySpace });

/**
 * The plan's subset as conditions on the source row. `where` is a SQL expression from the plan,
 * so statements that carry it run in a read-only transaction. The ranges planned from a narrowed
 * read still cover every key: the copier applies the subset itself.
 */
function subsetConditions(plan: Plan, query: Bindings, { withWhere }: { withWhere: boolean }): string[] {
  const key = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
  const conditions: string[] = [];
  const { from, to } = plan.subset?.keyRange ?? {};
  if (from !== undefined) conditions.push(`${key} >= ${query.bind(from)}`);
  if (to !== undefined) conditions.push(`${key} <= ${query.bind(to)}`);
  if (withWhere && plan.subset?.where) conditions.push(`(${plan.subset.where})`);
  return conditions;
}

const whereClause = (conditions: string[]) => (conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '');

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
    oneStatement({
      text: `SELECT to_regclass($1) IS NOT NULL AS table_exists,
            (SELECT format_type(a.atttypid, NULL) FROM pg_attribute a
              WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped) AS key_type`,
      values: [table, plan.source.key],
    }),
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
  const query = new Bindings();
  const conditions = subsetConditions(plan, query, { withWhere: true });
  // NULLS FIRST, so the LIMIT that caps the read never hides a NULL.
  const result = await client.query<{ partition_value: string | null }>(
    oneStatement({
      text: `SELECT d.value::text AS partition_value
       FROM (SELECT DISTINCT ${SOURCE_ALIAS}.${quoteIdent(column)} AS value
               FROM ${qualifiedName(plan.source)} AS ${SOURCE_ALIAS}${whereClause(conditions)}) AS d
      ORDER BY d.value NULLS FIRST
      LIMIT ${query.bind(MAX_PARTITION_SHARDS + 2)}`,
      values: query.params,
    }),
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

async function integerKeyShards(client: pg.PoolClient, plan: Plan): Promise<KeyRange[]> {
  const key = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
  const query = new Bindings();
  // Only the key range narrows min and max: both walk the key's index, a `where` would not.
  const conditions = subsetConditions(plan, query, { withWhere: false });
  const result = await client.query<{ min: string | null; max: string | null }>(
    oneStatement({
      text: `SELECT min(${key})::text AS min, max(${key})::text AS max
       FROM ${qualifiedName(plan.source)} AS ${SOURCE_ALIAS}${whereClause(conditions)}`,
      values: query.params,
    }),
  );
  const { min, max } = result.rows[0] ?? { min: null, max: null };
  if (min === null || max === null) return [whole()];
  return splitIntegerRange(min, max, plan.shards.count);
}

/** The planner's estimate of the rows the subset selects; cheap, and right within a factor or so. */
async function estimateRows(client: pg.PoolClient, plan: Plan): Promise<number> {
  const query = new Bindings();
  const conditions = subsetConditions(plan, query, { withWhere: true });
  const result = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    oneStatement({
      text: `EXPLAIN (FORMAT JSON) SELECT FROM ${qualifiedName(plan.source)} AS ${SOURCE_ALIAS}${whereClause(conditions)}`,
      values: query.params,
    }),
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
  const key = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
  const query = new Bindings();
  const fractionsParam = query.bind(fractions);
  // Without TABLESAMPLE a narrow key range reads through the key's index instead of every page.
  // REPEATABLE: a retried attempt reads the same pages and plans the same shards.
  const sample = percent < 100 ? ` TABLESAMPLE SYSTEM (${query.bind(percent)}) REPEATABLE (0)` : '';
  const conditions = [`${key} IS NOT NULL`, ...subsetConditions(plan, query, { withWhere: true })];
  const result = await client.query<{ sampled: string; keys: string[] | null }>(
    oneStatement({
      text: `SELECT count(*)::text AS sampled,
            (percentile_disc(${fractionsParam}::float8[]) WITHIN GROUP (ORDER BY ${key}))::text[] AS keys
       FROM ${qualifiedName(plan.source)} AS ${SOURCE_ALIAS}${sample}${whereClause(conditions)}`,
      values: query.params,
    }),
  );
  const row = result.rows[0];
  return { sampled: Number(row?.sampled ?? 0), keys: row?.keys ?? [] };
}

/**
 * Splits at quantiles of a sample of the keys, so shards hold about as many rows each however
 * the keys are distributed (a common prefix, uuids, timestamps in bursts).
 */
async function sampledKeyShards(client: pg.PoolClient, plan: Plan): Promise<KeyRange[]> {
  const count = plan.shards.count;
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
            const ranges = INTEGER_KEY_TYPES.has(await keyType(client, plan))
              ? await integerKeyShards(client, plan)
              : await sampledKeyShards(client, plan);
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
