/**
 * Inheritance children (CREATE TABLE child () INHERITS (parent)): a read of the parent returns
 * their rows too, and a DELETE of it reaches them, while the parent's unique key covers its own
 * rows alone. Partitions are not children in this sense: a partitioned table's unique key covers
 * every partition.
 */
import type pg from 'pg';
import { displayName, qualifiedName, sql, type TableName } from '../sql';

/** Children named in a problem; the rest are counted. */
const NAMED_CHILDREN = 5;

/** The table's inheritance children, schema-qualified, in name order; none for a partitioned table or a missing one. Read-only. */
export async function inheritanceChildren(pool: pg.Pool, table: TableName): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    sql`SELECT n.nspname || '.' || c.relname AS name
          FROM pg_inherits i
          JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.inhparent = to_regclass(${qualifiedName(table)}) AND p.relkind <> 'p'
         ORDER BY 1`,
  );
  return rows.map((row) => row.name);
}

function named(children: string[]): string {
  const shown = children.slice(0, NAMED_CHILDREN).join(', ');
  return children.length > NAMED_CHILDREN ? `${shown} and ${children.length - NAMED_CHILDREN} more` : shown;
}

/** Why the table's inheritance children make a migration from or into it untrue; null when it has none. Read-only. */
export async function inheritanceProblem(pool: pg.Pool, table: TableName, side: 'source' | 'target'): Promise<string | null> {
  const children = await inheritanceChildren(pool, table);
  if (children.length === 0) return null;
  const head = `${side} table ${displayName(table)} has inheritance children (${named(children)})`;
  return side === 'source'
    ? `${head}: a read of it returns their rows too, which its unique key does not cover, so a key can repeat and the copy would take rows from tables the plan does not name; ` +
        `migrate each child as a source of its own, and the parent's own rows once its children are detached (ALTER TABLE child NO INHERIT parent)`
    : `${head}: Ferry's reads and deletes of it reach their rows too, which its unique key does not cover, so verification would judge, and its repairs delete, rows of tables the plan does not name; ` +
        `migrate into a table without children`;
}
