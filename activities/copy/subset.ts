/**
 * Which source rows a migration (or one of its shards) covers, as one SQL condition over the
 * source row: the plan's subset, and a shard's partition value.
 */
import type { Plan } from '../../lib/plan';
import { column, int, join, literal, planSql, sql, SOURCE_ALIAS, type Sql } from '../sql';

/**
 * The condition as text (values as literals: COPY takes no parameters), or null for every row.
 * The statements embed it as Ferry's own text: subset.where entered it through planSql.
 */
export function sourceFilter(plan: Plan, partitionValue: string | null = null): string | null {
  const key = column(SOURCE_ALIAS, plan.source.key);
  const parts: Sql[] = [];
  const subset = plan.subset;
  if (subset?.where) parts.push(planSql(subset.where, 'subset.where'));
  if (subset?.keyRange?.from !== undefined) parts.push(sql`${key} >= ${literal(subset.keyRange.from)}`);
  if (subset?.keyRange?.to !== undefined) parts.push(sql`${key} <= ${literal(subset.keyRange.to)}`);
  if (subset?.samplePercent !== undefined && subset.samplePercent < 100) {
    // Hash of the key, so the sample is the same rows on every run and on both sides of a verify.
    parts.push(sql`abs(hashtext(${key}::text)::bigint) % 10000 < ${int(Math.round(subset.samplePercent * 100))}`);
  }
  // Partition values compare in the column's own type (an untyped literal takes it), never as
  // text: a shard's backfill and the change apply, repair and coverage must select the same rows
  // however a value is written ('T' for a boolean, an upper-case uuid).
  if (partitionValue !== null && plan.shards.partitionColumn) {
    parts.push(sql`${column(SOURCE_ALIAS, plan.shards.partitionColumn)} = ${literal(partitionValue)}`);
  } else if (subset?.partitionValues && plan.shards.partitionColumn) {
    parts.push(sql`${column(SOURCE_ALIAS, plan.shards.partitionColumn)} IN (${join(subset.partitionValues.map(literal))})`);
  }
  return parts.length ? join(parts, sql` AND `).text : null;
}
