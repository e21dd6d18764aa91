/**
 * Which source rows a migration (or one of its shards) covers, as one SQL condition over the
 * source row: the plan's subset, and a shard's partition value.
 */
import type { Plan } from '../../lib/plan';
import { quoteIdent, quoteLiteral, SOURCE_ALIAS } from '../sql';

export function sourceFilter(plan: Plan, partitionValue: string | null = null): string | null {
  const key = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
  const parts: string[] = [];
  const subset = plan.subset;
  if (subset?.where) parts.push(`(${subset.where})`);
  if (subset?.keyRange?.from !== undefined) parts.push(`${key} >= ${quoteLiteral(subset.keyRange.from)}`);
  if (subset?.keyRange?.to !== undefined) parts.push(`${key} <= ${quoteLiteral(subset.keyRange.to)}`);
  if (subset?.samplePercent !== undefined && subset.samplePercent < 100) {
    // Hash of the key, so the sample is the same rows on every run and on both sides of a verify.
    parts.push(`abs(hashtext(${key}::text)::bigint) % 10000 < ${Math.round(subset.samplePercent * 100)}`);
  }
  if (partitionValue !== null && plan.shards.partitionColumn) {
    parts.push(`${SOURCE_ALIAS}.${quoteIdent(plan.shards.partitionColumn)} = ${quoteLiteral(partitionValue)}`);
  } else if (subset?.partitionValues && plan.shards.partitionColumn) {
    parts.push(`${SOURCE_ALIAS}.${quoteIdent(plan.shards.partitionColumn)}::text IN (${subset.partitionValues.map(quoteLiteral).join(', ')})`);
  }
  return parts.length ? parts.join(' AND ') : null;
}
