/**
 * subset.partitionValues that the partition column's type cannot read: the backfill, the change
 * apply and verification compare the values in that type, so such a value would fail them on the
 * way (after the target was claimed) instead of at the start.
 */
import type pg from 'pg';
import type { TableInspection } from '../../lib/inspection';
import type { Plan } from '../../lib/plan';
import { redactErrorText } from '../../lib/errors';
import { ferrySql, sql } from '../sql';

export async function partitionValueProblems(pool: pg.Pool, plan: Plan, source: TableInspection): Promise<string[]> {
  const column = plan.shards.partitionColumn;
  const values = plan.subset?.partitionValues;
  const type = source.columns.find((c) => c.name === column)?.type;
  if (!column || !values || !type) return [];
  const problems: string[] = [];
  for (const [index, value] of values.entries()) {
    await pool.query(sql`SELECT ${value}::${ferrySql(type)}`).catch((error: Error) => {
      problems.push(`subset.partitionValues[${index}] cannot be read as the type of partition column "${column}" (${type}): ${redactErrorText(error)}`);
    });
  }
  return problems;
}
