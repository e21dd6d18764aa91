/**
 * Capture shape says whether change capture can see every way rows leave the source table: a
 * partitioned table it cannot. (A table with inheritance children is refused with or without
 * capture: see inheritance.ts.)
 */
import type pg from 'pg';
import { captureOf, capturesChanges } from '../../lib/capture';
import type { Plan } from '../../lib/plan';
import { qualifiedName, sql } from '../sql';

/**
 * Change capture sees rows one by one: a partition truncated, detached or dropped takes rows out
 * of the table with no row trigger fired and no row change decoded, and the target would keep
 * them for ever.
 */
export async function captureShapeProblem(pool: pg.Pool, plan: Plan, name: string): Promise<string | null> {
  if (!capturesChanges(plan)) return null;
  const regclass = qualifiedName(plan.source);
  const shape = await pool.query<{ partitioned: boolean }>(
    sql`SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(${regclass}) AND relkind = 'p') AS partitioned`,
  );
  if (!shape.rows[0]?.partitioned) return null;
  return (
    `source table ${name} is partitioned: a partition truncated, detached or dropped takes its rows out of it with no change captured, ` +
    `so the target would keep rows the source no longer has; with capture: ${captureOf(plan).mode}, migrate each partition as a table of its own`
  );
}
