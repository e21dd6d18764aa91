/**
 * Capture shape says whether change capture can see every way rows leave the source table: a
 * partitioned table or one with inheritance children it cannot.
 */
import type pg from 'pg';
import { captureOf, capturesChanges } from '../../lib/capture';
import type { Plan } from '../../lib/plan';
import { qualifiedName, sql } from '../sql';

/**
 * Change capture sees rows one by one: a partition truncated, detached or dropped (or a write to
 * an inheritance child, which the parent's trigger never sees) takes rows out of the table with
 * no row trigger fired and no row change decoded, and the target would keep them for ever.
 */
export async function captureShapeProblem(pool: pg.Pool, plan: Plan, name: string): Promise<string | null> {
  if (!capturesChanges(plan)) return null;
  const regclass = qualifiedName(plan.source);
  const shape = await pool.query<{ partitioned: boolean; children: boolean }>(
    sql`SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(${regclass}) AND relkind = 'p') AS partitioned,
               EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = to_regclass(${regclass})) AS children`,
  );
  const { partitioned, children } = shape.rows[0] ?? { partitioned: false, children: false };
  if (!partitioned && !children) return null;
  const what = partitioned
    ? 'is partitioned: a partition truncated, detached or dropped takes its rows out of it with no change captured'
    : 'has inheritance children: their writes and their rows leaving reach no capture';
  return `source table ${name} ${what}, so the target would keep rows the source no longer has; with capture: ${captureOf(plan).mode}, migrate each partition (or child) as a table of its own`;
}
